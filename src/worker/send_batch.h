// The sends of one loop iteration, handed to the kernel in one system call.
//
// Why: a proxied request costs a worker four socket calls (read the client,
// write the upstream, read the upstream, write the client), and on the virtual
// machines phalanx is benched on a system call costs about 2 µs by itself
// (getppid: 1.9 µs on a PVM guest with page-table isolation), a third of a
// worker's CPU per request. The writes are made once the loop has run a
// wakeup's I/O callbacks (Worker::settle), so the answers to, and upstream
// requests of, every client read in that wakeup go out together: with
// io_uring, one IORING_OP_SEND each and one io_uring_enter for all of them.
//
// Each send carries MSG_DONTWAIT, which io_uring honours as "do not wait for
// the socket": the kernel tries it once during the submit and completes it
// there, exactly as a non-blocking write() would (all of the bytes, some, or
// none when the socket's buffer is full). No send is left running after
// submit() returns, so a sender's bytes need to live only until then.
//
// The ring is used only where a send on a full socket is seen to come back at
// once (probe(), at start); should a send still not complete within a submit,
// it is cancelled (it sent nothing) and the ring is not used again. Without
// io_uring (a kernel without it or without IORING_OP_SEND, a seccomp filter,
// the kernel.io_uring_disabled sysctl) the contract holds with one send() each.
//
// Contract:
// - add(sender) lists a sender for the next submit(); listing it again before
//   then is a no-op. Its bytes are asked for (unsent()) only in submit(), so it
//   may append to them in between.
// - remove(sender) unlists it: a sender that closes before submit() is never
//   called. It must be called before a listed sender is destroyed.
// - submit() sends every listed sender's bytes and then calls each one's
//   onSent(result) once, in the order they were listed: result is the number
//   of bytes the socket took (0 when it took none) or a negative libuv error
//   (UV_EPIPE, UV_ECONNRESET...). A sender with nothing to send gets 0.
//   Callbacks may list senders again; those go with the next submit().
#pragma once

#include <liburing.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::worker {

class SendBatch;

class BatchedSender {
 public:
  virtual ~BatchedSender() = default;
  virtual int sendFd() const = 0;
  virtual std::string_view unsent() const = 0;
  virtual void onSent(int result) = 0;

  // Listed for the next submit().
  bool listed() const { return listed_; }

 private:
  friend class SendBatch;
  bool listed_ = false;
};

class SendBatch {
 public:
  // `use_io_uring` false: one send() per sender (tests compare both ways).
  explicit SendBatch(bool use_io_uring = true);
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  // How sends are made, for the worker's start-up log: "io_uring", or why not.
  const std::string& method() const { return method_; }
  bool usesRing() const { return ring_ready_; }

  void add(BatchedSender* sender);
  void remove(BatchedSender* sender);
  bool empty() const { return listed_.empty(); }
  void submit();

 private:
  // Results of running_[from, from + count) through the ring; false when the
  // ring failed (the caller sends what has no result yet one by one).
  bool sendByRing(size_t from, size_t count);
  size_t reap(bool wait, int* error, size_t owed = 0);
  // Whether this kernel completes a MSG_DONTWAIT send within the submit: one
  // send on a full socket of a socket pair must come back with EAGAIN at once.
  bool probe(std::string* why);
  void disableRing(const std::string& why);

  io_uring ring_{};
  bool ring_ready_ = false;
  unsigned ring_entries_ = 0;
  std::string method_;
  std::vector<BatchedSender*> listed_;
  std::vector<BatchedSender*> running_;  // the senders of the submit() in progress
  std::vector<int> results_;             // per running_ entry; kNoResult until known
  std::vector<size_t> queued_;           // running_ indices in the ring, in order
};

}  // namespace phalanx::worker

// Connections to upstream targets: opened on demand, kept alive between
// requests in a bounded idle pool per target, per worker.
//
// Contract:
// - take(target) hands out the most recently used idle connection (the one
//   least likely to have been closed by the upstream's own idle timeout), or
//   nullptr; open(target, user) starts a new one. Either way the caller is its
//   user until it calls release() or close().
// - release(conn, reusable): back to the idle pool when `reusable` (the
//   response was complete, neither side asked to close) and the target has
//   fewer than max_idle idle ones; closed otherwise.
// - An idle connection is watched: any byte or EOF from the upstream closes it
//   (an upstream may only speak when asked), and it is closed after
//   idle_timeout_ms, which should be below the upstream's own keep-alive
//   timeout so phalanx closes first and the reuse race stays rare.
// - A user gets its callbacks until release() or close(); never after, and
//   never from inside a call it made on the connection.
// - Reads go through one buffer the pool owns: a user consumes the bytes in
//   onUpstreamData() or copies them.
// - Writes are corked: write() appends to the connection's output and lists
//   the connection in the worker's send batch (send_batch.h), which sends it
//   once the loop has run the I/O callbacks of a wakeup (and before the loop
//   waits again), with every other connection's output and the clients'
//   answers: the requests read from several clients in one wakeup reach the
//   upstream together, it is woken once for them, and does not preempt the
//   worker between two of its writes. Output of 16 KiB or more (body bytes)
//   is sent at once: waiting gains nothing there.
// - A socket that refuses the first bytes of a user's request (nothing of it
//   reached the upstream) is reported after the batch's send with
//   onUpstreamSendFailed(), or by write()'s return when it sent at once; a
//   failure after some bytes went out, with onUpstreamWritten(error), and the
//   read side then sees the connection end.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "worker/gateway/upstream_response_parser.h"
#include "worker/send_batch.h"

namespace phalanx::worker {

class UpstreamPool;

class UpstreamConnection final : private BatchedSender {
 public:
  class User {
   public:
    virtual ~User() = default;
    virtual void onConnected(int status) = 0;  // 0, or a libuv error
    virtual void onUpstreamData(const char* data, size_t length) = 0;
    virtual void onUpstreamEnd(int status) = 0;      // UV_EOF, or a libuv error
    // Written bytes left for the socket (the send batch, or a queued write completed),
    // or failed to: status is 0 or a libuv error.
    virtual void onUpstreamWritten(int status) = 0;
    // The socket refused the request's first bytes: the connection is broken
    // and nothing of the request reached the upstream.
    virtual void onUpstreamSendFailed(int status) = 0;
    virtual void onUpstreamTimeout() = 0;            // the deadline set with setTimeout() passed
  };

  ~UpstreamConnection() override;

  // Appends `first` then `second` to what the send batch sends next (or
  // queues them behind a write the socket has not finished taking; sends at
  // once from 16 KiB on). Returns a libuv error when the connection is closing
  // or the socket refused what was sent at once.
  int write(std::string_view first, std::string_view second = {});
  // The parser of this connection's responses, kept across requests.
  UpstreamResponseParser& parser() { return parser_; }
  // Bytes written and not yet taken by the socket (corked or queued).
  size_t pendingWrite() const;
  void startReading();
  void stopReading();
  // The user hears onUpstreamTimeout() once `timeout_ms` have passed without
  // another setTimeout() or clearTimeout(). One timer per connection serves
  // this and the idle timeout, re-armed lazily: pushing a deadline back costs
  // no timer operation, so a request on a pooled connection costs none.
  void setTimeout(uint64_t timeout_ms);
  void clearTimeout() { deadline_ms_ = 0; }

  uint32_t target() const { return target_; }
  // It served a request before this one (the reuse race is possible).
  bool reused() const { return requests_ > 0; }

 private:
  friend class UpstreamPool;
  enum class State { Connecting, Busy, Idle, Closing };
  struct QueuedWrite {
    uv_write_t req{};
    std::string bytes;
    size_t length = 0;  // what was queued: bytes past those the socket took at once
  };

  UpstreamConnection(UpstreamPool& pool, uint32_t target);
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void setDeadline(uint64_t deadline_ms);
  void onTimer();
  int queue(std::string bytes, size_t offset);
  void onWriteDone(QueuedWrite* write, int status);
  int sendCorked();
  int afterSend(int result);
  // BatchedSender: corked_ goes with the worker's next send batch.
  int sendFd() const override;
  std::string_view unsent() const override { return corked_; }
  void onSent(int result) override;
  void failSend(int status);
  void beginClose();

  UpstreamPool& pool_;
  uint32_t target_;
  State state_ = State::Connecting;
  User* user_ = nullptr;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};        // the idle timeout or the user's deadline
  uint64_t deadline_ms_ = 0;  // loop time; 0 = none
  uint64_t timer_due_ms_ = 0;
  bool timer_armed_ = false;
  uv_connect_t connect_req_{};
  std::list<std::unique_ptr<QueuedWrite>> writes_;
  size_t pending_write_ = 0;    // bytes in writes_
  std::string corked_;          // written since the last batch, while writes_ was empty
  bool sent_any_ = false;       // the socket took bytes of the current user's request
  bool reading_ = false;
  uint64_t requests_ = 0;
  int handles_open_ = 0;
  UpstreamResponseParser parser_;
  std::list<UpstreamConnection*>::iterator idle_at_;
  std::list<std::unique_ptr<UpstreamConnection>>::iterator self_;
};

class UpstreamPool {
 public:
  struct Target {
    sockaddr_storage address{};
    uint32_t max_idle = 32;
    uint32_t idle_timeout_ms = 4000;
  };

  // Upstream requests are sent through `sends` (the worker's, which outlives the pool).
  UpstreamPool(uv_loop_t* loop, SendBatch& sends, std::vector<Target> targets);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  UpstreamConnection* take(uint32_t target, UpstreamConnection::User* user);
  // Starts connecting; the user hears onConnected(). nullptr when a socket
  // cannot even be created (EMFILE): the caller answers as for a refused connect.
  UpstreamConnection* open(uint32_t target, UpstreamConnection::User* user, int* error);
  void release(UpstreamConnection* conn, bool reusable);
  void close(UpstreamConnection* conn);
  // Closes every idle connection (the worker is draining).
  void closeIdle();

 private:
  friend class UpstreamConnection;
  uv_buf_t readBuffer();
  void forget(UpstreamConnection* conn);  // its handles are closed: free it

  uv_loop_t* loop_;
  SendBatch& sends_;
  std::vector<Target> targets_;
  // Most recently released at the back.
  std::vector<std::list<UpstreamConnection*>> idle_;
  std::list<std::unique_ptr<UpstreamConnection>> all_;
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace phalanx::worker

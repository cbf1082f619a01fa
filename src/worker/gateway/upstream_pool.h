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

namespace phalanx::worker {

class UpstreamPool;

class UpstreamConnection {
 public:
  class User {
   public:
    virtual ~User() = default;
    virtual void onConnected(int status) = 0;  // 0, or a libuv error
    virtual void onUpstreamData(const char* data, size_t length) = 0;
    virtual void onUpstreamEnd(int status) = 0;      // UV_EOF, or a libuv error
    virtual void onUpstreamWritten(int status) = 0;  // a queued write completed (or failed)
    virtual void onUpstreamTimeout() = 0;            // the deadline set with setTimeout() passed
  };

  // Sends `bytes` (as much as the socket takes now, the rest queued). Returns
  // a libuv error when the connection is already broken.
  int write(std::string bytes);
  // Sends `first` then `second` in one system call when the socket takes
  // them; copies only what it does not take.
  int write(std::string_view first, std::string_view second);
  // The parser of this connection's responses, kept across requests.
  UpstreamResponseParser& parser() { return parser_; }
  // Bytes queued and not yet taken by the socket.
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
  size_t pending_write_ = 0;
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

  UpstreamPool(uv_loop_t* loop, std::vector<Target> targets);
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
  std::vector<Target> targets_;
  // Most recently released at the back.
  std::vector<std::list<UpstreamConnection*>> idle_;
  std::list<std::unique_ptr<UpstreamConnection>> all_;
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace phalanx::worker

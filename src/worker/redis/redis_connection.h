// One hiredis async connection on a libuv loop, kept alive: connects, abandons
// a connect that takes longer than its timeout, and after any failure or loss
// reconnects forever with jittered exponential backoff. It logs the first
// failure of a streak (warn) and the recovery (info) once each, never every
// retry, so a Redis outage costs two log lines per connection, not thousands.
//
// Contract:
// - Nothing blocks: the address is numeric (shared::Address), so hiredis's
//   getaddrinfo never reaches DNS, and connect(2) is non-blocking.
// - context() is the hiredis context while ready, else nullptr. Its `data`
//   points at this RedisConnection; reply callbacks reach their owner through
//   RedisConnection::fromContext(ac)->user(), which is nullptr once the
//   connection has abandoned that context (late callbacks must then do nothing).
// - on_ready and on_lost run from the loop, last in their handler: they may call
//   drop(), close() or issue commands, but must not destroy this object.
// - drop() and close() free the hiredis context at once (or, inside a hiredis
//   reply callback, as soon as it returns, which hiredis allows); hiredis then
//   calls each pending reply callback with a null reply, which fromContext()
//   turns into nothing: the owner fails its pending commands itself.
// - close() leaves no active handle; the loop must run once more to free the
//   closing ones (uv_close), as for any handle.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "shared/address.h"
#include "worker/uv_timer.h"

struct redisAsyncContext;

namespace phalanx::worker {

// The delay before each reconnect attempt: min_ms doubling per attempt up to
// max_ms, each drawn in [max(min_ms, nominal/2), nominal] so that the workers
// of a fleet do not reconnect in lockstep after a Redis restart.
class ReconnectBackoff {
 public:
  ReconnectBackoff(uint32_t min_ms, uint32_t max_ms, uint64_t seed);
  uint64_t next();
  void reset() { attempt_ = 0; }

 private:
  uint64_t min_ms_, max_ms_;
  uint32_t attempt_ = 0;
  std::mt19937_64 random_;
};

class RedisConnection {
 public:
  struct Options {
    shared::Address address;
    uint32_t connect_timeout_ms = 200;
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
    std::string name = "redis";  // for log lines: "redis 127.0.0.1:6379 (commands)"
    void* user = nullptr;        // handed back by user(), for reply callbacks
  };
  struct Events {
    std::function<void()> on_ready;  // connected (again)
    std::function<void()> on_lost;   // a ready connection is gone (lost or dropped)
  };

  RedisConnection(uv_loop_t* loop, Options options, Events events);
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;
  ~RedisConnection() { close(); }

  void start();
  // Abandons a ready connection the owner found dead (e.g., replies stopped)
  // and reconnects with backoff. Calls on_lost.
  void drop(const std::string& why);
  void close();

  bool ready() const { return state_ == State::Ready; }
  redisAsyncContext* context() const { return state_ == State::Ready ? context_ : nullptr; }
  void* user() const { return options_.user; }
  // Successful connections after the first one.
  uint64_t reconnects() const { return reconnects_; }
  // Connect attempts that failed or timed out.
  uint64_t failedConnects() const { return failed_connects_; }

  // The connection a hiredis callback belongs to, or nullptr when it was
  // abandoned (its callbacks are late and must do nothing).
  static RedisConnection* fromContext(const redisAsyncContext* context);

 private:
  enum class State { Idle, Connecting, Ready, Waiting, Closed };

  void connect();
  void onConnected();
  void onFailed(const std::string& why);
  void onLost(const std::string& why);
  void abandonContext();
  void noteFailure(const std::string& what);
  static void connectCallback(const redisAsyncContext* context, int status);
  static void disconnectCallback(const redisAsyncContext* context, int status);

  uv_loop_t* loop_;
  Options options_;
  Events events_;
  State state_ = State::Idle;
  redisAsyncContext* context_ = nullptr;  // owned by hiredis once attached; see abandonContext()
  std::unique_ptr<UvTimer> timer_;        // connect timeout, then the backoff wait
  ReconnectBackoff backoff_;
  bool ever_connected_ = false;
  bool failing_ = false;           // in a streak of failures, already logged
  uint64_t failing_since_ms_ = 0;  // loop time of the streak's first failure
  uint32_t failed_attempts_ = 0;   // in this streak
  uint64_t reconnects_ = 0;
  uint64_t failed_connects_ = 0;
};

}  // namespace phalanx::worker

// The worker's Redis client: hiredis's async API on the worker's libuv loop,
// one connection for commands and, from the first subscribe(), a second one
// for SUBSCRIBE (a subscribed connection can carry nothing else).
//
// Contract:
// - Nothing ever blocks or waits on Redis. Every command's callback is called
//   exactly once, always from the loop, never from inside command() itself,
//   and at most timeout_ms after the call (loop stalls aside): with the reply,
//   or with a failure (RedisReply::failure: not connected, timeout,
//   disconnected, closed). A reply that comes after its timeout is dropped.
// - A command issued while the connection is down is not queued: it fails
//   (NotConnected) on the next loop turn. Callers have a local fallback.
// - kDeadAfterTimeouts consecutive timeouts mean the connection is dead (a
//   hung server, a black-holed route): it is dropped and reconnected.
// - Connects are abandoned after max(timeout_ms, kMinConnectTimeoutMs): a TCP
//   handshake plus the server's accept needs more than a command's 50 ms
//   budget on a loaded host, and no command waits on a connect anyway.
//   Reconnects run forever, backing off from reconnect_min_ms to
//   reconnect_max_ms (jittered); see redis_connection.h for logging.
// - Subscriptions survive reconnects: each is re-sent on every new subscriber
//   connection, and on_subscribed runs each time Redis confirms it, so the
//   caller can re-read state it may have missed while unsubscribed.
// - Callbacks may call command(), subscribe() and close(), but must not
//   destroy the client: destroy it after close(), outside its callbacks.
// - close() fails every pending command (Closed) from inside close(); a
//   command() after close() fails at once too, as there is no loop turn left
//   to defer to. Afterwards no handle of the client is active; the loop must
//   run once more to finish closing them, as for any uv handle.
// - hiredis writes with write(2): the process must ignore SIGPIPE (workers do).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/address.h"
#include "worker/redis/redis_connection.h"
#include "worker/redis/redis_reply.h"
#include "worker/uv_timer.h"

struct redisAsyncContext;

namespace phalanx::worker {

class RedisClient {
 public:
  struct Options {
    shared::Address address;
    uint32_t timeout_ms = 50;  // per command, from command() to its callback
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 5000;
  };
  using Callback = std::function<void(RedisReply reply)>;

  static constexpr uint32_t kMinConnectTimeoutMs = 200;
  static constexpr uint32_t kDeadAfterTimeouts = 3;

  // Figures for /metrics, each only ever growing.
  struct Counters {
    uint64_t commands = 0;    // command() calls
    uint64_t failures = 0;    // commands that got no reply, whatever the reason (timeouts too)
    uint64_t timeouts = 0;    // of which: no reply within timeout_ms
    uint64_t reconnects = 0;  // connections made after a failure or loss, both connections
  };

  RedisClient(uv_loop_t* loop, Options options);
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;
  ~RedisClient() { close(); }

  // Starts connecting; commands issued before the connection is up fail.
  void start();
  void command(std::vector<std::string> args, Callback callback);
  // Listens to `channel` for the client's lifetime; a second subscribe() to
  // the same channel adds a listener (and re-confirms the channel to all).
  void subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                 std::function<void()> on_subscribed);
  // Runs `handler` from the loop each time the command connection comes up
  // (the first time too), e.g. to retry work that failed while it was down.
  void onConnected(std::function<void()> handler);
  void close();

  // The command connection is up.
  bool connected() const { return commands_link_ && commands_link_->ready(); }
  Counters counters() const;
  const Options& options() const { return options_; }

 private:
  struct Pending {
    uint64_t id;
    uint64_t deadline_ms;  // loop time
    Callback callback;
  };
  struct Deferred {
    Callback callback;
    RedisFailure failure;
  };
  struct Listener {
    std::function<void(std::string_view)> on_message;
    std::function<void()> on_subscribed;
  };
  // hiredis keeps one callback per channel, so the listeners of a channel share it.
  struct Subscription {
    std::string channel;
    std::vector<Listener> listeners;
  };

  void failLater(Callback callback, RedisFailure failure);
  void deliverDeferred();
  void announceConnected();
  void onReply(uint64_t id, const void* reply);
  void expireTimedOut();
  void armTimeout();
  void failAllPending(RedisFailure failure);
  void sendSubscribe(size_t index);
  void onSubscriptionReply(size_t index, const void* reply);
  static void replyCallback(redisAsyncContext* context, void* reply, void* privdata);
  static void subscriptionCallback(redisAsyncContext* context, void* reply, void* privdata);
  RedisConnection::Options linkOptions(const char* role);

  uv_loop_t* loop_;
  Options options_;
  bool started_ = false;
  bool closed_ = false;
  std::unique_ptr<RedisConnection> commands_link_;
  std::unique_ptr<RedisConnection> subscriber_link_;  // from the first subscribe()
  std::deque<Pending> pending_;               // sent, unanswered; ids and deadlines ascending
  std::deque<Deferred> deferred_;             // failed before being sent, delivered next turn
  std::unique_ptr<UvTimer> timeout_timer_;    // due at pending_.front().deadline_ms
  std::unique_ptr<UvTimer> deliver_timer_;    // 0 ms, while deferred_ is not empty
  std::unique_ptr<UvTimer> connected_timer_;  // 0 ms, to run on_connected_ after a connect
  std::vector<std::function<void()>> on_connected_;
  std::vector<Subscription> subscriptions_;  // never shrinks: indexes are hiredis privdata
  uint64_t next_id_ = 1;
  uint32_t consecutive_timeouts_ = 0;
  Counters counters_;
};

}  // namespace phalanx::worker

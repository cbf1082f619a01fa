#include "worker/redis/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstring>

namespace phalanx::worker {

namespace {

void* idToPrivdata(uint64_t id) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(id));
}
uint64_t privdataToId(void* privdata) {
  return reinterpret_cast<uintptr_t>(privdata);
}

}  // namespace

RedisClient::RedisClient(uv_loop_t* loop, Options options)
    : loop_(loop),
      options_(std::move(options)),
      timeout_timer_(std::make_unique<UvTimer>(loop)),
      deliver_timer_(std::make_unique<UvTimer>(loop)),
      connected_timer_(std::make_unique<UvTimer>(loop)) {
  commands_link_ = std::make_unique<RedisConnection>(
      loop_, linkOptions("commands"),
      RedisConnection::Events{.on_ready =
                                  [this] {
                                    // Not from inside hiredis's connect callback, where
                                    // a close() would free the context under its feet.
                                    if (!on_connected_.empty() && connected_timer_) {
                                      connected_timer_->start(0, [this] { announceConnected(); });
                                    }
                                  },
                              .on_lost =
                                  [this] {
                                    consecutive_timeouts_ = 0;
                                    failAllPending(RedisFailure::Disconnected);
                                  }});
}

RedisConnection::Options RedisClient::linkOptions(const char* role) {
  return RedisConnection::Options{
      .address = options_.address,
      .connect_timeout_ms = std::max(options_.timeout_ms, kMinConnectTimeoutMs),
      .reconnect_min_ms = options_.reconnect_min_ms,
      .reconnect_max_ms = options_.reconnect_max_ms,
      .name = std::string("redis ") + role,
      .user = this,
  };
}

void RedisClient::start() {
  if (closed_ || started_) return;
  started_ = true;
  commands_link_->start();
  if (subscriber_link_) subscriber_link_->start();
}

void RedisClient::command(std::vector<std::string> args, Callback callback) {
  ++counters_.commands;
  if (closed_) {
    ++counters_.failures;
    callback(RedisReply::failed(RedisFailure::Closed));
    return;
  }
  redisAsyncContext* context = commands_link_->context();
  if (context == nullptr || args.empty()) {
    return failLater(std::move(callback), RedisFailure::NotConnected);
  }
  std::vector<const char*> argv(args.size());
  std::vector<size_t> lengths(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lengths[i] = args[i].size();
  }
  uint64_t id = next_id_++;
  // hiredis copies the arguments into its output buffer here.
  if (redisAsyncCommandArgv(context, &RedisClient::replyCallback, idToPrivdata(id),
                            static_cast<int>(argv.size()), argv.data(),
                            lengths.data()) != REDIS_OK) {
    // The context is being torn down (inside a callback of the lost connection).
    return failLater(std::move(callback), RedisFailure::Disconnected);
  }
  pending_.push_back(Pending{id, uv_now(loop_) + options_.timeout_ms, std::move(callback)});
  if (pending_.size() == 1) armTimeout();
}

void RedisClient::onConnected(std::function<void()> handler) {
  on_connected_.push_back(std::move(handler));
}

void RedisClient::announceConnected() {
  // By index and on a copy: a handler may add handlers or close the client.
  for (size_t i = 0; i < on_connected_.size() && connected() && !closed_; ++i) {
    std::function<void()> handler = on_connected_[i];
    handler();
  }
}

void RedisClient::failLater(Callback callback, RedisFailure failure) {
  ++counters_.failures;
  deferred_.push_back(Deferred{std::move(callback), failure});
  if (!deliver_timer_->active()) deliver_timer_->start(0, [this] { deliverDeferred(); });
}

void RedisClient::deliverDeferred() {
  std::deque<Deferred> due;
  due.swap(deferred_);
  for (Deferred& d : due) d.callback(RedisReply::failed(d.failure));
}

// Every command sent on a context gets exactly one call here: its reply, or a
// null reply when hiredis tears the connection down. A context this client
// abandoned (dead connection, close) calls with no owner and is ignored.
void RedisClient::replyCallback(redisAsyncContext* context, void* reply, void* privdata) {
  RedisConnection* link = RedisConnection::fromContext(context);
  if (link == nullptr) return;
  static_cast<RedisClient*>(link->user())->onReply(privdataToId(privdata), reply);
}

void RedisClient::onReply(uint64_t id, const void* reply) {
  auto it = std::lower_bound(pending_.begin(), pending_.end(), id,
                             [](const Pending& p, uint64_t wanted) { return p.id < wanted; });
  if (it == pending_.end() || it->id != id) return;  // timed out already: the reply is late
  Callback callback = std::move(it->callback);
  pending_.erase(it);
  if (reply != nullptr) {
    consecutive_timeouts_ = 0;
  } else {
    ++counters_.failures;
  }
  callback(RedisReply::fromHiredis(static_cast<const redisReply*>(reply)));
}

void RedisClient::armTimeout() {
  if (timeout_timer_ == nullptr) return;
  if (pending_.empty()) return timeout_timer_->stop();
  uint64_t now = uv_now(loop_);
  uint64_t deadline = pending_.front().deadline_ms;
  timeout_timer_->start(deadline > now ? deadline - now : 0, [this] { expireTimedOut(); });
}

void RedisClient::expireTimedOut() {
  uint64_t now = uv_now(loop_);
  while (!pending_.empty() && pending_.front().deadline_ms <= now) {
    Callback callback = std::move(pending_.front().callback);
    pending_.pop_front();
    ++counters_.timeouts;
    ++counters_.failures;
    ++consecutive_timeouts_;
    callback(RedisReply::failed(RedisFailure::Timeout));
    if (closed_) return;
  }
  if (consecutive_timeouts_ >= kDeadAfterTimeouts && commands_link_->ready()) {
    consecutive_timeouts_ = 0;
    // Fails what is still pending (Disconnected) through on_lost.
    commands_link_->drop(std::to_string(kDeadAfterTimeouts) + " commands in a row timed out");
    if (closed_) return;
  }
  armTimeout();
}

void RedisClient::failAllPending(RedisFailure failure) {
  std::deque<Pending> failing;
  failing.swap(pending_);
  if (timeout_timer_) timeout_timer_->stop();
  for (Pending& p : failing) {
    ++counters_.failures;
    p.callback(RedisReply::failed(failure));
  }
}

void RedisClient::subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                            std::function<void()> on_subscribed) {
  if (closed_) return;
  auto same = [&](const Subscription& s) { return s.channel == channel; };
  auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(), same);
  size_t index = static_cast<size_t>(it - subscriptions_.begin());
  if (it == subscriptions_.end()) subscriptions_.push_back(Subscription{std::move(channel), {}});
  subscriptions_[index].listeners.push_back(
      Listener{std::move(on_message), std::move(on_subscribed)});
  if (subscriber_link_ == nullptr) {
    subscriber_link_ = std::make_unique<RedisConnection>(
        loop_, linkOptions("subscriber"),
        RedisConnection::Events{.on_ready =
                                    [this] {
                                      for (size_t i = 0; i < subscriptions_.size(); ++i)
                                        sendSubscribe(i);
                                    },
                                .on_lost = nullptr});
    if (started_) subscriber_link_->start();
    return;
  }
  // Again for a known channel: Redis confirms again, and every listener of the
  // channel hears on_subscribed once more (harmless: it means "re-read").
  sendSubscribe(index);
}

void RedisClient::sendSubscribe(size_t index) {
  redisAsyncContext* context = subscriber_link_->context();
  if (context == nullptr) return;  // sent when the connection is (back) up
  const std::string& channel = subscriptions_[index].channel;
  const char* argv[2] = {"SUBSCRIBE", channel.data()};
  size_t lengths[2] = {9, channel.size()};
  // hiredis keeps one callback per channel for the connection's lifetime and
  // calls it for the confirmation and for every message.
  redisAsyncCommandArgv(context, &RedisClient::subscriptionCallback, idToPrivdata(index), 2, argv,
                        lengths);
}

void RedisClient::subscriptionCallback(redisAsyncContext* context, void* reply, void* privdata) {
  RedisConnection* link = RedisConnection::fromContext(context);
  // A null reply means the connection is going; on_ready resubscribes later.
  if (link == nullptr || reply == nullptr) return;
  static_cast<RedisClient*>(link->user())->onSubscriptionReply(privdataToId(privdata), reply);
}

void RedisClient::onSubscriptionReply(size_t index, const void* raw) {
  const auto* reply = static_cast<const redisReply*>(raw);
  if (index >= subscriptions_.size() || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING) {
    return;
  }
  std::string_view kind(reply->element[0]->str, reply->element[0]->len);
  const redisReply* payload = reply->element[2];
  bool message = kind == "message" && payload->type == REDIS_REPLY_STRING;
  if (!message && kind != "subscribe") return;
  std::string_view text = message ? std::string_view(payload->str, payload->len) : "";
  // By index and on a copy: a listener may subscribe (growing these vectors) or close.
  for (size_t i = 0; i < subscriptions_[index].listeners.size() && !closed_; ++i) {
    Listener listener = subscriptions_[index].listeners[i];
    if (message && listener.on_message) listener.on_message(text);
    if (!message && listener.on_subscribed) listener.on_subscribed();
  }
}

RedisClient::Counters RedisClient::counters() const {
  Counters counters = counters_;
  counters.reconnects =
      commands_link_->reconnects() + (subscriber_link_ ? subscriber_link_->reconnects() : 0);
  return counters;
}

void RedisClient::close() {
  if (closed_) return;
  closed_ = true;
  // The links stay (a callback of theirs may be running): only their contexts go.
  commands_link_->close();
  if (subscriber_link_) subscriber_link_->close();
  timeout_timer_.reset();
  deliver_timer_.reset();
  connected_timer_.reset();
  failAllPending(RedisFailure::Closed);
  std::deque<Deferred> undelivered;
  undelivered.swap(deferred_);
  for (Deferred& d : undelivered) d.callback(RedisReply::failed(RedisFailure::Closed));
}

}  // namespace phalanx::worker

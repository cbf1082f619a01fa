#include "worker/redis/redis_connection.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "worker/redis/redis_uv_adapter.h"

namespace phalanx::worker {

namespace {

// The numeric host of an address, as hiredis wants it ("127.0.0.1", "::1").
std::string numericHost(const shared::Address& address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  } else {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address.storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
  }
  return text;
}

std::string errorOf(const redisAsyncContext* context, const char* otherwise) {
  return context->errstr[0] != '\0' ? std::string(context->errstr) : std::string(otherwise);
}

}  // namespace

ReconnectBackoff::ReconnectBackoff(uint32_t min_ms, uint32_t max_ms, uint64_t seed)
    : min_ms_(std::max<uint64_t>(min_ms, 1)),
      max_ms_(std::max<uint64_t>(max_ms, std::max<uint64_t>(min_ms, 1))),
      random_(seed) {}

uint64_t ReconnectBackoff::next() {
  uint64_t nominal = std::min(max_ms_, min_ms_ << std::min<uint32_t>(attempt_, 32));
  if (attempt_ < 64) ++attempt_;
  uint64_t low = std::max(min_ms_, nominal / 2);
  if (nominal <= low) return low;
  return low + random_() % (nominal - low + 1);
}

RedisConnection::RedisConnection(uv_loop_t* loop, Options options, Events events)
    : loop_(loop),
      options_(std::move(options)),
      events_(std::move(events)),
      timer_(std::make_unique<UvTimer>(loop)),
      backoff_(options_.reconnect_min_ms, options_.reconnect_max_ms, std::random_device{}()) {}

RedisConnection* RedisConnection::fromContext(const redisAsyncContext* context) {
  return context == nullptr ? nullptr : static_cast<RedisConnection*>(context->data);
}

void RedisConnection::start() {
  if (state_ == State::Idle) connect();
}

void RedisConnection::connect() {
  std::string host = numericHost(options_.address);
  redisAsyncContext* context = redisAsyncConnect(host.c_str(), options_.address.port);
  if (context == nullptr) return onFailed("out of memory");
  if (context->err != 0) {  // refused at once (loopback), or no socket
    std::string why = errorOf(context, "connect failed");
    redisAsyncFree(context);  // not attached yet: frees synchronously, calls nothing
    return onFailed(why);
  }
  if (!attachToLoop(context, loop_)) {
    redisAsyncFree(context);
    return onFailed("cannot watch the socket");
  }
  context->data = this;
  context_ = context;
  state_ = State::Connecting;
  // Attach first: the connect callback is armed by a write watch on the socket.
  redisAsyncSetConnectCallback(context, &RedisConnection::connectCallback);
  redisAsyncSetDisconnectCallback(context, &RedisConnection::disconnectCallback);
  timer_->start(options_.connect_timeout_ms, [this] {
    abandonContext();
    onFailed("connect timed out after " + std::to_string(options_.connect_timeout_ms) + " ms");
  });
}

// hiredis calls this once the socket is writable (or failed). On failure it
// frees the context itself right after; it must not be freed here.
void RedisConnection::connectCallback(const redisAsyncContext* context, int status) {
  RedisConnection* self = fromContext(context);
  if (self == nullptr) return;
  if (status != REDIS_OK) {
    self->context_ = nullptr;
    self->onFailed(errorOf(context, "connect failed"));
    return;
  }
  redisEnableKeepAlive(&self->context_->c);  // finds a silently dead peer eventually
  self->onConnected();
}

// Called by hiredis while it frees a connected context (lost, or freed by us
// with data still set, which abandonContext() prevents).
void RedisConnection::disconnectCallback(const redisAsyncContext* context, int) {
  RedisConnection* self = fromContext(context);
  if (self == nullptr) return;
  self->context_ = nullptr;
  self->onLost(errorOf(context, "closed by the server"));
}

// Forgets the current context and has hiredis free it; the callbacks it still
// makes while freeing it find no owner (data is null) and do nothing.
void RedisConnection::abandonContext() {
  redisAsyncContext* context = context_;
  context_ = nullptr;
  if (context == nullptr) return;
  context->data = nullptr;
  redisAsyncFree(context);
}

void RedisConnection::onConnected() {
  timer_->stop();
  state_ = State::Ready;
  backoff_.reset();
  if (failing_) {
    spdlog::info("{} {}: connected again after {} failed attempts, {} ms", options_.name,
                 options_.address.text, failed_attempts_, uv_now(loop_) - failing_since_ms_);
    failing_ = false;
    failed_attempts_ = 0;
  }
  if (ever_connected_) ++reconnects_;
  ever_connected_ = true;
  if (events_.on_ready) events_.on_ready();
}

void RedisConnection::noteFailure(const std::string& what) {
  ++failed_attempts_;
  if (failing_) return;
  failing_ = true;
  failing_since_ms_ = uv_now(loop_);
  spdlog::warn("{} {}: {}; reconnecting with backoff ({}-{} ms), logged once until it recovers",
               options_.name, options_.address.text, what, options_.reconnect_min_ms,
               options_.reconnect_max_ms);
}

void RedisConnection::onFailed(const std::string& why) {
  if (state_ == State::Closed) return;
  state_ = State::Waiting;
  ++failed_connects_;
  noteFailure(ever_connected_ ? "reconnect failed: " + why : "connect failed: " + why);
  timer_->start(backoff_.next(), [this] { connect(); });
}

void RedisConnection::onLost(const std::string& why) {
  if (state_ != State::Ready) return;
  state_ = State::Waiting;
  noteFailure("connection lost: " + why);
  failed_attempts_ = 0;  // the loss itself is not a connect attempt
  timer_->start(backoff_.next(), [this] { connect(); });
  if (events_.on_lost) events_.on_lost();  // last: it may close this connection
}

void RedisConnection::drop(const std::string& why) {
  if (state_ != State::Ready) return;
  abandonContext();
  onLost(why);
}

void RedisConnection::close() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  abandonContext();
  timer_.reset();
}

}  // namespace phalanx::worker

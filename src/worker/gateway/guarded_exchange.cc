#include "worker/gateway/guarded_exchange.h"

#include <algorithm>
#include <array>

#include "shared/policy/cache_control.h"
#include "shared/shm.h"
#include "worker/gateway/client_address.h"
#include "worker/gateway/forwarding.h"
#include "worker/gateway/gateway.h"
#include "worker/handlers.h"
#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

// Room for the rate-limit header lines of two limits in the default style
// ("RateLimit-Policy: ...\r\nRateLimit: ...\r\n" is about 80 bytes for one).
constexpr size_t kRateLimitHeaderReserve = 192;

void bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

bool isUnsafe(uint8_t method) {
  return method == HTTP_POST || method == HTTP_PUT || method == HTTP_PATCH || method == HTTP_DELETE;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

GuardedExchange::GuardedExchange(Gateway& gateway, const Route& route, const Request& request,
                                 ExchangeSink& sink)
    : gateway_(gateway),
      route_(route),
      guard_(gateway.guard().route(route.index)),
      request_(request),
      sink_(sink) {}

GuardedExchange::~GuardedExchange() {
  alive_.reset();  // expires the tokens pending callbacks hold
  if (waiter_id_ != 0) gateway_.cache().stopWaiting(cache_key_, waiter_id_);
  // A leader whose client left: the waiters go upstream themselves.
  if (leader_) gateway_.cache().release(cache_key_);
}

void GuardedExchange::start() {
  Guard& guard = gateway_.guard();
  const ClientInfo& client = sink_.client();
  if (!guard_.allow.empty() &&
      (client.peer == nullptr || !shared::anyContains(guard_.allow, client.peer))) {
    bump(guard.info().auth_failures[static_cast<uint32_t>(shared::AuthFailure::Address)]);
    return refuse(403, "forbidden", {});
  }
  if (guard_.auth) {
    identity_ = guard.authenticator().authenticate(guard_.scheme, request_, shared::wallMs());
    if (!identity_.ok) {
      bump(guard.info().auth_failures[static_cast<uint32_t>(identity_.failure)]);
      if (identity_.failure == shared::AuthFailure::NoTier) {
        return refuse(403, "forbidden for this tier", {});
      }
      // RFC 6750 3: no error code when no credentials came at all.
      const char* challenge = identity_.failure == shared::AuthFailure::Missing
                                  ? "Bearer realm=\"phalanx\""
                                  : "Bearer realm=\"phalanx\", error=\"invalid_token\"";
      return refuse(401, "missing or invalid credentials", {{"WWW-Authenticate", challenge}});
    }
    usage_ = shared::keyUsage(guard.region(), identity_.id, identity_.tier);
    if (usage_ == nullptr) bump(guard.info().keys_untracked);
    if (!guard_.tiers.empty() &&
        std::find(guard_.tiers.begin(), guard_.tiers.end(), identity_.tier) == guard_.tiers.end()) {
      bump(guard.info().auth_failures[static_cast<uint32_t>(shared::AuthFailure::Tier)]);
      countUsage(true);
      return refuse(403, "forbidden for this tier", {});
    }
    bump(guard.info().auth_ok);
  }
  checkLimits();
}

std::string_view GuardedExchange::limitKey(const RateLimiter::Limit& limit) const {
  switch (limit.key) {
    case shared::LimitKey::Ip:
      return clientAddress(sink_.client(), request_, gateway_.guard().trustedProxies());
    case shared::LimitKey::ApiKey: return identity_.id;
    case shared::LimitKey::Header: return request_.field(limit.header);
    case shared::LimitKey::Route: return route_.path;
  }
  return {};
}

void GuardedExchange::checkLimits() {
  RateLimiter& limiter = gateway_.guard().limiter();
  // The route's limits, then the caller's tier's.
  std::optional<uint32_t> tier;
  if (guard_.auth) tier = gateway_.guard().tierLimit(identity_.tier);
  // A limit whose key the request lacks does not apply. Local limits are
  // decided here and now (one CAS); cluster ones go to Redis together.
  applied_.reserve(guard_.limits.size() + (tier ? 1 : 0));
  std::vector<std::pair<size_t, std::string>> remote;
  auto apply = [&](uint32_t index) {
    const RateLimiter::Limit& limit = limiter.limit(index);
    std::string_view key = limitKey(limit);
    if (key.empty()) {
      bump(limit.record->unkeyed);
      return;
    }
    applied_.push_back({.limit = index, .decision = {}});
    if (limit.cluster) {
      remote.emplace_back(applied_.size() - 1, key);
    } else {
      applied_.back().decision = limiter.decideHere(index, key);
    }
  };
  for (uint32_t index : guard_.limits) apply(index);
  if (tier) apply(*tier);
  if (applied_.empty()) return pass();
  if (remote.empty()) return onLimitsDecided();
  undecided_ = remote.size() + 1;  // +1: held until every decide() was issued
  for (auto& [i, key] : remote) {
    std::weak_ptr<bool> alive = aliveToken();
    limiter.decide(applied_[i].limit, key, [this, i = i, alive](RateLimiter::Result result) {
      if (alive.expired()) return;
      applied_[i].decision = result.decision;
      if (--undecided_ == 0) onLimitsDecided();
    });
  }
  if (--undecided_ == 0) {
    onLimitsDecided();
    return;
  }
  hold();  // a decision is on its way from Redis
}

std::weak_ptr<bool> GuardedExchange::aliveToken() {
  if (!alive_) alive_ = std::make_shared<bool>(true);
  return alive_;
}

void GuardedExchange::hold() {
  waiting_ = true;
  if (!input_paused_) {
    input_paused_ = true;
    sink_.pauseInput();
  }
}

// An asynchronous step is over; the next may hold again.
void GuardedExchange::unhold() {
  waiting_ = false;
}

void GuardedExchange::onLimitsDecided() {
  RateLimiter& limiter = gateway_.guard().limiter();
  // On the stack for the usual few limits: this runs for every request of a limited route.
  std::array<AppliedLimit, 4> few;
  std::vector<AppliedLimit> many;
  if (applied_.size() > few.size()) many.resize(applied_.size());
  AppliedLimit* shown = applied_.size() > few.size() ? many.data() : few.data();
  uint64_t retry_after_ms = 0;
  for (size_t i = 0; i < applied_.size(); ++i) {
    const Applied& a = applied_[i];
    const RateLimiter::Limit& limit = limiter.limit(a.limit);
    shown[i] = {.name = limit.name,
                .limit = limit.params.limit,
                .window_s = std::max<uint64_t>(1, limit.params.window_ms / 1000),
                .remaining = a.decision.remaining,
                .reset_s = (a.decision.reset_ms + 999) / 1000};
    if (!a.decision.allowed) retry_after_ms = std::max(retry_after_ms, a.decision.retry_after_ms);
  }
  // One allocation for the header lines (two limits' worth) instead of one per growth.
  extra_.reserve(kRateLimitHeaderReserve);
  appendRateLimitHeaders(extra_, limiter.limit(applied_.front().limit).style, shown,
                         applied_.size());
  unhold();
  if (retry_after_ms > 0) {
    countUsage(true);
    refuse(429, "too many requests",
           {{"Retry-After", std::to_string(retryAfterSeconds(retry_after_ms))}});
  } else {
    pass();
  }
  resumeHeld();
}

void GuardedExchange::countUsage(bool refused) {
  if (usage_ == nullptr) return;
  bump(usage_->requests);
  if (refused) bump(usage_->refused);
  usage_->last_seen_wall_ms.store(shared::wallMs(), std::memory_order_relaxed);
}

void GuardedExchange::pass() {
  if (guard_.auth) countUsage(false);
  if (route_.kind == shared::RouteKind::Upstream) {
    if (guard_.cache) return lookUpCache();
    return proxy(false);
  }
  if (route_.delay_ms > 0) {
    // A static route's delay holds like any asynchronous step; +1: loop time
    // is whole milliseconds, truncated, and the answer is never early.
    hold();
    delay_ = std::make_unique<UvTimer>(gateway_.loop());
    delay_->start(route_.delay_ms + 1, [this] {
      unhold();
      answerHere();
    });
    return;
  }
  answerHere();
}

void GuardedExchange::answerHere() {
  ConnectionHeader connection = sink_.beginResponse(false);
  std::string& out = gateway_.scratch();
  int status = gateway_.handlers().respond(&route_, request_, connection, out, extra_);
  finished_ = true;
  sink_.write(out);
  sink_.finish(status, true);
}

void GuardedExchange::proxy(bool tap) {
  if (cache_status_ != nullptr) {
    extra_ += "X-Cache: ";
    extra_ += cache_status_;
    extra_ += "\r\n";
  }
  inner_ = gateway_.makeProxy(route_, request_, *this);
  inner_->decorate(extra_, tap || invalidate_ ? this : nullptr);
  inner_->start();
  if (!held_body_.empty() && !finished_) {
    std::string body = std::move(held_body_);
    held_body_.clear();
    inner_->onBody(body.data(), body.size());
  }
  if (body_ended_ && !finished_) inner_->onBodyEnd();
}

void GuardedExchange::lookUpCache() {
  CacheLayer& cache = gateway_.cache();
  shared::AccessInfo& info = cache.info();
  cache.checkPurge();
  if (request_.method != HTTP_GET && request_.method != HTTP_HEAD) {
    invalidate_ = isUnsafe(request_.method);
    cache_status_ = "BYPASS";
    bump(info.cache_bypasses);
    return proxy(false);
  }
  shared::policy::CacheDirectives asked;
  bool credentials = false;
  for (size_t i = 0; i < request_.headerCount(); ++i) {
    auto [name, value] = request_.header(i);
    if (equalsLowercase(name, "cache-control")) shared::policy::mergeCacheControl(asked, value);
    if (equalsLowercase(name, "authorization") || equalsLowercase(name, "x-api-key")) {
      credentials = true;
    }
  }
  auto mode = shared::policy::requestCacheMode(asked);
  if (mode == shared::policy::RequestCacheMode::Bypass || (credentials && !guard_.cache->shared)) {
    cache_status_ = "BYPASS";
    bump(info.cache_bypasses);
    return proxy(false);
  }
  cache_key_ = cacheKey(request_.host(), request_.path(), request_.query());
  if (mode == shared::policy::RequestCacheMode::Use) {
    uint64_t now = gateway_.nowMs();
    auto hit = cache.l1().find(
        cache_key_, [this](std::string_view name) { return request_.field(name); }, now);
    if (hit && shared::policy::acceptsAge(asked, ageSeconds(*hit, now))) {
      bump(info.cache_hits);
      return serveHit(*hit);
    }
    if (cache.l2() != nullptr) {
      hold();
      std::weak_ptr<bool> alive = aliveToken();
      cache.l2()->get(CacheLayer::l2Key(request_.host(), request_.path(), request_.query()),
                      [this, alive](std::optional<std::string> bytes) {
                        if (alive.expired()) return;
                        afterLevel2(std::move(bytes));
                      });
      return;
    }
  }
  missCache();
}

void GuardedExchange::afterLevel2(std::optional<std::string> bytes) {
  unhold();
  CacheLayer& cache = gateway_.cache();
  uint64_t now = gateway_.nowMs();
  if (bytes) {
    std::optional<CachedResponse> parsed = parseCachedResponse(*bytes, now);
    bool matches = parsed.has_value();
    for (size_t i = 0; matches && i < parsed->vary.size(); ++i) {
      matches = request_.field(parsed->vary[i].first) == parsed->vary[i].second;
    }
    if (matches) {
      bump(cache.info().cache_hits);
      bump(cache.info().cache_l2_hits);
      serveHit(*parsed);
      cache.l1().store(cache_key_, std::move(*parsed));  // the next hit stays in the worker
      return;
    }
  }
  missCache();
  resumeHeld();
}

void GuardedExchange::missCache() {
  CacheLayer& cache = gateway_.cache();
  cache_status_ = "MISS";
  bump(cache.info().cache_misses);
  std::weak_ptr<bool> alive = aliveToken();
  waiter_id_ = cache.join(cache_key_, [this, alive] {
    if (!alive.expired()) onLeaderDone();
  });
  if (waiter_id_ == 0) {
    leader_ = true;
    return proxy(true);
  }
  bump(cache.info().cache_coalesced);
  hold();
}

// The key's leader is done: its response may be stored now.
void GuardedExchange::onLeaderDone() {
  waiter_id_ = 0;
  unhold();
  uint64_t now = gateway_.nowMs();
  auto hit = gateway_.cache().l1().find(
      cache_key_, [this](std::string_view name) { return request_.field(name); }, now);
  if (hit) {
    cache_status_ = "HIT";
    serveHit(*hit);
  } else {
    proxy(true);  // not stored: this request goes upstream itself
  }
  resumeHeld();
}

void GuardedExchange::serveHit(const CachedResponse& hit) {
  cache_status_ = "HIT";
  uint64_t now = gateway_.nowMs();
  ConnectionHeader connection = sink_.beginResponse(false);
  std::string& out = gateway_.scratch();
  out += "HTTP/1.1 ";
  out += std::to_string(hit.status);
  out += ' ';
  out += reasonPhrase(hit.status);
  out += "\r\n";
  out += hit.head;
  out += "Date: ";
  out += gateway_.date();
  out += "\r\nAge: ";
  out += std::to_string(ageSeconds(hit, now));
  out += "\r\nX-Cache: HIT\r\n";
  out += extra_;
  bool bodyless = hit.status == 204 || hit.status == 304;
  if (!bodyless) {
    out += "Content-Length: ";
    out += std::to_string(hit.body.size());
    out += "\r\n";
  }
  appendConnectionField(out, connection);
  out += "\r\n";
  if (!request_.isHead() && !bodyless) out += hit.body;
  gateway_.cache().info().cache_hit_bytes.fetch_add(hit.body.size(), std::memory_order_relaxed);
  finished_ = true;
  sink_.write(out);
  sink_.finish(hit.status, true);
}

void GuardedExchange::onTapHead(const ResponseHead& head) {
  CacheLayer& cache = gateway_.cache();
  if (invalidate_) {
    if (head.status >= 200 && head.status < 400) {
      size_t removed = cache.l1().invalidatePath(request_.host(), request_.path());
      if (cache.l2() != nullptr) {
        cache.l2()->remove(CacheLayer::l2PathPrefix(request_.host(), request_.path()));
      }
      cache.info().cache_invalidations.fetch_add(removed, std::memory_order_relaxed);
    }
    return;
  }
  if (request_.isHead()) return;  // no body to keep
  shared::policy::CacheDirectives directives;
  bool set_cookie = false;
  bool vary_star = false;
  uint64_t age_s = 0;
  std::vector<std::string> vary;
  for (const auto& [name, value] : head.fields) {
    if (equalsLowercase(name, "cache-control")) {
      shared::policy::mergeCacheControl(directives, value);
    } else if (equalsLowercase(name, "set-cookie")) {
      set_cookie = true;
    } else if (equalsLowercase(name, "age")) {
      age_s = std::strtoull(std::string(value).c_str(), nullptr, 10);
    } else if (equalsLowercase(name, "vary")) {
      forEachListElement(value, [&](std::string_view token) {
        if (token == "*") vary_star = true;
        vary.push_back(lowercase(token));
      });
    }
  }
  bool credentials =
      !request_.field("authorization").empty() || !request_.field("x-api-key").empty();
  store_ttl_ms_ = shared::policy::storeTtlMs({.status = head.status,
                                              .response = directives,
                                              .has_set_cookie = set_cookie,
                                              .vary_star = vary_star,
                                              .request_had_credentials = credentials,
                                              .shared_with_credentials = guard_.cache->shared,
                                              .route_ttl_ms = guard_.cache->ttl_ms,
                                              .age_s = age_s});
  if (store_ttl_ms_ == 0) return;
  if (head.framing == ResponseHead::Framing::Length &&
      head.content_length > cache.maxEntryBytes()) {
    return;
  }
  std::vector<std::string_view> per_connection = connectionOptions(head);
  storing_ = std::make_unique<CachedResponse>();
  storing_->status = head.status;
  storing_->age_at_store_s = age_s;
  for (const auto& [name, value] : head.fields) {
    if (!isReplayedField(name) || namedBy(name, per_connection)) continue;
    storing_->head += name;
    storing_->head += ": ";
    storing_->head += value;
    storing_->head += "\r\n";
  }
  for (std::string& name : vary) {
    std::string value(request_.field(name));
    storing_->vary.emplace_back(std::move(name), std::move(value));
  }
}

void GuardedExchange::onTapBody(const char* data, size_t length) {
  if (!storing_) return;
  if (storing_->body.size() + length > gateway_.cache().maxEntryBytes()) {
    storing_.reset();  // too large to keep
    return;
  }
  storing_->body.append(data, length);
}

void GuardedExchange::onTapEnd(bool complete) {
  CacheLayer& cache = gateway_.cache();
  if (storing_ && complete) {
    uint64_t now = gateway_.nowMs();
    storing_->stored_ms = now;
    storing_->expires_ms = now + store_ttl_ms_;
    if (cache.l2() != nullptr) {
      cache.l2()->set(CacheLayer::l2Key(request_.host(), request_.path(), request_.query()),
                      serializeCachedResponse(*storing_, now), store_ttl_ms_);
    }
    if (cache.l1().store(cache_key_, std::move(*storing_))) {
      bump(cache.info().cache_stores);
    }
    cache.publish();
  }
  storing_.reset();
  if (leader_) {
    leader_ = false;
    cache.release(cache_key_);
  }
}

void GuardedExchange::refuse(int status, const char* message, HeaderList headers) {
  Response r = makeJsonError(status, message, headers);
  ConnectionHeader connection = sink_.beginResponse(false);
  std::string& out = gateway_.scratch();
  appendResponse(out, r, gateway_.date(), connection, request_.isHead(), extra_);
  finished_ = true;
  sink_.write(out);
  sink_.finish(status, true);
}

void GuardedExchange::onBody(const char* data, size_t length) {
  if (finished_) return;
  if (inner_) {
    inner_->onBody(data, length);
  } else if (route_.kind == shared::RouteKind::Upstream) {
    held_body_.append(data, length);  // bounded: input is paused while we wait
  }
}

void GuardedExchange::onBodyEnd() {
  body_ended_ = true;
  if (inner_ && !finished_) inner_->onBodyEnd();
}

void GuardedExchange::onOutputDrained() {
  if (inner_ && !finished_) inner_->onOutputDrained();
}

void GuardedExchange::finish(int status, bool reusable) {
  finished_ = true;
  sink_.finish(status, reusable);
}

void GuardedExchange::pauseInput() {
  inner_paused_ = true;
  if (!input_paused_) {
    input_paused_ = true;
    sink_.pauseInput();
  }
}

void GuardedExchange::resumeInput() {
  inner_paused_ = false;
  resumeHeld();
}

// The client reads again unless an asynchronous step or the inner exchange
// holds it.
void GuardedExchange::resumeHeld() {
  if (!waiting_ && !inner_paused_ && input_paused_ && !finished_) {
    input_paused_ = false;
    sink_.resumeInput();
  }
}

Exchange::Report GuardedExchange::report() const {
  Report r;
  if (inner_) r = inner_->report();
  r.key_id = identity_.ok ? std::string_view(identity_.id) : std::string_view();
  r.cache = cache_status_ != nullptr ? std::string_view(cache_status_) : std::string_view();
  return r;
}

}  // namespace phalanx::worker

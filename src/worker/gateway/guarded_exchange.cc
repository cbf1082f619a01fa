#include "worker/gateway/guarded_exchange.h"

#include <algorithm>

#include "shared/shm.h"
#include "worker/gateway/client_address.h"
#include "worker/gateway/gateway.h"
#include "worker/handlers.h"
#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

void bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

std::string_view headerValue(const Request& request, std::string_view lower_name) {
  for (size_t i = 0; i < request.headerCount(); ++i) {
    auto [name, value] = request.header(i);
    if (name.size() == lower_name.size() && equalsLowercase(name, lower_name)) return value;
  }
  return {};
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
  *alive_ = false;
}

void GuardedExchange::start() {
  Guard& guard = gateway_.guard();
  const ClientInfo& client = sink_.client();
  if (!guard_.allow.empty() && (client.peer == nullptr || !shared::anyContains(guard_.allow, client.peer))) {
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

std::string_view GuardedExchange::limitKey(const RateLimiter::Limit& limit,
                                           std::string& storage) const {
  switch (limit.key) {
    case shared::LimitKey::Ip:
      return clientAddress(sink_.client(), request_, gateway_.guard().trustedProxies());
    case shared::LimitKey::ApiKey: return identity_.id;
    case shared::LimitKey::Header:
      storage = lowercase(limit.header);
      return headerValue(request_, storage);
    case shared::LimitKey::Route: return route_.path;
  }
  return {};
}

void GuardedExchange::checkLimits() {
  RateLimiter& limiter = gateway_.guard().limiter();
  std::vector<uint32_t> limits = guard_.limits;
  if (guard_.auth) {
    if (auto tier = gateway_.guard().tierLimit(identity_.tier)) limits.push_back(*tier);
  }
  // Keys first: a limit whose key the request lacks does not apply.
  std::vector<std::string> keys;
  for (uint32_t index : limits) {
    const RateLimiter::Limit& limit = limiter.limit(index);
    std::string storage;
    std::string_view key = limitKey(limit, storage);
    if (key.empty()) {
      bump(limit.record->unkeyed);
      continue;
    }
    applied_.push_back({.limit = index, .decision = {}});
    keys.emplace_back(key);
  }
  if (applied_.empty()) return pass();
  undecided_ = applied_.size() + 1;  // +1: held until every decide() was issued
  for (size_t i = 0; i < applied_.size(); ++i) {
    std::weak_ptr<bool> alive = alive_;
    limiter.decide(applied_[i].limit, keys[i], [this, i, alive](RateLimiter::Result result) {
      if (alive.expired()) return;
      applied_[i].decision = result.decision;
      if (--undecided_ == 0) onLimitsDecided();
    });
  }
  if (--undecided_ == 0) {
    onLimitsDecided();
    return;
  }
  // A decision is on its way from Redis: hold the client meanwhile.
  waiting_ = true;
  input_paused_ = true;
  sink_.pauseInput();
}

void GuardedExchange::onLimitsDecided() {
  RateLimiter& limiter = gateway_.guard().limiter();
  std::vector<AppliedLimit> shown;
  uint64_t retry_after_ms = 0;
  for (const Applied& a : applied_) {
    const RateLimiter::Limit& limit = limiter.limit(a.limit);
    shown.push_back({.name = limit.name,
                     .limit = limit.params.limit,
                     .window_s = std::max<uint64_t>(1, limit.params.window_ms / 1000),
                     .remaining = a.decision.remaining,
                     .reset_s = (a.decision.reset_ms + 999) / 1000});
    if (!a.decision.allowed) retry_after_ms = std::max(retry_after_ms, a.decision.retry_after_ms);
  }
  appendRateLimitHeaders(extra_, limiter.limit(applied_.front().limit).style, shown.data(),
                         shown.size());
  bool was_waiting = waiting_;
  waiting_ = false;
  if (retry_after_ms > 0) {
    countUsage(true);
    refuse(429, "too many requests",
           {{"Retry-After", std::to_string(retryAfterSeconds(retry_after_ms))}});
  } else {
    pass();
  }
  if (was_waiting && input_paused_ && !inner_paused_ && !finished_) {
    input_paused_ = false;
    sink_.resumeInput();
  }
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
    inner_ = gateway_.makeProxy(route_, request_, *this);
    inner_->decorate(extra_, nullptr);
    inner_->start();
    if (!held_body_.empty() && !finished_) {
      std::string body = std::move(held_body_);
      held_body_.clear();
      inner_->onBody(body.data(), body.size());
    }
    if (body_ended_ && !finished_) inner_->onBodyEnd();
    return;
  }
  ConnectionHeader connection = sink_.beginResponse(false);
  std::string& out = gateway_.scratch();
  int status = gateway_.handlers().respond(&route_, request_, connection, out, extra_);
  finished_ = true;
  sink_.write(out);
  sink_.finish(status, true);
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
  sink_.pauseInput();
}

void GuardedExchange::resumeInput() {
  inner_paused_ = false;
  if (!waiting_) {
    input_paused_ = false;
    sink_.resumeInput();
  }
}

Exchange::Report GuardedExchange::report() const {
  Report r;
  if (inner_) r = inner_->report();
  r.key_id = identity_.ok ? std::string_view(identity_.id) : std::string_view();
  return r;
}

}  // namespace phalanx::worker

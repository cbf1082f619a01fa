#include "worker/gateway/rate_limiter.h"

#include <algorithm>

namespace phalanx::worker {

namespace policy = shared::policy;

namespace {

uint64_t nowUs() {
  return uv_hrtime() / 1000;
}

void bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

RateLimiter::Limit compile(const std::string& name, const shared::LimitSpec& spec) {
  RateLimiter::Limit limit;
  limit.name = name;
  limit.params = policy::gcraParams(spec.rate.count, spec.rate.period_ms, spec.burst);
  limit.cluster = spec.mode == "cluster";
  limit.on_redis_error = spec.on_redis_error == "open"     ? RateLimiter::OnRedisError::Open
                         : spec.on_redis_error == "closed" ? RateLimiter::OnRedisError::Closed
                                                           : RateLimiter::OnRedisError::Local;
  limit.style = spec.headers == shared::RateLimitHeaders::Draft6 ? RateLimitHeaderStyle::Draft6
                                                                 : RateLimitHeaderStyle::Draft;
  return limit;
}

}  // namespace

std::unique_ptr<RateLimiter> RateLimiter::create(uv_loop_t* loop, const shared::Config& config,
                                                 const shared::SharedRegion& region,
                                                 RedisRateLimiter* redis, std::string* error) {
  std::unique_ptr<RateLimiter> limiter(new RateLimiter(loop, region, redis));
  for (const auto& [name, rate_limit] : config.rate_limits) {
    Limit limit = compile(name, rate_limit.limit);
    limit.key = rate_limit.key;
    limit.header = rate_limit.header;
    std::transform(limit.header.begin(), limit.header.end(), limit.header.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    limiter->limits_.push_back(std::move(limit));
  }
  for (const auto& [name, tier] : config.tiers) {
    if (tier.limit.rate.count == 0) continue;
    Limit limit = compile(shared::tierLimitName(name), tier.limit);
    limit.key = shared::LimitKey::ApiKey;
    limiter->limits_.push_back(std::move(limit));
  }
  for (Limit& limit : limiter->limits_) {
    limit.record = shared::findLimit(region, limit.name);
    if (limit.record == nullptr) {
      *error = "shm: no record for rate limit \"" + limit.name + "\"";
      return nullptr;
    }
    if (limit.cluster && redis == nullptr) limit.cluster = false;  // validation requires redis
  }
  return limiter;
}

RateLimiter::RateLimiter(uv_loop_t* loop, const shared::SharedRegion& region,
                         RedisRateLimiter* redis)
    : loop_(loop), table_(shared::rateLimitTable(region)), redis_(redis) {}

uint32_t RateLimiter::indexOf(std::string_view name) const {
  for (uint32_t i = 0; i < limits_.size(); ++i) {
    if (limits_[i].name == name) return i;
  }
  return 0;  // callers ask only for configured names
}

bool RateLimiter::anyCluster() const {
  return std::any_of(limits_.begin(), limits_.end(), [](const Limit& l) { return l.cluster; });
}

void RateLimiter::count(const Limit& limit, const policy::GcraDecision& decision) {
  bump(decision.allowed ? limit.record->allowed : limit.record->limited);
}

policy::GcraDecision RateLimiter::decideLocal(const Limit& limit, std::string_view key) {
  uint64_t hash = shared::rateLimitKeyHash(limit.name, key);
  return table_.decide(hash, limit.params, nowUs());
}

void RateLimiter::decide(uint32_t index, std::string_view key, std::function<void(Result)> done) {
  const Limit& limit = limits_[index];
  if (!limit.cluster) {
    Result result{.decision = decideLocal(limit, key), .from_redis = false};
    count(limit, result.decision);
    done(result);
    return;
  }
  RedisGcraParams params{.limit = limit.params.limit,
                         .emission_interval_us = limit.params.emission_interval_us,
                         .tolerance_us = limit.params.tolerance_us};
  redis_->decide(
      redisRateLimitKey(limit.name, key), params,
      [this, index, key_text = std::string(key), done = std::move(done)](RedisGcraResult reply) {
        const Limit& l = limits_[index];
        Result result;
        if (reply.decision) {
          result.from_redis = true;
          result.decision.allowed = reply.decision->allowed;
          result.decision.remaining = reply.decision->remaining;
          result.decision.reset_ms = reply.decision->reset_ms;
          result.decision.retry_after_ms = reply.decision->retry_after_ms;
        } else {
          bump(l.record->redis_errors);
          switch (l.on_redis_error) {
            case OnRedisError::Local:
              bump(l.record->fallback_local);
              result.decision = decideLocal(l, key_text);
              break;
            case OnRedisError::Open:
              bump(l.record->fallback_open);
              result.decision = {.allowed = true,
                                 .new_tat_us = 0,
                                 .remaining = l.params.limit,
                                 .reset_ms = 0,
                                 .retry_after_ms = 0};
              break;
            case OnRedisError::Closed:
              bump(l.record->fallback_closed);
              result.decision = {.allowed = false,
                                 .new_tat_us = 0,
                                 .remaining = 0,
                                 .reset_ms = 1000,
                                 .retry_after_ms = 1000};
              break;
          }
        }
        count(l, result.decision);
        done(result);
      });
}

}  // namespace phalanx::worker

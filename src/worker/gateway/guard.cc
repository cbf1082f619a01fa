#include "worker/gateway/guard.h"

namespace phalanx::worker {

std::unique_ptr<Guard> Guard::create(uv_loop_t* loop, const shared::Config& config,
                                     const shared::SharedRegion& region, RedisRateLimiter* redis,
                                     std::string* error) {
  std::unique_ptr<Guard> guard(new Guard(region));
  guard->trusted_ = config.trusted_proxies;
  guard->auth_ = Authenticator::create(config, error);
  if (!guard->auth_) return nullptr;
  guard->limiter_ = RateLimiter::create(loop, config, region, redis, error);
  if (!guard->limiter_) return nullptr;
  for (const auto& [name, tier] : config.tiers) {
    if (tier.limit.rate.count > 0) {
      guard->tier_limits_[name] = guard->limiter_->indexOf(shared::tierLimitName(name));
    }
  }
  for (const shared::RouteConfig& route : config.routes) {
    RouteGuard g;
    g.allow = route.allow;
    g.auth = !route.auth.empty();
    g.scheme = route.auth == "jwt" ? Authenticator::Scheme::Jwt : Authenticator::Scheme::ApiKey;
    g.tiers = route.tiers;
    for (const std::string& name : route.rate_limits) {
      g.limits.push_back(guard->limiter_->indexOf(name));
    }
    g.cache = route.cache;
    guard->routes_.push_back(std::move(g));
  }
  return guard;
}

std::optional<uint32_t> Guard::tierLimit(const std::string& tier) const {
  auto it = tier_limits_.find(tier);
  if (it == tier_limits_.end()) return std::nullopt;
  return it->second;
}

}  // namespace phalanx::worker

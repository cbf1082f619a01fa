// The access side of a worker: for every route with an allow list, auth, a
// rate limit or a cache, what the route requires, compiled once from the
// config; and the shared pieces its requests use (the authenticator, the
// rate limiter, the host's records). GuardedExchange runs a request through it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shared/access_records.h"
#include "shared/config.h"
#include "shared/shm.h"
#include "worker/gateway/authenticator.h"
#include "worker/gateway/rate_limiter.h"

namespace phalanx::worker {

struct RouteGuard {
  std::vector<shared::Cidr> allow;  // empty: everyone
  bool auth = false;
  Authenticator::Scheme scheme = Authenticator::Scheme::ApiKey;
  std::vector<std::string> tiers;  // with auth: the tiers allowed; empty: all
  std::vector<uint32_t> limits;    // RateLimiter indices, in the route's order
  std::optional<shared::CacheConfig> cache;
};

class Guard {
 public:
  // nullptr with `error` set (a key file or JWKS that does not load, a
  // region without a limit's record).
  static std::unique_ptr<Guard> create(uv_loop_t* loop, const shared::Config& config,
                                       const shared::SharedRegion& region, RedisRateLimiter* redis,
                                       std::string* error);

  const RouteGuard& route(uint32_t index) const { return routes_[index]; }
  Authenticator& authenticator() { return *auth_; }
  RateLimiter& limiter() { return *limiter_; }
  // The limit of `tier`, when it has a rate.
  std::optional<uint32_t> tierLimit(const std::string& tier) const;
  const std::vector<shared::Cidr>& trustedProxies() const { return trusted_; }
  const shared::SharedRegion& region() const { return region_; }
  shared::AccessInfo& info() const { return region_.access(); }

 private:
  explicit Guard(const shared::SharedRegion& region) : region_(region) {}

  const shared::SharedRegion& region_;
  std::vector<RouteGuard> routes_;  // one per config route (unguarded ones empty)
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<RateLimiter> limiter_;
  std::map<std::string, uint32_t> tier_limits_;
  std::vector<shared::Cidr> trusted_;
};

}  // namespace phalanx::worker

// The worker's rate limits: every `rate_limits` entry and every tier with a
// rate, compiled once, decided in the host's shared-memory table (local) or
// by Redis (cluster), counted in their LimitRecords.
//
// Contract:
// - decide() calls `done` exactly once: at once for a local limit, from the
//   loop (within redis.timeout_ms, or 2× after a NOSCRIPT) for a cluster one.
// - Cluster mode, Redis failed (down, slow, an error reply): on_redis_error
//   decides. "local" asks the shared-memory table instead (exact per host,
//   not per fleet), "open" allows, "closed" refuses with Retry-After 1 s. Each
//   is counted (redis_errors and the fallback taken).
// - A key is the limit's name and the client's key hashed together, so two
//   limits never share a bucket; Redis keys are hash-tagged per bucket
//   (redisRateLimitKey) so a Redis Cluster keeps each decision on one shard.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/access_records.h"
#include "shared/config.h"
#include "shared/policy/gcra.h"
#include "shared/rate_limit_table.h"
#include "shared/shm.h"
#include "worker/gateway/rate_limit_headers.h"
#include "worker/redis/redis_rate_limiter.h"

namespace phalanx::worker {

class RateLimiter {
 public:
  enum class OnRedisError { Local, Open, Closed };

  struct Limit {
    std::string name;  // "per_ip", or "tier:free"
    shared::LimitKey key = shared::LimitKey::Ip;
    std::string header;  // key == Header: the header's name, lower-cased
    shared::policy::GcraParams params;
    bool cluster = false;
    OnRedisError on_redis_error = OnRedisError::Local;
    RateLimitHeaderStyle style = RateLimitHeaderStyle::Draft;
    shared::LimitRecord* record = nullptr;
  };

  struct Result {
    shared::policy::GcraDecision decision;
    bool from_redis = false;
  };

  // Null `redis` (no cluster limit in the config, or no redis section):
  // every limit is decided locally. Returns nullptr with `error` set when the
  // region lacks a limit's record.
  static std::unique_ptr<RateLimiter> create(uv_loop_t* loop, const shared::Config& config,
                                             const shared::SharedRegion& region,
                                             RedisRateLimiter* redis, std::string* error);

  // The index of the limit named `name` (a rate_limits key, or tierLimitName()).
  // Only for names the config has.
  uint32_t indexOf(std::string_view name) const;
  const Limit& limit(uint32_t index) const { return limits_[index]; }

  void decide(uint32_t index, std::string_view key, std::function<void(Result)> done);
  // A local limit's decision, counted: what decide() does for it, without
  // the callback.
  shared::policy::GcraDecision decideHere(uint32_t index, std::string_view key) {
    shared::policy::GcraDecision decision = decideLocal(limits_[index], key);
    count(limits_[index], decision);
    return decision;
  }
  // The local decision alone (no Redis): what decide() does for a local limit.
  shared::policy::GcraDecision decideLocal(const Limit& limit, std::string_view key);

  // Whether any limit is decided by Redis.
  bool anyCluster() const;

 private:
  RateLimiter(uv_loop_t* loop, const shared::SharedRegion& region, RedisRateLimiter* redis);
  void count(const Limit& limit, const shared::policy::GcraDecision& decision);

  uv_loop_t* loop_;
  shared::RateLimitTable table_;
  RedisRateLimiter* redis_;
  std::vector<Limit> limits_;
};

}  // namespace phalanx::worker

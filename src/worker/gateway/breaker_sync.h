// Breakers shared by the hosts of a fleet (`"share": "cluster"`): this
// worker's breaker transitions go out on Redis, other hosts' come in and are
// applied to the shared-memory breakers of this host.
//
// - Out: the transitions to open and to closed that a worker of this host won
//   (UpstreamGroup returns them to exactly one worker) are published. Half-open
//   is not: every host probes an opened target on its own clock.
// - In: an open from another host opens the breaker here with the same
//   opened-at (moved from wall clock to this host's monotonic clock), so every
//   host half-opens at about the same time; a close closes it. Every worker
//   of the host receives each message; the first applies it and the others
//   find the breaker already there.
// - Redis down or slow: nothing waits for it (the client fails at once or
//   within its timeout, off the request path); breakers work locally, and a
//   host catches up from the stored states when Redis is back.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "shared/config.h"
#include "shared/policy/circuit_breaker.h"
#include "worker/redis/breaker_bus.h"
#include "worker/redis/redis_client.h"

namespace phalanx::worker {

class UpstreamGroup;

class BreakerSync {
 public:
  // `groups` are the worker's upstreams; only those with breaker.share ==
  // "cluster" are published and applied.
  BreakerSync(uv_loop_t* loop, const shared::RedisConfig& redis, std::string origin,
              std::vector<UpstreamGroup*> groups);
  ~BreakerSync();

  void start();
  // Before the loop's last run: closes the Redis connections.
  void close();

  // A transition this worker made on `group`'s target `target`.
  void published(const UpstreamGroup& group, uint32_t target,
                 const shared::policy::BreakerChange& change);

 private:
  void apply(const BreakerTransition& transition);

  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<BreakerBus> bus_;
  std::vector<UpstreamGroup*> groups_;
};

}  // namespace phalanx::worker

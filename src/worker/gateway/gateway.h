// The worker's upstream side: one UpstreamGroup per configured upstream, one
// UpstreamPool of connections to every target, and the exchanges that use
// them. Built from the config when the worker starts; a reload starts new
// workers, so nothing here changes after that.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "shared/config.h"
#include "shared/shm.h"
#include "worker/gateway/breaker_sync.h"
#include "worker/gateway/cache_layer.h"
#include "worker/gateway/guard.h"
#include "worker/gateway/proxy_exchange.h"
#include "worker/gateway/health_checker.h"
#include "worker/gateway/request_id.h"
#include "worker/gateway/upstream_group.h"
#include "worker/gateway/upstream_pool.h"
#include "worker/http/exchange.h"
#include "worker/http/http_date.h"
#include "worker/http/http_parser.h"
#include "worker/redis/redis_client.h"
#include "worker/redis/redis_cache_store.h"
#include "worker/redis/redis_rate_limiter.h"
#include "worker/router.h"

namespace phalanx::worker {

class Handlers;

class Gateway {
 public:
  // nullptr with `error` set when the region lacks a record the config needs
  // (the master provisions them before it starts a worker). `master_pid`
  // names this host to the others (breakers shared over Redis). Upstream
  // requests go out through `sends`, which outlives the gateway.
  static std::unique_ptr<Gateway> create(uv_loop_t* loop, SendBatch& sends,
                                         const shared::Config& config,
                                         const shared::SharedRegion& region,
                                         shared::WorkerCell& cell, int pid, int master_pid,
                                         std::string* error);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The exchange for a request on a route with an upstream or a guard; it
  // may already have answered (nothing usable, refused) when this returns.
  std::unique_ptr<Exchange> startExchange(const Route& route, const Request& request,
                                          ExchangeSink& sink);
  // A proxy exchange for `route`'s upstream, not started.
  std::unique_ptr<ProxyExchange> makeProxy(const Route& route, const Request& request,
                                           ExchangeSink& sink);

  // Static and builtin answers of guarded routes; set by the worker.
  void setHandlers(Handlers* handlers) { handlers_ = handlers; }
  Handlers& handlers() { return *handlers_; }
  Guard& guard() { return *guard_; }
  CacheLayer& cache() { return *cache_; }
  // From the worker's heartbeat: cache purges and gauges.
  void onHeartbeat();
  // The state of the Redis connection limits and the cache use.
  shared::RedisState redisState() const;

  // Connects to Redis when a breaker is shared with other hosts; starts the
  // active health checks (run by whichever worker holds the host's lease).
  void start();
  // Draining: idle upstream connections are closed, busy ones finish, and the
  // health-check lease goes to a worker that stays.
  void beginDrain();
  // Stopping: every upstream connection left is closed, and Redis's.
  void closeAll();

  // A breaker transition this worker made: logged, and published to other
  // hosts when the upstream's breaker is shared.
  void breakerChanged(const UpstreamGroup& group, const UpstreamGroup::BreakerEvent& event);

  // Why the worker is not ready, or nullptr: a `required` upstream with no usable target.
  const char* notReadyReason() const;

  uv_loop_t* loop() const { return loop_; }
  // The loop's time, in the monotonic milliseconds the shm cells use
  // (CLOCK_MONOTONIC, cached once per loop iteration: no system call; the
  // few milliseconds it may lag do not matter to breakers and budgets
  // measured in hundreds of them).
  uint64_t nowMs() const { return uv_now(loop_); }
  UpstreamPool& pool() { return *pool_; }
  RequestIds& requestIds() { return request_ids_; }
  std::string_view date() { return date_.now(); }
  // An empty string whose capacity is reused by every exchange of the worker,
  // for bytes that are copied out before the next use (a response head).
  std::string& scratch() {
    scratch_.clear();
    return scratch_;
  }

 private:
  Gateway(uv_loop_t* loop, int pid);
  bool build(SendBatch& sends, const shared::Config& config, const shared::SharedRegion& region,
             shared::WorkerCell& cell, int master_pid, std::string* error);

  uv_loop_t* loop_;
  std::unique_ptr<UpstreamPool> pool_;
  std::vector<std::unique_ptr<UpstreamGroup>> groups_;
  std::unique_ptr<BreakerSync> breaker_sync_;  // only with a "cluster" breaker
  std::unique_ptr<HealthChecker> health_;      // only with a health_check
  // Cluster rate limits and the cache's Redis level share one connection.
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<RedisRateLimiter> redis_limiter_;
  std::unique_ptr<RedisCacheStore> redis_cache_;
  std::unique_ptr<CacheLayer> cache_;
  std::unique_ptr<Guard> guard_;
  Handlers* handlers_ = nullptr;
  RequestIds request_ids_;
  HttpDate date_;
  std::string scratch_;
  int pid_;
};

}  // namespace phalanx::worker

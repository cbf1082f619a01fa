#include "worker/gateway/gateway.h"

#include <spdlog/spdlog.h>

#include "shared/histogram.h"
#include "shared/upstream_records.h"
#include "worker/gateway/guarded_exchange.h"
#include "worker/gateway/proxy_exchange.h"

namespace phalanx::worker {

namespace policy = shared::policy;

namespace {

TargetCells cellsOf(shared::TargetRecord& r) {
  return {.in_flight = &r.in_flight,
          .requests = &r.requests,
          .failures = &r.failures,
          .latency_buckets = r.latency_buckets,
          .latency_sum_us = &r.latency_sum_us,
          .breaker_changed_wall_ms = &r.breaker_changed_wall_ms,
          .breaker = &r.breaker,
          .health = &r.health};
}

UpstreamCells cellsOf(shared::UpstreamRecord& r) {
  return {.requests = &r.requests,
          .retries = &r.retries,
          .retry_budget_exhausted = &r.retry_budget_exhausted,
          .no_target = &r.no_target,
          .breaker_refusals = &r.breaker_refusals,
          .retry_budget = &r.retry_budget};
}

}  // namespace

std::unique_ptr<Gateway> Gateway::create(uv_loop_t* loop, SendBatch& sends,
                                         const shared::Config& config,
                                         const shared::SharedRegion& region,
                                         shared::WorkerCell& cell, int pid, int master_pid,
                                         std::string* error) {
  std::unique_ptr<Gateway> gateway(new Gateway(loop, pid));
  if (!gateway->build(sends, config, region, cell, master_pid, error)) return nullptr;
  return gateway;
}

Gateway::Gateway(uv_loop_t* loop, int pid)
    : loop_(loop), request_ids_(uv_hrtime() ^ (static_cast<uint64_t>(pid) << 32)), pid_(pid) {}

// The master provisioned a record for every upstream and target of this
// config before it started us: one missing means master and worker disagree
// on the region, and a worker with state of its own would break the promise
// that every worker shares one breaker and one in-flight count.
bool Gateway::build(SendBatch& sends, const shared::Config& config,
                    const shared::SharedRegion& region, shared::WorkerCell& cell, int master_pid,
                    std::string* error) {
  std::vector<UpstreamPool::Target> pool_targets;
  std::vector<HealthTarget> health_targets;
  for (const auto& [name, upstream] : config.upstreams) {
    shared::UpstreamRecord* record = shared::findUpstream(region, name);
    if (record == nullptr) {
      *error = "shm: no record for upstream \"" + name + "\"";
      return false;
    }
    std::vector<UpstreamGroup::Target> targets;
    for (const shared::UpstreamTarget& t : upstream.targets) {
      shared::TargetRecord* target = shared::findTarget(region, name, t.address.text);
      if (target == nullptr) {
        *error = "shm: no record for upstream \"" + name + "\" target " + t.address.text;
        return false;
      }
      UpstreamPool::Target pt;
      std::memcpy(&pt.address, &t.address.storage, sizeof pt.address);
      pt.max_idle = upstream.max_idle_connections;
      pt.idle_timeout_ms = upstream.idle_timeout_ms;
      if (upstream.health_check) {
        health_targets.push_back({.upstream = name,
                                  .address = t.address.text,
                                  .sockaddr = pt.address,
                                  .check = *upstream.health_check,
                                  .cell = &target->health});
      }
      targets.push_back({.address = t.address.text,
                         .pool_index = static_cast<uint32_t>(pool_targets.size()),
                         .weight = t.weight,
                         .backup = t.backup,
                         .cells = cellsOf(*target)});
      pool_targets.push_back(pt);
    }
    groups_.push_back(std::make_unique<UpstreamGroup>(name, upstream, std::move(targets),
                                                      cellsOf(*record),
                                                      uv_hrtime() + groups_.size()));
  }
  pool_ = std::make_unique<UpstreamPool>(loop_, sends, std::move(pool_targets));
  std::vector<UpstreamGroup*> groups;
  bool cluster = false;
  for (auto& group : groups_) {
    groups.push_back(group.get());
    cluster = cluster || group->config().breaker.share == "cluster";
  }
  if (cluster && config.redis) {
    breaker_sync_ = std::make_unique<BreakerSync>(loop_, *config.redis, hostOrigin(master_pid),
                                                  std::move(groups));
  }
  bool cluster_limits = false;
  for (const auto& [name, limit] : config.rate_limits) {
    cluster_limits = cluster_limits || limit.limit.mode == "cluster";
  }
  for (const auto& [name, tier] : config.tiers) {
    cluster_limits = cluster_limits || tier.limit.mode == "cluster";
  }
  if (config.redis && (cluster_limits || config.cache.redis)) {
    redis_ = std::make_unique<RedisClient>(
        loop_, RedisClient::Options{.address = config.redis->address,
                                    .timeout_ms = config.redis->timeout_ms});
    redis_limiter_ = std::make_unique<RedisRateLimiter>(*redis_);
    if (config.cache.redis) redis_cache_ = std::make_unique<RedisCacheStore>(*redis_);
  }
  cache_ = std::make_unique<CacheLayer>(config.cache, region, cell, redis_cache_.get());
  guard_ = Guard::create(loop_, config, region, redis_limiter_.get(), error);
  if (!guard_) return false;
  if (!health_targets.empty()) {
    health_ = std::make_unique<HealthChecker>(loop_, std::move(health_targets),
                                              region.gateway().health_lease, pid_);
  }
  return true;
}

void Gateway::start() {
  if (breaker_sync_) breaker_sync_->start();
  if (redis_) redis_->start();
  if (health_) health_->start();
}

void Gateway::closeAll() {
  pool_->closeIdle();
  if (breaker_sync_) breaker_sync_->close();
  if (redis_) redis_->close();
  health_.reset();  // its handles close through the loop's last run
}

void Gateway::breakerChanged(const UpstreamGroup& group, const UpstreamGroup::BreakerEvent& event) {
  spdlog::warn("upstream {}: {}: breaker {} → {}", group.name(),
               group.targets()[event.target].address,
               policy::breakerStateName(event.change.from), policy::breakerStateName(event.change.to));
  if (breaker_sync_) breaker_sync_->published(group, event.target, event.change);
}

Gateway::~Gateway() = default;

std::unique_ptr<Exchange> Gateway::startExchange(const Route& route, const Request& request,
                                                 ExchangeSink& sink) {
  if (route.guarded) {
    auto exchange = std::make_unique<GuardedExchange>(*this, route, request, sink);
    exchange->start();
    return exchange;
  }
  auto exchange = makeProxy(route, request, sink);
  exchange->start();
  return exchange;
}

std::unique_ptr<ProxyExchange> Gateway::makeProxy(const Route& route, const Request& request,
                                                  ExchangeSink& sink) {
  return std::make_unique<ProxyExchange>(*this, *groups_[route.upstream], route, request, sink);
}

void Gateway::onHeartbeat() {
  cache_->checkPurge();
  cache_->publish();
}

shared::RedisState Gateway::redisState() const {
  if (!redis_) return shared::RedisState::Unused;
  return redis_->connected() ? shared::RedisState::Up : shared::RedisState::Down;
}

void Gateway::beginDrain() {
  pool_->closeIdle();
  if (health_) health_->stop();
}

const char* Gateway::notReadyReason() const {
  uint64_t now_ms = shared::monotonicMs();
  for (const auto& group : groups_) {
    if (group->config().required && !group->anyUsable(now_ms)) return "required upstream down";
  }
  return nullptr;
}

}  // namespace phalanx::worker

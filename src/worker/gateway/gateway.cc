#include "worker/gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <deque>

#include "shared/histogram.h"
#include "shared/upstream_records.h"
#include "worker/gateway/proxy_exchange.h"

namespace phalanx::worker {

namespace policy = shared::policy;

// Zeroed cells, as the region's are: the initial state of every policy.
struct Gateway::LocalCells {
  struct Target {
    std::atomic<uint64_t> in_flight{0}, requests{0}, failures{0}, latency_sum_us{0},
        changed_wall_ms{0};
    std::atomic<uint64_t> latency_buckets[shared::kLatencyBuckets] = {};
    policy::BreakerCell breaker{};
    policy::HealthCell health{};
  };
  std::atomic<uint64_t> requests{0}, retries{0}, exhausted{0}, no_target{0}, refusals{0};
  policy::RetryBudgetCell budget{};
  std::deque<Target> targets;  // stable addresses
};

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

// The master provisioned a record for every upstream and target of this
// config before it started us; a region without them (unit tests) gets cells
// local to this worker.
Gateway::Gateway(uv_loop_t* loop, const shared::Config& config, const shared::SharedRegion& region,
                 int pid, int master_pid)
    : loop_(loop), request_ids_(uv_hrtime() ^ (static_cast<uint64_t>(pid) << 32)) {
  std::vector<UpstreamPool::Target> pool_targets;
  std::vector<HealthTarget> health_targets;
  for (const auto& [name, upstream] : config.upstreams) {
    auto local = std::make_unique<LocalCells>();
    shared::UpstreamRecord* record = region ? shared::findUpstream(region, name) : nullptr;
    UpstreamCells cells = record != nullptr
                              ? cellsOf(*record)
                              : UpstreamCells{.requests = &local->requests,
                                              .retries = &local->retries,
                                              .retry_budget_exhausted = &local->exhausted,
                                              .no_target = &local->no_target,
                                              .breaker_refusals = &local->refusals,
                                              .retry_budget = &local->budget};
    std::vector<UpstreamGroup::Target> targets;
    for (const shared::UpstreamTarget& t : upstream.targets) {
      UpstreamPool::Target pt;
      std::memcpy(&pt.address, &t.address.storage, sizeof pt.address);
      pt.max_idle = upstream.max_idle_connections;
      pt.idle_timeout_ms = upstream.idle_timeout_ms;
      shared::TargetRecord* target =
          region ? shared::findTarget(region, name, t.address.text) : nullptr;
      TargetCells target_cells;
      if (target != nullptr) {
        target_cells = cellsOf(*target);
      } else {
        LocalCells::Target& lt = local->targets.emplace_back();
        target_cells = {.in_flight = &lt.in_flight,
                        .requests = &lt.requests,
                        .failures = &lt.failures,
                        .latency_buckets = lt.latency_buckets,
                        .latency_sum_us = &lt.latency_sum_us,
                        .breaker_changed_wall_ms = &lt.changed_wall_ms,
                        .breaker = &lt.breaker,
                        .health = &lt.health};
      }
      if (upstream.health_check) {
        health_targets.push_back({.upstream = name,
                                  .address = t.address.text,
                                  .sockaddr = pt.address,
                                  .check = *upstream.health_check,
                                  .cell = target_cells.health});
      }
      targets.push_back({.address = t.address.text,
                         .pool_index = static_cast<uint32_t>(pool_targets.size()),
                         .weight = t.weight,
                         .backup = t.backup,
                         .cells = target_cells});
      pool_targets.push_back(pt);
    }
    if (record == nullptr && region) {
      spdlog::warn("upstream {}: no shared-memory record; its state is this worker's alone", name);
    }
    groups_.push_back(std::make_unique<UpstreamGroup>(name, upstream, std::move(targets), cells,
                                                      uv_hrtime() + groups_.size()));
    local_cells_.push_back(std::move(local));
  }
  pool_ = std::make_unique<UpstreamPool>(loop, std::move(pool_targets));
  std::vector<UpstreamGroup*> groups;
  bool cluster = false;
  for (auto& group : groups_) {
    groups.push_back(group.get());
    cluster = cluster || group->config().breaker.share == "cluster";
  }
  if (cluster && config.redis) {
    breaker_sync_ = std::make_unique<BreakerSync>(loop, *config.redis, hostOrigin(master_pid),
                                                  std::move(groups));
  }
  if (!health_targets.empty()) {
    shared::policy::LeaseCell& lease = region ? region.gateway().health_lease : local_lease_;
    health_ = std::make_unique<HealthChecker>(loop, std::move(health_targets), lease, pid);
  }
}

void Gateway::start() {
  if (breaker_sync_) breaker_sync_->start();
  if (health_) health_->start();
}

void Gateway::closeAll() {
  pool_->closeIdle();
  if (breaker_sync_) breaker_sync_->close();
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
  auto exchange =
      std::make_unique<ProxyExchange>(*this, *groups_[route.upstream], route, request, sink);
  exchange->start();
  return exchange;
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

#include "shared/shm_snapshot.h"

#include <algorithm>
#include <cstring>

namespace phalanx::shared {

namespace {

template <typename T>
T get(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}

// A record's fields are read between two loads of its key: when the master
// rewrote the record meanwhile (reuse for another key), the key differs and
// the copy is dropped.
// now_ms: monotonic, the breaker's clock.
bool readTarget(const TargetRecord& r, uint64_t now_ms, TargetView* v) {
  uint64_t key = r.key.load(std::memory_order_acquire);
  if (key == 0 || key == kReusingKey) return false;
  v->state = static_cast<RecordState>(r.state.load(std::memory_order_acquire));
  v->in_flight = get(r.in_flight);
  if (v->state != RecordState::Active && !(v->state == RecordState::Retired && v->in_flight > 0)) {
    return false;
  }
  v->upstream.assign(r.upstream, strnlen(r.upstream, sizeof r.upstream));
  v->address.assign(r.address, strnlen(r.address, sizeof r.address));
  v->position = get(r.position);
  v->healthy = get(r.health.down) == 0;
  v->health_passes = get(r.health.passes);
  v->health_fails = get(r.health.fails);
  v->health_checks = get(r.health.checks);
  policy::BreakerOptions options;
  options.window_ms = get(r.breaker_window_ms);
  v->breaker = policy::view(r.breaker, options, now_ms);
  v->breaker_changed_wall_ms = get(r.breaker_changed_wall_ms);
  v->requests = get(r.requests);
  v->failures = get(r.failures);
  v->last_status = get(r.last_status);
  for (size_t i = 0; i < kLatencyBuckets; ++i) v->latency_buckets[i] = get(r.latency_buckets[i]);
  v->latency_sum_us = get(r.latency_sum_us);
  std::atomic_thread_fence(std::memory_order_acquire);
  return r.key.load(std::memory_order_relaxed) == key;
}

bool readUpstream(const UpstreamRecord& r, UpstreamView* v) {
  uint64_t key = r.key.load(std::memory_order_acquire);
  if (key == 0 || key == kReusingKey) return false;
  v->state = static_cast<RecordState>(r.state.load(std::memory_order_acquire));
  if (v->state == RecordState::Free) return false;
  v->name.assign(r.name, strnlen(r.name, sizeof r.name));
  v->requests = get(r.requests);
  v->retries = get(r.retries);
  v->retry_budget_exhausted = get(r.retry_budget_exhausted);
  v->no_target = get(r.no_target);
  v->breaker_refusals = get(r.breaker_refusals);
  std::atomic_thread_fence(std::memory_order_acquire);
  return r.key.load(std::memory_order_relaxed) == key;
}

void readUpstreams(const SharedRegion& region, Snapshot& s) {
  uint64_t now_ms = monotonicMs();
  for (uint32_t i = 0; i < region.targetCapacity(); ++i) {
    TargetView v;
    if (readTarget(region.target(i), now_ms, &v)) s.targets.push_back(std::move(v));
  }
  std::sort(s.targets.begin(), s.targets.end(), [](const TargetView& a, const TargetView& b) {
    if (a.upstream != b.upstream) return a.upstream < b.upstream;
    if (a.position != b.position) return a.position < b.position;
    return a.address < b.address;
  });
  for (uint32_t i = 0; i < region.upstreamCapacity(); ++i) {
    UpstreamView v;
    if (!readUpstream(region.upstream(i), &v)) continue;
    bool listed = v.state == RecordState::Active ||
                  std::any_of(s.targets.begin(), s.targets.end(),
                              [&](const TargetView& t) { return t.upstream == v.name; });
    if (listed) s.upstreams.push_back(std::move(v));
  }
  std::sort(s.upstreams.begin(), s.upstreams.end(),
            [](const UpstreamView& a, const UpstreamView& b) { return a.name < b.name; });
}

}  // namespace

Snapshot takeSnapshot(const SharedRegion& region) {
  Snapshot s;
  s.taken_at_ms = wallMs();
  const MasterInfo& m = region.master();
  s.master_pid = get(m.pid);
  s.generation = get(m.generation);
  s.master_started_at_ms = get(m.started_at_ms);
  s.workers = get(m.workers);
  s.last_reload = m.last_reload.load(std::memory_order_acquire);
  s.last_reload_ms = get(m.last_reload_ms);
  s.reloads_ok = get(m.reloads_ok);
  s.reloads_failed = get(m.reloads_failed);
  s.max_memory_bytes = get(m.max_memory_bytes);
  for (uint32_t i = 0; i < kExitReasonCount; ++i) s.restarts_by_reason[i] = get(m.restarts_by_reason[i]);

  for (uint32_t i = 0; i < region.slotCapacity(); ++i) {
    const SlotRecord& r = region.slot(i);
    auto state = static_cast<SlotState>(r.state.load(std::memory_order_acquire));
    if (state == SlotState::Unused && i >= s.workers) continue;
    s.slots.push_back({.index = i,
                       .state = state,
                       .restarts = get(r.restarts),
                       .unstable_restarts = get(r.unstable_restarts),
                       .last_exit_reason = static_cast<ExitReason>(get(r.last_exit_reason)),
                       .last_exit_detail = get(r.last_exit_detail),
                       .last_exit_ms = get(r.last_exit_ms),
                       .restart_at_ms = get(r.restart_at_ms),
                       .pid = get(r.pid)});
  }
  for (uint32_t i = 0; i < region.cellCapacity(); ++i) {
    const WorkerCell& c = region.cell(i);
    int pid = c.pid.load(std::memory_order_acquire);
    if (pid <= 0) continue;  // free, or claimed by a spawn under way
    WorkerView w{.cell = i,
                 .slot = get(c.slot),
                 .pid = pid,
                 .generation = get(c.generation),
                 .state = static_cast<WorkerState>(c.state.load(std::memory_order_acquire)),
                 .started_at_ms = get(c.started_at_ms),
                 .heartbeat_ms = get(c.heartbeat_ms),
                 .open_connections = get(c.open_connections),
                 .rss_bytes = get(c.rss_bytes),
                 .cpu_ms = get(c.cpu_ms),
                 .traffic = {}};
    w.traffic.add(c.traffic);
    s.workers_live.push_back(w);
  }
  std::sort(s.workers_live.begin(), s.workers_live.end(), [](const auto& a, const auto& b) {
    return a.slot != b.slot ? a.slot < b.slot : a.generation < b.generation;
  });
  s.totals = sumTraffic(region);
  readUpstreams(region, s);
  s.access = takeAccessView(region);
  s.routes = takeRouteViews(region);
  s.errors = takeErrors(region);
  return s;
}

}  // namespace phalanx::shared

#include "shared/shm_snapshot.h"

#include <algorithm>

namespace phalanx::shared {

namespace {

template <typename T>
T get(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
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
    if (pid == 0) continue;
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
  return s;
}

}  // namespace phalanx::shared

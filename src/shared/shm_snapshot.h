// A plain-value copy of the shared-memory region at one moment: what status
// pages, /metrics and the control socket print. Reading once into plain data
// keeps the renderers pure functions that unit tests feed by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shared/access_report.h"
#include "shared/policy/circuit_breaker.h"
#include "shared/route_records.h"
#include "shared/shm.h"
#include "shared/upstream_records.h"

namespace phalanx::shared {

// One live process (a used cell).
struct WorkerView {
  uint32_t cell = 0;
  uint32_t slot = 0;
  int pid = 0;
  uint32_t generation = 0;
  WorkerState state = WorkerState::Empty;
  uint64_t started_at_ms = 0;  // wall clock
  uint64_t heartbeat_ms = 0;   // monotonic
  uint64_t open_connections = 0;
  uint64_t rss_bytes = 0;
  uint64_t cpu_ms = 0;
  TrafficTotals traffic;
};

// One slot the supervisor runs or ran (index < the target count, or not Unused).
struct SlotView {
  uint32_t index = 0;
  SlotState state = SlotState::Unused;
  uint32_t restarts = 0;
  uint32_t unstable_restarts = 0;
  ExitReason last_exit_reason = ExitReason::None;
  int32_t last_exit_detail = 0;
  uint64_t last_exit_ms = 0;   // wall clock, 0 = never
  uint64_t restart_at_ms = 0;  // wall clock, while waiting
  int pid = 0;                 // the serving process, 0 = none
};

// One upstream target record: Active, or Retired with requests in flight.
struct TargetView {
  std::string upstream;
  std::string address;
  uint32_t position = 0;  // in its upstream's targets
  RecordState state = RecordState::Free;
  bool healthy = true;
  uint32_t health_passes = 0;  // current streaks
  uint32_t health_fails = 0;
  uint64_t health_checks = 0;
  policy::BreakerView breaker{};
  uint64_t breaker_changed_wall_ms = 0;  // 0 = never
  uint64_t in_flight = 0;
  uint64_t requests = 0;
  uint64_t failures = 0;
  uint32_t last_status = 0;
  uint64_t latency_buckets[kLatencyBuckets] = {};
  uint64_t latency_sum_us = 0;
};

// One upstream record: Active, or Retired while one of its targets is listed.
struct UpstreamView {
  std::string name;
  RecordState state = RecordState::Free;
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t retry_budget_exhausted = 0;
  uint64_t no_target = 0;
  uint64_t breaker_refusals = 0;
};

struct Snapshot {
  uint64_t taken_at_ms = 0;  // wall clock
  int master_pid = 0;
  uint32_t generation = 0;
  uint64_t master_started_at_ms = 0;
  uint32_t workers = 0;      // target count
  uint32_t last_reload = 0;  // 0 none, 1 ok, 2 failed
  uint64_t last_reload_ms = 0;
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  uint64_t restarts_by_reason[kExitReasonCount] = {};
  std::vector<SlotView> slots;      // by index
  std::vector<WorkerView> workers_live;  // by slot, then generation
  TrafficTotals totals;             // every process that ever ran
  std::vector<UpstreamView> upstreams;  // by name
  std::vector<TargetView> targets;      // by upstream, then position, then address
  AccessView access;
  std::vector<RouteView> routes;  // most requests first
  std::vector<ErrorView> errors;  // newest first
  uint64_t max_memory_bytes = 0;  // supervisor.max_memory, 0 = none
};

Snapshot takeSnapshot(const SharedRegion& region);

}  // namespace phalanx::shared

// Renders the upstream part of a Snapshot: the "upstreams" member of status
// (control socket `status` and `upstreams`, /health/status) and the upstream
// families of /metrics. Pure functions over plain data.
//
// The "upstreams" array, one object per upstream (by name):
//   {"name", "state": "active"|"retired", "requests", "retries",
//    "retry_budget_exhausted", "no_target", "breaker_refusals",
//    "targets": [ by config position:
//      {"address", "state": "active"|"retired",
//       "health": {"up": bool, "passes", "fails", "checks"},
//       "breaker": {"state": "closed"|"open"|"half_open", "since_ms" (wall
//                   clock of the last transition; 0 = never), "transitions",
//                   "consecutive_failures", "window_calls", "window_failures"},
//       "in_flight", "requests", "failures", "last_status" (0 = none yet),
//       "latency_ms": {"p50", "p99"} (null while there is no sample),
//       "latency_us": {"counts" (one per bucket as in status), "sum"}} ]}
// A retired target (removed by a reload) is listed while requests are in
// flight to it; a retired upstream while one of its targets is.
//
// Metrics, labels {upstream, target} (target = the address as configured):
//   phalanx_upstream_requests_total, phalanx_upstream_failures_total,
//   phalanx_upstream_in_flight, phalanx_upstream_healthy (1/0),
//   phalanx_breaker_state (0 closed, 1 open, 2 half_open),
//   phalanx_breaker_transitions_total,
//   phalanx_upstream_latency_seconds (histogram, the kLatencyBoundsUs bounds);
// labels {upstream}: phalanx_upstream_retries_total,
//   phalanx_upstream_retry_budget_exhausted_total,
//   phalanx_upstream_no_target_total, phalanx_upstream_breaker_refusals_total.
// No family is written when the config has no upstream.
#pragma once

#include <optional>

#include "shared/json_writer.h"
#include "shared/prometheus_text.h"
#include "shared/shm_snapshot.h"

namespace phalanx::shared {

// Writes the member "upstreams" into the object `w` has open.
void writeUpstreams(JsonWriter& w, const Snapshot& snapshot);

// Appends the upstream families.
void upstreamMetrics(Exposition& e, const Snapshot& snapshot);

// The q-quantile (0 < q <= 1) of a latency histogram in milliseconds,
// interpolated linearly inside its bucket as Prometheus' histogram_quantile
// does; the last finite bound when it falls above every bound; nullopt when
// the histogram is empty.
std::optional<double> latencyQuantileMs(const uint64_t (&buckets)[kLatencyBuckets], double q);

}  // namespace phalanx::shared

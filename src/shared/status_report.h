// Renders a Snapshot of shared memory for people and programs: the control
// socket's `status`, `show info`, `show stat`, and the workers' /health/status
// and /metrics. Pure functions over plain data.
//
// The status object (inside the control answer, and the body of /health/status):
//   "master": {"pid", "version", "uptime_s", "generation", "workers" (target),
//              "reloads": {"ok", "failed"},
//              "last_reload": {"result": "none"|"ok"|"failed", "at_ms", "error"}},
//   "totals": {"requests", "connections" (open), "restarts", "rss_bytes"},
//   "workers": [ one row per live process, then one per slot without one:
//     {"slot", "pid" (0 = none), "generation", "state", "uptime_s",
//      "restarts", "unstable_restarts", "last_exit", "rss_bytes", "cpu_ms",
//      "connections", "requests",
//      "responses": {"1xx", "2xx", "3xx", "4xx", "5xx"},
//      "latency_us": {"bounds": [...], "counts": [...], "sum"},
//      "restart_in_ms" (only while waiting-restart or errored without a process)} ]
//   "upstreams": [ per upstream and target, see upstream_report.h ]
//   "access": { limits, the rate-limit table, auth, cache, Redis: access_report.h }
//   "routes": [ per route name ], "errors": [ the most recent 5xx ]: route_report.h
// state is one of starting, ready, draining, waiting-restart, errored, fatal.
// last_exit is "none", "exit N", "signal N (Name)", "memory", "heartbeat",
// "max_requests", "reload", "scale" or "stop".
// Details: uptime_s are whole seconds at snapshot time. totals.requests counts
// every process that ever ran, totals.restarts sums restarts over all reasons,
// totals.connections and totals.rss_bytes the live processes. A row's restarts,
// unstable_restarts and last_exit are its slot's; a slot row (pid 0) shows the
// master's generation (the one its respawn will run) and zero traffic.
// latency_us.counts has one entry per bound plus a last one above every bound,
// each the count of that bucket alone (not cumulative); sum is in µs.
// last_reload.at_ms is wall-clock ms (0 = never); error is "" unless it failed.
#pragma once

#include <string>
#include <string_view>

#include "shared/json_writer.h"
#include "shared/prometheus_text.h"  // escapeLabelValue
#include "shared/shm_snapshot.h"

namespace phalanx::shared {

// Writes the members "master", "totals", "workers", "upstreams", "access",
// "routes" and "errors" into the object `w` has
// open. `last_reload_error` is what the master knows of a failed reload ("" if
// none or unknown to the caller).
void writeStatus(JsonWriter& w, const Snapshot& snapshot, std::string_view last_reload_error);

// Writes the member "latency_us" ({"bounds", "counts", "sum"}, as above) of a
// latency histogram into the object `w` has open.
void writeLatency(JsonWriter& w, const uint64_t (&buckets)[kLatencyBuckets], uint64_t sum_us);

// The state a row shows for a live process of `slot` (see above).
const char* rowState(const WorkerView& worker, const SlotView* slot);

// "exit 3", "signal 9 (Killed)", "memory", ...
std::string describeExit(ExitReason reason, int32_t detail);

// HAProxy-style `show info`: "Name: value" lines.
std::string showInfo(const Snapshot& snapshot);

// HAProxy-style `show stat`: a "# col,col,..." header line, then one CSV row per
// status row, same order and states as writeStatus.
std::string showStat(const Snapshot& snapshot);

// Prometheus text exposition (format 0.0.4) of the sums over every worker, each
// family with HELP and TYPE:
//   phalanx_requests_total, phalanx_responses_total{code="1xx".."5xx"},
//   phalanx_request_duration_seconds (histogram: cumulative le buckets at the
//   kLatencyBoundsUs bounds in seconds, +Inf, _sum in seconds, _count),
//   phalanx_connections_accepted_total, phalanx_bytes_sent_total,
//   phalanx_accept_errors_total,
//   phalanx_access_log_dropped_total{reason="queue_full"|"write_error"},
//   phalanx_connections_open (live processes),
//   phalanx_worker_restarts_total{reason} (every ExitReason but none),
//   phalanx_worker_rss_bytes{slot,pid,generation} and
//   phalanx_worker_cpu_seconds_total{slot,pid,generation} per live process,
//   phalanx_workers{state} (status rows by state, zeros included),
//   phalanx_workers_target, phalanx_reloads_total{result="ok"|"failed"},
//   phalanx_worker_memory_limit_bytes, phalanx_generation, phalanx_master_uptime_seconds;
//   then the upstream, access and route families (upstream_report.h,
//   access_report.h, route_report.h).
// Counters over all workers count exited processes too, so they never go back.
std::string prometheusMetrics(const Snapshot& snapshot);

}  // namespace phalanx::shared

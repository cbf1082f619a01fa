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
// state is one of starting, ready, draining, waiting-restart, errored, fatal.
// last_exit is "none", "exit N", "signal N (Name)", "memory", "heartbeat",
// "max_requests", "reload", "scale" or "stop".
#pragma once

#include <string>
#include <string_view>

#include "shared/json_writer.h"
#include "shared/shm_snapshot.h"

namespace phalanx::shared {

// Writes the members "master", "totals" and "workers" into the object `w` has
// open. `last_reload_error` is what the master knows of a failed reload ("" if
// none or unknown to the caller).
void writeStatus(JsonWriter& w, const Snapshot& snapshot, std::string_view last_reload_error);

// The state a row shows for a live process of `slot` (see above).
const char* rowState(const WorkerView& worker, const SlotView* slot);

// "exit 3", "signal 9 (Killed)", "memory", ...
std::string describeExit(ExitReason reason, int32_t detail);

// HAProxy-style `show info`: "Name: value" lines.
std::string showInfo(const Snapshot& snapshot);

// HAProxy-style `show stat`: a "# col,col,..." header line, then one CSV row per
// status row, same order and states as writeStatus.
std::string showStat(const Snapshot& snapshot);

// Prometheus text exposition (format 0.0.4) of the sums over every worker.
std::string prometheusMetrics(const Snapshot& snapshot);

}  // namespace phalanx::shared

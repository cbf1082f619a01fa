// The `status` answer for people: a header line about the master, one table
// row per worker, a totals line. Pure functions over plain data, so tests feed
// them literal JSON and compare text.
//
// The answer's schema is the one src/shared/status_report.h writes. Reading it
// is lenient on purpose: a field that is missing or of another type reads as
// 0 or "", so a phalanxctl one version apart from its master still prints a
// table; only an answer without "master" or "workers" is refused.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace phalanx::ctl {

struct MasterStatus {
  uint64_t pid = 0;
  std::string version;
  uint64_t uptime_s = 0;
  uint64_t generation = 0;
  uint64_t workers = 0;  // the target count
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  std::string last_reload = "none";  // "none", "ok" or "failed"
  uint64_t last_reload_at_ms = 0;    // wall clock; 0 = unknown
  std::string last_reload_error;     // may hold several lines
  // The last binary upgrade this master tried (the status' "upgrade").
  std::string upgrade = "none";  // "none", "running", "failed" or "succeeded"
  uint64_t upgrade_at_ms = 0;
  std::string upgrade_error;
};

struct StatusTotals {
  uint64_t requests = 0;
  uint64_t connections = 0;  // open now
  uint64_t restarts = 0;
  uint64_t rss_bytes = 0;
};

struct WorkerRow {
  uint64_t slot = 0;
  uint64_t pid = 0;  // 0 = the slot has no process
  uint64_t generation = 0;
  std::string state;
  uint64_t uptime_s = 0;
  uint64_t restarts = 0;
  uint64_t unstable_restarts = 0;
  std::string last_exit;
  uint64_t rss_bytes = 0;
  uint64_t cpu_ms = 0;
  uint64_t connections = 0;
  uint64_t requests = 0;
  std::optional<uint64_t> restart_in_ms;  // while the slot waits to respawn
};

struct StatusView {
  MasterStatus master;
  StatusTotals totals;
  std::vector<WorkerRow> workers;  // in the master's order
};

// Reads the "master", "totals" and "workers" members of a status answer. On
// failure returns nullopt and sets `error` to what is missing.
std::optional<StatusView> readStatus(simdjson::dom::element answer, std::string* error);

// The whole text phalanxctl prints, ending in '\n'. `now_ms` (wall clock) turns
// the last reload's time into "5m ago".
std::string renderStatus(const StatusView& status, uint64_t now_ms);

// Human units, as the table shows them.
// Bytes in powers of 1024: "512B", "4.6M", "512M", "1.2G".
std::string humanBytes(uint64_t bytes);
// Counts in powers of 1000: "999", "1.2k", "45.6k", "123k", "1.2M".
std::string humanCount(uint64_t count);
// Whole seconds: "45s", "2m05s", "2h13m", "3d04h".
std::string humanDuration(uint64_t seconds);
// Milliseconds, with a tenth of a second below a minute: "0.4s", "12.3s",
// then as humanDuration: "2m05s".
std::string humanMillis(uint64_t ms);

}  // namespace phalanx::ctl

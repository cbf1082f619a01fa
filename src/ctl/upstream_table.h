// The `upstreams` answer for people: one table row per upstream target, then
// one line per upstream with its retry and refusal counts. Pure functions over
// plain data, so tests feed them literal JSON and compare text.
//
// The answer's schema is the one src/shared/upstream_report.h writes. Reading
// is lenient like status_table.h: a missing field reads as 0, "" or "no
// sample"; only an answer without an "upstreams" array is refused.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace phalanx::ctl {

struct TargetRow {
  std::string address;
  bool retired = false;
  bool up = true;
  std::string breaker;    // "closed", "open", "half_open"
  uint64_t since_ms = 0;  // wall clock of the last breaker transition; 0 = never
  uint64_t in_flight = 0;
  uint64_t requests = 0;
  uint64_t failures = 0;
  std::optional<double> p50_ms;  // nullopt: no sample yet
  std::optional<double> p99_ms;
};

struct UpstreamRow {
  std::string name;
  bool retired = false;
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t retry_budget_exhausted = 0;
  uint64_t no_target = 0;
  uint64_t breaker_refusals = 0;
  std::vector<TargetRow> targets;
};

// Reads the "upstreams" member of an answer; nullopt with `error` set when it
// is missing or not an array.
std::optional<std::vector<UpstreamRow>> readUpstreams(simdjson::dom::element answer,
                                                      std::string* error);

// The text phalanxctl prints, ending in '\n'. Columns: UPSTREAM TARGET HEALTH
// BREAKER SINCE IN-FLIGHT REQUESTS FAILURES P50 P99. `now_ms` (wall clock)
// turns a transition time into an age.
std::string renderUpstreams(const std::vector<UpstreamRow>& upstreams, uint64_t now_ms);

// A latency for the table: "0.25ms", "12.5ms", "230ms", "1.20s"; "-" for none.
std::string humanLatency(std::optional<double> ms);

}  // namespace phalanx::ctl

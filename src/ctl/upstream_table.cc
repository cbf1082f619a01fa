#include "ctl/upstream_table.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "ctl/status_table.h"

namespace phalanx::ctl {

namespace {

using simdjson::dom::element;

uint64_t u64(element object, const char* key) {
  uint64_t n = 0;
  if (object.at_key(key).get_uint64().get(n) == simdjson::SUCCESS) return n;
  int64_t i = 0;
  if (object.at_key(key).get_int64().get(i) == simdjson::SUCCESS && i > 0) {
    return static_cast<uint64_t>(i);
  }
  return 0;
}

std::string str(element object, const char* key) {
  std::string_view text;
  if (object.at_key(key).get_string().get(text) != simdjson::SUCCESS) return {};
  // Text from the master goes to a terminal: control bytes become '?'.
  std::string out(text);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

std::optional<double> number(element object, const char* key) {
  double d = 0;
  if (object.at_key(key).get_double().get(d) == simdjson::SUCCESS) return d;
  uint64_t n = 0;
  if (object.at_key(key).get_uint64().get(n) == simdjson::SUCCESS) {
    return static_cast<double>(n);
  }
  return std::nullopt;
}

TargetRow readTarget(element t) {
  TargetRow row;
  row.address = str(t, "address");
  row.retired = str(t, "state") == "retired";
  element health, breaker, latency;
  bool up = true;
  if (t.at_key("health").get(health) == simdjson::SUCCESS) {
    if (health.at_key("up").get_bool().get(up) != simdjson::SUCCESS) up = true;
  }
  row.up = up;
  if (t.at_key("breaker").get(breaker) == simdjson::SUCCESS) {
    row.breaker = str(breaker, "state");
    row.since_ms = u64(breaker, "since_ms");
  }
  row.in_flight = u64(t, "in_flight");
  row.requests = u64(t, "requests");
  row.failures = u64(t, "failures");
  if (t.at_key("latency_ms").get(latency) == simdjson::SUCCESS) {
    row.p50_ms = number(latency, "p50");
    row.p99_ms = number(latency, "p99");
  }
  return row;
}

using Cells = std::vector<std::string>;

constexpr const char* kTitles[] = {"UPSTREAM",  "TARGET",   "HEALTH",   "BREAKER", "SINCE",
                                   "IN-FLIGHT", "REQUESTS", "FAILURES", "P50",     "P99"};
constexpr size_t kColumns = std::size(kTitles);
constexpr size_t kFirstRightAligned = 4;  // SINCE and the numbers

std::string table(const std::vector<Cells>& rows) {
  size_t widths[kColumns];
  for (size_t c = 0; c < kColumns; ++c) {
    widths[c] = std::string_view(kTitles[c]).size();
    for (const Cells& row : rows) widths[c] = std::max(widths[c], row[c].size());
  }
  auto line = [&](const Cells& cells) {
    std::string text;
    for (size_t c = 0; c < kColumns; ++c) {
      std::string pad(widths[c] - cells[c].size(), ' ');
      if (c > 0) text += "  ";
      text += c >= kFirstRightAligned ? pad + cells[c] : cells[c] + pad;
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text + "\n";
  };
  std::string text = line(Cells(std::begin(kTitles), std::end(kTitles)));
  for (const Cells& row : rows) text += line(row);
  return text;
}

Cells targetCells(const UpstreamRow& u, const TargetRow& t, uint64_t now_ms) {
  std::string since = "-";
  if (t.since_ms != 0)
    since = humanDuration(now_ms > t.since_ms ? (now_ms - t.since_ms) / 1000 : 0);
  return {u.name,
          t.address + (t.retired ? " (retired)" : ""),
          t.up ? "up" : "down",
          t.breaker.empty() ? "?" : t.breaker,
          since,
          std::to_string(t.in_flight),
          humanCount(t.requests),
          humanCount(t.failures),
          humanLatency(t.p50_ms),
          humanLatency(t.p99_ms)};
}

}  // namespace

std::optional<std::vector<UpstreamRow>> readUpstreams(simdjson::dom::element answer,
                                                      std::string* error) {
  simdjson::dom::array upstreams;
  if (answer.at_key("upstreams").get_array().get(upstreams) != simdjson::SUCCESS) {
    *error = "no \"upstreams\" array in the answer";
    return std::nullopt;
  }
  std::vector<UpstreamRow> rows;
  for (element u : upstreams) {
    UpstreamRow row;
    row.name = str(u, "name");
    row.retired = str(u, "state") == "retired";
    row.requests = u64(u, "requests");
    row.retries = u64(u, "retries");
    row.retry_budget_exhausted = u64(u, "retry_budget_exhausted");
    row.no_target = u64(u, "no_target");
    row.breaker_refusals = u64(u, "breaker_refusals");
    simdjson::dom::array targets;
    if (u.at_key("targets").get_array().get(targets) == simdjson::SUCCESS) {
      for (element t : targets) row.targets.push_back(readTarget(t));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string renderUpstreams(const std::vector<UpstreamRow>& upstreams, uint64_t now_ms) {
  if (upstreams.empty()) return "no upstreams configured\n";
  std::vector<Cells> rows;
  for (const UpstreamRow& u : upstreams) {
    for (const TargetRow& t : u.targets) rows.push_back(targetCells(u, t, now_ms));
  }
  std::string text = table(rows) + "\n";
  for (const UpstreamRow& u : upstreams) {
    text += u.name + (u.retired ? " (retired)" : "") + ": " + humanCount(u.requests) +
            " requests, " + humanCount(u.retries) + " retries, " +
            humanCount(u.retry_budget_exhausted) + " over the retry budget, " +
            humanCount(u.no_target) + " without a usable target, " +
            humanCount(u.breaker_refusals) + " refused by a breaker\n";
  }
  return text;
}

std::string humanLatency(std::optional<double> ms) {
  if (!ms || !(*ms >= 0)) return "-";
  char text[32];
  if (*ms >= 999.5) {
    std::snprintf(text, sizeof text, "%.2fs", *ms / 1000);
  } else if (*ms >= 99.95) {
    std::snprintf(text, sizeof text, "%.0fms", *ms);
  } else if (*ms >= 9.995) {
    std::snprintf(text, sizeof text, "%.1fms", *ms);
  } else {
    std::snprintf(text, sizeof text, "%.2fms", *ms);
  }
  return text;
}

}  // namespace phalanx::ctl

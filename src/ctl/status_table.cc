#include "ctl/status_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace phalanx::ctl {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::optional<element> member(element object, const char* key) {
  element value;
  if (object.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

// A non-negative number, whatever type simdjson gave it.
std::optional<uint64_t> optionalU64(element object, const char* key) {
  std::optional<element> value = member(object, key);
  if (!value) return std::nullopt;
  switch (value->type()) {
    case element_type::UINT64: return value->get_uint64().value_unsafe();
    case element_type::INT64: {
      int64_t n = value->get_int64().value_unsafe();
      return n < 0 ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(n));
    }
    case element_type::DOUBLE: {
      double d = value->get_double().value_unsafe();
      if (!(d >= 0) || d >= 18446744073709551616.0) return std::nullopt;
      return static_cast<uint64_t>(d);
    }
    default: return std::nullopt;
  }
}

uint64_t u64(element object, const char* key) {
  return optionalU64(object, key).value_or(0);
}

std::string str(element object, const char* key) {
  std::optional<element> value = member(object, key);
  std::string_view text;
  if (!value || value->get_string().get(text) != simdjson::SUCCESS) return {};
  return std::string(text);
}

MasterStatus readMaster(element m) {
  MasterStatus master;
  master.pid = u64(m, "pid");
  master.version = str(m, "version");
  master.uptime_s = u64(m, "uptime_s");
  master.generation = u64(m, "generation");
  master.workers = u64(m, "workers");
  if (auto reloads = member(m, "reloads")) {
    master.reloads_ok = u64(*reloads, "ok");
    master.reloads_failed = u64(*reloads, "failed");
  }
  if (auto last = member(m, "last_reload")) {
    std::string result = str(*last, "result");
    if (!result.empty()) master.last_reload = result;
    master.last_reload_at_ms = u64(*last, "at_ms");
    master.last_reload_error = str(*last, "error");
  }
  return master;
}

WorkerRow readWorker(element w) {
  return WorkerRow{.slot = u64(w, "slot"),
                   .pid = u64(w, "pid"),
                   .generation = u64(w, "generation"),
                   .state = str(w, "state"),
                   .uptime_s = u64(w, "uptime_s"),
                   .restarts = u64(w, "restarts"),
                   .unstable_restarts = u64(w, "unstable_restarts"),
                   .last_exit = str(w, "last_exit"),
                   .rss_bytes = u64(w, "rss_bytes"),
                   .cpu_ms = u64(w, "cpu_ms"),
                   .connections = u64(w, "connections"),
                   .requests = u64(w, "requests"),
                   .restart_in_ms = optionalU64(w, "restart_in_ms")};
}

// Text from the master goes to a terminal: control bytes become '?'.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

// `value` (already divided down to its unit) with one decimal below 100.
std::string scaled(double value, const char* unit) {
  char text[32];
  if (value < 99.95) {
    std::snprintf(text, sizeof text, "%.1f%s", value, unit);
  } else {
    std::snprintf(text, sizeof text, "%.0f%s", value, unit);
  }
  return text;
}

std::string humanScaled(uint64_t n, double base, const char* const* units, size_t unit_count,
                        const char* plain_suffix) {
  if (static_cast<double>(n) < base) return std::to_string(n) + plain_suffix;
  double value = static_cast<double>(n);
  size_t unit = 0;
  // Move up a unit while the value would print as `base` or more ("1024K").
  while (unit + 1 < unit_count && std::round(value / base) >= base) {
    value /= base;
    ++unit;
  }
  return scaled(value / base, units[unit]);
}

struct Column {
  const char* title;
  bool right_aligned;
};

constexpr Column kColumns[] = {
    {"SLOT", true},   {"PID", true},      {"GEN", true},        {"STATE", false},
    {"UPTIME", true}, {"RESTARTS", true}, {"LAST-EXIT", false}, {"RSS", true},
    {"CPU", true},    {"CONN", true},     {"REQS", true},
};
constexpr size_t kColumnCount = std::size(kColumns);
using Cells = std::vector<std::string>;

Cells rowCells(const WorkerRow& row) {
  bool live = row.pid != 0;
  std::string state = printable(row.state.empty() ? "?" : row.state);
  if (row.restart_in_ms) state += " (restart in " + humanMillis(*row.restart_in_ms) + ")";
  std::string dash = "-";
  return {std::to_string(row.slot), live ? std::to_string(row.pid) : dash,
          std::to_string(row.generation), state, live ? humanDuration(row.uptime_s) : dash,
          std::to_string(row.restarts) + "/" + std::to_string(row.unstable_restarts),
          row.last_exit.empty() || row.last_exit == "none" ? dash : printable(row.last_exit),
          // A live process has memory: 0 means the master has not sampled it yet.
          live && row.rss_bytes != 0 ? humanBytes(row.rss_bytes) : dash,
          live ? humanMillis(row.cpu_ms) : dash, live ? humanCount(row.connections) : dash,
          live ? humanCount(row.requests) : dash};
}

std::string renderTable(const std::vector<Cells>& rows) {
  size_t widths[kColumnCount];
  for (size_t c = 0; c < kColumnCount; ++c) {
    widths[c] = std::string_view(kColumns[c].title).size();
    for (const Cells& row : rows) widths[c] = std::max(widths[c], row[c].size());
  }
  auto line = [&](const Cells& cells) {
    std::string text;
    for (size_t c = 0; c < kColumnCount; ++c) {
      std::string pad(widths[c] - cells[c].size(), ' ');
      if (c > 0) text += "  ";
      text += kColumns[c].right_aligned ? pad + cells[c] : cells[c] + pad;
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text + "\n";
  };
  Cells titles;
  for (const Column& column : kColumns) titles.emplace_back(column.title);
  std::string text = line(titles);
  for (const Cells& row : rows) text += line(row);
  return text;
}

std::string headerLine(const StatusView& status, uint64_t now_ms) {
  const MasterStatus& m = status.master;
  size_t ready =
      static_cast<size_t>(std::count_if(status.workers.begin(), status.workers.end(),
                                        [](const WorkerRow& row) { return row.state == "ready"; }));
  std::string text = m.version.empty() ? "phalanx" : "phalanx " + printable(m.version);
  text += "  master " + std::to_string(m.pid) + "  generation " + std::to_string(m.generation) +
          "  up " + humanDuration(m.uptime_s) + "  workers " + std::to_string(m.workers) + " (" +
          std::to_string(ready) + " ready)  ";
  std::string ago;
  if (m.last_reload_at_ms != 0 && now_ms >= m.last_reload_at_ms) {
    ago = " " + humanDuration((now_ms - m.last_reload_at_ms) / 1000) + " ago";
  }
  if (m.last_reload == "ok") {
    text += "last reload ok" + ago;
  } else if (m.last_reload == "failed") {
    text += "last reload FAILED" + ago + (m.last_reload_error.empty() ? "" : ":");
  } else {
    text += "no reload yet";
  }
  text += "\n";
  // A failed reload's error may be several config errors, one per line.
  if (m.last_reload == "failed") {
    std::string_view rest = m.last_reload_error;
    while (!rest.empty()) {
      size_t end = rest.find('\n');
      std::string_view one = rest.substr(0, end);
      if (!one.empty()) text += "  " + printable(one) + "\n";
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    }
  }
  // The old master still serving after a failed upgrade says why.
  if (m.upgrade == "failed" || m.upgrade == "running") {
    std::string upgrade_ago;
    if (m.upgrade_at_ms != 0 && now_ms >= m.upgrade_at_ms) {
      upgrade_ago = " " + humanDuration((now_ms - m.upgrade_at_ms) / 1000) + " ago";
    }
    text += m.upgrade == "running" ? "upgrade running, started" + upgrade_ago + "\n"
                                   : "last upgrade FAILED" + upgrade_ago + ": " +
                                         printable(m.upgrade_error) + "\n";
  }
  return text;
}

}  // namespace

std::optional<StatusView> readStatus(simdjson::dom::element answer, std::string* error) {
  std::optional<element> master = member(answer, "master");
  if (!master || master->type() != element_type::OBJECT) {
    *error = "status without a \"master\" object";
    return std::nullopt;
  }
  std::optional<element> workers = member(answer, "workers");
  simdjson::dom::array rows;
  if (!workers || workers->get_array().get(rows) != simdjson::SUCCESS) {
    *error = "status without a \"workers\" array";
    return std::nullopt;
  }
  StatusView status;
  status.master = readMaster(*master);
  if (auto upgrade = member(answer, "upgrade")) {
    std::string state = str(*upgrade, "state");
    if (!state.empty()) status.master.upgrade = state;
    status.master.upgrade_at_ms = u64(*upgrade, "at_ms");
    status.master.upgrade_error = str(*upgrade, "error");
  }
  if (auto totals = member(answer, "totals")) {
    status.totals = StatusTotals{.requests = u64(*totals, "requests"),
                                 .connections = u64(*totals, "connections"),
                                 .restarts = u64(*totals, "restarts"),
                                 .rss_bytes = u64(*totals, "rss_bytes")};
  }
  for (element row : rows) status.workers.push_back(readWorker(row));
  return status;
}

std::string renderStatus(const StatusView& status, uint64_t now_ms) {
  std::vector<Cells> rows;
  rows.reserve(status.workers.size());
  for (const WorkerRow& row : status.workers) rows.push_back(rowCells(row));
  const StatusTotals& t = status.totals;
  return headerLine(status, now_ms) + renderTable(rows) + "total: " + humanCount(t.connections) +
         " connections, " + humanCount(t.requests) + " requests, " + humanBytes(t.rss_bytes) +
         " RSS, " + humanCount(t.restarts) + " restarts\n";
}

std::string humanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"K", "M", "G", "T", "P", "E"};
  return humanScaled(bytes, 1024.0, kUnits, std::size(kUnits), "B");
}

std::string humanCount(uint64_t count) {
  static constexpr const char* kUnits[] = {"k", "M", "G", "T", "P", "E"};
  return humanScaled(count, 1000.0, kUnits, std::size(kUnits), "");
}

std::string humanDuration(uint64_t seconds) {
  char text[48];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%llus", static_cast<unsigned long long>(seconds));
  } else if (seconds < 3600) {
    std::snprintf(text, sizeof text, "%llum%02llus", static_cast<unsigned long long>(seconds / 60),
                  static_cast<unsigned long long>(seconds % 60));
  } else if (seconds < 86400) {
    std::snprintf(text, sizeof text, "%lluh%02llum",
                  static_cast<unsigned long long>(seconds / 3600),
                  static_cast<unsigned long long>(seconds % 3600 / 60));
  } else {
    std::snprintf(text, sizeof text, "%llud%02lluh",
                  static_cast<unsigned long long>(seconds / 86400),
                  static_cast<unsigned long long>(seconds % 86400 / 3600));
  }
  return text;
}

std::string humanMillis(uint64_t ms) {
  if (ms >= 60'000) return humanDuration(ms / 1000);
  char text[32];
  // Tenths, rounded down so 59.99 s never prints as "60.0s".
  std::snprintf(text, sizeof text, "%llu.%llus", static_cast<unsigned long long>(ms / 1000),
                static_cast<unsigned long long>(ms % 1000 / 100));
  return text;
}

}  // namespace phalanx::ctl

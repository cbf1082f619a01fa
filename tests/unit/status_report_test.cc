#include "shared/status_report.h"

#include <doctest/doctest.h>
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace phalanx::shared {
namespace {

constexpr uint64_t kNow = 1'700'000'000'000;  // wall clock of the snapshots, ms

WorkerView worker(uint32_t slot, int pid, uint32_t generation, WorkerState state) {
  WorkerView w;
  w.cell = slot;
  w.slot = slot;
  w.pid = pid;
  w.generation = generation;
  w.state = state;
  w.started_at_ms = kNow - 42'500;
  return w;
}

SlotView slotView(uint32_t index, SlotState state) {
  SlotView s;
  s.index = index;
  s.state = state;
  return s;
}

// A master at generation 3 with four slots: slot 0 in a reload (old draining,
// new ready), slot 1 waiting 1.5 s for a respawn after a SIGKILL, slot 2 fatal,
// slot 3 errored with a process starting.
Snapshot sample() {
  Snapshot s;
  s.taken_at_ms = kNow;
  s.master_pid = 4242;
  s.generation = 3;
  s.master_started_at_ms = kNow - 3'725'900;  // 1 h 2 min 5.9 s
  s.workers = 4;
  s.last_reload = 1;
  s.last_reload_ms = kNow - 1000;
  s.reloads_ok = 2;
  s.reloads_failed = 1;
  s.restarts_by_reason[static_cast<uint32_t>(ExitReason::Signaled)] = 3;
  s.restarts_by_reason[static_cast<uint32_t>(ExitReason::Reload)] = 4;
  s.restarts_by_reason[static_cast<uint32_t>(ExitReason::Exited)] = 1;

  SlotView s0 = slotView(0, SlotState::Running);
  s0.restarts = 2;
  s0.last_exit_reason = ExitReason::Reload;
  SlotView s1 = slotView(1, SlotState::WaitingRestart);
  s1.restarts = 5;
  s1.unstable_restarts = 2;
  s1.last_exit_reason = ExitReason::Signaled;
  s1.last_exit_detail = 9;
  s1.restart_at_ms = kNow + 1500;
  SlotView s2 = slotView(2, SlotState::Fatal);
  s2.last_exit_reason = ExitReason::Exited;
  s2.last_exit_detail = 2;
  SlotView s3 = slotView(3, SlotState::Errored);
  s3.restarts = 16;
  s3.unstable_restarts = 16;
  s3.last_exit_reason = ExitReason::Exited;
  s3.last_exit_detail = 1;
  s.slots = {s0, s1, s2, s3};

  WorkerView old = worker(0, 101, 2, WorkerState::Draining);
  old.open_connections = 1;
  old.rss_bytes = 10'000'000;
  old.cpu_ms = 1'250;
  old.traffic.requests = 10;
  old.traffic.accepted_connections = 4;
  old.traffic.bytes_out = 1000;
  old.traffic.responses_by_class[2] = 9;
  old.traffic.responses_by_class[4] = 1;
  old.traffic.latency_buckets[0] = 7;
  old.traffic.latency_buckets[3] = 3;
  old.traffic.latency_sum_us = 2'100;
  WorkerView fresh = worker(0, 102, 3, WorkerState::Ready);
  fresh.started_at_ms = kNow - 999;  // under a second: uptime 0
  fresh.open_connections = 2;
  fresh.rss_bytes = 5'000'000;
  fresh.cpu_ms = 7;
  WorkerView starting = worker(3, 131, 3, WorkerState::Starting);
  s.workers_live = {old, fresh, starting};

  s.totals.requests = 25;
  s.totals.accepted_connections = 9;
  s.totals.bytes_out = 123'456;
  s.totals.responses_by_class[1] = 1;
  s.totals.responses_by_class[2] = 20;
  s.totals.responses_by_class[3] = 1;
  s.totals.responses_by_class[4] = 2;
  s.totals.responses_by_class[5] = 1;
  s.totals.latency_buckets[0] = 10;                    // ≤ 100 µs
  s.totals.latency_buckets[4] = 5;                     // ≤ 2.5 ms
  s.totals.latency_buckets[kLatencyBuckets - 1] = 10;  // above 10 s
  s.totals.latency_sum_us = 100'012'345;
  s.totals.access_log_dropped_queue_full = 17;
  s.totals.access_log_dropped_write_error = 5;
  s.totals.accept_errors = 3;
  return s;
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& text) {
  simdjson::dom::element root;
  auto error = parser.parse(text).get(root);
  REQUIRE_MESSAGE(error == simdjson::SUCCESS, text);
  return root;
}

std::string statusJson(const Snapshot& s, std::string_view error = "") {
  JsonWriter w;
  w.beginObject();
  writeStatus(w, s, error);
  w.endObject();
  return w.take();
}

uint64_t u64(simdjson::dom::element e, std::string_view pointer) {
  uint64_t value = 0;
  auto error = e.at_pointer(pointer).get(value);
  REQUIRE_MESSAGE(error == simdjson::SUCCESS, pointer);
  return value;
}

std::string str(simdjson::dom::element e, std::string_view pointer) {
  std::string_view value;
  auto error = e.at_pointer(pointer).get(value);
  REQUIRE_MESSAGE(error == simdjson::SUCCESS, pointer);
  return std::string(value);
}

bool has(simdjson::dom::element e, std::string_view pointer) {
  return e.at_pointer(pointer).error() == simdjson::SUCCESS;
}

// Prometheus text: samples by "name{labels}", and the HELP/TYPE lines seen.
struct Exposition {
  std::map<std::string, std::string> samples;
  std::vector<std::string> order;  // sample keys in output order
  std::map<std::string, std::string> types;
  std::set<std::string> helps;
};

Exposition parseExposition(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  while (std::getline(in, line)) {
    REQUIRE(!line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      e.helps.insert(rest.substr(0, rest.find(' ')));
    } else if (line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t space = rest.find(' ');
      e.types[rest.substr(0, space)] = rest.substr(space + 1);
    } else {
      size_t space = line.rfind(' ');
      REQUIRE(space != std::string::npos);
      std::string key = line.substr(0, space);
      std::string name = key.substr(0, key.find('{'));
      // Every sample comes after its family's TYPE (histograms: the base name).
      std::string family = name;
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        std::string_view sv(name);
        if (e.types.count(family) == 0 && sv.ends_with(suffix)) {
          family = name.substr(0, name.size() - std::strlen(suffix));
        }
      }
      CHECK_MESSAGE(e.types.count(family) == 1, "no TYPE before " << line);
      CHECK_MESSAGE(e.helps.count(family) == 1, "no HELP before " << line);
      CHECK_MESSAGE(e.samples.count(key) == 0, "duplicate sample " << key);
      e.samples[key] = line.substr(space + 1);
      e.order.push_back(key);
    }
  }
  return e;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::vector<std::string> csvFields(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(field);
      field.clear();
    } else {
      field += c;
    }
  }
  out.push_back(field);
  return out;
}

TEST_CASE("describeExit: codes, signals by name, and the planned reasons") {
  CHECK(describeExit(ExitReason::None, 0) == "none");
  CHECK(describeExit(ExitReason::Exited, 3) == "exit 3");
  CHECK(describeExit(ExitReason::Exited, 0) == "exit 0");
  CHECK(describeExit(ExitReason::Signaled, 9) == "signal 9 (Killed)");
  CHECK(describeExit(ExitReason::Signaled, 11) == "signal 11 (Segmentation fault)");
  CHECK(describeExit(ExitReason::Signaled, 999) == "signal 999");
  CHECK(describeExit(ExitReason::Memory, 0) == "memory");
  CHECK(describeExit(ExitReason::Heartbeat, 6) == "heartbeat");
  CHECK(describeExit(ExitReason::MaxRequests, 0) == "max_requests");
  CHECK(describeExit(ExitReason::Reload, 0) == "reload");
  CHECK(describeExit(ExitReason::Scale, 0) == "scale");
  CHECK(describeExit(ExitReason::Stop, 0) == "stop");
}

TEST_CASE("rowState: draining wins, then the slot's errored or fatal, then the cell") {
  SlotView running = slotView(0, SlotState::Running);
  SlotView errored = slotView(0, SlotState::Errored);
  SlotView fatal = slotView(0, SlotState::Fatal);
  SlotView waiting = slotView(0, SlotState::WaitingRestart);
  WorkerView ready = worker(0, 1, 1, WorkerState::Ready);
  WorkerView starting = worker(0, 1, 1, WorkerState::Starting);
  WorkerView draining = worker(0, 1, 1, WorkerState::Draining);
  CHECK(std::string(rowState(ready, &running)) == "ready");
  CHECK(std::string(rowState(starting, &running)) == "starting");
  CHECK(std::string(rowState(ready, nullptr)) == "ready");
  CHECK(std::string(rowState(starting, &errored)) == "errored");
  CHECK(std::string(rowState(ready, &fatal)) == "fatal");
  CHECK(std::string(rowState(draining, &errored)) == "draining");
  CHECK(std::string(rowState(draining, &running)) == "draining");
  CHECK(std::string(rowState(ready, &waiting)) == "ready");
}

TEST_CASE("writeStatus: master and totals") {
  simdjson::dom::parser parser;
  std::string text = statusJson(sample());
  auto root = parse(parser, text);
  CHECK(u64(root, "/master/pid") == 4242);
  CHECK(str(root, "/master/version") == PHALANX_VERSION);
  CHECK(u64(root, "/master/uptime_s") == 3725);
  CHECK(u64(root, "/master/generation") == 3);
  CHECK(u64(root, "/master/workers") == 4);
  CHECK(u64(root, "/master/reloads/ok") == 2);
  CHECK(u64(root, "/master/reloads/failed") == 1);
  CHECK(str(root, "/master/last_reload/result") == "ok");
  CHECK(u64(root, "/master/last_reload/at_ms") == kNow - 1000);
  CHECK(str(root, "/master/last_reload/error") == "");
  CHECK(u64(root, "/totals/requests") == 25);
  CHECK(u64(root, "/totals/connections") == 3);
  // Crashes and recycling, not the 4 replaced by a reload.
  CHECK(u64(root, "/totals/restarts") == 4);
  CHECK(u64(root, "/totals/rss_bytes") == 15'000'000);
  // Only its members: the caller owns the object around them.
  simdjson::dom::object object;
  REQUIRE(root.get(object) == simdjson::SUCCESS);
  std::vector<std::string_view> keys;
  for (auto field : object) keys.push_back(field.key);
  CHECK(keys == std::vector<std::string_view>{"master", "totals", "workers", "upstreams", "access",
                                              "routes", "errors"});
}

TEST_CASE("writeStatus: one row per live process, then slots without one") {
  simdjson::dom::parser parser;
  std::string text = statusJson(sample());
  auto root = parse(parser, text);
  simdjson::dom::array rows;
  REQUIRE(root["workers"].get(rows) == simdjson::SUCCESS);
  REQUIRE(rows.size() == 5);

  // Slot 0, old generation, draining: its own traffic, its slot's restarts.
  CHECK(u64(root, "/workers/0/slot") == 0);
  CHECK(u64(root, "/workers/0/pid") == 101);
  CHECK(u64(root, "/workers/0/generation") == 2);
  CHECK(str(root, "/workers/0/state") == "draining");
  CHECK(u64(root, "/workers/0/uptime_s") == 42);
  CHECK(u64(root, "/workers/0/restarts") == 2);
  CHECK(u64(root, "/workers/0/unstable_restarts") == 0);
  CHECK(str(root, "/workers/0/last_exit") == "reload");
  CHECK(u64(root, "/workers/0/rss_bytes") == 10'000'000);
  CHECK(u64(root, "/workers/0/cpu_ms") == 1'250);
  CHECK(u64(root, "/workers/0/connections") == 1);
  CHECK(u64(root, "/workers/0/requests") == 10);
  CHECK(u64(root, "/workers/0/responses/1xx") == 0);
  CHECK(u64(root, "/workers/0/responses/2xx") == 9);
  CHECK(u64(root, "/workers/0/responses/4xx") == 1);
  CHECK(u64(root, "/workers/0/responses/5xx") == 0);
  simdjson::dom::array bounds, counts;
  REQUIRE(root.at_pointer("/workers/0/latency_us/bounds").get(bounds) == simdjson::SUCCESS);
  REQUIRE(root.at_pointer("/workers/0/latency_us/counts").get(counts) == simdjson::SUCCESS);
  CHECK(bounds.size() == kLatencyBuckets - 1);
  CHECK(counts.size() == kLatencyBuckets);
  CHECK(u64(root, "/workers/0/latency_us/bounds/0") == 100);
  CHECK(u64(root, "/workers/0/latency_us/bounds/15") == 10'000'000);
  CHECK(u64(root, "/workers/0/latency_us/counts/0") == 7);  // per bucket, not cumulative
  CHECK(u64(root, "/workers/0/latency_us/counts/3") == 3);
  CHECK(u64(root, "/workers/0/latency_us/counts/4") == 0);
  CHECK(u64(root, "/workers/0/latency_us/sum") == 2'100);
  CHECK_FALSE(has(root, "/workers/0/restart_in_ms"));

  CHECK(u64(root, "/workers/1/pid") == 102);
  CHECK(u64(root, "/workers/1/generation") == 3);
  CHECK(str(root, "/workers/1/state") == "ready");
  CHECK(u64(root, "/workers/1/uptime_s") == 0);

  // A process of an errored slot shows the slot's state.
  CHECK(u64(root, "/workers/2/slot") == 3);
  CHECK(u64(root, "/workers/2/pid") == 131);
  CHECK(str(root, "/workers/2/state") == "errored");
  CHECK(u64(root, "/workers/2/restarts") == 16);
  CHECK(str(root, "/workers/2/last_exit") == "exit 1");
  CHECK_FALSE(has(root, "/workers/2/restart_in_ms"));

  // Slots without a process: pid 0, no traffic.
  CHECK(u64(root, "/workers/3/slot") == 1);
  CHECK(u64(root, "/workers/3/pid") == 0);
  CHECK(u64(root, "/workers/3/generation") == 3);
  CHECK(str(root, "/workers/3/state") == "waiting-restart");
  CHECK(u64(root, "/workers/3/restarts") == 5);
  CHECK(u64(root, "/workers/3/unstable_restarts") == 2);
  CHECK(str(root, "/workers/3/last_exit") == "signal 9 (Killed)");
  CHECK(u64(root, "/workers/3/restart_in_ms") == 1500);
  CHECK(u64(root, "/workers/3/uptime_s") == 0);
  CHECK(u64(root, "/workers/3/requests") == 0);
  CHECK(u64(root, "/workers/3/latency_us/counts/0") == 0);

  CHECK(u64(root, "/workers/4/slot") == 2);
  CHECK(str(root, "/workers/4/state") == "fatal");
  CHECK(str(root, "/workers/4/last_exit") == "exit 2");
  CHECK_FALSE(has(root, "/workers/4/restart_in_ms"));  // never respawned
}

TEST_CASE("writeStatus: restart_in_ms is floored at 0, and errored slots have it too") {
  Snapshot s = sample();
  s.slots[1].restart_at_ms = kNow - 5;  // the timer is due: not a huge unsigned number
  s.workers_live.pop_back();            // slot 3 (errored) has no process now
  s.slots[3].restart_at_ms = kNow + 15'000;
  simdjson::dom::parser parser;
  auto root = parse(parser, statusJson(s));
  CHECK(str(root, "/workers/2/state") == "waiting-restart");
  CHECK(u64(root, "/workers/2/restart_in_ms") == 0);
  CHECK(str(root, "/workers/3/state") == "fatal");  // slot rows in slot order
  CHECK(str(root, "/workers/4/state") == "errored");
  CHECK(u64(root, "/workers/4/pid") == 0);
  CHECK(u64(root, "/workers/4/restart_in_ms") == 15'000);
}

TEST_CASE("writeStatus: a failed reload carries its error, escaped") {
  Snapshot s = sample();
  s.last_reload = 2;
  std::string error = "config: routes[0].path: \"x\" must start with '/'\n\tand a \\ too";
  simdjson::dom::parser parser;
  std::string text = statusJson(s, error);
  CHECK(text.find('\n') == std::string::npos);
  auto root = parse(parser, text);
  CHECK(str(root, "/master/last_reload/result") == "failed");
  CHECK(str(root, "/master/last_reload/error") == error);
  // An error is only shown while the last reload is the failed one.
  s.last_reload = 1;
  auto ok = parse(parser, statusJson(s, error));
  CHECK(str(ok, "/master/last_reload/error") == "");
  s.last_reload = 0;
  auto none = parse(parser, statusJson(s));
  CHECK(str(none, "/master/last_reload/result") == "none");
}

TEST_CASE("writeStatus: an empty snapshot (master not filled in yet) is still valid") {
  Snapshot s;
  simdjson::dom::parser parser;
  auto root = parse(parser, statusJson(s));
  CHECK(u64(root, "/master/uptime_s") == 0);
  simdjson::dom::array rows;
  REQUIRE(root["workers"].get(rows) == simdjson::SUCCESS);
  CHECK(rows.size() == 0);
  // Unused slots and running slots without a process are not rows.
  s.slots = {slotView(0, SlotState::Unused), slotView(1, SlotState::Running)};
  auto root2 = parse(parser, statusJson(s));
  REQUIRE(root2["workers"].get(rows) == simdjson::SUCCESS);
  CHECK(rows.size() == 0);
}

TEST_CASE("showInfo: HAProxy-style Name: value lines") {
  std::string text = showInfo(sample());
  std::vector<std::string> got = lines(text);
  REQUIRE(got.size() >= 2);
  CHECK(got[0] == "Name: phalanx");
  CHECK(got[1] == std::string("Version: ") + PHALANX_VERSION);
  auto has_line = [&](const std::string& line) {
    return std::find(got.begin(), got.end(), line) != got.end();
  };
  CHECK(has_line("Pid: 4242"));
  CHECK(has_line("Uptime: 0d 1h02m05s"));
  CHECK(has_line("Uptime_sec: 3725"));
  CHECK(has_line("Generation: 3"));
  CHECK(has_line("Workers: 4"));
  CHECK(has_line("Processes: 3"));
  CHECK(has_line("Workers_ready: 1"));
  CHECK(has_line("CurrConns: 3"));
  CHECK(has_line("CumConns: 9"));
  CHECK(has_line("CumReq: 25"));
  CHECK(has_line("BytesOut: 123456"));
  CHECK(has_line("Restarts: 4"));
  CHECK(has_line("Reloads_ok: 2"));
  CHECK(has_line("Reloads_failed: 1"));
  CHECK(has_line("Last_reload: ok"));
  CHECK(has_line("AccessLogDropped_queue_full: 17"));
  CHECK(has_line("AccessLogDropped_write_error: 5"));
  CHECK(has_line("AcceptErrors: 3"));
  for (const std::string& line : got) {
    CHECK_MESSAGE(line.find(": ") != std::string::npos, line);
  }
}

TEST_CASE("showStat: a header, then one CSV row per status row in the same order") {
  std::vector<std::string> got = lines(showStat(sample()));
  REQUIRE(got.size() == 6);
  CHECK(got[0] ==
        "# slot,pid,generation,state,uptime_s,restarts,unstable_restarts,last_exit,rss_bytes,"
        "cpu_ms,conn_cur,conn_tot,req_tot,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,bout");
  for (size_t i = 1; i < got.size(); ++i) CHECK(csvFields(got[i]).size() == 19);
  CHECK(got[1] == "0,101,2,draining,42,2,0,reload,10000000,1250,1,4,10,0,9,0,1,0,1000");
  CHECK(got[2] == "0,102,3,ready,0,2,0,reload,5000000,7,2,0,0,0,0,0,0,0,0");
  CHECK(got[3] == "3,131,3,errored,42,16,16,exit 1,0,0,0,0,0,0,0,0,0,0,0");
  CHECK(got[4] == "1,0,3,waiting-restart,0,5,2,signal 9 (Killed),0,0,0,0,0,0,0,0,0,0,0");
  CHECK(got[5] == "2,0,3,fatal,0,0,0,exit 2,0,0,0,0,0,0,0,0,0,0,0");
}

TEST_CASE("prometheusMetrics: every sample has HELP and TYPE, and the values are the sums") {
  Exposition e = parseExposition(prometheusMetrics(sample()));
  CHECK(e.types["phalanx_requests_total"] == "counter");
  CHECK(e.samples["phalanx_requests_total"] == "25");
  CHECK(e.types["phalanx_responses_total"] == "counter");
  CHECK(e.samples["phalanx_responses_total{code=\"1xx\"}"] == "1");
  CHECK(e.samples["phalanx_responses_total{code=\"2xx\"}"] == "20");
  CHECK(e.samples["phalanx_responses_total{code=\"3xx\"}"] == "1");
  CHECK(e.samples["phalanx_responses_total{code=\"4xx\"}"] == "2");
  CHECK(e.samples["phalanx_responses_total{code=\"5xx\"}"] == "1");
  CHECK(e.types["phalanx_connections_open"] == "gauge");
  CHECK(e.samples["phalanx_connections_open"] == "3");
  CHECK(e.samples["phalanx_connections_accepted_total"] == "9");
  CHECK(e.samples["phalanx_bytes_sent_total"] == "123456");
  CHECK(e.types["phalanx_access_log_dropped_total"] == "counter");
  CHECK(e.samples["phalanx_access_log_dropped_total{reason=\"queue_full\"}"] == "17");
  CHECK(e.samples["phalanx_access_log_dropped_total{reason=\"write_error\"}"] == "5");
  CHECK(e.types["phalanx_accept_errors_total"] == "counter");
  CHECK(e.samples["phalanx_accept_errors_total"] == "3");
  CHECK(e.samples["phalanx_reloads_total{result=\"ok\"}"] == "2");
  CHECK(e.samples["phalanx_reloads_total{result=\"failed\"}"] == "1");
  CHECK(e.types["phalanx_master_uptime_seconds"] == "gauge");
  CHECK(e.samples["phalanx_master_uptime_seconds"] == "3725.9");
  CHECK(e.samples["phalanx_generation"] == "3");
  CHECK(e.samples["phalanx_workers_target"] == "4");
}

TEST_CASE("prometheusMetrics: the latency histogram is cumulative, in seconds") {
  Exposition e = parseExposition(prometheusMetrics(sample()));
  CHECK(e.types["phalanx_request_duration_seconds"] == "histogram");
  std::vector<std::string> les;
  std::vector<uint64_t> values;
  for (const std::string& key : e.order) {
    std::string prefix = "phalanx_request_duration_seconds_bucket{le=\"";
    if (key.rfind(prefix, 0) != 0) continue;
    les.push_back(key.substr(prefix.size(), key.size() - prefix.size() - 2));
    values.push_back(std::stoull(e.samples[key]));
  }
  CHECK(les == std::vector<std::string>{"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                        "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
                                        "5", "10", "+Inf"});
  REQUIRE(values.size() == kLatencyBuckets);
  CHECK(values[0] == 10);
  CHECK(values[3] == 10);
  CHECK(values[4] == 15);
  CHECK(values[15] == 15);
  CHECK(values[16] == 25);
  for (size_t i = 1; i < values.size(); ++i) CHECK(values[i] >= values[i - 1]);
  CHECK(e.samples["phalanx_request_duration_seconds_count"] == "25");
  CHECK(e.samples["phalanx_request_duration_seconds_sum"] == "100.012345");
}

TEST_CASE("prometheusMetrics: restarts by every reason, workers by state, per-process gauges") {
  Exposition e = parseExposition(prometheusMetrics(sample()));
  std::map<std::string, std::string> restarts;
  for (const auto& [key, value] : e.samples) {
    if (key.rfind("phalanx_worker_restarts_total{", 0) == 0) restarts[key] = value;
  }
  CHECK(restarts == std::map<std::string, std::string>{
                        {"phalanx_worker_restarts_total{reason=\"exit\"}", "1"},
                        {"phalanx_worker_restarts_total{reason=\"signal\"}", "3"},
                        {"phalanx_worker_restarts_total{reason=\"memory\"}", "0"},
                        {"phalanx_worker_restarts_total{reason=\"heartbeat\"}", "0"},
                        {"phalanx_worker_restarts_total{reason=\"max_requests\"}", "0"},
                        {"phalanx_worker_restarts_total{reason=\"reload\"}", "4"},
                        {"phalanx_worker_restarts_total{reason=\"scale\"}", "0"},
                        {"phalanx_worker_restarts_total{reason=\"stop\"}", "0"},
                        {"phalanx_worker_restarts_total{reason=\"upgrade\"}", "0"}});
  CHECK(e.samples["phalanx_workers{state=\"starting\"}"] == "0");
  CHECK(e.samples["phalanx_workers{state=\"ready\"}"] == "1");
  CHECK(e.samples["phalanx_workers{state=\"draining\"}"] == "1");
  CHECK(e.samples["phalanx_workers{state=\"waiting-restart\"}"] == "1");
  CHECK(e.samples["phalanx_workers{state=\"errored\"}"] == "1");
  CHECK(e.samples["phalanx_workers{state=\"fatal\"}"] == "1");
  CHECK(e.types["phalanx_worker_rss_bytes"] == "gauge");
  CHECK(e.samples["phalanx_worker_rss_bytes{slot=\"0\",pid=\"101\",generation=\"2\"}"] ==
        "10000000");
  CHECK(e.samples["phalanx_worker_rss_bytes{slot=\"0\",pid=\"102\",generation=\"3\"}"] ==
        "5000000");
  CHECK(e.samples["phalanx_worker_rss_bytes{slot=\"3\",pid=\"131\",generation=\"3\"}"] == "0");
  CHECK(e.types["phalanx_worker_cpu_seconds_total"] == "counter");
  CHECK(e.samples["phalanx_worker_cpu_seconds_total{slot=\"0\",pid=\"101\",generation=\"2\"}"] ==
        "1.25");
  CHECK(e.samples["phalanx_worker_cpu_seconds_total{slot=\"0\",pid=\"102\",generation=\"3\"}"] ==
        "0.007");
  // Slots without a process have no per-process samples.
  for (const auto& [key, value] : e.samples) CHECK(key.find("pid=\"0\"") == std::string::npos);
}

TEST_CASE("prometheusMetrics: an empty snapshot renders zeros, not gaps") {
  Exposition e = parseExposition(prometheusMetrics(Snapshot{}));
  CHECK(e.samples["phalanx_requests_total"] == "0");
  CHECK(e.samples["phalanx_request_duration_seconds_bucket{le=\"+Inf\"}"] == "0");
  CHECK(e.samples["phalanx_request_duration_seconds_sum"] == "0");
  CHECK(e.samples["phalanx_master_uptime_seconds"] == "0");
  CHECK(e.samples["phalanx_workers{state=\"ready\"}"] == "0");
}

TEST_CASE("escapeLabelValue: backslash, double quote and newline") {
  CHECK(escapeLabelValue("plain") == "plain");
  CHECK(escapeLabelValue("a\\b") == "a\\\\b");
  CHECK(escapeLabelValue("say \"hi\"") == "say \\\"hi\\\"");
  CHECK(escapeLabelValue("two\nlines") == "two\\nlines");
}

}  // namespace
}  // namespace phalanx::shared

#include "shared/status_report.h"

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "shared/access_report.h"
#include "shared/prometheus_text.h"
#include "shared/route_report.h"
#include "shared/upstream_report.h"

namespace phalanx::shared {

namespace {

// One line of status: a live process, or a slot that has none (waiting,
// errored or fatal). writeStatus, showStat and the metrics all walk these, so
// they agree on rows and states.
struct Row {
  uint32_t slot = 0;
  const WorkerView* worker = nullptr;  // nullptr: a slot without a process
  const SlotView* slot_view = nullptr;
  const char* state = "";
  bool waiting = false;  // a slot row whose respawn is scheduled: restart_in_ms applies
  uint64_t restart_in_ms = 0;
};

const SlotView* findSlot(const Snapshot& snapshot, uint32_t index) {
  for (const SlotView& slot : snapshot.slots) {
    if (slot.index == index) return &slot;
  }
  return nullptr;
}

bool hasLiveProcess(const Snapshot& snapshot, uint32_t slot) {
  for (const WorkerView& worker : snapshot.workers_live) {
    if (worker.slot == slot) return true;
  }
  return false;
}

std::vector<Row> statusRows(const Snapshot& snapshot) {
  std::vector<Row> rows;
  rows.reserve(snapshot.workers_live.size() + snapshot.slots.size());
  for (const WorkerView& worker : snapshot.workers_live) {
    const SlotView* slot = findSlot(snapshot, worker.slot);
    rows.push_back({.slot = worker.slot,
                    .worker = &worker,
                    .slot_view = slot,
                    .state = rowState(worker, slot),
                    .waiting = false,
                    .restart_in_ms = 0});
  }
  for (const SlotView& slot : snapshot.slots) {
    bool listed = slot.state == SlotState::WaitingRestart || slot.state == SlotState::Errored ||
                  slot.state == SlotState::Fatal;
    if (!listed || hasLiveProcess(snapshot, slot.index)) continue;
    bool waiting = slot.state != SlotState::Fatal;
    uint64_t in_ms = waiting && slot.restart_at_ms > snapshot.taken_at_ms
                         ? slot.restart_at_ms - snapshot.taken_at_ms
                         : 0;
    rows.push_back({.slot = slot.index,
                    .worker = nullptr,
                    .slot_view = &slot,
                    .state = slotStateName(slot.state),
                    .waiting = waiting,
                    .restart_in_ms = in_ms});
  }
  return rows;
}

uint64_t secondsSince(uint64_t now_ms, uint64_t since_ms) {
  return since_ms != 0 && now_ms > since_ms ? (now_ms - since_ms) / 1000 : 0;
}

uint64_t rowUptime(const Snapshot& snapshot, const Row& row) {
  return row.worker ? secondsSince(snapshot.taken_at_ms, row.worker->started_at_ms) : 0;
}

// A slot row has no process, hence no traffic: an all-zero total stands in.
const TrafficTotals& rowTraffic(const Row& row) {
  static const TrafficTotals kNone;
  return row.worker ? row.worker->traffic : kNone;
}

std::string rowLastExit(const Row& row) {
  if (row.slot_view == nullptr) return describeExit(ExitReason::None, 0);
  return describeExit(row.slot_view->last_exit_reason, row.slot_view->last_exit_detail);
}

const char* lastReloadResult(uint32_t last_reload) {
  switch (last_reload) {
    case 1: return "ok";
    case 2: return "failed";
    default: return "none";
  }
}

// Replacements nobody asked for: crashes, hung loops, memory, max_requests
// (a reload, scale, stop or upgrade is the operator's own doing).
uint64_t totalRestarts(const Snapshot& snapshot) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < kExitReasonCount; ++i) {
    auto reason = static_cast<ExitReason>(i);
    if (reason != ExitReason::Reload && reason != ExitReason::Scale && reason != ExitReason::Stop &&
        reason != ExitReason::Upgrade) {
      total += snapshot.restarts_by_reason[i];
    }
  }
  return total;
}

uint64_t openConnections(const Snapshot& snapshot) {
  uint64_t total = 0;
  for (const WorkerView& worker : snapshot.workers_live) total += worker.open_connections;
  return total;
}

uint64_t liveRss(const Snapshot& snapshot) {
  uint64_t total = 0;
  for (const WorkerView& worker : snapshot.workers_live) total += worker.rss_bytes;
  return total;
}

void writeMaster(JsonWriter& w, const Snapshot& s, std::string_view last_reload_error) {
  w.key("master");
  w.beginObject();
  w.field("pid", s.master_pid);
  w.field("version", PHALANX_VERSION);
  w.field("uptime_s", secondsSince(s.taken_at_ms, s.master_started_at_ms));
  w.field("generation", s.generation);
  w.field("workers", s.workers);
  w.key("reloads");
  w.beginObject();
  w.field("ok", s.reloads_ok);
  w.field("failed", s.reloads_failed);
  w.endObject();
  w.key("last_reload");
  w.beginObject();
  w.field("result", lastReloadResult(s.last_reload));
  w.field("at_ms", s.last_reload_ms);
  // The error describes the last reload only while that one failed.
  w.field("error", s.last_reload == 2 ? last_reload_error : std::string_view());
  w.endObject();
  w.endObject();
}

void writeTotals(JsonWriter& w, const Snapshot& s) {
  w.key("totals");
  w.beginObject();
  w.field("requests", s.totals.requests);
  w.field("connections", openConnections(s));
  w.field("restarts", totalRestarts(s));
  w.field("rss_bytes", liveRss(s));
  w.endObject();
}

void writeRow(JsonWriter& w, const Snapshot& s, const Row& row) {
  const TrafficTotals& traffic = rowTraffic(row);
  w.beginObject();
  w.field("slot", row.slot);
  w.field("pid", row.worker ? row.worker->pid : 0);
  w.field("generation", row.worker ? row.worker->generation : s.generation);
  w.field("state", row.state);
  w.field("uptime_s", rowUptime(s, row));
  w.field("restarts", row.slot_view ? row.slot_view->restarts : 0u);
  w.field("unstable_restarts", row.slot_view ? row.slot_view->unstable_restarts : 0u);
  w.field("last_exit", rowLastExit(row));
  w.field("rss_bytes", row.worker ? row.worker->rss_bytes : uint64_t{0});
  w.field("cpu_ms", row.worker ? row.worker->cpu_ms : uint64_t{0});
  w.field("connections", row.worker ? row.worker->open_connections : uint64_t{0});
  w.field("requests", traffic.requests);
  w.key("responses");
  w.beginObject();
  static constexpr const char* kClasses[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 1; i <= 5; ++i) w.field(kClasses[i], traffic.responses_by_class[i]);
  w.endObject();
  writeLatency(w, traffic.latency_buckets, traffic.latency_sum_us);
  if (row.waiting) w.field("restart_in_ms", row.restart_in_ms);
  w.endObject();
}

// "1d 2h03m04s", as HAProxy prints Uptime.
std::string humanUptime(uint64_t seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llud %lluh%02llum%02llus",
                static_cast<unsigned long long>(seconds / 86400),
                static_cast<unsigned long long>(seconds / 3600 % 24),
                static_cast<unsigned long long>(seconds / 60 % 60),
                static_cast<unsigned long long>(seconds % 60));
  return buf;
}

// A CSV field: quoted (with quotes doubled) only when it needs to be.
void appendCsv(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

std::string workerLabels(const WorkerView& worker) {
  return label("slot", std::to_string(worker.slot)) + "," +
         label("pid", std::to_string(worker.pid)) + "," +
         label("generation", std::to_string(worker.generation));
}

void traffic(Exposition& e, const TrafficTotals& t) {
  e.family("phalanx_requests_total", "counter",
           "Requests answered by every worker that ever ran (refusals included).");
  e.sample("phalanx_requests_total", "", t.requests);

  e.family("phalanx_responses_total", "counter", "Responses by status class.");
  static constexpr const char* kClasses[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 1; i <= 5; ++i) {
    e.sample("phalanx_responses_total", label("code", kClasses[i]), t.responses_by_class[i]);
  }

  e.family("phalanx_request_duration_seconds", "histogram",
           "Time from a request's first byte to its response being queued.");
  e.latencyHistogram("phalanx_request_duration_seconds", "", t.latency_buckets, t.latency_sum_us);

  e.family("phalanx_connections_accepted_total", "counter", "Client connections accepted.");
  e.sample("phalanx_connections_accepted_total", "", t.accepted_connections);
  e.family("phalanx_bytes_sent_total", "counter", "Response bytes queued to clients.");
  e.sample("phalanx_bytes_sent_total", "", t.bytes_out);
  e.family("phalanx_accept_errors_total", "counter",
           "Failed accepts (mostly at the file descriptor limit), connections left waiting.");
  e.sample("phalanx_accept_errors_total", "", t.accept_errors);
  e.family("phalanx_access_log_dropped_total", "counter",
           "Access log lines lost, by reason: the writer fell behind (queue_full) or the "
           "write failed (write_error).");
  e.sample("phalanx_access_log_dropped_total", label("reason", "queue_full"),
           t.access_log_dropped_queue_full);
  e.sample("phalanx_access_log_dropped_total", label("reason", "write_error"),
           t.access_log_dropped_write_error);
}

void workers(Exposition& e, const Snapshot& s) {
  e.family("phalanx_connections_open", "gauge", "Client connections open now.");
  e.sample("phalanx_connections_open", "", openConnections(s));

  e.family("phalanx_worker_restarts_total", "counter", "Worker processes replaced, by reason.");
  for (uint32_t i = 1; i < kExitReasonCount; ++i) {
    e.sample("phalanx_worker_restarts_total",
             label("reason", exitReasonName(static_cast<ExitReason>(i))), s.restarts_by_reason[i]);
  }

  e.family("phalanx_worker_rss_bytes", "gauge", "Resident memory of each worker process.");
  for (const WorkerView& w : s.workers_live) {
    e.sample("phalanx_worker_rss_bytes", workerLabels(w), w.rss_bytes);
  }
  e.family("phalanx_worker_cpu_seconds_total", "counter",
           "User and system CPU time of each worker process.");
  for (const WorkerView& w : s.workers_live) {
    e.sampleScaled("phalanx_worker_cpu_seconds_total", workerLabels(w), w.cpu_ms, 3);
  }

  e.family("phalanx_workers", "gauge", "Status rows (processes, and slots without one) by state.");
  static constexpr const char* kStates[] = {"starting",        "ready",   "draining",
                                            "waiting-restart", "errored", "fatal"};
  std::vector<Row> rows = statusRows(s);
  for (const char* state : kStates) {
    uint64_t count = 0;
    for (const Row& row : rows) count += std::strcmp(row.state, state) == 0;
    e.sample("phalanx_workers", label("state", state), count);
  }
  e.family("phalanx_workers_target", "gauge", "Worker slots the master is asked to run.");
  e.sample("phalanx_workers_target", "", s.workers);
  e.family("phalanx_worker_memory_limit_bytes", "gauge",
           "supervisor.max_memory: a worker above it is replaced (0 = no limit).");
  e.sample("phalanx_worker_memory_limit_bytes", "", s.max_memory_bytes);
}

void master(Exposition& e, const Snapshot& s) {
  e.family("phalanx_reloads_total", "counter", "Configuration reloads, by result.");
  e.sample("phalanx_reloads_total", label("result", "ok"), s.reloads_ok);
  e.sample("phalanx_reloads_total", label("result", "failed"), s.reloads_failed);
  e.family("phalanx_generation", "gauge", "The configuration generation being served.");
  e.sample("phalanx_generation", "", s.generation);
  e.family("phalanx_master_uptime_seconds", "gauge", "Time since the master started.");
  uint64_t uptime_ms = s.master_started_at_ms != 0 && s.taken_at_ms > s.master_started_at_ms
                           ? s.taken_at_ms - s.master_started_at_ms
                           : 0;
  e.sampleScaled("phalanx_master_uptime_seconds", "", uptime_ms, 3);
}

}  // namespace

void writeLatency(JsonWriter& w, const uint64_t (&buckets)[kLatencyBuckets], uint64_t sum_us) {
  w.key("latency_us");
  w.beginObject();
  w.key("bounds");
  w.beginArray();
  for (uint64_t bound : kLatencyBoundsUs) w.value(bound);
  w.endArray();
  w.key("counts");
  w.beginArray();
  for (uint64_t count : buckets) w.value(count);
  w.endArray();
  w.field("sum", sum_us);
  w.endObject();
}

void writeStatus(JsonWriter& w, const Snapshot& snapshot, std::string_view last_reload_error) {
  writeMaster(w, snapshot, last_reload_error);
  writeTotals(w, snapshot);
  w.key("workers");
  w.beginArray();
  for (const Row& row : statusRows(snapshot)) writeRow(w, snapshot, row);
  w.endArray();
  writeUpstreams(w, snapshot);
  w.key("access");
  writeAccess(w, snapshot.access);
  writeRoutes(w, snapshot.routes);
  writeErrors(w, snapshot.errors);
}

const char* rowState(const WorkerView& worker, const SlotView* slot) {
  if (worker.state == WorkerState::Draining) return "draining";
  if (slot != nullptr && (slot->state == SlotState::Errored || slot->state == SlotState::Fatal)) {
    return slotStateName(slot->state);
  }
  return workerStateName(worker.state);
}

std::string describeExit(ExitReason reason, int32_t detail) {
  switch (reason) {
    case ExitReason::Exited: return "exit " + std::to_string(detail);
    case ExitReason::Signaled: {
      std::string text = "signal " + std::to_string(detail);
      // sigdescr_np: thread-safe, unlike strsignal; nullptr for a number no signal has.
      if (const char* name = sigdescr_np(detail)) text += std::string(" (") + name + ")";
      return text;
    }
    default: return exitReasonName(reason);
  }
}

std::string showInfo(const Snapshot& s) {
  // Processes that serve, whatever the slot's label (an errored slot's new
  // worker serves too).
  uint64_t ready = 0;
  for (const WorkerView& w : s.workers_live) ready += w.state == WorkerState::Ready;
  uint64_t uptime = secondsSince(s.taken_at_ms, s.master_started_at_ms);
  std::string out;
  auto line = [&out](std::string_view name, const std::string& value) {
    out += name;
    out += ": ";
    out += value;
    out += '\n';
  };
  auto number = [&line](std::string_view name, uint64_t value) {
    line(name, std::to_string(value));
  };
  line("Name", "phalanx");
  line("Version", PHALANX_VERSION);
  number("Pid", static_cast<uint64_t>(s.master_pid));
  line("Uptime", humanUptime(uptime));
  number("Uptime_sec", uptime);
  number("Generation", s.generation);
  number("Workers", s.workers);
  number("Processes", s.workers_live.size());
  number("Workers_ready", ready);
  number("CurrConns", openConnections(s));
  number("CumConns", s.totals.accepted_connections);
  number("CumReq", s.totals.requests);
  number("BytesOut", s.totals.bytes_out);
  number("Restarts", totalRestarts(s));
  number("Reloads_ok", s.reloads_ok);
  number("Reloads_failed", s.reloads_failed);
  line("Last_reload", lastReloadResult(s.last_reload));
  number("Rss_bytes", liveRss(s));
  number("AccessLogDropped_queue_full", s.totals.access_log_dropped_queue_full);
  number("AccessLogDropped_write_error", s.totals.access_log_dropped_write_error);
  number("AcceptErrors", s.totals.accept_errors);
  return out;
}

std::string showStat(const Snapshot& s) {
  std::string out =
      "# slot,pid,generation,state,uptime_s,restarts,unstable_restarts,last_exit,rss_bytes,"
      "cpu_ms,conn_cur,conn_tot,req_tot,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,bout\n";
  for (const Row& row : statusRows(s)) {
    const TrafficTotals& t = rowTraffic(row);
    const WorkerView* w = row.worker;
    auto number = [&out](uint64_t value) {
      out += std::to_string(value);
      out += ',';
    };
    number(row.slot);
    number(w ? static_cast<uint64_t>(w->pid) : 0);
    number(w ? w->generation : s.generation);
    appendCsv(out, row.state);
    out += ',';
    number(rowUptime(s, row));
    number(row.slot_view ? row.slot_view->restarts : 0);
    number(row.slot_view ? row.slot_view->unstable_restarts : 0);
    appendCsv(out, rowLastExit(row));
    out += ',';
    number(w ? w->rss_bytes : 0);
    number(w ? w->cpu_ms : 0);
    number(w ? w->open_connections : 0);
    number(t.accepted_connections);
    number(t.requests);
    for (int i = 1; i <= 5; ++i) number(t.responses_by_class[i]);
    out += std::to_string(t.bytes_out);
    out += '\n';
  }
  return out;
}

std::string prometheusMetrics(const Snapshot& snapshot) {
  Exposition e;
  traffic(e, snapshot.totals);
  workers(e, snapshot);
  master(e, snapshot);
  upstreamMetrics(e, snapshot);
  accessMetrics(e, snapshot.access);
  routeMetrics(e, snapshot.routes);
  return e.take();
}

}  // namespace phalanx::shared

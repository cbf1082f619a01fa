#include "worker/access_log.h"

#include <spdlog/async.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

#include "shared/json_writer.h"
#include "shared/shm.h"  // monotonicMs
#include "worker/fd_sink.h"
#include "worker/http/response.h"

namespace phalanx::worker {

using shared::appendJsonEscaped;

namespace {
// Lines, not bytes: each queued line preallocates ~400 bytes.
constexpr size_t kQueueLines = 2048;
}  // namespace

AccessLog::AccessLog(std::string target, unsigned worker)
    : target_(std::move(target)), worker_(worker) {}

std::unique_ptr<AccessLog> AccessLog::open(const std::string& target, unsigned worker,
                                           std::string* error) {
  std::unique_ptr<AccessLog> log(new AccessLog(target, worker));
  if (!log->start(&log->writer_, error)) return nullptr;
  return log;
}

bool AccessLog::start(Writer* writer, std::string* error) const {
  std::shared_ptr<FdSink> sink;
  if (target_ == "stderr") {
    sink = FdSink::standardError();
  } else {
    std::string why;
    sink = FdSink::openFile(target_, &why);
    if (!sink) {
      *error = "log.access: " + target_ + ": " + why;
      return false;
    }
  }
  writer->sink = sink;
  writer->pool = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
  writer->logger = std::make_shared<spdlog::async_logger>(
      "access", std::move(sink), writer->pool, spdlog::async_overflow_policy::overrun_oldest);
  // The time is formatted by the background thread, from the moment of the call.
  writer->logger->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",%v}");
  return true;
}

// Dropping the pool joins its thread, which first writes out every queued line
// (its terminate message waits behind them); only this thread queues lines, so
// the overrun count read before is final.
void AccessLog::retire(Writer* writer) {
  if (!writer->logger) return;
  retired_.queue_full += writer->pool->overrun_counter();
  writer->logger.reset();
  writer->pool.reset();
  retired_.write_error += writer->sink->linesLost();
  if (writer->sink->lastErrno() != 0) retired_errno_ = writer->sink->lastErrno();
  writer->sink.reset();
}

bool AccessLog::reopen(std::string* error) {
  Writer fresh;
  if (!start(&fresh, error)) return false;
  std::swap(writer_, fresh);
  retire(&fresh);
  return true;
}

void AccessLog::close() {
  if (!writer_.logger) return;
  retire(&writer_);
  uint64_t now_ms = shared::monotonicMs();
  reportWriteErrors(now_ms);
  // A count still held back by the interval: said now, there is no later.
  if (auto report = write_error_log_.take(now_ms)) tellWriteErrors(report);
}

AccessLog::~AccessLog() {
  close();
}

AccessLogLosses AccessLog::losses() const {
  AccessLogLosses total = retired_;
  if (writer_.logger) {
    total.queue_full += writer_.pool->overrun_counter();
    total.write_error += writer_.sink->linesLost();
  }
  return total;
}

void AccessLog::reportWriteErrors(uint64_t now_ms) {
  uint64_t lost = losses().write_error;
  shared::LogThrottle::Report report = write_error_log_.note(now_ms, lost - write_errors_seen_);
  write_errors_seen_ = lost;
  if (report) tellWriteErrors(report);
}

void AccessLog::tellWriteErrors(const shared::LogThrottle::Report& report) {
  int error =
      writer_.sink && writer_.sink->lastErrno() != 0 ? writer_.sink->lastErrno() : retired_errno_;
  std::string lost =
      std::to_string(report.count) + (report.count == 1 ? " line lost" : " lines lost");
  if (report.since_ms == 0) {
    spdlog::error("access log {}: cannot write: {}; {}", target_, std::strerror(error), lost);
  } else {
    spdlog::error("access log {}: cannot write: {}; {} in the {:.1f} s since the last message",
                  target_, std::strerror(error), lost, static_cast<double>(report.since_ms) / 1000);
  }
}

void AccessLog::write(const AccessEntry& e) {
  if (!writer_.logger) return;
  line_.clear();
  line_ += "\"worker\":";
  line_ += std::to_string(worker_);
  line_ += ",\"method\":\"";
  appendJsonEscaped(line_, e.method);
  line_ += "\",\"path\":\"";
  appendJsonEscaped(line_, e.path);
  line_ += "\",\"status\":";
  line_ += std::to_string(e.status);
  line_ += ",\"bytes\":";
  line_ += std::to_string(e.bytes);
  char duration[32];
  snprintf(duration, sizeof duration, ",\"duration_ms\":%.3f", e.duration_ms);
  line_ += duration;
  line_ += ",\"client\":\"";
  appendJsonEscaped(line_, e.client);
  line_ += "\"";
  if (!e.request_id.empty()) {
    line_ += ",\"request_id\":\"";
    appendJsonEscaped(line_, e.request_id);
    line_ += "\"";
  }
  if (!e.upstream.empty()) {
    line_ += ",\"upstream\":\"";
    appendJsonEscaped(line_, e.upstream);
    snprintf(duration, sizeof duration, "\",\"upstream_status\":%d", e.upstream_status);
    line_ += duration;
    snprintf(duration, sizeof duration, ",\"upstream_ms\":%.3f", e.upstream_ms);
    line_ += duration;
  }
  if (!e.key_id.empty()) {
    line_ += ",\"key_id\":\"";
    appendJsonEscaped(line_, e.key_id);
    line_ += "\"";
  }
  if (!e.cache.empty()) {
    line_ += ",\"cache\":\"";
    line_ += e.cache;
    line_ += "\"";
  }
  writer_.logger->info(line_);
}

}  // namespace phalanx::worker

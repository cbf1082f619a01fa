#include "worker/access_log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "shared/json_writer.h"
#include "worker/http/response.h"

namespace phalanx::worker {

using shared::appendJsonEscaped;

namespace {
// Lines, not bytes: each queued line preallocates ~400 bytes.
constexpr size_t kQueueLines = 2048;
}  // namespace

std::unique_ptr<AccessLog> AccessLog::open(const std::string& target, unsigned worker,
                                           std::string* error) {
  spdlog::sink_ptr sink;
  try {
    if (target == "stderr") {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(target, false);
    }
  } catch (const spdlog::spdlog_ex& e) {
    *error = "log.access: " + target + ": " + e.what();
    return nullptr;
  }
  std::unique_ptr<AccessLog> log(new AccessLog());
  log->worker_ = worker;
  log->pool_ = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
  log->logger_ = std::make_shared<spdlog::async_logger>(
      "access", std::move(sink), log->pool_, spdlog::async_overflow_policy::overrun_oldest);
  // The time is formatted by the background thread, from the moment of the call.
  log->logger_->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",%v}");
  log->logger_->flush_on(spdlog::level::info);
  return log;
}

AccessLog::~AccessLog() {
  if (logger_) logger_->flush();
}

void AccessLog::write(const AccessEntry& e) {
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
  logger_->info(line_);
}

uint64_t AccessLog::droppedLines() const {
  return pool_->overrun_counter();
}

}  // namespace phalanx::worker

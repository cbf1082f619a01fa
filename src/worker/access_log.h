// The access log: one JSON object per request per line, to stderr or a file.
//
// Never blocks the loop: lines go through spdlog's async queue to a background
// thread that formats the time and writes. When the queue is full the oldest
// lines are dropped (overrun_oldest); a slow disk costs log lines, never
// latency. Lines that cannot be written (a full disk, an I/O error) are lost
// too. Both are counted, by reason, in losses(); write errors are also said in
// the error log, throttled (reportWriteErrors).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shared/log_throttle.h"

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace phalanx::worker {

class FdSink;

struct AccessEntry {
  std::string_view method;
  std::string_view path;
  int status = 0;
  uint64_t bytes = 0;
  double duration_ms = 0;
  std::string_view client;
  // Proxied requests: the request id, the upstream target, its status and
  // time (empty / 0 otherwise; then left out of the line).
  std::string_view request_id;
  std::string_view upstream;
  int upstream_status = 0;
  double upstream_ms = 0;
  // Guarded routes: who called (an API key's id or a JWT subject, never a
  // key itself), and what the cache did ("HIT", "MISS", "BYPASS"); empty otherwise.
  std::string_view key_id;
  std::string_view cache;
};

// Lines lost since the log was opened, over every reopen, by reason.
struct AccessLogLosses {
  uint64_t queue_full = 0;   // dropped: the background thread fell behind
  uint64_t write_error = 0;  // write(2) failed: a full disk, an I/O error
};

class AccessLog {
 public:
  // At most one error-log line per this interval about lines lost to write errors.
  static constexpr uint64_t kWriteErrorLogMs = 10'000;

  // `target` is "stderr" or a file path (opened for append). Returns nullptr with
  // `error` set when the file cannot be opened.
  static std::unique_ptr<AccessLog> open(const std::string& target, unsigned worker,
                                         std::string* error);
  ~AccessLog();  // close()
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues one line; does nothing once closed.
  void write(const AccessEntry& entry);

  // After logrotate renamed the file: lines go to a fresh file at the same
  // path. The old file's queue is written out first (at most its queue's
  // lines, once per rotation) and the file closed. Returns false with `error`
  // set, keeping the old file, when the path cannot be opened.
  bool reopen(std::string* error);

  // Writes out the queue, stops the background thread and reports write errors
  // not yet told, whatever the interval. losses() is final afterwards.
  void close();

  AccessLogLosses losses() const;

  // Tells the error log about the lines lost to write errors since the last
  // call: the first at once, then at most one line per kWriteErrorLogMs with
  // the count since the previous line. From the loop, on a timer; now_ms is
  // monotonic.
  void reportWriteErrors(uint64_t now_ms);

 private:
  // One file's writer: the sink, and the queue and thread in front of it.
  struct Writer {
    std::shared_ptr<FdSink> sink;
    std::shared_ptr<spdlog::details::thread_pool> pool;
    std::shared_ptr<spdlog::async_logger> logger;
  };

  AccessLog(std::string target, unsigned worker);
  bool start(Writer* writer, std::string* error) const;
  void retire(Writer* writer);
  void tellWriteErrors(const shared::LogThrottle::Report& report);

  std::string target_;
  unsigned worker_;
  std::string line_;  // reused between entries
  Writer writer_;
  AccessLogLosses retired_;         // of writers closed or replaced by reopen()
  int retired_errno_ = 0;           // their latest write error
  uint64_t write_errors_seen_ = 0;  // losses().write_error as of reportWriteErrors
  shared::LogThrottle write_error_log_{kWriteErrorLogMs};
};

}  // namespace phalanx::worker

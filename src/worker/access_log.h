// The access log: one JSON object per request per line, to stderr or a file.
//
// Never blocks the loop: lines go through spdlog's async queue to a background
// thread that formats the time and writes. When the queue is full the oldest
// lines are dropped (overrun_oldest), counted in droppedLines(); a slow disk
// costs log lines, never latency.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace phalanx::worker {

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

class AccessLog {
 public:
  // `target` is "stderr" or a file path (opened for append). Returns nullptr with
  // `error` set when the file cannot be opened.
  static std::unique_ptr<AccessLog> open(const std::string& target, unsigned worker,
                                         std::string* error);
  ~AccessLog();

  void write(const AccessEntry& entry);
  uint64_t droppedLines() const;

 private:
  AccessLog() = default;
  unsigned worker_ = 0;
  std::string line_;  // reused between entries
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
};

}  // namespace phalanx::worker

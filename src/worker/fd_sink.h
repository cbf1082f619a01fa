// An spdlog sink that writes each formatted line with one write(2) on a file
// descriptor, and counts the lines it could not write.
//
// Why not spdlog's file and console sinks: they write through a FILE*, so a
// failed write may only surface at the next fflush, for an unknown number of
// lines, and they report it by throwing into the logger's error handler, which
// prints "[*** LOG ERROR ***]" to stderr outside phalanx's log format. Here a
// line is either written whole or counted in linesLost(), and the owner decides
// how to tell (AccessLog says it in the error log, throttled). A line whose
// write stops part way counts as lost: the file then ends in a torn line.
//
// Threads: lines are written by the async logger's thread (under base_sink's
// mutex); linesLost() and lastErrno() may be read from any thread.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace phalanx::worker {

class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Opens `path` for append (O_APPEND, created 0644). Returns nullptr with
  // `error` set to strerror when it cannot.
  static std::shared_ptr<FdSink> openFile(const std::string& path, std::string* error);
  // Writes to fd 2, which it leaves open.
  static std::shared_ptr<FdSink> standardError();

  // Takes `fd`; closes it on destruction when `owned`.
  FdSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdSink() override;
  FdSink(const FdSink&) = delete;
  FdSink& operator=(const FdSink&) = delete;

  // Lines not written (whole) since the sink was made.
  uint64_t linesLost() const { return lines_lost_.load(std::memory_order_relaxed); }
  // The errno of the latest failed write; 0 while none failed.
  int lastErrno() const { return last_errno_.load(std::memory_order_relaxed); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}  // nothing buffered: every line is one write(2)

 private:
  int fd_;
  bool owned_;
  spdlog::memory_buf_t line_;            // reused between lines
  std::atomic<uint64_t> lines_lost_{0};  // one writer: the logging thread
  std::atomic<int> last_errno_{0};
};

}  // namespace phalanx::worker

#include "worker/fd_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace phalanx::worker {

std::shared_ptr<FdSink> FdSink::openFile(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = std::strerror(errno);
    return nullptr;
  }
  return std::make_shared<FdSink>(fd, true);
}

std::shared_ptr<FdSink> FdSink::standardError() {
  return std::make_shared<FdSink>(STDERR_FILENO, false);
}

FdSink::~FdSink() {
  if (owned_) ::close(fd_);
}

void FdSink::sink_it_(const spdlog::details::log_msg& msg) {
  line_.clear();
  formatter_->format(msg, line_);
  const char* at = line_.data();
  size_t left = line_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, at, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // write(2) returning 0 for a non-empty buffer makes no progress either.
      last_errno_.store(n < 0 ? errno : EIO, std::memory_order_relaxed);
      lines_lost_.store(lines_lost_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return;
    }
    at += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace phalanx::worker

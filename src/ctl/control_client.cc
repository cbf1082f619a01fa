#include "ctl/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace phalanx::ctl {

namespace {

using Clock = std::chrono::steady_clock;

// A backlog that is full makes a non-blocking Unix connect fail with EAGAIN
// instead of waiting; we retry at this pace until the deadline.
constexpr std::chrono::milliseconds kConnectRetry{10};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

ClientResult answered(std::string answer) {
  return ClientResult{
      .error = ClientError::None, .answer = std::move(answer), .sys_errno = 0, .failed_call = {}};
}

ClientResult failure(ClientError error, int sys_errno = 0, std::string failed_call = "") {
  return ClientResult{
      .error = error, .answer = {}, .sys_errno = sys_errno, .failed_call = std::move(failed_call)};
}

// Milliseconds left before `deadline`, rounded up so poll() never spins on a
// zero timeout while a fraction of a millisecond remains; 0 once it passed.
int remainingMs(Clock::time_point deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

enum class Wait { Ready, Timeout, Failed };

// Waits until `fd` has one of `events` (or an error or hang-up, which the next
// call on the fd reports), retrying after signals.
Wait waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    int left = remainingMs(deadline);
    if (left == 0) return Wait::Timeout;
    pollfd p{.fd = fd, .events = events, .revents = 0};
    int n = ::poll(&p, 1, left);
    if (n > 0) return Wait::Ready;
    if (n < 0 && errno != EINTR) return Wait::Failed;
  }
}

ClientResult connectError(int error, const std::string& path) {
  switch (error) {
    case ENOENT:
    case ENOTDIR: return failure(ClientError::NoSocket, error);
    case EACCES:
    case EPERM: return failure(ClientError::PermissionDenied, error);
    case ECONNREFUSED: {
      // Linux refuses a connect to a regular file the same way as to a socket
      // nobody listens on; only the latter is a stale socket.
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
        return failure(ClientError::NotASocket, error);
      }
      return failure(ClientError::Stale, error);
    }
    default: return failure(ClientError::System, error, "connect");
  }
}

// Connects the non-blocking `fd`; None on success.
ClientResult connectTo(int fd, const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return {};
    int error = errno;
    if (error == EAGAIN) {
      if (remainingMs(deadline) == 0) return failure(ClientError::Timeout);
      auto pause = std::min<Clock::duration>(kConnectRetry, deadline - Clock::now());
      ::usleep(static_cast<useconds_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(pause).count()));
      continue;
    }
    if (error != EINPROGRESS && error != EINTR) return connectError(error, path);
    // The connect goes on in the background: its outcome is SO_ERROR once the
    // socket turns writable.
    Wait wait = waitFor(fd, POLLOUT, deadline);
    if (wait == Wait::Timeout) return failure(ClientError::Timeout);
    if (wait == Wait::Failed) return failure(ClientError::System, errno, "poll");
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
      return failure(ClientError::System, errno, "getsockopt");
    }
    return so_error == 0 ? ClientResult{} : connectError(so_error, path);
  }
}

// Writes all of `line`. A master that already closed is not a failure here:
// it may have answered first (a refused peer), and reading finds out.
ClientResult sendLine(int fd, std::string_view line, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return {};
    if (n < 0 && errno != EAGAIN) return failure(ClientError::System, errno, "send");
    Wait wait = waitFor(fd, POLLOUT, deadline);
    if (wait == Wait::Timeout) return failure(ClientError::Timeout);
    if (wait == Wait::Failed) return failure(ClientError::System, errno, "poll");
  }
  return {};
}

ClientResult readAnswer(int fd, Clock::time_point deadline, size_t max_bytes) {
  std::string buffer;
  char chunk[16384];
  for (;;) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      size_t scanned = buffer.size();
      buffer.append(chunk, static_cast<size_t>(n));
      size_t newline = buffer.find('\n', scanned);
      if (newline != std::string::npos) {
        buffer.resize(newline);
        return answered(std::move(buffer));
      }
      if (buffer.size() > max_bytes) return failure(ClientError::TooLarge);
      continue;
    }
    // A master that closes with our line unread resets the connection; what
    // it wrote before that has been read above.
    if (n == 0 || errno == ECONNRESET) {
      if (buffer.empty()) return failure(ClientError::Closed);
      return answered(std::move(buffer));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return failure(ClientError::System, errno, "recv");
    Wait wait = waitFor(fd, POLLIN, deadline);
    if (wait == Wait::Timeout) return failure(ClientError::Timeout);
    if (wait == Wait::Failed) return failure(ClientError::System, errno, "poll");
  }
}

}  // namespace

ClientResult request(const std::string& socket_path, std::string_view line,
                     const RequestOptions& options) {
  Clock::time_point deadline = Clock::now() + options.timeout;
  if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return failure(ClientError::PathTooLong);
  }
  if (socket_path.empty()) return failure(ClientError::NoSocket, ENOENT);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return failure(ClientError::System, errno, "socket");

  ClientResult connected = connectTo(fd.get(), socket_path, deadline);
  if (connected.error != ClientError::None) return connected;
  ClientResult sent = sendLine(fd.get(), line, deadline);
  if (sent.error != ClientError::None) return sent;
  return readAnswer(fd.get(), deadline, options.max_answer_bytes);
}

std::string formatSeconds(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(duration.count()) / 1000.0);
  std::string s = text;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string describeClientError(const ClientResult& result, const std::string& socket_path,
                                std::chrono::milliseconds timeout) {
  const std::string& p = socket_path;
  switch (result.error) {
    case ClientError::None: return "no error";
    case ClientError::NoSocket:
      return "no control socket at " + p +
             " (is phalanx running? check control_socket in its config)";
    case ClientError::NotASocket:
      return p + " is not a socket (check control_socket in phalanx's config)";
    case ClientError::Stale:
      return "stale control socket " + p + ": nothing is listening (phalanx is not running)";
    case ClientError::PermissionDenied:
      return "permission denied on " + p + " (run as the user phalanx runs as, or root)";
    case ClientError::PathTooLong:
      return "control socket path is too long (" + std::to_string(p.size()) + " bytes, at most " +
             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + "): " + p;
    case ClientError::Timeout:
      return "no answer from " + p + " within " + formatSeconds(timeout) + " s";
    case ClientError::Closed: return "connection closed without an answer (" + p + ")";
    case ClientError::TooLarge: return "the answer from " + p + " is too large";
    case ClientError::System:
      return "cannot talk to " + p + ": " + result.failed_call + ": " +
             std::strerror(result.sys_errno);
  }
  return "unknown error";
}

}  // namespace phalanx::ctl

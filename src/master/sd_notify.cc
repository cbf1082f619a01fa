#include "master/sd_notify.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace phalanx::master {

namespace {

// A whole, positive decimal number; anything else (sign, suffix, overflow) is
// treated as unset.
uint64_t parsePositive(const char* text) {
  if (text == nullptr || *text == '\0') return 0;
  uint64_t value = 0;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end) return 0;
  return value;
}

// STATUS= is one line of text: control characters (newlines above all) become
// spaces, so free text such as a multi-line reload error cannot inject an
// assignment like READY=1 or MAINPID=.
std::string oneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

}  // namespace

NotifyEnvironment parseNotifyEnvironment(const char* notify_socket, const char* watchdog_usec,
                                         const char* watchdog_pid) {
  NotifyEnvironment env;
  if (notify_socket != nullptr) env.socket = notify_socket;
  env.watchdog_usec = parsePositive(watchdog_usec);
  uint64_t pid = parsePositive(watchdog_pid);
  // A pid that does not fit pid_t cannot be ours: keep the watchdog off.
  if (pid > static_cast<uint64_t>(INT32_MAX)) {
    env.watchdog_usec = 0;
  } else {
    env.watchdog_pid = static_cast<pid_t>(pid);
  }
  return env;
}

const NotifyEnvironment& processNotifyEnvironment() {
  static const NotifyEnvironment env = parseNotifyEnvironment(
      std::getenv("NOTIFY_SOCKET"), std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"));
  return env;
}

void clearNotifyEnvironmentForChildren() {
  processNotifyEnvironment();
  for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) unsetenv(name);
}

uint64_t watchdogIntervalMs(const NotifyEnvironment& env, pid_t self) {
  if (env.watchdog_usec == 0) return 0;
  if (env.watchdog_pid != 0 && env.watchdog_pid != self) return 0;
  uint64_t ms = env.watchdog_usec / 2 / 1000;
  return ms == 0 ? 1 : ms;
}

bool notifySocketAddress(std::string_view value, sockaddr_un* addr, socklen_t* len) {
  if (value.size() < 2 || (value[0] != '/' && value[0] != '@')) return false;
  *addr = sockaddr_un{};
  addr->sun_family = AF_UNIX;
  if (value[0] == '/') {
    // A path keeps its terminating NUL inside sun_path.
    if (value.size() >= sizeof(addr->sun_path)) return false;
    std::memcpy(addr->sun_path, value.data(), value.size());
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + 1);
  } else {
    // An abstract name is exactly the given bytes after a leading NUL, with no
    // terminator: the length is part of the name.
    if (value.size() > sizeof(addr->sun_path)) return false;
    std::memcpy(addr->sun_path + 1, value.data() + 1, value.size() - 1);
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size());
  }
  return true;
}

std::string readyMessage(std::string_view status, pid_t main_pid) {
  std::string msg = "READY=1";
  if (!status.empty()) msg += "\n" + statusMessage(status);
  if (main_pid != 0) msg += "\n" + mainPidMessage(main_pid);
  return msg;
}

std::string reloadingMessage(uint64_t monotonic_usec) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec) +
         "\nSTATUS=reloading the configuration";
}

std::string stoppingMessage() {
  return "STOPPING=1\nSTATUS=stopping: draining the workers";
}

std::string statusMessage(std::string_view text) {
  return "STATUS=" + oneLine(text);
}

std::string watchdogMessage() {
  return "WATCHDOG=1";
}

std::string mainPidMessage(pid_t pid) {
  return "MAINPID=" + std::to_string(pid);
}

uint64_t monotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

SdNotifier::SdNotifier() : SdNotifier(processNotifyEnvironment()) {}

SdNotifier::SdNotifier(NotifyEnvironment env) {
  watchdog_interval_ms_ = master::watchdogIntervalMs(env, getpid());
  if (env.socket.empty()) return;
  if (!notifySocketAddress(env.socket, &addr_, &addr_len_)) {
    logOnce("NOTIFY_SOCKET=\"" + env.socket +
            "\" is not an absolute path or @abstract name; not notifying systemd");
    watchdog_interval_ms_ = 0;
    return;
  }
  // CLOEXEC: workers must not inherit a way to notify.
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    logOnce(std::string("socket(AF_UNIX, SOCK_DGRAM): ") + std::strerror(errno) +
            "; not notifying systemd");
    watchdog_interval_ms_ = 0;
  }
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) close(fd_);
}

bool SdNotifier::send(std::string_view message) {
  if (fd_ < 0) return false;
  // MSG_DONTWAIT: a full receive queue (systemd busy) drops this message
  // instead of stalling the master's loop; every message is either repeated
  // (WATCHDOG) or superseded by the next state.
  ssize_t n;
  do {
    n = sendto(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(message.size())) return true;
  std::string first_line(message.substr(0, message.find('\n')));
  logOnce("sd_notify " + first_line + ": " +
          (n < 0 ? std::strerror(errno) : std::string("short send")) +
          " (further notify errors are not logged)");
  return false;
}

bool SdNotifier::ready(std::string_view status, pid_t main_pid) {
  return send(readyMessage(status, main_pid));
}

bool SdNotifier::reloading() {
  return send(reloadingMessage(monotonicUsec()));
}

bool SdNotifier::stopping() {
  return send(stoppingMessage());
}

bool SdNotifier::status(std::string_view text) {
  return send(statusMessage(text));
}

bool SdNotifier::watchdog() {
  return send(watchdogMessage());
}

bool SdNotifier::mainPid(pid_t pid) {
  return send(mainPidMessage(pid));
}

void SdNotifier::logOnce(const std::string& what) {
  if (error_logged_) return;
  error_logged_ = true;
  // spdlog does not throw by default, but a notifier must never take the
  // master down, whatever the logger's configuration.
  try {
    spdlog::warn("{}", what);
  } catch (...) {
  }
}

}  // namespace phalanx::master

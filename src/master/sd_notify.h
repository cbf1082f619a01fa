// systemd's notify protocol (sd_notify(3)) without libsystemd: newline-separated
// VAR=value datagrams on the Unix socket named by $NOTIFY_SOCKET. Only the
// master notifies: it reads the variables once at start and removes them from
// the environment its workers inherit, so a worker can never claim READY=1 or
// feed the watchdog on the master's behalf.
//
// Error policy: notifying is best effort. Nothing here throws or blocks (the
// master's loop must not stall because systemd is slow), and a failure is
// logged once, not once per message; when $NOTIFY_SOCKET is unset (not started
// by systemd, or Type= is not notify) every call is a silent no-op.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace phalanx::master {

// What systemd told this process, as read from its environment.
struct NotifyEnvironment {
  std::string socket;          // $NOTIFY_SOCKET: "/path" or "@abstract"; empty: not notifying
  uint64_t watchdog_usec = 0;  // $WATCHDOG_USEC; 0 when unset or not a positive number
  pid_t watchdog_pid = 0;      // $WATCHDOG_PID; 0 when unset (then the watchdog is for us)
};

// Builds a NotifyEnvironment from the three variables' values (nullptr when
// unset). Garbage in WATCHDOG_* reads as unset rather than failing start-up.
NotifyEnvironment parseNotifyEnvironment(const char* notify_socket, const char* watchdog_usec,
                                         const char* watchdog_pid);

// The environment of this process as first seen: read on the first call,
// remembered for the life of the process (later calls ignore setenv/unsetenv).
const NotifyEnvironment& processNotifyEnvironment();

// Remembers the variables (processNotifyEnvironment()) and then unsets
// NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, so workers forked and exec'd
// from here on do not see them. Called once at master start, before any fork;
// an SdNotifier built afterwards still finds the socket.
void clearNotifyEnvironmentForChildren();

// The watchdog ping period in ms: half of WATCHDOG_USEC (systemd's advice, so
// one late ping is not fatal), at least 1; 0 when no watchdog is armed or
// WATCHDOG_PID names another process than `self`.
uint64_t watchdogIntervalMs(const NotifyEnvironment& env, pid_t self);

// The destination for a $NOTIFY_SOCKET value: an absolute path, or an abstract
// name when it starts with '@' (the '@' becomes the leading NUL). False for an
// empty, relative or too long value.
bool notifySocketAddress(std::string_view value, sockaddr_un* addr, socklen_t* len);

// Message texts, one assignment per line. Free text (STATUS) is made one line:
// a newline in it would start a new assignment that systemd would act on.
std::string readyMessage(std::string_view status = {}, pid_t main_pid = 0);
std::string reloadingMessage(uint64_t monotonic_usec);
std::string stoppingMessage();
std::string statusMessage(std::string_view text);
std::string watchdogMessage();
std::string mainPidMessage(pid_t pid);

// CLOCK_MONOTONIC in microseconds: the clock systemd compares MONOTONIC_USEC
// with to tell this reload from an older one.
uint64_t monotonicUsec();

class SdNotifier {
 public:
  // Uses processNotifyEnvironment(), so it works after
  // clearNotifyEnvironmentForChildren().
  SdNotifier();
  explicit SdNotifier(NotifyEnvironment env);
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;
  ~SdNotifier();

  // True when there is a socket to notify (even if a send failed since).
  bool enabled() const { return fd_ >= 0; }

  // Each returns true when the datagram was handed to the kernel; false when
  // disabled or the send failed (logged once).
  //
  // Start-up or a reload is complete. `status` shows in `systemctl status`;
  // `main_pid`, when not 0, tells systemd the main process changed (binary
  // upgrade; with NotifyAccess=main only the current main process may say so).
  bool ready(std::string_view status = {}, pid_t main_pid = 0);
  // A reload began; systemd waits for the next ready().
  bool reloading();
  // A graceful stop began.
  bool stopping();
  bool status(std::string_view text);
  // Keep-alive for WatchdogSec=; call every watchdogIntervalMs().
  bool watchdog();
  bool mainPid(pid_t pid);

  // See the free function; 0 means do not start a watchdog timer.
  uint64_t watchdogIntervalMs() const { return watchdog_interval_ms_; }

  // Sends one raw message (the methods above format theirs).
  bool send(std::string_view message);

 private:
  void logOnce(const std::string& what);

  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
  uint64_t watchdog_interval_ms_ = 0;
  bool error_logged_ = false;
};

}  // namespace phalanx::master

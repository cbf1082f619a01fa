// What phalanxctl was asked to do, and where to send it: the command line
// parsed and checked before anything connects, and the control socket's path.
//
// Contract:
// - parseCommandLine() accepts options before and after the command words
//   (`phalanxctl status --json`); "--" ends the options. Every mistake is one
//   message naming the argument; nothing is sent for a command line with one.
// - Only the commands below are accepted, with their arguments checked here
//   (`scale N`: 1..kMaxWorkers; `breaker open|close UPSTREAM TARGET`: two
//   words), so the master only ever sees a well-formed line. Whether the
//   upstream and target exist is the master's to say.
// - Socket resolution: -s wins; else -c FILE's control_socket; else
//   $PHALANX_SOCKET; else kDefaultSocket. A relative path is used as is, that
//   is relative to phalanxctl's current directory (phalanx resolves it against
//   its own working directory).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::ctl {

// phalanxctl's exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the master answered ok:false
inline constexpr int kExitUsage = 2;        // bad command line or config file
inline constexpr int kExitUnreachable = 3;  // no master, no answer, or no usable one

inline constexpr const char* kDefaultSocket = "/run/phalanx/phalanx.sock";
inline constexpr const char* kSocketEnv = "PHALANX_SOCKET";
inline constexpr std::chrono::milliseconds kDefaultTimeout{5'000};
// A reload (or an upgrade) answers once the new workers are ready (or
// failed), which takes as long as they need to start.
inline constexpr std::chrono::milliseconds kReloadTimeout{120'000};

enum class Command {
  Status,
  Reload,
  Upgrade,
  Scale,
  Stop,
  ShowInfo,
  ShowStat,
  Help,
  Upstreams,
  BreakerOpen,
  BreakerClose,
  Keys,
  CachePurge,
  Access,
  Routes,
  Errors,
};

struct Invocation {
  enum class Action { Run, PrintHelp, PrintVersion };
  Action action = Action::Run;
  std::string socket;  // -s, "" = not given
  std::string config;  // -c, "" = not given
  bool json = false;
  std::optional<std::chrono::milliseconds> timeout;  // --timeout
  Command command = Command::Status;
  std::string line;  // what goes on the wire, e.g. "scale 4\n"
};

struct ParsedCommandLine {
  std::optional<Invocation> invocation;  // set iff error is empty
  std::string error;
};

// `args` are argv[1..].
ParsedCommandLine parseCommandLine(const std::vector<std::string_view>& args);

// The --help text.
std::string usage();

// --timeout, else the command's default.
std::chrono::milliseconds effectiveTimeout(const Invocation& invocation);

struct SocketChoice {
  std::string path;   // set iff error is empty
  std::string error;  // e.g. "etc/x.json: cannot read: No such file or directory"
};

// Picks the socket path (see the contract above). `env_socket` is the value of
// $PHALANX_SOCKET or nullptr. With -c, a config that has errors elsewhere still
// gives its control_socket: `phalanxctl -c FILE reload` is how one learns what
// the master thinks of those errors.
SocketChoice resolveSocket(const Invocation& invocation, const char* env_socket);

}  // namespace phalanx::ctl

// The client side of the control socket: one request line out, one answer line
// back, all within one deadline.
//
// Contract:
// - request() connects to the Unix stream socket at `socket_path`, writes
//   `line` (one command line ending in '\n') and reads until the first '\n' or
//   until the master closes the connection; an answer without its trailing
//   newline is accepted at EOF. It returns the answer without the newline.
// - Connecting, writing and reading together take at most `timeout`: a master
//   that accepts and never answers, or never accepts, gives Timeout.
// - It never throws, never raises SIGPIPE, retries on EINTR, and handles
//   partial writes and reads. It does not look inside the answer.
// - The master may answer and close before reading our line (a refused peer):
//   a failed write is not an error as long as an answer arrives.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace phalanx::ctl {

enum class ClientError {
  None,
  NoSocket,          // nothing at the path (ENOENT, ENOTDIR)
  NotASocket,        // a file that is not a socket is at the path
  Stale,             // a socket file, but nobody listens (ECONNREFUSED)
  PermissionDenied,  // EACCES / EPERM on the path or the socket
  PathTooLong,       // longer than sockaddr_un allows
  Timeout,           // no complete answer before the deadline
  Closed,            // the master closed the connection without answering
  TooLarge,          // the answer grew past max_answer_bytes without a newline
  System,            // anything else: `sys_errno` says what
};

struct RequestOptions {
  std::chrono::milliseconds timeout{5000};
  // An answer longer than this is refused instead of buffered without end;
  // `show stat` for 256 workers is a few tens of KiB.
  size_t max_answer_bytes = 16u << 20;
};

struct ClientResult {
  ClientError error = ClientError::None;
  std::string answer{};       // the answer line without '\n' (error == None)
  int sys_errno = 0;          // for System and the errno-based kinds
  std::string failed_call{};  // for System: "socket", "connect", "poll", ...
};

ClientResult request(const std::string& socket_path, std::string_view line,
                     const RequestOptions& options);

// One line for a person, naming the path and what to do about it, e.g.
// "no control socket at run/phalanx.sock (is phalanx running? ...)".
// `result.error` must not be None.
std::string describeClientError(const ClientResult& result, const std::string& socket_path,
                                std::chrono::milliseconds timeout);

// "5", "0.5", "120": seconds as a person writes them.
std::string formatSeconds(std::chrono::milliseconds duration);

}  // namespace phalanx::ctl

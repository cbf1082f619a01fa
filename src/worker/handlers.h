// Turns a parsed request into response bytes: route match, then the route's
// handler (static, builtin), or a 404. No sockets here: the connection hands in
// a request and gets bytes back, so unit tests drive this directly.
#pragma once

#include <cstdint>
#include <string>

#include "shared/config.h"
#include "worker/http_date.h"
#include "worker/http_parser.h"
#include "worker/response.h"
#include "worker/router.h"

namespace phalanx::worker {

// Who is answering: shown by builtin endpoints.
struct WorkerIdentity {
  uint32_t slot = 0;
  uint32_t generation = 0;
  int pid = 0;
  uint64_t started_at_ms = 0;  // wall clock
};

class Handlers {
 public:
  Handlers(const shared::Config& config, WorkerIdentity identity);

  // Appends the response to `request` to `out` and returns its status.
  int respond(const Request& request, ConnectionHeader connection, std::string& out);

  // Appends an error response (JSON body, Connection: close) for a request that
  // could not be parsed or was refused before routing. Returns `status`.
  int respondError(int status, const char* reason, std::string& out);

  // The interim response to Expect: 100-continue.
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

 private:
  void respondLive(const Request& request, ConnectionHeader connection, std::string& out);

  Router router_;
  HttpDate date_;
  WorkerIdentity identity_;
  Response not_found_;
};

}  // namespace phalanx::worker

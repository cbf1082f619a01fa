// Turns a parsed request into response bytes: route match, then the route's
// handler (static, builtin), or a 404; a method the route does not take gets
// its 405; OPTIONS * gets a 200 with Allow. No sockets here: the connection hands in
// a request and gets bytes back, so unit tests drive this directly.
//
// Two steps, so a connection can hold a request between them: match() finds the
// route (a static route with delay_ms is answered that much later), respond()
// writes the answer.
//
// Builtins (all with Cache-Control: no-store and a JSON body unless noted):
//   live     200 {"status":"alive", worker, pid, generation, uptime_s}
//   ready    200 {"status":"ready", ...} (with "redis": "up"/"down" when limits or the
//            cache use Redis: reported, never a reason to be unready), or 503
//            {"status":"draining", ...} once
//            setDraining() was called, or {"status":"required upstream down"}
//            while an upstream marked "required" has no usable target
//   status   200 {"status":"ok", then writeStatus()'s members} from shared memory
//   metrics  200 Prometheus text (version 0.0.4) of the sums over every worker
//   dashboard  200 an HTML page polling the status route (dashboard.h), the same
//            bytes for every request: rendered when the router is built
#pragma once

#include <cstdint>
#include <string>

#include "shared/config.h"
#include "shared/shm.h"
#include "worker/http/http_date.h"
#include "worker/http/http_parser.h"
#include "worker/http/response.h"
#include "worker/router.h"

namespace phalanx::worker {

class Gateway;

// Who is answering: shown by builtin endpoints.
struct WorkerIdentity {
  uint32_t slot = 0;
  uint32_t generation = 0;
  int pid = 0;
  uint64_t started_at_ms = 0;  // wall clock
};

class Handlers {
 public:
  // `region` is read by the status and metrics builtins; it must outlive this.
  Handlers(const shared::Config& config, WorkerIdentity identity,
           const shared::SharedRegion& region);

  // The route for `request`, or nullptr (answered with a 404). Valid as long
  // as this Handlers is.
  const Route* match(const Request& request, uint32_t listener = 0) const {
    return router_.match(request.path(), listener);
  }

  // Appends the response of `route` (from match(); nullptr = 404) to `request`
  // to `out` and returns its status. Ignores the route's delay: the caller
  // decides when to call this.
  // `extra`: header lines added to the answer (a guarded route's rate-limit state).
  int respond(const Route* route, const Request& request, ConnectionHeader connection,
              std::string& out, std::string_view extra = {});
  int respond(const Request& request, ConnectionHeader connection, std::string& out) {
    return respond(match(request), request, connection, out);
  }

  // Appends an error response (JSON body, Connection: close) for a request that
  // could not be parsed or was refused before routing. Returns `status`.
  int respondError(int status, const char* reason, std::string& out);

  // From now on /health/ready answers 503: the worker is draining.
  void setDraining() { draining_ = true; }
  // /health/ready also asks the gateway (a required upstream with no usable target).
  void setGateway(const Gateway* gateway) { gateway_ = gateway; }

  // The interim response to Expect: 100-continue.
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

 private:
  int respondBuiltin(const Route& route, const Request& request, ConnectionHeader connection,
                     std::string& out, std::string_view extra);
  std::string identityJson(const char* status) const;
  // Why this worker should not get traffic now, or nullptr when it is ready.
  const char* notReadyReason() const;

  Router router_;
  HttpDate date_;
  WorkerIdentity identity_;
  const shared::SharedRegion& region_;
  Response not_found_;
  Response options_any_;
  bool draining_ = false;
  const Gateway* gateway_ = nullptr;
};

}  // namespace phalanx::worker

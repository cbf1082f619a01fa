#include "worker/handlers.h"

#include "shared/shm.h"

namespace phalanx::worker {

Handlers::Handlers(const shared::Config& config, WorkerIdentity identity)
    : router_(config.routes), identity_(identity), not_found_(makeJsonError(404, "not found")) {}

int Handlers::respond(const Request& request, ConnectionHeader connection, std::string& out) {
  const Route* route = router_.match(request.target);
  if (route == nullptr) {
    appendResponse(out, not_found_, date_.now(), connection, request.isHead());
    return 404;
  }
  switch (route->kind) {
    case shared::RouteKind::Static:
      appendResponse(out, route->static_response, date_.now(), connection, request.isHead());
      return route->static_response.status;
    case shared::RouteKind::Builtin: respondLive(request, connection, out); return 200;
    case shared::RouteKind::Upstream: break;  // refused by config validation in this version
  }
  Response r = makeJsonError(502, "route has no handler");
  appendResponse(out, r, date_.now(), connection, request.isHead());
  return r.status;
}

int Handlers::respondError(int status, const char* reason, std::string& out) {
  Response r = makeJsonError(status, reason);
  appendResponse(out, r, date_.now(), ConnectionHeader::Close, false);
  return status;
}

void Handlers::respondLive(const Request& request, ConnectionHeader connection, std::string& out) {
  uint64_t uptime_ms = shared::wallMs() - identity_.started_at_ms;
  std::string body = "{\"status\":\"alive\",\"worker\":" + std::to_string(identity_.slot) +
                     ",\"pid\":" + std::to_string(identity_.pid) +
                     ",\"generation\":" + std::to_string(identity_.generation) +
                     ",\"uptime_s\":" + std::to_string(uptime_ms / 1000) + "}\n";
  Response r = makeResponse(200, std::move(body),
                            {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}});
  appendResponse(out, r, date_.now(), connection, request.isHead());
}

}  // namespace phalanx::worker

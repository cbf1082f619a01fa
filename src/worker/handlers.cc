#include "worker/handlers.h"

#include "shared/json_writer.h"
#include "shared/shm_snapshot.h"
#include "shared/status_report.h"
#include "worker/gateway/gateway.h"

namespace phalanx::worker {

namespace {

// Builtin answers describe this moment: no cache or proxy may keep them.
const HeaderList kJsonHeaders = {{"Content-Type", "application/json"},
                                 {"Cache-Control", "no-store"}};
const HeaderList kMetricsHeaders = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"},
                                    {"Cache-Control", "no-store"}};

}  // namespace

Handlers::Handlers(const shared::Config& config, WorkerIdentity identity,
                   const shared::SharedRegion& region)
    : router_(config),
      identity_(identity),
      region_(region),
      not_found_(makeJsonError(404, "not found")),
      options_any_(makeResponse(200, "", {{"Allow", std::string(Router::kDefaultAllow)}})) {}

int Handlers::respond(const Route* route, const Request& request, ConnectionHeader connection,
                      std::string& out, std::string_view extra) {
  if (route == nullptr) {
    // OPTIONS * asks about the server, not a resource (RFC 9110 9.3.7).
    const Response& r = request.path() == "*" ? options_any_ : not_found_;
    appendResponse(out, r, date_.now(), connection, request.isHead());
    return r.status;
  }
  if (!route->allows(request.method)) {
    appendResponse(out, route->method_not_allowed, date_.now(), connection, request.isHead(), extra);
    return route->method_not_allowed.status;
  }
  switch (route->kind) {
    case shared::RouteKind::Static:
      appendResponse(out, route->static_response, date_.now(), connection, request.isHead(), extra);
      return route->static_response.status;
    case shared::RouteKind::Builtin: return respondBuiltin(*route, request, connection, out, extra);
    case shared::RouteKind::Upstream: break;  // the connection hands these to the gateway
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

const char* Handlers::notReadyReason() const {
  if (draining_) return "draining";
  if (gateway_ != nullptr) return gateway_->notReadyReason();
  return nullptr;
}

std::string Handlers::identityJson(const char* status) const {
  uint64_t now_ms = shared::wallMs();
  uint64_t uptime_ms = now_ms > identity_.started_at_ms ? now_ms - identity_.started_at_ms : 0;
  shared::JsonWriter w;
  w.beginObject();
  w.field("status", status);
  w.field("worker", identity_.slot);
  w.field("pid", identity_.pid);
  w.field("generation", identity_.generation);
  w.field("uptime_s", uptime_ms / 1000);
  // Redis's state is reported, not judged: limits and the cache fall back
  // without it, so a host without Redis still serves and stays ready.
  if (gateway_ != nullptr && gateway_->redisState() != shared::RedisState::Unused) {
    w.field("redis", gateway_->redisState() == shared::RedisState::Up ? "up" : "down");
  }
  w.endObject();
  return w.take() + "\n";
}

int Handlers::respondBuiltin(const Route& route, const Request& request,
                             ConnectionHeader connection, std::string& out,
                             std::string_view extra) {
  Response r;
  switch (route.builtin) {
    case shared::Builtin::Live: r = makeResponse(200, identityJson("alive"), kJsonHeaders); break;
    case shared::Builtin::Ready: {
      const char* problem = notReadyReason();
      r = problem ? makeResponse(503, identityJson(problem), kJsonHeaders)
                  : makeResponse(200, identityJson("ready"), kJsonHeaders);
      break;
    }
    case shared::Builtin::Status: {
      shared::JsonWriter w;
      w.beginObject();
      w.field("status", "ok");
      // The reload error lives in the master only; the control socket has it.
      shared::writeStatus(w, shared::takeSnapshot(region_), "");
      w.endObject();
      r = makeResponse(200, w.take() + "\n", kJsonHeaders);
      break;
    }
    case shared::Builtin::Metrics:
      r = makeResponse(200, shared::prometheusMetrics(shared::takeSnapshot(region_)),
                       kMetricsHeaders);
      break;
    case shared::Builtin::Dashboard:
      // Fixed bytes, rendered with the route (router.cc): written without a copy.
      appendResponse(out, route.static_response, date_.now(), connection, request.isHead(), extra);
      return route.static_response.status;
  }
  appendResponse(out, r, date_.now(), connection, request.isHead(), extra);
  return r.status;
}

}  // namespace phalanx::worker

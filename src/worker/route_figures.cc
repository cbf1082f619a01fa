#include "worker/route_figures.h"

#include <llhttp.h>

namespace phalanx::worker {

size_t routeMethodIndex(uint8_t method) {
  switch (method) {
    case HTTP_GET: return 0;
    case HTTP_HEAD: return 1;
    case HTTP_POST: return 2;
    case HTTP_PUT: return 3;
    case HTTP_DELETE: return 4;
    case HTTP_PATCH: return 5;
    case HTTP_OPTIONS: return 6;
    default: return shared::kRouteMethods - 1;
  }
}

RouteFigures::RouteFigures(const shared::Config& config, const shared::SharedRegion& region,
                           uint32_t slot)
    : region_(region), slot_(slot) {
  records_.reserve(config.routes.size());
  for (const shared::RouteConfig& route : config.routes) {
    records_.push_back(shared::findRoute(region, shared::routeName(route)));
  }
}

uint32_t RouteFigures::recordOf(int route_index) const {
  if (route_index < 0 || static_cast<size_t>(route_index) >= records_.size()) {
    return shared::kUnmatchedRoute;
  }
  return records_[static_cast<size_t>(route_index)];
}

void RouteFigures::count(const Response& r) {
  size_t method = r.has_request ? routeMethodIndex(r.method) : shared::kRouteMethods - 1;
  shared::countRoute(region_.routeCounters(slot_, recordOf(r.route_index)), method, r.status,
                     r.elapsed_us);
}

void RouteFigures::recordError(const Response& r, const ErrorDetail& d) {
  shared::recordError(region_, {.at_ms = shared::wallMs(),
                                .status = r.status,
                                .route = recordOf(r.route_index),
                                .method = d.method,
                                .path = d.path,
                                .client = d.client,
                                .request_id = d.request_id,
                                .upstream = d.upstream});
}

}  // namespace phalanx::worker

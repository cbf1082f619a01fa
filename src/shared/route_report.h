// Per-route figures and the recent errors (route_records.h) as operators see
// them: JSON members of `status` (and /health/status), the control command
// `errors`, and /metrics families.
//
// JSON:
//   "routes": [ {"name", "requests",
//                "methods": {"GET": n, ...} (only those seen),
//                "responses": {"200": n, "2xx": n (other 2xx codes), ...} (only those seen),
//                "latency_us": {"bounds", "counts", "sum"}} ]  most requests first
//   "errors": [ {"at_ms" (wall clock), "route", "method", "path", "status",
//                "client", "request_id", "upstream"} ]  newest first
// Metrics (label route = the route's name; "(none)" for requests no route took):
//   phalanx_route_requests_total{route,method}   (methods seen, as in kRouteMethodNames)
//   phalanx_route_responses_total{route,code}     (codes seen: "200", ... or "2xx")
//   phalanx_route_request_duration_seconds{route} (histogram, kLatencyBoundsUs)
#pragma once

#include <vector>

#include "shared/json_writer.h"
#include "shared/prometheus_text.h"
#include "shared/route_records.h"

namespace phalanx::shared {

// Writes the member "routes" into the object `w` has open.
void writeRoutes(JsonWriter& w, const std::vector<RouteView>& routes);

// Writes the member "errors" into the object `w` has open.
void writeErrors(JsonWriter& w, const std::vector<ErrorView>& errors);

void routeMetrics(Exposition& e, const std::vector<RouteView>& routes);

}  // namespace phalanx::shared

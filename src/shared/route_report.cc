#include "shared/route_report.h"

#include "shared/status_report.h"  // writeLatency

namespace phalanx::shared {

void writeRoutes(JsonWriter& w, const std::vector<RouteView>& routes) {
  w.key("routes");
  w.beginArray();
  for (const RouteView& r : routes) {
    w.beginObject();
    w.field("name", r.name);
    w.field("requests", r.requests);
    w.key("methods");
    w.beginObject();
    for (size_t m = 0; m < kRouteMethods; ++m) {
      if (r.methods[m] != 0) w.field(kRouteMethodNames[m], r.methods[m]);
    }
    w.endObject();
    w.key("responses");
    w.beginObject();
    for (size_t k = 0; k < kRouteCodes; ++k) {
      if (r.codes[k] != 0) w.field(routeCodeLabel(k), r.codes[k]);
    }
    w.endObject();
    writeLatency(w, r.latency_buckets, r.latency_sum_us);
    w.endObject();
  }
  w.endArray();
}

void writeErrors(JsonWriter& w, const std::vector<ErrorView>& errors) {
  w.key("errors");
  w.beginArray();
  for (const ErrorView& e : errors) {
    w.beginObject();
    w.field("at_ms", e.at_ms);
    w.field("route", e.route);
    w.field("method", e.method);
    w.field("path", e.path);
    w.field("status", e.status);
    w.field("client", e.client);
    w.field("request_id", e.request_id);
    w.field("upstream", e.upstream);
    w.endObject();
  }
  w.endArray();
}

void routeMetrics(Exposition& e, const std::vector<RouteView>& routes) {
  e.family("phalanx_route_requests_total", "counter", "Requests by route and method.");
  for (const RouteView& r : routes) {
    std::string route = label("route", r.name);
    for (size_t m = 0; m < kRouteMethods; ++m) {
      if (r.methods[m] == 0) continue;
      e.sample("phalanx_route_requests_total", route + "," + label("method", kRouteMethodNames[m]),
               r.methods[m]);
    }
  }
  e.family("phalanx_route_responses_total", "counter",
           "Responses by route and status code (uncommon codes by class: \"2xx\").");
  for (const RouteView& r : routes) {
    std::string route = label("route", r.name);
    for (size_t k = 0; k < kRouteCodes; ++k) {
      if (r.codes[k] == 0) continue;
      e.sample("phalanx_route_responses_total", route + "," + label("code", routeCodeLabel(k)),
               r.codes[k]);
    }
  }
  e.family("phalanx_route_request_duration_seconds", "histogram",
           "Time from a request's first byte to its response being queued, by route.");
  for (const RouteView& r : routes) {
    e.latencyHistogram("phalanx_route_request_duration_seconds", label("route", r.name),
                       r.latency_buckets, r.latency_sum_us);
  }
}

}  // namespace phalanx::shared

#include "shared/route_records.h"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "shared/prometheus_text.h"
#include "shared/route_report.h"

using namespace phalanx::shared;

namespace {

Config configWith(const char* routes_json) {
  std::string json =
      std::string(R"({"listen": ["127.0.0.1:8080"], "routes": )") + routes_json + "}";
  ConfigResult result = parseConfig(json);
  std::string first_error = result.errors.empty() ? "" : result.errors[0];
  REQUIRE_MESSAGE(result.config.has_value(), first_error);
  return *result.config;
}

const RouteView* viewNamed(const std::vector<RouteView>& views, const std::string& name) {
  for (const RouteView& v : views) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("route records: codes are counted one by one when tracked, else by class") {
  CHECK(routeCodeLabel(routeCodeIndex(200)) == "200");
  CHECK(routeCodeLabel(routeCodeIndex(429)) == "429");
  CHECK(routeCodeLabel(routeCodeIndex(502)) == "502");
  CHECK(routeCodeLabel(routeCodeIndex(299)) == "2xx");
  CHECK(routeCodeLabel(routeCodeIndex(418)) == "4xx");
  CHECK(routeCodeLabel(routeCodeIndex(101)) == "1xx");
  CHECK(routeCodeLabel(routeCodeIndex(999)) == "5xx");  // nothing valid, counted as a failure
}

TEST_CASE("route records: names come from the config; reloads add, never remove") {
  SharedRegion region = SharedRegion::create(4, 8);
  Config first =
      configWith(R"([{"path": "/a", "static": {}}, {"prefix": "/api/", "static": {}, "name": "api"},
                                {"path": "/b", "static": {}, "name": "api"}])");
  CHECK(routeName(first.routes[0]) == "/a");
  CHECK(routeName(first.routes[1]) == "api");
  std::string error;
  REQUIRE(provisionRoutes(region, first, &error));
  uint32_t a = findRoute(region, "/a");
  uint32_t api = findRoute(region, "api");
  CHECK(a != kUnmatchedRoute);
  CHECK(api != kUnmatchedRoute);
  CHECK(a != api);
  CHECK(findRoute(region, "/nope") == kUnmatchedRoute);
  CHECK(findRoute(region, kUnmatchedRouteName) == kUnmatchedRoute);  // by index only

  noteSlotUsed(region, 1);
  countRoute(region.routeCounters(1, api), 0, 200, 300);
  countRoute(region.routeCounters(0, api), 2, 502, 30'000);
  countRoute(region.routeCounters(0, kUnmatchedRoute), kRouteMethods - 1, 404, 10);

  Config second = configWith(R"([{"path": "/c", "static": {}}])");
  REQUIRE(provisionRoutes(region, second, &error));
  CHECK(findRoute(region, "api") == api);  // kept: counters stay monotonic
  CHECK(findRoute(region, "/c") != kUnmatchedRoute);

  std::vector<RouteView> views = takeRouteViews(region);
  REQUIRE(views.size() == 4);  // api, (none), then the unused ones by name
  CHECK(views[0].name == "api");
  CHECK(views[0].requests == 2);
  CHECK(views[0].methods[0] == 1);
  CHECK(views[0].methods[2] == 1);
  CHECK(views[0].codes[routeCodeIndex(200)] == 1);
  CHECK(views[0].codes[routeCodeIndex(502)] == 1);
  CHECK(views[0].latency_buckets[latencyBucket(30'000)] == 1);
  CHECK(views[0].latency_sum_us == 30'300);
  CHECK(views[1].name == kUnmatchedRouteName);
  CHECK(viewNamed(views, "/a")->requests == 0);
  CHECK(viewNamed(views, "/c") != nullptr);
}

TEST_CASE("route records: slots the master never used are not read") {
  SharedRegion region = SharedRegion::create(4, 8);
  Config config = configWith(R"([{"path": "/a", "static": {}}])");
  std::string error;
  REQUIRE(provisionRoutes(region, config, &error));
  countRoute(region.routeCounters(3, findRoute(region, "/a")), 0, 200, 1);
  CHECK(viewNamed(takeRouteViews(region), "/a")->requests == 0);
  noteSlotUsed(region, 3);
  CHECK(viewNamed(takeRouteViews(region), "/a")->requests == 1);
}

TEST_CASE("route records: a reload past the record capacity is refused with a message") {
  SharedRegion region = SharedRegion::create(4, 8);
  std::string routes = "[";
  for (uint32_t i = 0; i < kRouteRecords; ++i) {
    routes +=
        std::string(i ? "," : "") + R"({"path": "/r)" + std::to_string(i) + R"(", "static": {}})";
  }
  routes += "]";
  std::string error;
  CHECK_FALSE(provisionRoutes(region, configWith(routes.c_str()), &error));
  CHECK(error.find("routes: 128 new route names, shared memory has room for 127 more") !=
        std::string::npos);
}

TEST_CASE("route records: the error ring keeps the newest 100, newest first, text made safe") {
  SharedRegion region = SharedRegion::create(4, 8);
  Config config = configWith(R"([{"prefix": "/api/", "static": {}, "name": "api"}])");
  std::string error;
  REQUIRE(provisionRoutes(region, config, &error));
  uint32_t api = findRoute(region, "api");
  for (int i = 0; i < 250; ++i) {
    recordError(region, {.at_ms = 1000u + static_cast<uint64_t>(i),
                         .status = 502,
                         .route = api,
                         .method = "GET",
                         .path = "/api/" + std::to_string(i),
                         .client = "127.0.0.1",
                         .request_id = "rid",
                         .upstream = "127.0.0.1:9001"});
  }
  std::vector<ErrorView> errors = takeErrors(region);
  REQUIRE(errors.size() == kRecentErrors);
  CHECK(errors[0].path == "/api/249");
  CHECK(errors[0].at_ms == 1249);
  CHECK(errors[99].path == "/api/150");
  CHECK(errors[0].route == "api");
  CHECK(errors[0].upstream == "127.0.0.1:9001");
  CHECK(takeErrors(region, 3).size() == 3);

  std::string long_path = "/api/" + std::string(200, 'x') + "\xff\n";
  auto facts = [api](std::string_view path) {
    return ErrorFacts{.at_ms = 1,
                      .status = 500,
                      .route = api,
                      .method = "GET",
                      .path = path,
                      .client = "",
                      .request_id = "",
                      .upstream = ""};
  };
  recordError(region, facts(long_path));
  ErrorView newest = takeErrors(region, 1).at(0);
  CHECK(newest.path.size() == 95);  // cut to the entry's room
  recordError(region, facts("/\xc3\xa9\n"));
  CHECK(takeErrors(region, 1).at(0).path == "/???");
}

TEST_CASE("route records: concurrent writers never show a torn entry") {
  SharedRegion region = SharedRegion::create(4, 8);
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&region, t] {
      std::string path = "/" + std::string(40, static_cast<char>('a' + t));
      for (int i = 0; i < 20'000; ++i) {
        recordError(region, {.at_ms = 1,
                             .status = 500 + t,
                             .route = 0,
                             .method = "GET",
                             .path = path,
                             .client = path,
                             .request_id = "",
                             .upstream = ""});
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (const ErrorView& e : takeErrors(region)) {
      // Whole entries only: path and client were written together, by one writer.
      REQUIRE(e.path == e.client);
      REQUIRE(e.path.size() == 41);
      REQUIRE(e.path[1] == static_cast<char>('a' + (e.status - 500)));
    }
  }
  for (std::thread& w : writers) w.join();
}

TEST_CASE("route report: JSON and metrics carry only what was seen") {
  RouteView v;
  v.name = "api \"v1\"";
  v.requests = 3;
  v.methods[0] = 2;
  v.methods[2] = 1;
  v.codes[routeCodeIndex(200)] = 2;
  v.codes[routeCodeIndex(299)] = 1;
  v.latency_buckets[1] = 3;
  v.latency_sum_us = 600;
  JsonWriter w;
  w.beginObject();
  writeRoutes(w, {v});
  writeErrors(w, {ErrorView{.at_ms = 5,
                            .status = 503,
                            .route = "api",
                            .method = "GET",
                            .path = "/x",
                            .client = "::1",
                            .request_id = "r",
                            .upstream = ""}});
  w.endObject();
  std::string json = w.take();
  CHECK(json.find(R"("methods":{"GET":2,"POST":1})") != std::string::npos);
  CHECK(json.find(R"("responses":{"200":2,"2xx":1})") != std::string::npos);
  CHECK(json.find(R"("name":"api \"v1\"")") != std::string::npos);
  CHECK(json.find(R"({"at_ms":5,"route":"api","method":"GET","path":"/x","status":503,)") !=
        std::string::npos);

  Exposition e;
  routeMetrics(e, {v});
  std::string text = e.take();
  CHECK(text.find(R"(phalanx_route_requests_total{route="api \"v1\"",method="GET"} 2)") !=
        std::string::npos);
  CHECK(text.find(R"(method="PUT")") == std::string::npos);
  CHECK(text.find(R"(phalanx_route_responses_total{route="api \"v1\"",code="2xx"} 1)") !=
        std::string::npos);
  CHECK(text.find(R"(phalanx_route_request_duration_seconds_count{route="api \"v1\""} 3)") !=
        std::string::npos);
}

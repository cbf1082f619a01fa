#include "worker/handlers.h"

#include <doctest/doctest.h>
#include <simdjson.h>

#include "builtin_route.h"
#include "parsed_request.h"

using namespace phalanx;

namespace {

shared::Config demoConfig() {
  shared::Config config;
  shared::RouteConfig root;
  root.path = "/";
  root.static_response = {
      .status = 200, .body = "ok\n", .headers = {{"Content-Type", "text/plain"}}, .delay_ms = 0};
  shared::RouteConfig slow;
  slow.path = "/slow";
  slow.static_response = {.status = 202, .body = "late", .headers = {}, .delay_ms = 1500};
  config.routes = {builtin("/health/live", shared::Builtin::Live),
                   builtin("/health/ready", shared::Builtin::Ready),
                   builtin("/health/status", shared::Builtin::Status),
                   builtin("/metrics", shared::Builtin::Metrics),
                   root,
                   slow};
  return config;
}

worker::Request get(std::string target, uint8_t method = HTTP_GET) {
  return test::parsedRequest(llhttp_method_name(static_cast<llhttp_method_t>(method)), target);
}

// A region like the master's: itself, two slots, one worker serving in cell 1.
shared::SharedRegion demoRegion() {
  shared::SharedRegion region = shared::SharedRegion::create(2, 4);
  shared::MasterInfo& m = region.master();
  m.pid.store(77);
  m.generation.store(2);
  m.workers.store(2);
  m.started_at_ms.store(shared::wallMs() - 5000);
  region.slot(0).state.store(static_cast<uint32_t>(shared::SlotState::Running));
  region.slot(1).state.store(static_cast<uint32_t>(shared::SlotState::WaitingRestart));
  region.slot(1).restart_at_ms.store(shared::wallMs() + 60'000);
  shared::WorkerCell& cell = region.cell(1);
  cell.pid.store(42);
  cell.slot.store(0);
  cell.generation.store(2);
  cell.state.store(static_cast<uint32_t>(shared::WorkerState::Ready));
  cell.traffic.requests.store(5);
  cell.traffic.latency_buckets[0].store(5);
  return region;
}

std::string body(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  return response.substr(end + 4);
}

bool hasHeader(const std::string& response, const std::string& line) {
  return response.find("\r\n" + line + "\r\n") != std::string::npos;
}

}  // namespace

TEST_CASE("static routes answer with their configured response") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(),
                            {.slot = 1, .generation = 2, .pid = 42, .started_at_ms = 0}, region);
  std::string out;
  CHECK(handlers.respond(get("/"), worker::ConnectionHeader::None, out) == 200);
  CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(out.ends_with("\r\n\r\nok\n"));
  CHECK_FALSE(hasHeader(out, "Cache-Control: no-store"));
}

TEST_CASE("HEAD gets the headers only") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(), {}, region);
  std::string out;
  handlers.respond(get("/", HTTP_HEAD), worker::ConnectionHeader::None, out);
  CHECK(out.find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(out.ends_with("\r\n\r\n"));
}

TEST_CASE("unknown routes are a JSON 404") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(), {}, region);
  std::string out;
  CHECK(handlers.match(get("/nope")) == nullptr);
  CHECK(handlers.respond(get("/nope"), worker::ConnectionHeader::None, out) == 404);
  CHECK(out.find("Content-Type: application/json") != std::string::npos);
  CHECK(out.find("\"error\":\"not found\"") != std::string::npos);
}

TEST_CASE("TRACE is a 405 with Allow on a route that does not list it; OPTIONS * is a 200") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(), {}, region);
  std::string out;
  CHECK(handlers.respond(get("/", HTTP_TRACE), worker::ConnectionHeader::None, out) == 405);
  CHECK(hasHeader(out, "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
  CHECK(out.find("\"error\":\"method not allowed\"") != std::string::npos);
  out.clear();
  CHECK(handlers.respond(test::parsedRequest("OPTIONS", "*"), worker::ConnectionHeader::None,
                         out) == 200);
  CHECK(hasHeader(out, "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
  CHECK(hasHeader(out, "Content-Length: 0"));
}

TEST_CASE("a delayed static route: match() tells the delay, respond() answers at once") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(), {}, region);
  const worker::Route* route = handlers.match(get("/slow?x=1"));
  REQUIRE(route != nullptr);
  CHECK(route->delay_ms == 1500);
  CHECK(handlers.match(get("/"))->delay_ms == 0);
  std::string out;
  CHECK(handlers.respond(route, get("/slow"), worker::ConnectionHeader::Close, out) == 202);
  CHECK(hasHeader(out, "Connection: close"));
  CHECK(out.ends_with("late"));
}

TEST_CASE("builtin live names the worker") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(),
                            {.slot = 1, .generation = 2, .pid = 42, .started_at_ms = 0}, region);
  std::string out;
  CHECK(handlers.respond(get("/health/live"), worker::ConnectionHeader::None, out) == 200);
  CHECK(out.find("\"status\":\"alive\"") != std::string::npos);
  CHECK(out.find("\"worker\":1,\"pid\":42,\"generation\":2") != std::string::npos);
  CHECK(hasHeader(out, "Cache-Control: no-store"));
}

TEST_CASE("builtin ready: 200 while serving, 503 once draining") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(),
                            {.slot = 1, .generation = 2, .pid = 42, .started_at_ms = 0}, region);
  std::string out;
  CHECK(handlers.respond(get("/health/ready"), worker::ConnectionHeader::None, out) == 200);
  CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(body(out).starts_with("{\"status\":\"ready\",\"worker\":1,\"pid\":42"));
  CHECK(hasHeader(out, "Content-Type: application/json"));
  CHECK(hasHeader(out, "Cache-Control: no-store"));

  handlers.setDraining();
  out.clear();
  CHECK(handlers.respond(get("/health/ready"), worker::ConnectionHeader::None, out) == 503);
  CHECK(out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
  CHECK(body(out).starts_with("{\"status\":\"draining\""));
  CHECK(hasHeader(out, "Cache-Control: no-store"));
  // Liveness is not readiness: a draining worker is still alive.
  out.clear();
  CHECK(handlers.respond(get("/health/live"), worker::ConnectionHeader::None, out) == 200);
}

TEST_CASE("builtin status: the status object read from shared memory") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(), {}, region);
  std::string out;
  CHECK(handlers.respond(get("/health/status"), worker::ConnectionHeader::None, out) == 200);
  CHECK(hasHeader(out, "Content-Type: application/json"));
  CHECK(hasHeader(out, "Cache-Control: no-store"));
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string text = body(out);
  REQUIRE(parser.parse(text).get(root) == simdjson::SUCCESS);
  CHECK(root["status"].get_string().value() == "ok");
  CHECK(root.at_pointer("/master/pid").get_int64().value() == 77);
  CHECK(root.at_pointer("/master/generation").get_int64().value() == 2);
  CHECK(root.at_pointer("/master/uptime_s").get_int64().value() >= 4);
  CHECK(root.at_pointer("/totals/requests").get_int64().value() == 5);
  simdjson::dom::array rows;
  REQUIRE(root["workers"].get(rows) == simdjson::SUCCESS);
  REQUIRE(rows.size() == 2);
  CHECK(root.at_pointer("/workers/0/pid").get_int64().value() == 42);
  CHECK(root.at_pointer("/workers/0/state").get_string().value() == "ready");
  CHECK(root.at_pointer("/workers/1/pid").get_int64().value() == 0);
  CHECK(root.at_pointer("/workers/1/state").get_string().value() == "waiting-restart");
  // Readers see the region as it is now, not as it was when the handlers were built.
  region.cell(1).traffic.requests.store(6);
  out.clear();
  handlers.respond(get("/health/status"), worker::ConnectionHeader::None, out);
  text = body(out);
  REQUIRE(parser.parse(text).get(root) == simdjson::SUCCESS);
  CHECK(root.at_pointer("/totals/requests").get_int64().value() == 6);
}

TEST_CASE("builtin metrics: Prometheus text with its content type") {
  shared::SharedRegion region = demoRegion();
  // No master start time, no uptime: the GET and the HEAD below must render the
  // same bytes (bug: a millisecond between them changed the length, under ASan
  // in 9 runs of 20).
  region.master().started_at_ms.store(0);
  worker::Handlers handlers(demoConfig(), {}, region);
  std::string out;
  CHECK(handlers.respond(get("/metrics"), worker::ConnectionHeader::None, out) == 200);
  CHECK(hasHeader(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  CHECK(hasHeader(out, "Cache-Control: no-store"));
  std::string text = body(out);
  CHECK(text.find("# TYPE phalanx_requests_total counter\nphalanx_requests_total 5\n") !=
        std::string::npos);
  CHECK(text.find("phalanx_request_duration_seconds_count 5\n") != std::string::npos);
  std::string head_only;
  handlers.respond(get("/metrics", HTTP_HEAD), worker::ConnectionHeader::None, head_only);
  CHECK(head_only.ends_with("\r\n\r\n"));
  CHECK(head_only.find("Content-Length: " + std::to_string(text.size())) != std::string::npos);
}

TEST_CASE("errors close the connection") {
  shared::SharedRegion region = demoRegion();
  worker::Handlers handlers(demoConfig(), {}, region);
  std::string out;
  CHECK(handlers.respondError(431, "headers too large", out) == 431);
  CHECK(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  CHECK(out.find("Connection: close\r\n") != std::string::npos);
}

#include "worker/handlers.h"

#include <doctest/doctest.h>

using namespace phalanx;

namespace {

shared::Config demoConfig() {
  shared::Config config;
  shared::RouteConfig live;
  live.path = "/health/live";
  live.kind = shared::RouteKind::Builtin;
  shared::RouteConfig root;
  root.path = "/";
  root.static_response = {
      .status = 200, .body = "ok\n", .headers = {{"Content-Type", "text/plain"}}};
  config.routes = {live, root};
  return config;
}

worker::Request get(std::string target, uint8_t method = HTTP_GET) {
  worker::Request r;
  r.target = std::move(target);
  r.method = method;
  return r;
}

}  // namespace

TEST_CASE("static routes answer with their configured response") {
  worker::Handlers handlers(demoConfig(),
                            {.slot = 1, .generation = 2, .pid = 42, .started_at_ms = 0});
  std::string out;
  CHECK(handlers.respond(get("/"), worker::ConnectionHeader::None, out) == 200);
  CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(out.ends_with("\r\n\r\nok\n"));
}

TEST_CASE("HEAD gets the headers only") {
  worker::Handlers handlers(demoConfig(), {});
  std::string out;
  handlers.respond(get("/", HTTP_HEAD), worker::ConnectionHeader::None, out);
  CHECK(out.find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(out.ends_with("\r\n\r\n"));
}

TEST_CASE("unknown routes are a JSON 404") {
  worker::Handlers handlers(demoConfig(), {});
  std::string out;
  CHECK(handlers.respond(get("/nope"), worker::ConnectionHeader::None, out) == 404);
  CHECK(out.find("Content-Type: application/json") != std::string::npos);
  CHECK(out.find("\"error\":\"not found\"") != std::string::npos);
}

TEST_CASE("builtin live names the worker") {
  worker::Handlers handlers(demoConfig(),
                            {.slot = 1, .generation = 2, .pid = 42, .started_at_ms = 0});
  std::string out;
  CHECK(handlers.respond(get("/health/live"), worker::ConnectionHeader::None, out) == 200);
  CHECK(out.find("\"status\":\"alive\"") != std::string::npos);
  CHECK(out.find("\"worker\":1,\"pid\":42,\"generation\":2") != std::string::npos);
}

TEST_CASE("errors close the connection") {
  worker::Handlers handlers(demoConfig(), {});
  std::string out;
  CHECK(handlers.respondError(431, "headers too large", out) == 431);
  CHECK(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  CHECK(out.find("Connection: close\r\n") != std::string::npos);
}

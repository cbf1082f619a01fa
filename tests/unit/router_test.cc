#include "worker/router.h"

#include <doctest/doctest.h>
#include <llhttp.h>

using phalanx::shared::RouteConfig;
using phalanx::shared::RouteMatch;
using phalanx::worker::Router;

namespace {
RouteConfig route(RouteMatch match, std::string path, int status) {
  RouteConfig r;
  r.match = match;
  r.path = std::move(path);
  r.static_response.status = status;
  return r;
}
}  // namespace

TEST_CASE("routes match in file order, path exactly, prefix by prefix") {
  Router router({route(RouteMatch::Exact, "/health/live", 201),
                 route(RouteMatch::Prefix, "/api/", 202), route(RouteMatch::Prefix, "/", 203)});
  CHECK(router.match("/health/live")->static_response.status == 201);
  CHECK(router.match("/health/live/x")->static_response.status == 203);
  CHECK(router.match("/api/v1/users")->static_response.status == 202);
  CHECK(router.match("/api")->static_response.status == 203);
  CHECK(router.match("/")->static_response.status == 203);
}

TEST_CASE("no match is nullptr") {
  Router router({route(RouteMatch::Exact, "/only", 200)});
  CHECK(router.match("/other") == nullptr);
  CHECK(router.match("/only/") == nullptr);
  CHECK(router.match("/only") != nullptr);
}

TEST_CASE("static routes keep their delay; other kinds have none") {
  RouteConfig slow = route(RouteMatch::Exact, "/slow", 200);
  slow.static_response.delay_ms = 250;
  RouteConfig live = route(RouteMatch::Exact, "/live", 200);
  live.kind = phalanx::shared::RouteKind::Builtin;
  live.static_response.delay_ms = 99;  // ignored: only static responses wait
  Router router({slow, live, route(RouteMatch::Exact, "/fast", 200)});
  CHECK(router.match("/slow")->delay_ms == 250);
  CHECK(router.match("/live")->delay_ms == 0);
  CHECK(router.match("/fast")->delay_ms == 0);
}

TEST_CASE("a route without methods takes all but TRACE; a list is exact, GET brings HEAD") {
  RouteConfig any = route(RouteMatch::Exact, "/any", 200);
  RouteConfig listed = route(RouteMatch::Exact, "/listed", 200);
  listed.methods = {"GET", "POST"};
  RouteConfig traced = route(RouteMatch::Exact, "/traced", 200);
  traced.methods = {"TRACE"};
  Router router({any, listed, traced});
  const auto* a = router.match("/any");
  CHECK(a->allows(HTTP_GET));
  CHECK(a->allows(HTTP_DELETE));
  CHECK(a->allows(HTTP_PROPFIND));
  CHECK_FALSE(a->allows(HTTP_TRACE));
  CHECK_FALSE(a->allows(HTTP_CONNECT));
  CHECK(a->method_not_allowed.status == 405);
  CHECK(a->method_not_allowed.head.find("\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, "
                                        "OPTIONS\r\n") != std::string::npos);
  const auto* l = router.match("/listed");
  CHECK(l->allows(HTTP_GET));
  CHECK(l->allows(HTTP_HEAD));
  CHECK(l->allows(HTTP_POST));
  CHECK_FALSE(l->allows(HTTP_PUT));
  CHECK(l->method_not_allowed.head.find("\r\nAllow: GET, HEAD, POST\r\n") != std::string::npos);
  const auto* t = router.match("/traced");
  CHECK(t->allows(HTTP_TRACE));
  CHECK_FALSE(t->allows(HTTP_GET));
}

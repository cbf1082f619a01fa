#include "worker/router.h"

#include <doctest/doctest.h>

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
  CHECK(router.match("/api/v1/users?id=3")->static_response.status == 202);
  CHECK(router.match("/api")->static_response.status == 203);
  CHECK(router.match("/")->static_response.status == 203);
}

TEST_CASE("no match is nullptr") {
  Router router({route(RouteMatch::Exact, "/only", 200)});
  CHECK(router.match("/other") == nullptr);
  CHECK(router.match("/only/") == nullptr);
  CHECK(router.match("/only?q") != nullptr);
}

TEST_CASE("pathOf strips the query and the absolute-form authority") {
  CHECK(Router::pathOf("/a/b?c=d") == "/a/b");
  CHECK(Router::pathOf("/a#frag") == "/a");
  CHECK(Router::pathOf("http://example.com/x?y") == "/x");
  CHECK(Router::pathOf("http://example.com") == "/");
  CHECK(Router::pathOf("http://example.com?q") == "/");
  CHECK(Router::pathOf("*") == "*");
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

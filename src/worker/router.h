// Routes, compiled once from the config: match in file order, `path` exactly,
// `prefix` by prefix, on the request's normalized path (Request::path(): no
// query, dot-segments resolved; see path_normalizer.h).
//
// Methods: a route answers the methods its config lists (GET brings HEAD, as
// nginx's limit_except does), or without a list every method but TRACE, which
// would echo a request's headers (cookies, credentials) back to a script.
// Another method gets the route's 405, whose Allow header lists what it takes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/config.h"
#include "worker/http/response.h"

namespace phalanx::worker {

struct Route {
  shared::RouteMatch match = shared::RouteMatch::Exact;
  std::string path;
  shared::RouteKind kind = shared::RouteKind::Static;
  Response static_response;  // kind == Static: rendered once, written as is
  uint32_t delay_ms = 0;     // kind == Static: answer this long after the request
  shared::Builtin builtin = shared::Builtin::Live;
  uint64_t methods = 0;         // one bit per llhttp_method_t this route answers
  Response method_not_allowed;  // the 405, with its Allow header

  bool allows(uint8_t method) const { return method < 64 && ((methods >> method) & 1) != 0; }
};

class Router {
 public:
  // What a route without a "methods" list says it takes: the usual ones (it
  // takes every method but TRACE; listing WebDAV's would help nobody).
  static constexpr std::string_view kDefaultAllow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

  explicit Router(const std::vector<shared::RouteConfig>& routes);

  // The first route that matches `path` (a normalized path), or nullptr.
  const Route* match(std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

}  // namespace phalanx::worker

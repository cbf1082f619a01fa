// Routes, compiled once from the config: match in file order, `path` exactly,
// `prefix` by prefix, on the request target's path (query string excluded).
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
};

class Router {
 public:
  explicit Router(const std::vector<shared::RouteConfig>& routes);

  // The first route that matches `target`'s path, or nullptr.
  const Route* match(std::string_view target) const;

  // The path part of a request target: origin-form "/a?b" → "/a";
  // absolute-form "http://host/a?b" → "/a"; "http://host" → "/".
  static std::string_view pathOf(std::string_view target);

 private:
  std::vector<Route> routes_;
};

}  // namespace phalanx::worker

#include "worker/router.h"

namespace phalanx::worker {

Router::Router(const std::vector<shared::RouteConfig>& routes) {
  routes_.reserve(routes.size());
  for (const auto& config : routes) {
    Route route{.match = config.match,
                .path = config.path,
                .kind = config.kind,
                .static_response = {},
                .delay_ms = 0,
                .builtin = config.builtin};
    if (config.kind == shared::RouteKind::Static) {
      const auto& s = config.static_response;
      route.static_response = makeResponse(s.status, s.body, s.headers);
      route.delay_ms = s.delay_ms;
    }
    routes_.push_back(std::move(route));
  }
}

std::string_view Router::pathOf(std::string_view target) {
  if (!target.empty() && target.front() != '/') {
    // absolute-form: skip "scheme://authority"
    auto scheme_end = target.find("://");
    if (scheme_end != std::string_view::npos) {
      auto path_start = target.find_first_of("/?", scheme_end + 3);
      if (path_start == std::string_view::npos || target[path_start] == '?') return "/";
      target.remove_prefix(path_start);
    }
  }
  auto query = target.find_first_of("?#");
  if (query != std::string_view::npos) target = target.substr(0, query);
  return target;
}

const Route* Router::match(std::string_view target) const {
  std::string_view path = pathOf(target);
  for (const Route& route : routes_) {
    if (route.match == shared::RouteMatch::Exact ? path == route.path
                                                 : path.starts_with(route.path)) {
      return &route;
    }
  }
  return nullptr;
}

}  // namespace phalanx::worker

#include "worker/router.h"

#include <llhttp.h>

#include <algorithm>

#include "worker/dashboard.h"

namespace phalanx::worker {

namespace {

// llhttp's HTTP request methods are 0..33 (its HTTP_METHOD_MAP).
constexpr int kMethodCount = HTTP_SOURCE + 1;

uint64_t bitOf(std::string_view name) {
  for (int m = 0; m < kMethodCount; ++m) {
    if (name == llhttp_method_name(static_cast<llhttp_method_t>(m))) return uint64_t{1} << m;
  }
  return 0;  // config validation lets only known names through
}

void compileMethods(const std::vector<std::string>& names, Route& route) {
  std::string allow;
  if (names.empty()) {
    route.methods = ((uint64_t{1} << kMethodCount) - 1) & ~bitOf("TRACE") & ~bitOf("CONNECT");
    allow = Router::kDefaultAllow;
  }
  bool head_listed = std::find(names.begin(), names.end(), "HEAD") != names.end();
  for (const std::string& name : names) {
    route.methods |= bitOf(name);
    allow += (allow.empty() ? "" : ", ") + name;
    if (name == "GET" && !head_listed) {
      route.methods |= bitOf("HEAD");
      allow += ", HEAD";
    }
  }
  route.method_not_allowed = makeJsonError(405, "method not allowed", {{"Allow", allow}});
}

}  // namespace

Router::Router(const shared::Config& config) {
  build(config.routes, config.upstreams, config.listen);
}

Router::Router(const std::vector<shared::RouteConfig>& routes) {
  build(routes, {}, {});
}

void Router::build(const std::vector<shared::RouteConfig>& routes,
                   const std::map<std::string, shared::UpstreamConfig>& upstreams,
                   const std::vector<shared::Address>& listen) {
  routes_.reserve(routes.size());
  for (const auto& config : routes) {
    Route route{.match = config.match,
                .path = config.path,
                .kind = config.kind,
                .static_response = {},
                .delay_ms = 0,
                .builtin = config.builtin,
                .upstream = 0,
                .retry_on = 0,
                .methods = 0,
                .method_not_allowed = {},
                .listeners = ~uint64_t{0},
                .index = static_cast<uint32_t>(routes_.size()),
                .guarded = !config.allow.empty() || !config.auth.empty() ||
                           !config.rate_limits.empty() || config.cache.has_value()};
    if (!config.listen.empty()) {
      route.listeners = 0;
      for (const shared::Address& address : config.listen) {
        auto it = std::find(listen.begin(), listen.end(), address);  // validation: it is there
        size_t index = static_cast<size_t>(std::distance(listen.begin(), it));
        if (index < 64) route.listeners |= uint64_t{1} << index;
      }
    }
    if (config.kind == shared::RouteKind::Static) {
      const auto& s = config.static_response;
      route.static_response = makeResponse(s.status, s.body, s.headers);
      route.delay_ms = s.delay_ms;
    }
    if (config.kind == shared::RouteKind::Builtin && config.builtin == shared::Builtin::Dashboard) {
      // The page polls the status route; its path is put in once, here.
      const shared::RouteConfig* status = shared::statusRouteFor(routes, listen, config);
      route.static_response = status != nullptr
                                  ? makeDashboardResponse(status->path)
                                  : makeJsonError(500, "dashboard without a status route");
    }
    if (config.kind == shared::RouteKind::Upstream) {
      auto it = upstreams.find(config.upstream);  // validation made sure it exists
      route.upstream = static_cast<uint32_t>(std::distance(upstreams.begin(), it));
      for (int status : config.retry_on) {
        route.retry_on |= status == 502 ? kRetryOn502 : status == 503 ? kRetryOn503 : kRetryOn504;
      }
    }
    compileMethods(config.methods, route);
    routes_.push_back(std::move(route));
  }
}

const Route* Router::match(std::string_view path, uint32_t listener) const {
  for (const Route& route : routes_) {
    if (!route.servesOn(listener)) continue;
    if (route.match == shared::RouteMatch::Exact ? path == route.path
                                                 : path.starts_with(route.path)) {
      return &route;
    }
  }
  return nullptr;
}

}  // namespace phalanx::worker

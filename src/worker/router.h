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
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shared/config.h"
#include "worker/http/response.h"

namespace phalanx::worker {

// Route::retry_on bits: the upstream statuses a proxied request is retried on.
inline constexpr uint8_t kRetryOn502 = 1;
inline constexpr uint8_t kRetryOn503 = 2;
inline constexpr uint8_t kRetryOn504 = 4;

struct Route {
  shared::RouteMatch match = shared::RouteMatch::Exact;
  std::string path;
  shared::RouteKind kind = shared::RouteKind::Static;
  Response static_response;  // kind == Static, or a dashboard (its page): rendered once, as is
  uint32_t delay_ms = 0;     // kind == Static: answer this long after the request
  shared::Builtin builtin = shared::Builtin::Live;
  uint32_t upstream = 0;  // kind == Upstream: index of the upstream in config order (by name)
  uint8_t retry_on = 0;   // kind == Upstream: kRetryOn* bits
  uint64_t methods = 0;   // one bit per llhttp_method_t this route answers
  Response method_not_allowed;  // the 405, with its Allow header

  uint64_t listeners = ~uint64_t{0};  // bit i: served on config.listen[i]
  uint32_t index = 0;  // in config.routes: the gateway's per-route access policy
  // An allow list, auth, a rate limit or a cache: the gateway answers it
  // (gateway/guarded_exchange.h), whatever its handler.
  bool guarded = false;

  bool allows(uint8_t method) const { return method < 64 && ((methods >> method) & 1) != 0; }
  bool servesOn(uint32_t listener) const { return listener >= 64 || ((listeners >> listener) & 1); }
};

class Router {
 public:
  // What a route without a "methods" list says it takes: the usual ones (it
  // takes every method but TRACE; listing WebDAV's would help nobody).
  static constexpr std::string_view kDefaultAllow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

  // From the whole config: a proxied route gets the index of its upstream
  // (name order), a route with "listen" the set of listen addresses it serves.
  explicit Router(const shared::Config& config);
  // Routes alone (no upstreams, every route on every listener): unit tests.
  explicit Router(const std::vector<shared::RouteConfig>& routes);

  // The first route that matches `path` (a normalized path) on the listen
  // address with index `listener`, or nullptr.
  const Route* match(std::string_view path, uint32_t listener = 0) const;

 private:
  void build(const std::vector<shared::RouteConfig>& routes,
             const std::map<std::string, shared::UpstreamConfig>& upstreams,
             const std::vector<shared::Address>& listen);
  std::vector<Route> routes_;
};

}  // namespace phalanx::worker

// The "routes" section: match, handler, options and methods of each route.
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "shared/config_parse.h"

namespace phalanx::shared {

namespace {

// Whether `earlier` is on every listen address `route` is on (`listen`: the
// config's top-level addresses).
bool listensWherever(const std::vector<Address>& listen, const RouteConfig& earlier,
                     const RouteConfig& route) {
  if (earlier.listen.empty()) return true;
  const std::vector<Address>& addresses = route.listen.empty() ? listen : route.listen;
  return std::all_of(addresses.begin(), addresses.end(), [&](const Address& address) {
    return std::find(earlier.listen.begin(), earlier.listen.end(), address) != earlier.listen.end();
  });
}

}  // namespace

namespace config_parse {

namespace {

using json::AtLeast;
using json::forEachItem;
using json::indexPath;
using json::inQuotes;
using json::kMaxU64;
using json::ObjectReader;
using json::readString;
using json::readUnsigned;

bool isTokenChar(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

void parseHeaders(Parse& p, const std::string& path, element value,
                  std::vector<std::pair<std::string, std::string>>& out) {
  // phalanx writes these itself; a second copy would make the response ambiguous.
  static constexpr const char* kOwnHeaders[] = {"Content-Length", "Date", "Server", "Connection",
                                                "Transfer-Encoding"};
  ObjectReader r(p.errors, path, value);
  for (const auto& entry : r.entries()) {
    std::string_view name = entry.first;  // a plain variable: lambdas below capture it
    element field = entry.second;
    std::string header_path = r.pathOf(name);
    std::string text;
    if (!readString(p.errors, header_path, field, text, true)) continue;
    if (name.empty() || !std::all_of(name.begin(), name.end(), isTokenChar)) {
      p.errors.add(header_path, "not a valid header name");
      continue;
    }
    bool own = std::any_of(std::begin(kOwnHeaders), std::end(kOwnHeaders), [&](const char* h) {
      return name.size() == std::strlen(h) && strncasecmp(name.data(), h, name.size()) == 0;
    });
    if (own) {
      p.errors.add(header_path, "phalanx sets this header itself");
      continue;
    }
    // CR or LF would let the value start a header or a body of its own.
    bool clean = std::all_of(text.begin(), text.end(),
                             [](unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); });
    if (!clean) {
      p.errors.add(header_path, "value must not contain CR, LF or other control characters");
      continue;
    }
    out.emplace_back(std::string(name), std::move(text));
  }
}

void parseStatic(Parse& p, const std::string& path, element value, StaticResponseConfig& out) {
  ObjectReader r(p.errors, path, value);
  if (auto status = r.get("status")) {
    auto number = readUnsigned(p.errors, r.pathOf("status"), *status, AtLeast::Zero, kMaxU64);
    // A 1xx would leave the client waiting for a final response that never comes.
    if (number && (*number < 200 || *number > 599)) {
      p.errors.add(r.pathOf("status"), "must be 200-599");
    } else if (number) {
      out.status = static_cast<int>(*number);
    }
  }
  // HTTP forbids a body on these; a client would read it as the next response.
  if (r.string("body", out.body, true) && !out.body.empty() &&
      (out.status < 200 || out.status == 204 || out.status == 304)) {
    p.errors.add(r.pathOf("body"), "must be empty for status " + std::to_string(out.status));
  }
  if (auto headers = r.get("headers")) parseHeaders(p, r.pathOf("headers"), *headers, out.headers);
  if (auto delay = r.get("delay_ms")) {
    auto number =
        readUnsigned(p.errors, r.pathOf("delay_ms"), *delay, AtLeast::Zero, kMaxStaticDelayMs);
    if (number) out.delay_ms = static_cast<uint32_t>(*number);
  }
}

void parseRouteMatch(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> exact = r.get("path");
  std::optional<element> prefix = r.get("prefix");
  if (exact && prefix) return r.fail("has both \"path\" and \"prefix\"; give one");
  if (!exact && !prefix) return r.fail("needs \"path\" (exact) or \"prefix\"");
  route.match = exact ? RouteMatch::Exact : RouteMatch::Prefix;
  std::string path = r.pathOf(exact ? "path" : "prefix");
  if (!readString(p.errors, path, exact ? *exact : *prefix, route.path)) return;
  if (route.path[0] != '/') {
    p.errors.add(path, "must start with '/'");
    route.path.clear();
  } else if (route.path.find_first_of("?# ") != std::string::npos ||
             std::any_of(route.path.begin(), route.path.end(),
                         [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    // The router matches the path without its query, so these could never match.
    p.errors.add(path, "must not contain '?', '#', spaces or control characters");
    route.path.clear();
  }
  // The name of the route's figures (metric label, status, errors).
  if (r.string("name", route.name, false) &&
      (route.name.empty() || route.name.size() > 63 || route.name[0] == '(' ||
       std::any_of(route.name.begin(), route.name.end(), [](unsigned char c) {
         return c <= 0x20 || c >= 0x7f || c == '"' || c == '\\';
       }))) {
    p.errors.add(r.pathOf("name"),
                 "must be 1-63 printable ASCII characters without spaces, quotes or "
                 "backslashes, not starting with '('");
    route.name.clear();
  }
}

void parseRouteHandler(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> static_response = r.get("static");
  std::optional<element> builtin = r.get("builtin");
  std::optional<element> upstream = r.get("upstream");
  int handlers =
      int{static_response.has_value()} + int{builtin.has_value()} + int{upstream.has_value()};
  if (handlers == 0) return r.fail("needs one of \"static\", \"builtin\" or \"upstream\"");
  if (handlers > 1) return r.fail("has more than one of \"static\", \"builtin\", \"upstream\"");
  if (static_response) {
    route.kind = RouteKind::Static;
    parseStatic(p, r.pathOf("static"), *static_response, route.static_response);
  } else if (builtin) {
    route.kind = RouteKind::Builtin;
    std::string name;
    if (!readString(p.errors, r.pathOf("builtin"), *builtin, name)) return;
    static constexpr std::pair<std::string_view, Builtin> kBuiltins[] = {
        {"live", Builtin::Live},
        {"ready", Builtin::Ready},
        {"status", Builtin::Status},
        {"metrics", Builtin::Metrics},
        {"dashboard", Builtin::Dashboard}};
    auto known = std::find_if(std::begin(kBuiltins), std::end(kBuiltins),
                              [&](const auto& b) { return b.first == name; });
    if (known != std::end(kBuiltins)) {
      route.builtin = known->second;
    } else {
      p.errors.add(r.pathOf("builtin"), "unknown builtin " + inQuotes(name) +
                                            " (known: live, ready, status, metrics, dashboard)");
    }
  } else {
    route.kind = RouteKind::Upstream;
    if (!readString(p.errors, r.pathOf("upstream"), *upstream, route.upstream)) return;
    if (p.config.upstreams.count(route.upstream) == 0) {
      p.errors.add(r.pathOf("upstream"), "no upstream named " + inQuotes(route.upstream));
    }
  }
}

// "rate_limit": one name or a list of names, each a rate_limits entry.
void parseRouteLimits(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> value = r.get("rate_limit");
  if (!value) return;
  auto add = [&](const std::string& path, element item) {
    std::string name;
    if (!readString(p.errors, path, item, name)) return;
    if (p.config.rate_limits.count(name) == 0) {
      p.errors.add(path, "no rate limit named " + inQuotes(name));
    } else if (std::find(route.rate_limits.begin(), route.rate_limits.end(), name) !=
               route.rate_limits.end()) {
      p.errors.add(path, "listed twice");
    } else {
      route.rate_limits.push_back(std::move(name));
    }
  };
  if (value->type() == simdjson::dom::element_type::STRING) {
    add(r.pathOf("rate_limit"), *value);
  } else {
    forEachItem(p.errors, r.pathOf("rate_limit"), *value, true, add);
  }
}

void parseRouteAuth(Parse& p, ObjectReader& r, RouteConfig& route) {
  if (r.choice("auth", route.auth, {"api_key", "jwt"})) {
    if (route.auth == "jwt" && !p.config.jwt) {
      p.errors.add(r.pathOf("auth"), "\"jwt\" needs a top-level \"jwt\" section");
    }
    if (route.auth == "api_key" && p.config.api_keys.empty() && p.config.api_key_file.empty()) {
      p.errors.add(r.pathOf("auth"), "\"api_key\" needs \"api_keys\" or \"api_key_file\"");
    }
  }
  if (auto tiers = r.get("tiers")) {
    if (route.auth.empty()) p.errors.add(r.pathOf("tiers"), "only on a route with \"auth\"");
    forEachItem(p.errors, r.pathOf("tiers"), *tiers, true,
                [&](const std::string& path, element item) {
                  std::string name;
                  if (!readString(p.errors, path, item, name)) return;
                  if (p.config.tiers.count(name) == 0) {
                    p.errors.add(path, "no tier named " + inQuotes(name));
                  } else {
                    route.tiers.push_back(std::move(name));
                  }
                });
  }
  for (const std::string& name : route.rate_limits) {
    const RateLimitConfig& limit = p.config.rate_limits.at(name);
    if (limit.key == LimitKey::ApiKey && route.auth.empty()) {
      p.errors.add(r.pathOf("rate_limit"), "rate limit " + inQuotes(name) +
                                               " counts by api_key: the route needs \"auth\"");
    }
  }
}

void parseRouteAllow(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> allow = r.get("allow");
  if (!allow) return;
  forEachItem(p.errors, r.pathOf("allow"), *allow, true,
              [&](const std::string& path, element item) {
                if (auto cidr = readCidr(p.errors, path, item)) route.allow.push_back(*cidr);
              });
}

// The cache keeps upstream answers; a static route's answer costs nothing to make.
void parseRouteCache(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> cache = r.get("cache");
  if (!cache) return;
  if (!r.get("upstream")) p.errors.add(r.pathOf("cache"), "only for a route with \"upstream\"");
  ObjectReader c(p.errors, r.pathOf("cache"), *cache);
  CacheConfig& config = route.cache.emplace();
  c.u32("ttl_ms", config.ttl_ms);
  c.boolean("shared", config.shared);
}

void parseRouteOptions(Parse& p, ObjectReader& r, RouteConfig& route) {
  parseRouteLimits(p, r, route);
  parseRouteAuth(p, r, route);
  parseRouteAllow(p, r, route);
  parseRouteCache(p, r, route);
}

void parseMethods(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> methods = r.get("methods");
  if (!methods) return;
  forEachItem(
      p.errors, r.pathOf("methods"), *methods, true, [&](const std::string& path, element item) {
        std::string name;
        if (!readString(p.errors, path, item, name)) return;
        if (name == "CONNECT") {
          p.errors.add(path, "CONNECT is not supported (phalanx is no tunnel)");
        } else if (!isRouteMethod(name)) {
          p.errors.add(
              path, "unknown method " + inQuotes(name) + " (methods are uppercase, like \"GET\")");
        } else if (std::find(route.methods.begin(), route.methods.end(), name) !=
                   route.methods.end()) {
          p.errors.add(path, "listed twice");
        } else {
          route.methods.push_back(std::move(name));
        }
      });
}

// 502, 503 and 504 are the statuses of a failed hop (bad gateway, unavailable,
// gateway timeout), worth another target; any other status is the upstream's
// own answer, and asking again would only repeat it.
void parseRetryOn(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> retry_on = r.get("retry_on");
  if (!retry_on) return;
  if (!r.get("upstream")) {
    return p.errors.add(r.pathOf("retry_on"), "only for a route with \"upstream\"");
  }
  forEachItem(p.errors, r.pathOf("retry_on"), *retry_on, true,
              [&](const std::string& path, element item) {
                auto status = readUnsigned(p.errors, path, item, AtLeast::Zero, kMaxU64);
                if (!status) return;
                if (*status != 502 && *status != 503 && *status != 504) {
                  p.errors.add(path, "must be 502, 503 or 504, got " + std::to_string(*status));
                } else if (std::find(route.retry_on.begin(), route.retry_on.end(),
                                     static_cast<int>(*status)) != route.retry_on.end()) {
                  p.errors.add(path, "listed twice");
                } else {
                  route.retry_on.push_back(static_cast<int>(*status));
                }
              });
}

// A route for some listeners only (an admin port, an internal one): each must
// be a listener, or the route could never match where the file says it does.
void parseRouteListen(Parse& p, ObjectReader& r, RouteConfig& route) {
  std::optional<element> listen = r.get("listen");
  if (!listen) return;
  forEachItem(p.errors, r.pathOf("listen"), *listen, true,
              [&](const std::string& path, element item) {
                std::optional<Address> address = readAddress(p.errors, path, item);
                if (!address) return;
                const std::vector<Address>& listeners = p.config.listen;
                if (std::find(listeners.begin(), listeners.end(), *address) == listeners.end()) {
                  // A listener that was itself invalid is reported already, at "listen".
                  if (p.listen_complete) {
                    p.errors.add(path, inQuotes(address->text) +
                                           " is not one of the top-level \"listen\" addresses");
                  }
                } else if (std::find(route.listen.begin(), route.listen.end(), *address) !=
                           route.listen.end()) {
                  p.errors.add(path, "listed twice");
                } else {
                  route.listen.push_back(std::move(*address));
                }
              });
}

// Routes match in order: an identical earlier route on the same listeners
// makes this one unreachable.
void checkReachable(Parse& p, const std::string& path, const RouteConfig& route) {
  for (size_t i = 0; i < p.config.routes.size() && !route.path.empty(); ++i) {
    const RouteConfig& earlier = p.config.routes[i];
    if (earlier.match == route.match && earlier.path == route.path &&
        listensWherever(p.config.listen, earlier, route)) {
      const char* how = route.match == RouteMatch::Exact ? "path" : "prefix";
      return p.errors.add(path, std::string("same ") + how + " as " + indexPath("routes", i) +
                                    ", which always matches first");
    }
  }
}

// A dashboard's page polls a status route from the browser, over the same
// listener it was loaded from: without one there, the page could show nothing.
void checkDashboards(Parse& p) {
  const std::vector<RouteConfig>& routes = p.config.routes;
  for (size_t i = 0; i < routes.size(); ++i) {
    if (routes[i].kind != RouteKind::Builtin || routes[i].builtin != Builtin::Dashboard) continue;
    if (statusRouteFor(routes, p.config.listen, routes[i]) != nullptr) continue;
    bool elsewhere = std::any_of(routes.begin(), routes.end(), [](const RouteConfig& route) {
      return route.kind == RouteKind::Builtin && route.builtin == Builtin::Status;
    });
    p.errors.add(indexPath("routes", i) + ".builtin",
                 std::string("\"dashboard\" needs a route with builtin \"status\"") +
                     (elsewhere ? " on every listen address the dashboard is on" : ""));
  }
}

}  // namespace

void parseRoutes(Parse& p, element value) {
  forEachItem(p.errors, "routes", value, true, [&p](const std::string& path, element item) {
    RouteConfig route;
    {
      ObjectReader r(p.errors, path, item);
      if (r.valid()) {
        parseRouteMatch(p, r, route);
        parseRouteHandler(p, r, route);
        parseRouteOptions(p, r, route);
        parseMethods(p, r, route);
        parseRetryOn(p, r, route);
        parseRouteListen(p, r, route);
      }
    }
    checkReachable(p, path, route);
    // Pushed even when invalid, so routes[i] in a message is the file's i.
    p.config.routes.push_back(std::move(route));
  });
  checkDashboards(p);
}

}  // namespace config_parse

bool isRouteMethod(std::string_view name) {
  static constexpr std::string_view kMethods[] = {
      "DELETE",   "GET",        "HEAD",     "POST",   "PUT",       "OPTIONS",     "TRACE",
      "COPY",     "LOCK",       "MKCOL",    "MOVE",   "PROPFIND",  "PROPPATCH",   "SEARCH",
      "UNLOCK",   "BIND",       "REBIND",   "UNBIND", "ACL",       "REPORT",      "MKACTIVITY",
      "CHECKOUT", "MERGE",      "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH",
      "PURGE",    "MKCALENDAR", "LINK",     "UNLINK", "SOURCE"};
  return std::find(std::begin(kMethods), std::end(kMethods), name) != std::end(kMethods);
}

const RouteConfig* statusRouteFor(const std::vector<RouteConfig>& routes,
                                  const std::vector<Address>& listen,
                                  const RouteConfig& dashboard) {
  for (const RouteConfig& route : routes) {
    if (route.kind == RouteKind::Builtin && route.builtin == Builtin::Status &&
        !route.path.empty() && listensWherever(listen, route, dashboard)) {
      return &route;
    }
  }
  return nullptr;
}

}  // namespace phalanx::shared

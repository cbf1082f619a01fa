// Fuzzing of the config parser: parseConfig() must never crash, hang or leak on
// any bytes, and what it accepts must hold the invariants the rest of phalanx
// relies on without checking again (the master, the workers and the router
// take a Config as valid). What it refuses must be reported as one-line errors.
//
// Input: the bytes of a config file.
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "shared/config.h"

namespace {

using namespace phalanx::shared;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "config_fuzz: %s %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  __builtin_trap();
}

void check(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) fail(what, detail);
}

bool isControl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

bool isToken(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool validRate(const Rate& rate) {
  return rate.count > 0 && rate.period_ms > 0;
}

void checkErrors(const ConfigResult& result) {
  for (const std::string& line : result.errors) {
    check(!line.empty(), "an empty error line");
    check(std::none_of(line.begin(), line.end(), [](unsigned char c) { return isControl(c); }),
          "an error line with a control character (one line each, printable):", line);
    check(line.find(": ") != std::string::npos, "an error without `path: what`:", line);
  }
}

void checkRoutes(const Config& config) {
  check(!config.routes.empty(), "accepted without routes");
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const RouteConfig& route = config.routes[i];
    check(!route.path.empty() && route.path[0] == '/',
          "a route path not starting with '/':", route.path);
    check(route.path.find_first_of("?# ") == std::string::npos &&
              std::none_of(route.path.begin(), route.path.end(),
                           [](unsigned char c) { return isControl(c); }),
          "a route path that can never match:", route.path);
    for (size_t j = 0; j < i; ++j) {
      check(config.routes[j].match != route.match || config.routes[j].path != route.path,
            "an unreachable route (same as an earlier one):", route.path);
    }
    if (route.kind == RouteKind::Upstream) {
      check(config.upstreams.count(route.upstream) == 1,
            "a route to an unknown upstream:", route.upstream);
    }
    for (const std::string& limit : route.rate_limits) {
      check(config.rate_limits.count(limit) == 1, "a route with an unknown rate limit:", limit);
    }
    for (size_t m = 0; m < route.methods.size(); ++m) {
      check(isRouteMethod(route.methods[m]) && route.methods[m] != "CONNECT",
            "a route method phalanx cannot take:", route.methods[m]);
      check(std::find(route.methods.begin(), route.methods.begin() + m, route.methods[m]) ==
                route.methods.begin() + m,
            "a route method listed twice:", route.methods[m]);
    }
    if (route.kind == RouteKind::Static) {
      const StaticResponseConfig& s = route.static_response;
      check(s.status >= 200 && s.status <= 599, "a static status outside 200-599");
      check(s.body.empty() || (s.status != 204 && s.status != 304), "a body on a 204 or 304");
      check(s.delay_ms <= kMaxStaticDelayMs, "a static delay over the maximum");
      for (const auto& [name, value] : s.headers) {
        check(isToken(name), "a static header name that is not a token:", name);
        check(std::none_of(value.begin(), value.end(),
                           [](unsigned char c) { return c != '\t' && isControl(c); }),
              "a static header value with a control character:", name);
      }
    }
  }
}

void checkUpstreams(const Config& config) {
  for (const auto& [name, upstream] : config.upstreams) {
    check(!upstream.targets.empty(), "an upstream without targets:", name);
    for (size_t i = 0; i < upstream.targets.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        check(!(upstream.targets[i].address == upstream.targets[j].address),
              "an upstream with the same target twice:", name);
      }
    }
    const BreakerConfig& b = upstream.breaker;
    check(b.failure_rate > 0 && b.failure_rate <= 1,
          "a breaker failure_rate outside (0, 1]:", name);
    check(b.share == "local" || config.redis.has_value(), "a cluster breaker without redis:", name);
    if (upstream.health_check) {
      check(!upstream.health_check->path.empty() && upstream.health_check->path[0] == '/',
            "a health check path not starting with '/':", name);
    }
  }
}

void checkLimitsAndKeys(const Config& config) {
  const Limits& limits = config.limits;
  check(limits.max_header_bytes >= 1024 && limits.max_header_bytes <= kMaxHeaderBytes,
        "max_header_bytes outside 1024..1 MiB");
  check(limits.max_headers >= 1 && limits.max_headers <= kMaxHeaderFields,
        "max_headers outside 1..10000");
  for (const auto& [name, tier] : config.tiers) {
    check(tier.limit.rate.count == 0 || validRate(tier.limit.rate), "a tier with a broken rate:",
          name);
  }
  for (const auto& [name, limit] : config.rate_limits) {
    check(validRate(limit.limit.rate), "a rate limit with an empty rate:", name);
    check(limit.limit.mode == "local" || config.redis.has_value(),
          "a cluster limit without redis:", name);
  }
  for (size_t i = 0; i < config.api_keys.size(); ++i) {
    const ApiKeyConfig& key = config.api_keys[i];
    check(config.tiers.count(key.tier) == 1, "an api key with an unknown tier:", key.tier);
    check(key.key.empty() != key.sha256.empty(), "an api key with neither or both of key, sha256");
    check(std::all_of(key.key.begin(), key.key.end(),
                      [](unsigned char c) { return c > 0x20 && c < 0x7f; }),
          "an api key that cannot travel in a header");
    for (size_t j = 0; j < i; ++j) {
      check(key.key.empty() || config.api_keys[j].key != key.key, "the same api key twice");
    }
  }
}

void checkConfig(const Config& config) {
  check(!config.listen.empty(), "accepted without listen addresses");
  for (size_t i = 0; i < config.listen.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      check(!(config.listen[i] == config.listen[j]), "the same listen address twice");
    }
  }
  check(config.workers <= kMaxWorkers, "more workers than shared memory has slots");
  check(config.control_socket.size() < sizeof(sockaddr_un{}.sun_path),
        "a control socket path too long for sun_path");
  check(config.limits.max_header_bytes >= 1024, "max_header_bytes under 1024");
  const SupervisorConfig& s = config.supervisor;
  check(s.restart_max_ms >= s.restart_base_ms, "restart_max_ms below restart_base_ms");
  check(s.restart_factor >= 1.0, "restart_factor below 1 (or NaN)");
  checkRoutes(config);
  checkUpstreams(config);
  checkLimitsAndKeys(config);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ConfigResult result = parseConfig(text);
  check(result.config.has_value() == result.errors.empty(),
        "a config and errors together, or neither");
  checkErrors(result);
  if (result.config) checkConfig(*result.config);
  // A pure function: the same bytes, the same verdict (the master and its
  // workers parse the same bytes and must agree).
  ConfigResult again = parseConfig(text);
  check(again.errors == result.errors, "a second parse gave other errors");
  check(again.config.has_value() == result.config.has_value(), "a second parse changed its mind");
  return 0;
}

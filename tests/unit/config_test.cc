#include "shared/config.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "temp_dir.h"

namespace doctest {
// So a failed CHECK on an error list prints the lines.
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& lines) {
    std::string text = "{";
    for (const std::string& line : lines) text += "\n  \"" + line + "\"";
    return (text + "\n}").c_str();
  }
};
}  // namespace doctest

namespace phalanx::shared {
namespace {

using Errors = std::vector<std::string>;

// The smallest valid config; tests add one section to it.
constexpr const char* kBase =
    R"("listen": ["127.0.0.1:8080"], "routes": [{"path": "/", "static": {}}])";

std::string doc(const std::string& extra = "") {
  return "{" + std::string(kBase) + (extra.empty() ? "" : ", " + extra) + "}";
}

// A config whose only route is `route`, plus `extra` top-level keys.
std::string withRoute(const std::string& route, const std::string& extra = "") {
  return R"({"listen": ["127.0.0.1:8080"], "routes": [)" + route + "]" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

Errors errorsOf(const std::string& json) {
  ConfigResult result = parseConfig(json);
  CHECK(result.config.has_value() == result.errors.empty());
  return result.errors;
}

Config valid(const std::string& json) {
  ConfigResult result = parseConfig(json);
  for (const std::string& error : result.errors) FAIL_CHECK("unexpected error: " << error);
  REQUIRE(result.config.has_value());
  return *result.config;
}

// The design's example, verbatim.
constexpr const char* kDesignExample = R"({
  "listen": ["127.0.0.1:8080"],
  "workers": "auto",
  "control_socket": "run/phalanx.sock",
  "log": { "level": "info", "access": "stderr" },
  "limits": { "max_header_bytes": 16384, "max_body_bytes": 1048576,
              "header_timeout_ms": 10000, "idle_timeout_ms": 75000,
              "max_connections": 10000 },
  "supervisor": { "restart_base_ms": 100, "restart_factor": 1.5,
                  "restart_max_ms": 15000, "min_uptime_ms": 30000,
                  "max_unstable_restarts": 15, "max_memory": "512M",
                  "heartbeat_timeout_ms": 30000, "drain_timeout_ms": 30000,
                  "shutdown_timeout_ms": 30000,
                  "max_requests": 0, "max_requests_jitter": 0 },
  "redis": { "address": "127.0.0.1:6379", "timeout_ms": 50 },
  "upstreams": {
    "api": { "targets": [ { "address": "127.0.0.1:9001", "weight": 1 } ],
             "balance": "round_robin",
             "connect_timeout_ms": 1000, "timeout_ms": 30000, "retries": 1,
             "health_check": { "path": "/health", "interval_ms": 2000 },
             "breaker": { "consecutive_failures": 5, "failure_rate": 0.5,
                          "minimum_calls": 10, "window_ms": 10000,
                          "open_ms": 30000, "half_open_calls": 2,
                          "slow_call_ms": 0, "share": "local" } } },
  "tiers": { "free": { "rate": "100/h", "burst": 10 },
             "premium": { "rate": "10000/h", "burst": 100 } },
  "api_keys": [ { "key": "k-123-0123456789abcdef", "tier": "premium" } ],
  "rate_limits": { "per_ip": { "key": "ip", "rate": "1000/15m", "burst": 100,
                               "mode": "local", "on_redis_error": "local" } },
  "routes": [
    { "path": "/health/live", "builtin": "live" },
    { "path": "/metrics", "builtin": "metrics" },
    { "prefix": "/api/", "upstream": "api", "rate_limit": "per_ip",
      "auth": "api_key", "cache": { "ttl_ms": 300000 } },
    { "path": "/", "static": { "status": 200, "body": "ok\n",
                              "headers": { "Content-Type": "text/plain" } } }
  ]
})";


TEST_CASE("config: the design's example parses with its values") {
  Config c = valid(kDesignExample);
  REQUIRE(c.listen.size() == 1);
  CHECK(c.listen[0].text == "127.0.0.1:8080");
  CHECK(c.listen[0].port == 8080);
  CHECK(c.workers == 0);
  CHECK(effectiveWorkers(c) >= 1);
  CHECK(c.control_socket == "run/phalanx.sock");
  CHECK(c.log.level == "info");
  CHECK(c.log.access == "stderr");
  CHECK(c.limits.max_header_bytes == 16384);
  CHECK(c.limits.max_body_bytes == 1048576);
  CHECK(c.limits.header_timeout_ms == 10000);
  CHECK(c.limits.idle_timeout_ms == 75000);
  CHECK(c.limits.max_connections == 10000);
  CHECK(c.supervisor.restart_base_ms == 100);
  CHECK(c.supervisor.restart_factor == 1.5);
  CHECK(c.supervisor.restart_max_ms == 15000);
  CHECK(c.supervisor.min_uptime_ms == 30000);
  CHECK(c.supervisor.max_unstable_restarts == 15);
  CHECK(c.supervisor.max_memory_bytes == 512ull << 20);
  CHECK(c.supervisor.heartbeat_timeout_ms == 30000);
  CHECK(c.supervisor.drain_timeout_ms == 30000);
  CHECK(c.supervisor.shutdown_timeout_ms == 30000);
  CHECK(c.supervisor.max_requests == 0);
  CHECK(c.supervisor.max_requests_jitter == 0);
  REQUIRE(c.redis.has_value());
  CHECK(c.redis->address == *parseAddress("127.0.0.1:6379", nullptr));
  CHECK(c.redis->timeout_ms == 50);

  REQUIRE(c.upstreams.count("api") == 1);
  const UpstreamConfig& api = c.upstreams.at("api");
  REQUIRE(api.targets.size() == 1);
  CHECK(api.targets[0].address.port == 9001);
  CHECK(api.targets[0].weight == 1);
  CHECK(api.balance == "round_robin");
  CHECK(api.connect_timeout_ms == 1000);
  CHECK(api.timeout_ms == 30000);
  CHECK(api.retries == 1);
  REQUIRE(api.health_check.has_value());
  CHECK(api.health_check->path == "/health");
  CHECK(api.health_check->interval_ms == 2000);
  CHECK(api.breaker.consecutive_failures == 5);
  CHECK(api.breaker.failure_rate == 0.5);
  CHECK(api.breaker.minimum_calls == 10);
  CHECK(api.breaker.window_ms == 10000);
  CHECK(api.breaker.open_ms == 30000);
  CHECK(api.breaker.half_open_calls == 2);
  CHECK(api.breaker.slow_call_ms == 0);
  CHECK(api.breaker.share == "local");

  REQUIRE(c.tiers.size() == 2);
  CHECK(c.tiers.at("free").limit.rate.count == 100);
  CHECK(c.tiers.at("free").limit.rate.period_ms == 3'600'000);
  CHECK(c.tiers.at("free").limit.burst == 10);
  CHECK(c.tiers.at("premium").limit.rate.count == 10000);
  CHECK(c.tiers.at("premium").limit.burst == 100);
  REQUIRE(c.api_keys.size() == 1);
  CHECK(c.api_keys[0].key == "k-123-0123456789abcdef");
  CHECK(c.api_keys[0].tier == "premium");
  const RateLimitConfig& per_ip = c.rate_limits.at("per_ip");
  CHECK(per_ip.key == LimitKey::Ip);
  CHECK(per_ip.limit.rate.count == 1000);
  CHECK(per_ip.limit.rate.period_ms == 15 * 60'000);
  CHECK(per_ip.limit.burst == 100);
  CHECK(per_ip.limit.mode == "local");
  CHECK(per_ip.limit.on_redis_error == "local");
  CHECK(per_ip.limit.headers == RateLimitHeaders::Draft);

  REQUIRE(c.routes.size() == 4);
  CHECK(c.routes[0].match == RouteMatch::Exact);
  CHECK(c.routes[0].path == "/health/live");
  CHECK(c.routes[0].kind == RouteKind::Builtin);
  CHECK(c.routes[0].builtin == Builtin::Live);
  const RouteConfig& api_route = c.routes[2];
  CHECK(api_route.rate_limits == std::vector<std::string>{"per_ip"});
  CHECK(api_route.auth == "api_key");
  REQUIRE(api_route.cache.has_value());
  CHECK(api_route.cache->ttl_ms == 300000);
  CHECK_FALSE(api_route.cache->shared);
  CHECK(c.routes[3].path == "/");
  CHECK(c.routes[3].kind == RouteKind::Static);
  CHECK(c.routes[3].static_response.status == 200);
  CHECK(c.routes[3].static_response.body == "ok\n");
  REQUIRE(c.routes[3].static_response.headers.size() == 1);
  CHECK(c.routes[3].static_response.headers[0].first == "Content-Type");
  CHECK(c.routes[3].static_response.headers[0].second == "text/plain");
}

TEST_CASE("config: defaults apply when sections are missing") {
  Config c = valid(doc());
  Config defaults;
  CHECK(c.workers == 0);
  CHECK(c.control_socket == defaults.control_socket);
  CHECK(c.log.level == "info");
  CHECK(c.log.access == "off");
  CHECK(c.limits.max_header_bytes == defaults.limits.max_header_bytes);
  CHECK(c.limits.idle_timeout_ms == defaults.limits.idle_timeout_ms);
  CHECK(c.supervisor.restart_factor == defaults.supervisor.restart_factor);
  CHECK(c.supervisor.max_memory_bytes == defaults.supervisor.max_memory_bytes);
  CHECK_FALSE(c.redis.has_value());
  CHECK(c.upstreams.empty());
  CHECK(c.tiers.empty());
  CHECK(c.api_keys.empty());
  CHECK(c.rate_limits.empty());
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].static_response.status == 200);
  CHECK(c.routes[0].static_response.body.empty());
  CHECK(c.routes[0].static_response.headers.empty());
}

TEST_CASE("config: defaults inside sections: partial sections keep the rest") {
  Config c = valid(doc(R"("limits": {"max_connections": 5}, "redis": {},
      "upstreams": {"a": {"targets": [{"address": "127.0.0.1:9001"}]}},
      "tiers": {"t": {"rate": "10/s"}},
      "rate_limits": {"r": {"rate": "1000/15m"}})"));
  CHECK(c.limits.max_connections == 5);
  CHECK(c.limits.max_body_bytes == 1048576);
  REQUIRE(c.redis.has_value());
  CHECK(c.redis->address == *parseAddress("127.0.0.1:6379", nullptr));
  CHECK(c.redis->timeout_ms == 50);
  const UpstreamConfig& a = c.upstreams.at("a");
  CHECK(a.targets[0].weight == 1);
  CHECK(a.balance == "round_robin");
  CHECK_FALSE(a.health_check.has_value());
  CHECK(a.breaker.consecutive_failures == 5);
  CHECK(c.tiers.at("t").limit.burst == 10);  // burst defaults to the rate's count
  CHECK(c.rate_limits.at("r").limit.burst == 1000);
  CHECK(c.rate_limits.at("r").key == LimitKey::Ip);
  CHECK(c.rate_limits.at("r").limit.mode == "local");
  CHECK(c.cache.memory_bytes == 64ull << 20);
  CHECK_FALSE(c.cache.redis);
  CHECK(c.rate_limit_entries == 65536);
  CHECK(c.trusted_proxies.empty());
  CHECK_FALSE(c.jwt.has_value());
}

TEST_CASE("config: workers is a positive integer up to 1024, or \"auto\"") {
  CHECK(valid(doc(R"("workers": 4)")).workers == 4);
  CHECK(effectiveWorkers(valid(doc(R"("workers": 4)"))) == 4);
  Config automatic = valid(doc(R"("workers": "auto")"));
  CHECK(automatic.workers == 0);
  CHECK(effectiveWorkers(automatic) >= 1);
  CHECK(errorsOf(doc(R"("workers": 0)")) == Errors{"workers: expected a positive integer, got 0"});
  CHECK(errorsOf(doc(R"("workers": 257)")) == Errors{"workers: must be at most 256"});
  CHECK(effectiveWorkers(automatic) <= kMaxWorkers);
  CHECK(errorsOf(doc(R"("workers": "four")")) ==
        Errors{"workers: expected a positive integer or \"auto\", got \"four\""});
  CHECK(errorsOf(doc(R"("workers": true)")) ==
        Errors{"workers: expected a positive integer or \"auto\", got boolean"});
}

TEST_CASE("config: loadConfigFile reports a missing or unreadable file by name") {
  CHECK(loadConfigFile("/nonexistent/phalanx.json").errors ==
        Errors{"/nonexistent/phalanx.json: cannot read: No such file or directory"});
  CHECK(loadConfigFile("/").errors == Errors{"/: cannot read: Is a directory"});
}

TEST_CASE("config: loadConfigFile parses the file and hands back its bytes") {
  char path[] = "/tmp/phalanx-config-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::string text = doc(R"("workers": 3)");
  std::ofstream(path) << text;
  std::string bytes;
  ConfigResult result = loadConfigFile(path, &bytes);
  std::remove(path);
  CHECK(result.errors.empty());
  REQUIRE(result.config.has_value());
  CHECK(result.config->workers == 3);
  CHECK(bytes == text);
}

TEST_CASE("config: loadConfigFile checks the key file and the JWKS the config names") {
  TempDir dir;
  std::string keys = dir.write("keys.json", R"({"keys": [{"key": "short", "tier": "t"}]})");
  std::string jwks = dir.write("jwks.json", "not json");
  std::string base = R"("tiers": {"t": {}}, )";
  auto load = [&](const std::string& extra) {
    return loadConfigFile(dir.write("phalanx.json", doc(base + extra))).errors;
  };
  Errors errors = load(R"("api_key_file": ")" + keys + R"(")");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("keys.json") != std::string::npos);
  CHECK(load(R"("jwt": {"jwks_file": ")" + jwks + R"("})") ==
        Errors{jwks + ": cannot read, or not JSON"});
  dir.write("jwks.json", R"({"keys": []})");
  CHECK(load(R"("jwt": {"jwks_file": ")" + jwks + R"("})") ==
        Errors{jwks + ": keys: expected a non-empty array of JWKs"});
  CHECK(load(R"("jwt": {"jwks_file": ")" + dir.file("missing.json") + R"("})") ==
        Errors{dir.file("missing.json") + ": cannot read, or not JSON"});
  dir.write("keys.json", R"({"keys": [{"key": "a-long-enough-key-123", "tier": "t"}]})");
  dir.write("jwks.json", R"({"keys": [{"kty": "oct", "k": "AAAA"}]})");
  CHECK(load(R"("api_key_file": ")" + keys + R"(", "jwt": {"jwks_file": ")" + jwks + R"("})")
            .empty());
}

TEST_CASE("config: invalid JSON is one error naming the parser's complaint") {
  for (const char* text : {"", "{", R"({"listen": [})", "{} {}", "nul", R"({"a": 1,})"}) {
    CAPTURE(text);
    Errors errors = errorsOf(text);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("invalid JSON: ", 0) == 0);
    CHECK(errors[0].size() > std::string("invalid JSON: ").size());
  }
}

TEST_CASE("config: the top level must be an object") {
  CHECK(errorsOf("[]") == Errors{"top level: expected an object, got array"});
  CHECK(errorsOf("42") == Errors{"top level: expected an object, got number"});
}

TEST_CASE("config: listen and routes are required and non-empty") {
  CHECK(errorsOf("{}") == Errors{"listen: required", "routes: required"});
  CHECK(errorsOf(R"({"listen": [], "routes": []})") ==
        Errors{"listen: must not be empty", "routes: must not be empty"});
  CHECK(errorsOf(R"({"listen": "127.0.0.1:80", "routes": {}})") ==
        Errors{"listen: expected an array, got string", "routes: expected an array, got object"});
}

TEST_CASE("config: bad listen addresses name their index") {
  std::string json = R"({"listen": ["127.0.0.1:0", "foo:80", 8080, "*:80", "0.0.0.0:80"],
                         "routes": [{"path": "/", "static": {}}]})";
  CHECK(errorsOf(json) ==
        Errors{"listen[0]: port must be 1-65535",
               "listen[1]: not an IP address: \"foo\" (hostnames are not resolved)",
               "listen[2]: expected a string, got number", "listen[4]: same address as listen[3]"});
}

TEST_CASE("config: wrong types name the expected and the actual JSON type") {
  CHECK(errorsOf(doc(R"("limits": {"max_header_bytes": "16k"})")) ==
        Errors{"limits.max_header_bytes: expected a positive integer, got string"});
  CHECK(errorsOf(doc(R"("limits": {"max_body_bytes": null})")) ==
        Errors{"limits.max_body_bytes: expected a positive integer, got null"});
  CHECK(errorsOf(doc(R"("limits": [])")) == Errors{"limits: expected an object, got array"});
  CHECK(errorsOf(doc(R"("control_socket": 1)")) ==
        Errors{"control_socket: expected a string, got number"});
  CHECK(errorsOf(doc(R"("supervisor": {"restart_factor": "fast"})")) ==
        Errors{"supervisor.restart_factor: expected a number, got string"});
  CHECK(errorsOf(doc(R"("log": {"level": false})")) ==
        Errors{"log.level: expected a string, got boolean"});
}

TEST_CASE("config: integers are non-negative, whole and fit their field") {
  CHECK(errorsOf(doc(R"("limits": {"idle_timeout_ms": -5})")) ==
        Errors{"limits.idle_timeout_ms: expected a positive integer, got -5"});
  CHECK(errorsOf(doc(R"("limits": {"idle_timeout_ms": 1.5})")) ==
        Errors{"limits.idle_timeout_ms: expected an integer, got 1.5"});
  CHECK(errorsOf(doc(R"("limits": {"idle_timeout_ms": 0})")) ==
        Errors{"limits.idle_timeout_ms: expected a positive integer, got 0"});
  CHECK(errorsOf(doc(R"("limits": {"idle_timeout_ms": 4294967296})")) ==
        Errors{"limits.idle_timeout_ms: must be at most 4294967295"});
  CHECK(valid(doc(R"("limits": {"idle_timeout_ms": 4294967295})")).limits.idle_timeout_ms ==
        4294967295u);
  CHECK(valid(doc(R"("limits": {"idle_timeout_ms": 1e3})")).limits.idle_timeout_ms == 1000);
  CHECK(valid(doc(R"("limits": {"max_body_bytes": 18446744073709551615})")).limits.max_body_bytes ==
        18446744073709551615ull);
  CHECK(errorsOf(doc(R"("limits": {"max_header_bytes": 512})")) ==
        Errors{"limits.max_header_bytes: must be at least 1024"});
  CHECK(errorsOf(doc(R"("supervisor": {"max_requests": -1})")) ==
        Errors{"supervisor.max_requests: expected a non-negative integer, got -1"});
  CHECK(valid(doc(R"("supervisor": {"max_requests": 0, "max_unstable_restarts": 0})"))
            .supervisor.max_requests == 0);
}

TEST_CASE("config: unknown keys are errors, at the top and nested, with a hint for typos") {
  CHECK(errorsOf(doc(R"("bogus": 1)")) == Errors{"bogus: unknown key"});
  CHECK(errorsOf(doc(R"("supervisor": {"bogus": 1})")) == Errors{"supervisor.bogus: unknown key"});
  CHECK(errorsOf(doc(R"("limits": {"max_header_byte": 2048})")) ==
        Errors{"limits.max_header_byte: unknown key (did you mean \"max_header_bytes\"?)"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"stauts": 200}})")) ==
        Errors{"routes[0].static.stauts: unknown key (did you mean \"status\"?)"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "builtin": "live", "x": 1})")) ==
        Errors{"routes[0].x: unknown key"});
  CHECK(errorsOf(doc(R"("upstreams": {"a": {"targets": [{"address": "127.0.0.1:1", "w": 2}]}})")) ==
        Errors{"upstreams.a.targets[0].w: unknown key"});
}

TEST_CASE("config: duplicate keys are errors") {
  CHECK(errorsOf(doc(R"("workers": 2, "workers": 3)")) == Errors{"workers: duplicate key"});
  CHECK(errorsOf(doc(R"("limits": {"max_body_bytes": 1, "max_body_bytes": 2})")) ==
        Errors{"limits.max_body_bytes: duplicate key"});
  CHECK(errorsOf(doc(R"("tiers": {"t": {"rate": "1/s"}, "t": {"rate": "2/s"}})")) ==
        Errors{"tiers.t: duplicate key"});
}

TEST_CASE("config: a route matches by exactly one of path and prefix") {
  CHECK(errorsOf(withRoute(R"({"path": "/a", "prefix": "/a", "builtin": "live"})")) ==
        Errors{"routes[0]: has both \"path\" and \"prefix\"; give one"});
  CHECK(errorsOf(withRoute(R"({"builtin": "live"})")) ==
        Errors{"routes[0]: needs \"path\" (exact) or \"prefix\""});
  CHECK(errorsOf(withRoute(R"({"prefix": "api", "builtin": "live"})")) ==
        Errors{"routes[0].prefix: must start with '/'"});
  CHECK(errorsOf(withRoute(R"({"path": "", "builtin": "live"})")) ==
        Errors{"routes[0].path: must not be empty"});
  CHECK(errorsOf(withRoute(R"({"path": "/a?b=1", "builtin": "live"})")) ==
        Errors{"routes[0].path: must not contain '?', '#', spaces or control characters"});
  CHECK(errorsOf(withRoute(R"({"path": "/a", "builtin": "live"}, {"path": "/a", "static": {}})")) ==
        Errors{"routes[1]: same path as routes[0], which always matches first"});
  Config c =
      valid(withRoute(R"({"prefix": "/a/", "builtin": "live"}, {"path": "/a/", "static": {}})"));
  CHECK(c.routes[0].match == RouteMatch::Prefix);
  CHECK(c.routes[0].name.empty());
  CHECK(c.routes[1].match == RouteMatch::Exact);
}

TEST_CASE("config: a route's name labels its figures: printable, short, not like (none)") {
  CHECK(valid(withRoute(R"({"path": "/a", "static": {}, "name": "users-v1"})")).routes[0].name ==
        "users-v1");
  const char* kMessage =
      "routes[0].name: must be 1-63 printable ASCII characters without spaces, quotes or "
      "backslashes, not starting with '('";
  for (const char* bad : {R"("a b")", R"x("(none)")x", R"("a\"b")", R"("\u00e9")"}) {
    CAPTURE(bad);
    CHECK(errorsOf(withRoute(std::string(R"({"path": "/a", "static": {}, "name": )") + bad + "}")) ==
          Errors{kMessage});
  }
  CHECK(errorsOf(withRoute(std::string(R"({"path": "/a", "static": {}, "name": ")") +
                           std::string(64, 'x') + "\"}")) == Errors{kMessage});
  CHECK(errorsOf(withRoute(R"({"path": "/a", "static": {}, "name": ""})")) ==
        Errors{"routes[0].name: must not be empty"});
}

TEST_CASE("config: a route has exactly one handler") {
  CHECK(errorsOf(withRoute(R"({"path": "/"})")) ==
        Errors{"routes[0]: needs one of \"static\", \"builtin\" or \"upstream\""});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "builtin": "live"})")) ==
        Errors{"routes[0]: has more than one of \"static\", \"builtin\", \"upstream\""});
  CHECK(errorsOf(withRoute(R"("/")")) == Errors{"routes[0]: expected an object, got string"});
}

TEST_CASE("config: builtins and upstream references are checked") {
  CHECK(errorsOf(withRoute(
            R"({"path": "/a", "builtin": "live"}, {"path": "/m", "builtin": "prometheus"})")) ==
        Errors{"routes[1].builtin: unknown builtin \"prometheus\" (known: live, ready, status, "
               "metrics, dashboard)"});
  CHECK(errorsOf(withRoute(R"({"path": "/a", "builtin": 1})")) ==
        Errors{"routes[0].builtin: expected a string, got number"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}}, {"path": "/x", "static": {}},
                              {"prefix": "/api/", "upstream": "api"})")) ==
        Errors{"routes[2].upstream: no upstream named \"api\""});
  Config proxy =
      valid(withRoute(R"({"prefix": "/api/", "upstream": "api"})",
                      R"("upstreams": {"api": {"targets": [{"address": "127.0.0.1:9001"}]}})"));
  REQUIRE(proxy.routes.size() == 1);
  CHECK(proxy.routes[0].kind == RouteKind::Upstream);
  CHECK(proxy.routes[0].upstream == "api");
}

TEST_CASE("config: every builtin has its name") {
  Config c =
      valid(withRoute(R"({"path": "/l", "builtin": "live"}, {"path": "/r", "builtin": "ready"},
      {"path": "/s", "builtin": "status"}, {"path": "/m", "builtin": "metrics"})"));
  REQUIRE(c.routes.size() == 4);
  for (const RouteConfig& route : c.routes) CHECK(route.kind == RouteKind::Builtin);
  CHECK(c.routes[0].builtin == Builtin::Live);
  CHECK(c.routes[1].builtin == Builtin::Ready);
  CHECK(c.routes[2].builtin == Builtin::Status);
  CHECK(c.routes[3].builtin == Builtin::Metrics);
}

TEST_CASE("config: static delay_ms is 0 to 600000 and defaults to 0") {
  CHECK(valid(withRoute(R"({"path": "/", "static": {}})")).routes[0].static_response.delay_ms == 0);
  CHECK(valid(withRoute(R"({"path": "/", "static": {"delay_ms": 0}})"))
            .routes[0]
            .static_response.delay_ms == 0);
  CHECK(valid(withRoute(R"({"path": "/", "static": {"delay_ms": 2000}})"))
            .routes[0]
            .static_response.delay_ms == 2000);
  CHECK(valid(withRoute(R"({"path": "/", "static": {"delay_ms": 600000}})"))
            .routes[0]
            .static_response.delay_ms == kMaxStaticDelayMs);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"delay_ms": 600001}})")) ==
        Errors{"routes[0].static.delay_ms: must be at most 600000"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"delay_ms": -1}})")) ==
        Errors{"routes[0].static.delay_ms: expected a non-negative integer, got -1"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"delay_ms": "1s"}})")) ==
        Errors{"routes[0].static.delay_ms: expected a non-negative integer, got string"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"delay_ms": 1.5}})")) ==
        Errors{"routes[0].static.delay_ms: expected an integer, got 1.5"});
}

TEST_CASE("config: a route's rate_limit is a name or a list of names") {
  std::string limits = R"("rate_limits": {"per_ip": {"rate": "10/s"},
      "per_key": {"key": "api_key", "rate": "100/h", "headers": "draft-6"},
      "per_tenant": {"key": "header", "header": "X-Tenant", "rate": "5/m", "burst": 2}})";
  Config c = valid(withRoute(R"({"path": "/", "static": {}, "rate_limit": "per_ip"})", limits));
  CHECK(c.routes[0].rate_limits == std::vector<std::string>{"per_ip"});
  c = valid(withRoute(R"({"path": "/", "static": {}, "rate_limit": ["per_tenant", "per_ip"]})",
                      limits));
  CHECK(c.routes[0].rate_limits == std::vector<std::string>{"per_tenant", "per_ip"});
  CHECK(c.rate_limits.at("per_tenant").key == LimitKey::Header);
  CHECK(c.rate_limits.at("per_tenant").header == "X-Tenant");
  CHECK(c.rate_limits.at("per_tenant").limit.burst == 2);
  CHECK(c.rate_limits.at("per_key").limit.headers == RateLimitHeaders::Draft6);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "rate_limit": "nope"})", limits)) ==
        Errors{"routes[0].rate_limit: no rate limit named \"nope\""});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "rate_limit": ["per_ip", "per_ip"]})",
                           limits)) == Errors{"routes[0].rate_limit[1]: listed twice"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "rate_limit": "per_key"})", limits)) ==
        Errors{"routes[0].rate_limit: rate limit \"per_key\" counts by api_key: the route needs "
               "\"auth\""});
  CHECK(errorsOf(doc(R"("rate_limits": {"h": {"key": "header", "rate": "1/s"}})")) ==
        Errors{"rate_limits.h.header: required with \"key\": \"header\" (the header to count by)"});
  CHECK(errorsOf(doc(R"("rate_limits": {"h": {"key": "header", "header": "X Y", "rate": "1/s"}})")) ==
        Errors{"rate_limits.h.header: not a header name: \"X Y\""});
  CHECK(errorsOf(doc(R"("rate_limits": {"h": {"rate": "1/s", "headers": "v9"}})")) ==
        Errors{"rate_limits.h.headers: unknown value \"v9\" (known: draft, draft-6)"});
  CHECK(errorsOf(doc(R"("rate_limits": {"h": {"rate": "1/s", "mode": "cluster"}})")) ==
        Errors{"rate_limits.h.mode: \"cluster\" needs a \"redis\" section"});
}

TEST_CASE("config: tiers may have no rate (not limited); api keys by value or digest") {
  Config c = valid(doc(R"("tiers": {"admin": {}, "free": {"rate": "100/h"}},
      "api_keys": [{"key": "0123456789abcdef", "tier": "free"},
                   {"sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
                    "tier": "admin", "id": "ops"}])"));
  CHECK(c.tiers.at("admin").limit.rate.count == 0);
  CHECK(c.tiers.at("free").limit.rate.count == 100);
  CHECK(c.api_keys[1].sha256 == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  CHECK(c.api_keys[1].id == "ops");
  CHECK(errorsOf(doc(R"("tiers": {"t": {}}, "api_keys": [{"tier": "t"}])")) ==
        Errors{"api_keys[0]: needs one of \"key\" or \"sha256\""});
  CHECK(errorsOf(doc(R"("tiers": {"t": {}}, "api_keys": [{"key": "short", "tier": "t"}])")) ==
        Errors{"api_keys[0].key: must be 16 to 256 bytes long"});
  CHECK(errorsOf(doc(R"("tiers": {"t": {}}, "api_keys": [{"sha256": "abc", "tier": "t"}])")) ==
        Errors{"api_keys[0].sha256: expected 64 hex digits (the key's SHA-256)"});
  CHECK(errorsOf(doc(R"("tiers": {"t": {"burst": 5}})")) == Errors{"tiers.t.burst: needs a \"rate\""});
}

TEST_CASE("config: auth, tiers, allow and trusted_proxies") {
  std::string keys = R"("tiers": {"free": {"rate": "1/s"}, "gold": {}},
      "api_keys": [{"key": "0123456789abcdef", "tier": "free"}],
      "trusted_proxies": ["10.0.0.0/8", "::1"])";
  Config c = valid(withRoute(
      R"({"path": "/", "static": {}, "auth": "api_key", "tiers": ["gold"], "allow": ["127.0.0.0/8"]})",
      keys));
  CHECK(c.routes[0].auth == "api_key");
  CHECK(c.routes[0].tiers == std::vector<std::string>{"gold"});
  REQUIRE(c.routes[0].allow.size() == 1);
  CHECK(c.routes[0].allow[0].prefix == 8);
  REQUIRE(c.trusted_proxies.size() == 2);
  CHECK(c.trusted_proxies[1].prefix == 128);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "auth": "basic"})")) ==
        Errors{"routes[0].auth: unknown value \"basic\" (known: api_key, jwt)"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "auth": "jwt"})")) ==
        Errors{"routes[0].auth: \"jwt\" needs a top-level \"jwt\" section"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "auth": "api_key"})")) ==
        Errors{"routes[0].auth: \"api_key\" needs \"api_keys\" or \"api_key_file\""});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "tiers": ["gold"]})", keys)) ==
        Errors{"routes[0].tiers: only on a route with \"auth\""});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "allow": ["10.0.0.1/8"]})")) ==
        Errors{"routes[0].allow[0]: host bits set beyond the prefix in \"10.0.0.1/8\""});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "allow": ["10.0.0.0/33"]})")) ==
        Errors{"routes[0].allow[0]: prefix must be 0-32 in \"10.0.0.0/33\""});
  CHECK(errorsOf(doc(R"("trusted_proxies": ["proxy.local"])")) ==
        Errors{"trusted_proxies[0]: not an IP address or range: \"proxy.local\""});
  Config jwt = valid(doc(R"("tiers": {"free": {}}, "jwt": {"jwks_file": "k.json", "issuer": "i",
      "audience": "a", "default_tier": "free"})"));
  REQUIRE(jwt.jwt.has_value());
  CHECK(jwt.jwt->tier_claim == "tier");
  CHECK(jwt.jwt->leeway_ms == 30000);
  CHECK(jwt.jwt->default_tier == "free");
  CHECK(errorsOf(doc(R"("jwt": {"issuer": "i"})")) == Errors{"jwt.jwks_file: required"});
  CHECK(errorsOf(doc(R"("jwt": {"jwks_file": "k", "leeway_ms": 900000})")) ==
        Errors{"jwt.leeway_ms: must be at most 300000"});
}

TEST_CASE("config: cache on upstream routes, its memory and its Redis level") {
  std::string up = R"("upstreams": {"a": {"targets": [{"address": "127.0.0.1:9001"}]}},
      "cache": {"memory": "8M"})";
  Config c = valid(withRoute(R"({"prefix": "/", "upstream": "a", "cache": {"ttl_ms": 1000, "shared": true}})", up));
  CHECK(c.routes[0].cache->ttl_ms == 1000);
  CHECK(c.routes[0].cache->shared);
  CHECK(c.cache.memory_bytes == 8ull << 20);
  CHECK(valid(withRoute(R"({"prefix": "/", "upstream": "a", "cache": {}})", up)).routes[0].cache->ttl_ms == 60000);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "cache": {"ttl_ms": 1000}})")) ==
        Errors{"routes[0].cache: only for a route with \"upstream\""});
  CHECK(errorsOf(withRoute(R"({"prefix": "/", "upstream": "a", "cache": {"ttl_ms": "1s"}})", up)) ==
        Errors{"routes[0].cache.ttl_ms: expected a positive integer, got string"});
  CHECK(errorsOf(doc(R"("cache": {"redis": true})")) == Errors{"cache.redis: needs a \"redis\" section"});
  CHECK(errorsOf(doc(R"("cache": {"memory": "12"})")) ==
        Errors{"cache.memory: expected a size of at least 1M like \"64M\", got \"12\""});
  CHECK(errorsOf(doc(R"("rate_limit_entries": 1000)")) ==
        Errors{"rate_limit_entries: must be a power of two from 1024 to 16777216"});
}

TEST_CASE("config: static responses: status range, body, headers") {
  Config c = valid(withRoute(
      R"({"path": "/", "static": {"status": 404, "body": "no", "headers": {"X-B": "2", "X-A": "1"}}})"));
  const StaticResponseConfig& s = c.routes[0].static_response;
  CHECK(s.status == 404);
  CHECK(s.body == "no");
  REQUIRE(s.headers.size() == 2);
  CHECK(s.headers[0].first == "X-B");  // file order is kept
  CHECK(s.headers[1].first == "X-A");
  CHECK(valid(withRoute(R"({"path": "/", "static": {"status": 204}})"))
            .routes[0]
            .static_response.status == 204);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"status": 600}})")) ==
        Errors{"routes[0].static.status: must be 200-599"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"status": 101}})")) ==
        Errors{"routes[0].static.status: must be 200-599"});  // a 1xx leaves the client waiting
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"status": 99}})")) ==
        Errors{"routes[0].static.status: must be 200-599"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"status": 204, "body": "x"}})")) ==
        Errors{"routes[0].static.body: must be empty for status 204"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"headers": {"X-A": 1}}})")) ==
        Errors{"routes[0].static.headers.X-A: expected a string, got number"});
}

TEST_CASE("config: header values with CR or LF are refused") {
  CHECK(errorsOf(withRoute(
            R"({"path": "/", "static": {"headers": {"X-A": "a\r\nSet-Cookie: x=1"}}})")) ==
        Errors{"routes[0].static.headers.X-A: value must not contain CR, LF or other control "
               "characters"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"headers": {"X-A": "a\nb"}}})")).size() ==
        1);
  CHECK(valid(withRoute(R"({"path": "/", "static": {"headers": {"X-A": "a\tb"}}})"))
            .routes[0]
            .static_response.headers[0]
            .second == "a\tb");
}

TEST_CASE("config: headers phalanx writes itself, and invalid names, are refused") {
  for (const char* name :
       {"Content-Length", "content-length", "Date", "SERVER", "Connection", "Transfer-Encoding"}) {
    CAPTURE(name);
    std::string route =
        R"({"path": "/", "static": {"headers": {")" + std::string(name) + R"(": "1"}}})";
    CHECK(errorsOf(withRoute(route)) == Errors{"routes[0].static.headers." + std::string(name) +
                                               ": phalanx sets this header itself"});
  }
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"headers": {"Bad Name": "1"}}})")) ==
        Errors{"routes[0].static.headers.Bad Name: not a valid header name"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"headers": {"X:Y": "1"}}})")) ==
        Errors{"routes[0].static.headers.X:Y: not a valid header name"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {"headers": {"": "1"}}})")) ==
        Errors{"routes[0].static.headers.: not a valid header name"});
}

TEST_CASE("config: bad rates are refused") {
  CHECK(
      errorsOf(doc(R"("tiers": {"free": {"rate": "100 per hour"}})")) ==
      Errors{
          "tiers.free.rate: expected a rate like \"100/m\" or \"1000/15m\", got \"100 per hour\""});
  CHECK(errorsOf(doc(R"("tiers": {"free": {"burst": 5}})")) ==
        Errors{"tiers.free.burst: needs a \"rate\""});
  CHECK(errorsOf(doc(R"("rate_limits": {"r": {"rate": 100}})")) ==
        Errors{"rate_limits.r.rate: expected a string, got number"});
  CHECK(errorsOf(doc(R"("rate_limits": {"r": {"rate": "0/s"}})")) ==
        Errors{"rate_limits.r.rate: expected a rate like \"100/m\" or \"1000/15m\", got \"0/s\""});
}

TEST_CASE("parseRate: count per optional multiple of s, m, h, d") {
  auto rate = [](std::string_view text) { return parseRate(text); };
  CHECK(rate("100/h")->count == 100);
  CHECK(rate("100/h")->period_ms == 3'600'000);
  CHECK(rate("1000/15m")->period_ms == 900'000);
  CHECK(rate("10/s")->period_ms == 1000);
  CHECK(rate("5/2h")->period_ms == 7'200'000);
  CHECK(rate("1/d")->period_ms == 86'400'000);
  for (const char* bad :
       {"", "/s", "10/", "0/s", "10/0m", "10/ms", "x/s", "10/1.5m", "-1/s", "10/S", "10 /s",
        "10/s ", "10", "99999999999999999999/s", "1/999999999999999999d"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseRate(bad).has_value());
  }
}

TEST_CASE("parseSize: a count with a K, M or G unit, never bare, never zero") {
  CHECK(parseSize("512M") == 512ull << 20);
  CHECK(parseSize("1K") == 1024u);
  CHECK(parseSize("2g") == 2ull << 30);
  CHECK(parseSize("10MB") == 10ull << 20);
  CHECK(parseSize("10mb") == 10ull << 20);
  for (const char* bad : {"512", "0M", "", "M", "5T", "5 M", "5MBB", "5B", "-5M", "1.5G",
                          "99999999999999999999G", "17179869184G"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseSize(bad).has_value());
  }
}

TEST_CASE("config: max_memory takes a size with a unit") {
  CHECK(valid(doc(R"("supervisor": {"max_memory": "off"})")).supervisor.max_memory_bytes == 0);
  CHECK(valid(doc(R"("supervisor": {"max_memory": "1G"})")).supervisor.max_memory_bytes ==
        1ull << 30);
  CHECK(errorsOf(doc(R"("supervisor": {"max_memory": 512})")) ==
        Errors{"supervisor.max_memory: expected a size with a unit, like \"512M\", or \"off\", got "
               "number"});
  CHECK(errorsOf(doc(R"("supervisor": {"max_memory": "536870912"})")) ==
        Errors{"supervisor.max_memory: expected a size with a unit, like \"512M\", or \"off\", got "
               "\"536870912\""});
  CHECK(errorsOf(doc(R"("supervisor": {"max_memory": "0M"})")) ==
        Errors{"supervisor.max_memory: must be greater than 0"});
}

TEST_CASE("config: supervisor cross-checks") {
  CHECK(errorsOf(doc(R"("supervisor": {"restart_factor": 0.5})")) ==
        Errors{"supervisor.restart_factor: must be at least 1.0"});
  CHECK(errorsOf(doc(R"("supervisor": {"restart_base_ms": 500, "restart_max_ms": 100})")) ==
        Errors{"supervisor.restart_max_ms: restart_max_ms (100) must be at least restart_base_ms "
               "(500)"});
  CHECK(errorsOf(doc(R"("supervisor": {"restart_base_ms": 20000})")) ==
        Errors{"supervisor.restart_base_ms: restart_max_ms (15000) must be at least "
               "restart_base_ms (20000)"});
  CHECK(valid(doc(R"("supervisor": {"restart_factor": 2})")).supervisor.restart_factor == 2.0);
}

TEST_CASE("config: supervisor.ready_timeout_ms defaults to 10 s and must be positive") {
  CHECK(valid(doc()).supervisor.ready_timeout_ms == 10000);
  CHECK(valid(doc(R"("supervisor": {"ready_timeout_ms": 2500})")).supervisor.ready_timeout_ms ==
        2500);
  CHECK(errorsOf(doc(R"("supervisor": {"ready_timeout_ms": 0})")) ==
        Errors{"supervisor.ready_timeout_ms: expected a positive integer, got 0"});
  CHECK(errorsOf(doc(R"("supervisor": {"ready_timeout_ms": "10s"})")) ==
        Errors{"supervisor.ready_timeout_ms: expected a positive integer, got string"});
}

TEST_CASE("config: log and control_socket") {
  CHECK(valid(doc(R"("log": {"level": "debug", "access": "/var/log/phalanx.log"})")).log.access ==
        "/var/log/phalanx.log");
  CHECK(errorsOf(doc(R"("log": {"level": "verbose"})")) ==
        Errors{"log.level: unknown value \"verbose\" (known: trace, debug, info, warn, error, "
               "critical, off)"});
  CHECK(errorsOf(doc(R"("log": {"access": ""})")) == Errors{"log.access: must not be empty"});
  CHECK(errorsOf(doc(R"("control_socket": "")")) == Errors{"control_socket: must not be empty"});
  std::string long_path(200, 'x');
  Errors errors = errorsOf(doc(R"("control_socket": ")" + long_path + "\""));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].rfind("control_socket: path too long for a unix socket", 0) == 0);
}

TEST_CASE("config: upstreams are validated in full") {
  auto upstream = [](const std::string& body) {
    return doc(R"("upstreams": {"api": )" + body + "}");
  };
  CHECK(errorsOf(upstream("{}")) == Errors{"upstreams.api.targets: required"});
  CHECK(errorsOf(upstream(R"({"targets": []})")) ==
        Errors{"upstreams.api.targets: must not be empty"});
  CHECK(errorsOf(upstream(R"({"targets": [{"address": "api.internal:80"}]})")) ==
        Errors{"upstreams.api.targets[0].address: not an IP address: \"api.internal\" (hostnames "
               "are not resolved)"});
  CHECK(errorsOf(upstream(R"({"targets": [{"weight": 2}]})")) ==
        Errors{"upstreams.api.targets[0].address: required"});
  CHECK(
      errorsOf(
          upstream(R"({"targets": [{"address": "127.0.0.1:1"}, {"address": "127.0.0.1:1"}]})")) ==
      Errors{"upstreams.api.targets[1].address: same address as upstreams.api.targets[0].address"});
  std::string target = R"("targets": [{"address": "127.0.0.1:1"}])";
  CHECK(errorsOf(upstream("{" + target + R"(, "balance": "fastest"})")) ==
        Errors{"upstreams.api.balance: unknown value \"fastest\" (known: round_robin, least_conn, "
               "random_two)"});
  CHECK(errorsOf(upstream("{" + target + R"(, "health_check": {"path": "health"}})")) ==
        Errors{"upstreams.api.health_check.path: must start with '/'"});
  CHECK(errorsOf(upstream("{" + target + R"(, "breaker": {"failure_rate": 1.5}})")) ==
        Errors{"upstreams.api.breaker.failure_rate: must be greater than 0 and at most 1"});
  CHECK(errorsOf(upstream("{" + target + R"(, "breaker": {"failure_rate": 0}})")) ==
        Errors{"upstreams.api.breaker.failure_rate: must be greater than 0 and at most 1"});
  CHECK(errorsOf(upstream("{" + target + R"(, "breaker": {"share": "cluster"}})")) ==
        Errors{"upstreams.api.breaker.share: \"cluster\" needs a \"redis\" section"});
  CHECK(valid(doc(R"("redis": {}, "upstreams": {"api": {)" + target +
                  R"(, "breaker": {"share": "cluster"}}})"))
            .upstreams.at("api")
            .breaker.share == "cluster");
  CHECK(errorsOf(doc(R"("upstreams": {"": {)" + target + "}}")) ==
        Errors{"upstreams: names must not be empty"});
}

TEST_CASE("config: api_keys name existing tiers and are unique, never echoed") {
  std::string tiers = R"("tiers": {"free": {"rate": "100/h"}})";
  CHECK(errorsOf(doc(tiers + R"(, "api_keys": [{"key": "k-1-0123456789abcdef", "tier": "gold"}])")) ==
        Errors{"api_keys[0].tier: no tier named \"gold\""});
  Errors duplicate = errorsOf(doc(tiers + R"(, "api_keys": [{"key": "secret-1-0123456789", "tier": "free"},
                                                          {"key": "secret-1-0123456789", "tier": "free"}])"));
  CHECK(duplicate == Errors{"api_keys[1].key: same key as api_keys[0]"});
  CHECK(errorsOf(doc(tiers + R"(, "api_keys": [{"tier": "free"}])")) ==
        Errors{"api_keys[0]: needs one of \"key\" or \"sha256\""});
  CHECK(errorsOf(doc(tiers + R"(, "api_keys": [{"key": "a b", "tier": "free"}])")) ==
        Errors{"api_keys[0].key: must be printable ASCII without spaces"});
  CHECK(errorsOf(doc(R"("api_keys": {})")) == Errors{"api_keys: expected an array, got object"});
}

TEST_CASE("config: rate_limits choices and cluster mode") {
  CHECK(errorsOf(doc(R"("rate_limits": {"r": {"rate": "1/s", "key": "user"}})")) ==
        Errors{"rate_limits.r.key: unknown value \"user\" (known: ip, api_key, header, route)"});
  CHECK(errorsOf(doc(R"("rate_limits": {"r": {"rate": "1/s", "mode": "cluster"}})")) ==
        Errors{"rate_limits.r.mode: \"cluster\" needs a \"redis\" section"});
  CHECK(
      errorsOf(doc(R"("rate_limits": {"r": {"rate": "1/s", "on_redis_error": "retry"}})")) ==
      Errors{"rate_limits.r.on_redis_error: unknown value \"retry\" (known: local, open, closed)"});
  CHECK(errorsOf(doc(R"("rate_limits": {"r": {"rate": "1/s", "burst": 0}})")) ==
        Errors{"rate_limits.r.burst: expected a positive integer, got 0"});
  Config c = valid(doc(R"("redis": {"address": "[::1]:6380", "timeout_ms": 20},
      "rate_limits": {"r": {"rate": "1/s", "mode": "cluster", "on_redis_error": "closed"}})"));
  CHECK(c.rate_limits.at("r").limit.mode == "cluster");
  CHECK(c.redis->address.port == 6380);
  CHECK(errorsOf(doc(R"("redis": {"address": "redis:6379"})")) ==
        Errors{"redis.address: not an IP address: \"redis\" (hostnames are not resolved)"});
}

TEST_CASE("config: every error is reported, not only the first") {
  std::string json = R"({
    "listen": ["127.0.0.1:99999"],
    "workers": "many",
    "limits": {"max_header_bytes": "big", "bogus": 1},
    "supervisor": {"max_memory": 512},
    "routes": [{"path": "/", "static": {"headers": {"Date": "now"}}},
               {"prefix": "/api/", "upstream": "api"}]
  })";
  CHECK(errorsOf(json) == Errors{"listen[0]: port must be 1-65535",
                                 "workers: expected a positive integer or \"auto\", got \"many\"",
                                 "limits.max_header_bytes: expected a positive integer, got string",
                                 "limits.bogus: unknown key",
                                 "supervisor.max_memory: expected a size with a unit, like "
                                 "\"512M\", or \"off\", got number",
                                 "routes[0].static.headers.Date: phalanx sets this header itself",
                                 "routes[1].upstream: no upstream named \"api\""});
}

TEST_CASE("config: an error line stays one line whatever the file holds") {
  Errors errors = errorsOf(doc(R"("a\nb": 1, "log": {"level": "x\r\ny"})"));
  REQUIRE(errors.size() == 2);
  for (const std::string& error : errors) CHECK(error.find_first_of("\r\n") == std::string::npos);
  CHECK(errors[0] ==
        "log.level: unknown value \"x\\x0d\\x0ay\" (known: trace, debug, info, warn, "
        "error, critical, off)");
  CHECK(errors[1] == "a\\x0ab: unknown key");
}

TEST_CASE("config: every truncation of a valid file is refused, never thrown") {
  std::string text = kDesignExample;
  for (size_t length = 0; length < text.size(); ++length) {
    CAPTURE(length);
    ConfigResult result;
    CHECK_NOTHROW(result = parseConfig(std::string_view(text).substr(0, length)));
    CHECK_FALSE(result.config.has_value());
    CHECK_FALSE(result.errors.empty());
  }
}

TEST_CASE("config: errors from a file are not prefixed with its name (the caller does that)") {
  char path[] = "/tmp/phalanx-config-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << R"({"routes": [{"path": "/", "static": {}}]})";
  ConfigResult result = loadConfigFile(path);
  std::remove(path);
  CHECK(result.errors == Errors{std::string(path) + ": listen: required"});
}

}  // namespace
TEST_CASE("config: limits.max_headers is 1 to 10000, default 100") {
  CHECK(valid(withRoute(R"({"path": "/", "static": {}})")).limits.max_headers == 100);
  CHECK(valid(withRoute(R"({"path": "/", "static": {}})", R"("limits": {"max_headers": 7})"))
            .limits.max_headers == 7);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}})", R"("limits": {"max_headers": 0})")) ==
        Errors{"limits.max_headers: expected a positive integer, got 0"});
  CHECK(errorsOf(
            withRoute(R"({"path": "/", "static": {}})", R"("limits": {"max_headers": 10001})")) ==
        Errors{"limits.max_headers: must be at most 10000"});
}

TEST_CASE("config: limits.max_header_bytes is 1024 to 1 MiB") {
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}})",
                           R"("limits": {"max_header_bytes": 1048577})")) ==
        Errors{"limits.max_header_bytes: must be at most 1048576"});
  CHECK(valid(withRoute(R"({"path": "/", "static": {}})",
                        R"("limits": {"max_header_bytes": 1048576})"))
            .limits.max_header_bytes == 1048576);
}

TEST_CASE("config: http.merge_slashes is a boolean, default true") {
  CHECK(valid(withRoute(R"({"path": "/", "static": {}})")).http.merge_slashes);
  CHECK_FALSE(
      valid(withRoute(R"({"path": "/", "static": {}})", R"("http": {"merge_slashes": false})"))
          .http.merge_slashes);
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}})", R"("http": {"merge_slashes": 1})")) ==
        Errors{"http.merge_slashes: expected true or false, got number"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}})", R"("http": {"merge_slash": true})")) ==
        Errors{"http.merge_slash: unknown key (did you mean \"merge_slashes\"?)"});
}

TEST_CASE("config: a route's methods are known, uppercase, listed once, never CONNECT") {
  Config c =
      valid(withRoute(R"({"path": "/", "static": {}, "methods": ["GET", "POST", "TRACE"]})"));
  CHECK(c.routes[0].methods == std::vector<std::string>{"GET", "POST", "TRACE"});
  CHECK(valid(withRoute(R"({"path": "/", "static": {}})")).routes[0].methods.empty());
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "methods": []})")) ==
        Errors{"routes[0].methods: must not be empty"});
  CHECK(
      errorsOf(withRoute(R"({"path": "/", "static": {}, "methods": ["get"]})")) ==
      Errors{"routes[0].methods[0]: unknown method \"get\" (methods are uppercase, like \"GET\")"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "methods": ["GET", "GET"]})")) ==
        Errors{"routes[0].methods[1]: listed twice"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "methods": ["CONNECT"]})")) ==
        Errors{"routes[0].methods[0]: CONNECT is not supported (phalanx is no tunnel)"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "methods": "GET"})")) ==
        Errors{"routes[0].methods: expected an array, got string"});
}

// An upstream "api" with one target and `extra` keys, as a whole document.
std::string withUpstream(const std::string& extra) {
  return doc(R"("upstreams": {"api": {"targets": [{"address": "127.0.0.1:9001"}])" +
             (extra.empty() ? "" : ", " + extra) + "}}");
}

TEST_CASE("config: reverse-proxy upstream keys default as documented") {
  const UpstreamConfig a = valid(withUpstream("")).upstreams.at("api");
  CHECK_FALSE(a.targets[0].backup);
  CHECK(a.balance == "round_robin");
  CHECK(a.max_idle_connections == 32);
  CHECK(a.idle_timeout_ms == 4000);
  CHECK_FALSE(a.required);
  CHECK(a.retry_budget.ratio == 0.2);
  CHECK(a.retry_budget.window_ms == 10000);
  CHECK(a.retry_budget.min_retries == 10);
  CHECK(a.breaker.slow_call_rate == 1.0);
  CHECK_FALSE(a.health_check.has_value());
  const HealthCheckConfig h =
      *valid(withUpstream(R"("health_check": {})")).upstreams.at("api").health_check;
  CHECK(h.path == "/health");
  CHECK(h.interval_ms == 2000);
  CHECK(h.timeout_ms == 1000);
  CHECK(h.expect_status == 0);
  CHECK(h.healthy_threshold == 2);
  CHECK(h.unhealthy_threshold == 3);
}

TEST_CASE("config: reverse-proxy upstream keys take their values") {
  Config c = valid(doc(R"("upstreams": {"api": {
      "targets": [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:9002", "backup": true},
                  {"address": "127.0.0.1:9003", "backup": false}],
      "balance": "least_conn", "connect_timeout_ms": 1, "timeout_ms": 1, "retries": 10,
      "max_idle_connections": 0, "idle_timeout_ms": 1, "required": true,
      "retry_budget": {"ratio": 0, "window_ms": 1000, "min_retries": 0},
      "health_check": {"path": "/ready", "interval_ms": 100, "timeout_ms": 100,
                       "expect_status": 204, "healthy_threshold": 1, "unhealthy_threshold": 5},
      "breaker": {"slow_call_ms": 500, "slow_call_rate": 0.25}}})"));
  const UpstreamConfig& a = c.upstreams.at("api");
  REQUIRE(a.targets.size() == 3);
  CHECK_FALSE(a.targets[0].backup);
  CHECK(a.targets[1].backup);
  CHECK_FALSE(a.targets[2].backup);
  CHECK(a.balance == "least_conn");
  CHECK(a.connect_timeout_ms == 1);
  CHECK(a.timeout_ms == 1);
  CHECK(a.retries == 10);
  CHECK(a.max_idle_connections == 0);
  CHECK(a.idle_timeout_ms == 1);
  CHECK(a.required);
  CHECK(a.retry_budget.ratio == 0);
  CHECK(a.retry_budget.window_ms == 1000);
  CHECK(a.retry_budget.min_retries == 0);
  REQUIRE(a.health_check.has_value());
  CHECK(a.health_check->path == "/ready");
  CHECK(a.health_check->interval_ms == 100);
  CHECK(a.health_check->timeout_ms == 100);
  CHECK(a.health_check->expect_status == 204);
  CHECK(a.health_check->healthy_threshold == 1);
  CHECK(a.health_check->unhealthy_threshold == 5);
  CHECK(a.breaker.slow_call_ms == 500);
  CHECK(a.breaker.slow_call_rate == 0.25);

  auto upstream = [](const std::string& extra) {
    return valid(withUpstream(extra)).upstreams.at("api");
  };
  CHECK(upstream(R"("max_idle_connections": 10000)").max_idle_connections == 10000);
  CHECK(upstream(R"("retry_budget": {"ratio": 1})").retry_budget.ratio == 1);
  CHECK(upstream(R"("retry_budget": {"ratio": 0.5})").retry_budget.window_ms == 10000);
  CHECK(upstream(R"("breaker": {"slow_call_rate": 1})").breaker.slow_call_rate == 1);
  CHECK(upstream(R"("health_check": {"expect_status": 100})").health_check->expect_status == 100);
  CHECK(upstream(R"("health_check": {"expect_status": 599})").health_check->expect_status == 599);
  CHECK(upstream(R"("health_check": {"expect_status": 0})").health_check->expect_status == 0);
}

TEST_CASE("config: balance is round_robin, least_conn or random_two; random is random_two") {
  auto balance = [](const std::string& name) {
    return valid(withUpstream(R"("balance": ")" + name + "\"")).upstreams.at("api").balance;
  };
  CHECK(balance("round_robin") == "round_robin");
  CHECK(balance("least_conn") == "least_conn");
  CHECK(balance("random_two") == "random_two");
  CHECK(balance("random") == "random_two");
  CHECK(errorsOf(withUpstream(R"("balance": "random_three")")) ==
        Errors{"upstreams.api.balance: unknown value \"random_three\" (known: round_robin, "
               "least_conn, random_two)"});
  CHECK(errorsOf(withUpstream(R"("balance": 2)")) ==
        Errors{"upstreams.api.balance: expected a string, got number"});
}

TEST_CASE("config: upstream bounds name their JSON path") {
  CHECK(errorsOf(withUpstream(R"("connect_timeout_ms": 0)")) ==
        Errors{"upstreams.api.connect_timeout_ms: expected a positive integer, got 0"});
  CHECK(errorsOf(withUpstream(R"("timeout_ms": 0)")) ==
        Errors{"upstreams.api.timeout_ms: expected a positive integer, got 0"});
  CHECK(valid(withUpstream(R"("retries": 0)")).upstreams.at("api").retries == 0);
  CHECK(errorsOf(withUpstream(R"("retries": 11)")) ==
        Errors{"upstreams.api.retries: must be at most 10"});
  CHECK(errorsOf(withUpstream(R"("max_idle_connections": 10001)")) ==
        Errors{"upstreams.api.max_idle_connections: must be at most 10000"});
  CHECK(errorsOf(withUpstream(R"("max_idle_connections": -1)")) ==
        Errors{"upstreams.api.max_idle_connections: expected a non-negative integer, got -1"});
  CHECK(errorsOf(withUpstream(R"("idle_timeout_ms": 0)")) ==
        Errors{"upstreams.api.idle_timeout_ms: expected a positive integer, got 0"});
  CHECK(errorsOf(withUpstream(R"("required": "yes")")) ==
        Errors{"upstreams.api.required: expected true or false, got string"});
  CHECK(errorsOf(doc(
            R"("upstreams": {"api": {"targets": [{"address": "127.0.0.1:1", "backup": 1}]}})")) ==
        Errors{"upstreams.api.targets[0].backup: expected true or false, got number"});
  CHECK(errorsOf(withUpstream(R"("breaker": {"slow_call_rate": 0})")) ==
        Errors{"upstreams.api.breaker.slow_call_rate: must be greater than 0 and at most 1"});
  CHECK(errorsOf(withUpstream(R"("breaker": {"slow_call_rate": 1.01})")) ==
        Errors{"upstreams.api.breaker.slow_call_rate: must be greater than 0 and at most 1"});
  CHECK(errorsOf(withUpstream(R"("breaker": {"slow_call_rate": "half"})")) ==
        Errors{"upstreams.api.breaker.slow_call_rate: expected a number, got string"});
}

TEST_CASE("config: upstream names fit the shared-memory records") {
  std::string long_name(64, 'u');
  CHECK(errorsOf(doc(R"("upstreams": {")" + long_name +
                     R"(": {"targets": [{"address": "127.0.0.1:1"}]}})")) ==
        Errors{"upstreams." + long_name + ": names are at most 63 bytes"});
  CHECK(valid(doc(R"("upstreams": {")" + std::string(63, 'u') +
                  R"(": {"targets": [{"address": "127.0.0.1:1"}]}})"))
            .upstreams.size() == 1);
}

TEST_CASE("config: retry_budget: ratio 0 to 1, window_ms at least 1000, min_retries any") {
  CHECK(errorsOf(withUpstream(R"("retry_budget": {"ratio": -0.1})")) ==
        Errors{"upstreams.api.retry_budget.ratio: must be at least 0 and at most 1"});
  CHECK(errorsOf(withUpstream(R"("retry_budget": {"ratio": 1.5})")) ==
        Errors{"upstreams.api.retry_budget.ratio: must be at least 0 and at most 1"});
  CHECK(errorsOf(withUpstream(R"("retry_budget": {"window_ms": 999})")) ==
        Errors{"upstreams.api.retry_budget.window_ms: must be at least 1000"});
  CHECK(errorsOf(withUpstream(R"("retry_budget": {"window_ms": 0})")) ==
        Errors{"upstreams.api.retry_budget.window_ms: expected a positive integer, got 0"});
  CHECK(errorsOf(withUpstream(R"("retry_budget": {"min_retries": -1})")) ==
        Errors{"upstreams.api.retry_budget.min_retries: expected a non-negative integer, got -1"});
  CHECK(errorsOf(withUpstream(R"("retry_budget": {"windows_ms": 1000})")) ==
        Errors{"upstreams.api.retry_budget.windows_ms: unknown key (did you mean \"window_ms\"?)"});
  CHECK(errorsOf(withUpstream(R"("retry_budget": 0.2)")) ==
        Errors{"upstreams.api.retry_budget: expected an object, got number"});
}

TEST_CASE("config: health_check: interval, timeout within it, expected status, thresholds") {
  auto health = [](const std::string& body) {
    return errorsOf(withUpstream(R"("health_check": )" + body));
  };
  CHECK(health(R"({"interval_ms": 99})") ==
        Errors{"upstreams.api.health_check.interval_ms: must be at least 100"});
  CHECK(health(R"({"timeout_ms": 0})") ==
        Errors{"upstreams.api.health_check.timeout_ms: expected a positive integer, got 0"});
  // The key the file set is blamed; the message names both.
  CHECK(health(R"({"timeout_ms": 2001})") ==
        Errors{"upstreams.api.health_check.timeout_ms: timeout_ms (2001) must be at most "
               "interval_ms (2000)"});
  CHECK(health(R"({"interval_ms": 500, "timeout_ms": 600})") ==
        Errors{"upstreams.api.health_check.timeout_ms: timeout_ms (600) must be at most "
               "interval_ms (500)"});
  CHECK(health(R"({"interval_ms": 500})") ==
        Errors{"upstreams.api.health_check.interval_ms: timeout_ms (1000) must be at most "
               "interval_ms (500)"});
  CHECK(valid(withUpstream(R"("health_check": {"interval_ms": 500, "timeout_ms": 500})"))
            .upstreams.at("api")
            .health_check->timeout_ms == 500);
  CHECK(health(R"({"expect_status": 99})") ==
        Errors{"upstreams.api.health_check.expect_status: must be 0 (any 2xx or 3xx) or 100-599"});
  CHECK(health(R"({"expect_status": 600})") ==
        Errors{"upstreams.api.health_check.expect_status: must be 0 (any 2xx or 3xx) or 100-599"});
  CHECK(health(R"({"expect_status": "200"})") ==
        Errors{"upstreams.api.health_check.expect_status: expected a non-negative integer, got "
               "string"});
  CHECK(health(R"({"healthy_threshold": 0})") ==
        Errors{"upstreams.api.health_check.healthy_threshold: expected a positive integer, got 0"});
  CHECK(
      health(R"({"unhealthy_threshold": 0})") ==
      Errors{"upstreams.api.health_check.unhealthy_threshold: expected a positive integer, got 0"});
}

// `count` targets 127.0.0.1:1.. over upstreams of at most 1000 targets each.
std::string manyTargets(uint32_t count) {
  std::string upstreams;
  uint32_t port = 1;
  for (uint32_t u = 0; port <= count; ++u) {
    std::string targets;
    for (uint32_t i = 0; i < 1000 && port <= count; ++i, ++port) {
      targets += (targets.empty() ? "" : ",") + std::string(R"({"address": "127.0.0.1:)") +
                 std::to_string(port) + "\"}";
    }
    upstreams += (upstreams.empty() ? "" : ",") + std::string("\"u") + std::to_string(u) +
                 R"(": {"targets": [)" + targets + "]}";
  }
  return doc(R"("upstreams": {)" + upstreams + "}");
}

TEST_CASE("config: at most kMaxUpstreamTargets targets over all upstreams") {
  Config c = valid(manyTargets(kMaxUpstreamTargets));
  REQUIRE(c.upstreams.size() == 2);
  CHECK(c.upstreams.at("u0").targets.size() + c.upstreams.at("u1").targets.size() ==
        kMaxUpstreamTargets);
  CHECK(errorsOf(manyTargets(kMaxUpstreamTargets + 1)) ==
        Errors{"upstreams: 1025 targets over all upstreams, at most 1024"});
}

TEST_CASE("config: retry_on lists 502, 503, 504 once each, on upstream routes only") {
  std::string api = R"("upstreams": {"api": {"targets": [{"address": "127.0.0.1:9001"}]}})";
  auto route = [&](const std::string& retry_on) {
    return withRoute(R"({"prefix": "/api/", "upstream": "api", "retry_on": )" + retry_on + "}",
                     api);
  };
  CHECK(valid(withRoute(R"({"prefix": "/api/", "upstream": "api"})", api))
            .routes[0]
            .retry_on.empty());
  CHECK(valid(route("[502, 503, 504]")).routes[0].retry_on == std::vector<int>{502, 503, 504});
  CHECK(valid(route("[504]")).routes[0].retry_on == std::vector<int>{504});
  CHECK(errorsOf(route("[500]")) ==
        Errors{"routes[0].retry_on[0]: must be 502, 503 or 504, got 500"});
  CHECK(errorsOf(route("[502, 502]")) == Errors{"routes[0].retry_on[1]: listed twice"});
  CHECK(errorsOf(route("[\"502\"]")) ==
        Errors{"routes[0].retry_on[0]: expected a non-negative integer, got string"});
  CHECK(errorsOf(route("[]")) == Errors{"routes[0].retry_on: must not be empty"});
  CHECK(errorsOf(route("502")) == Errors{"routes[0].retry_on: expected an array, got number"});
  CHECK(errorsOf(withRoute(R"({"path": "/", "static": {}, "retry_on": [502]})")) ==
        Errors{"routes[0].retry_on: only for a route with \"upstream\""});
  CHECK(errorsOf(withRoute(R"({"path": "/", "builtin": "live", "retry_on": [502]})")) ==
        Errors{"routes[0].retry_on: only for a route with \"upstream\""});
}

TEST_CASE("config: a route's listen addresses are top-level listen addresses") {
  auto config = [](const std::string& routes) {
    return R"({"listen": ["127.0.0.1:8080", "127.0.0.1:8081"], "routes": [)" + routes + "]}";
  };
  Config c = valid(config(R"({"path": "/", "static": {}, "listen": ["127.0.0.1:8081"]},
                             {"path": "/all", "static": {}})"));
  REQUIRE(c.routes[0].listen.size() == 1);
  CHECK(c.routes[0].listen[0] == c.listen[1]);
  CHECK(c.routes[0].listen[0].text == "127.0.0.1:8081");
  CHECK(c.routes[1].listen.empty());
  // Equal as addresses, whatever the spelling.
  CHECK(valid(config(R"({"path": "/", "static": {}, "listen": ["localhost:8080"]})"))
            .routes[0]
            .listen[0] == c.listen[0]);
  CHECK(errorsOf(config(R"({"path": "/", "static": {}, "listen": ["127.0.0.1:9999"]})")) ==
        Errors{"routes[0].listen[0]: \"127.0.0.1:9999\" is not one of the top-level \"listen\" "
               "addresses"});
  CHECK(errorsOf(config(
            R"({"path": "/", "static": {}, "listen": ["127.0.0.1:8081", "127.0.0.1:8081"]})")) ==
        Errors{"routes[0].listen[1]: listed twice"});
  CHECK(errorsOf(config(R"({"path": "/", "static": {}, "listen": ["127.0.0.1"]})")).size() == 1);
  CHECK(errorsOf(config(R"({"path": "/", "static": {}, "listen": []})")) ==
        Errors{"routes[0].listen: must not be empty"});
  CHECK(errorsOf(config(R"({"path": "/", "static": {}, "listen": "127.0.0.1:8080"})")) ==
        Errors{"routes[0].listen: expected an array, got string"});
  // A bad top-level listener is reported once, not again for each route naming it.
  CHECK(errorsOf(R"({"listen": ["127.0.0.1:8080", "127.0.0.1:0"],
                     "routes": [{"path": "/", "static": {}, "listen": ["127.0.0.1:8081"]}]})") ==
        Errors{"listen[1]: port must be 1-65535"});
}

TEST_CASE("config: the same path on other listen addresses is still reachable") {
  auto config = [](const std::string& routes) {
    return R"({"listen": ["127.0.0.1:8080", "127.0.0.1:8081"], "routes": [)" + routes + "]}";
  };
  CHECK(valid(config(R"({"path": "/", "static": {}, "listen": ["127.0.0.1:8080"]},
                        {"path": "/", "static": {}, "listen": ["127.0.0.1:8081"]})"))
            .routes.size() == 2);
  CHECK(valid(config(R"({"path": "/", "static": {}, "listen": ["127.0.0.1:8080"]},
                        {"path": "/", "static": {}})"))
            .routes.size() == 2);
  CHECK(errorsOf(config(R"({"path": "/", "static": {}},
                           {"path": "/", "static": {}, "listen": ["127.0.0.1:8081"]})")) ==
        Errors{"routes[1]: same path as routes[0], which always matches first"});
  CHECK(errorsOf(
            config(R"({"path": "/", "static": {}, "listen": ["127.0.0.1:8080", "127.0.0.1:8081"]},
                           {"path": "/", "static": {}})")) ==
        Errors{"routes[1]: same path as routes[0], which always matches first"});
}

TEST_CASE("config: a dashboard route needs a status route on its listen addresses") {
  auto config = [](const std::string& routes) {
    return R"({"listen": ["127.0.0.1:8080", "127.0.0.1:8081"], "routes": [)" + routes + "]}";
  };
  Config c = valid(config(R"({"path": "/dashboard", "builtin": "dashboard"},
                             {"path": "/health/status", "builtin": "status"})"));
  CHECK(c.routes[0].kind == RouteKind::Builtin);
  CHECK(c.routes[0].builtin == Builtin::Dashboard);
  // Before or after it in the file: the page polls it later, from the browser.
  const RouteConfig* status = statusRouteFor(c.routes, c.listen, c.routes[0]);
  REQUIRE(status != nullptr);
  CHECK(status->path == "/health/status");

  CHECK(errorsOf(config(R"({"path": "/", "static": {}},
                           {"path": "/dashboard", "builtin": "dashboard"},
                           {"path": "/health/live", "builtin": "live"})")) ==
        Errors{"routes[1].builtin: \"dashboard\" needs a route with builtin \"status\""});
  // A status route on another listener only: the browser could not reach it.
  CHECK(errorsOf(config(R"({"path": "/dashboard", "builtin": "dashboard"},
                           {"path": "/s", "builtin": "status", "listen": ["127.0.0.1:8081"]})")) ==
        Errors{"routes[0].builtin: \"dashboard\" needs a route with builtin \"status\" on every "
               "listen address the dashboard is on"});
  // The first status route that serves wherever the dashboard does is the one polled.
  c = valid(config(R"({"path": "/dashboard", "builtin": "dashboard", "listen": ["127.0.0.1:8081"]},
                      {"path": "/a/status", "builtin": "status", "listen": ["127.0.0.1:8080"]},
                      {"path": "/b/status", "builtin": "status"})"));
  status = statusRouteFor(c.routes, c.listen, c.routes[0]);
  REQUIRE(status != nullptr);
  CHECK(status->path == "/b/status");

  CHECK(errorsOf(withRoute(R"({"path": "/", "builtin": "dashbord"})")) ==
        Errors{"routes[0].builtin: unknown builtin \"dashbord\" (known: live, ready, status, "
               "metrics, dashboard)"});
}

}  // namespace phalanx::shared

// The configuration: one JSON file parsed into plain structs.
//
// Contract:
// - parseConfig() validates the whole document and returns either a Config or
//   every error found, each one line naming its JSON path, e.g.
//   `limits.max_header_bytes: expected a positive integer, got string`.
// - Unknown keys are errors, never silently ignored.
// - Every key has a default except `listen` and `routes`.
// - Durations end in `_ms`, sizes in `_bytes`; `max_memory` takes a unit ("512M").
// - Cross-checks are done here too: a health check's timeout_ms within its
//   interval_ms, at most kMaxUpstreamTargets targets over all upstreams, a
//   route's listen addresses among the top-level ones, retry_on only on
//   upstream routes.
// - Nothing here touches sockets or processes: the master, the workers and the
//   unit tests call the same pure function.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/address.h"
#include "shared/cidr.h"

namespace phalanx::shared {

// Worker slots in shared memory are fixed at this many: `workers` may not exceed it.
inline constexpr unsigned kMaxWorkers = 256;

// Upper bounds of Limits::max_header_bytes and Limits::max_headers.
inline constexpr uint64_t kMaxHeaderBytes = 1 << 20;
inline constexpr uint32_t kMaxHeaderFields = 10000;

// Targets over all upstreams: per-target state (shared-memory records,
// connection pools) is sized by this at start, so a config may not exceed it.
inline constexpr uint32_t kMaxUpstreamTargets = 1024;
// Upstream names are at most this long (the shared-memory records keep them,
// and target addresses, in fixed fields).
inline constexpr size_t kMaxUpstreamNameBytes = 63;

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  std::string access = "off";  // "off", "stderr", or a file path
};

struct Limits {
  uint64_t max_header_bytes = 16384;   // request line + headers; over → 431
  uint64_t max_body_bytes = 1048576;   // over → 413
  uint32_t header_timeout_ms = 10000;  // first byte to end of headers; over → 408
  uint32_t idle_timeout_ms = 75000;    // keep-alive idle between requests; over → close
  uint32_t max_connections = 10000;    // per worker; at the limit the worker stops accepting
  uint32_t max_headers = 100;          // header fields in one request; over → 431
};

// How the path a client sent becomes the path routes match (see path_normalizer.h).
struct HttpConfig {
  bool merge_slashes = true;  // "//admin" routes as "/admin" (nginx's merge_slashes)
};

struct SupervisorConfig {
  uint32_t restart_base_ms = 100;
  double restart_factor = 1.5;
  uint32_t restart_max_ms = 15000;
  uint32_t min_uptime_ms = 30000;
  uint32_t max_unstable_restarts = 15;
  uint64_t max_memory_bytes = 512ull << 20;  // from "max_memory": "512M"; "off" = 0 = no cap
  uint32_t heartbeat_timeout_ms = 30000;
  uint32_t drain_timeout_ms = 30000;
  uint32_t shutdown_timeout_ms = 30000;
  // How long a new worker may take from spawn to reporting ready in shm before
  // the master gives up on it (kills it; a reload waiting for it fails).
  uint32_t ready_timeout_ms = 10000;
  uint64_t max_requests = 0;  // 0 = never recycle
  uint64_t max_requests_jitter = 0;
};

struct RedisConfig {
  Address address;  // default 127.0.0.1:6379
  uint32_t timeout_ms = 50;
};

// "100/h", "1000/15m", "10/s", "5/2h": count requests per period.
struct Rate {
  uint64_t count = 0;
  uint64_t period_ms = 0;
};

struct BreakerConfig {
  uint32_t consecutive_failures = 5;  // 0 = off
  double failure_rate = 0.5;          // 0 < x <= 1
  uint32_t minimum_calls = 10;
  uint32_t window_ms = 10000;
  uint32_t open_ms = 30000;
  uint32_t half_open_calls = 2;
  uint32_t slow_call_ms = 0;    // 0 = no slow-call accounting
  std::string share = "local";  // "local" or "cluster"
  // 0 < x <= 1: the share of calls slower than slow_call_ms in the window that
  // opens the breaker (only when slow_call_ms > 0).
  double slow_call_rate = 1.0;
};

struct HealthCheckConfig {
  std::string path = "/health";
  uint32_t interval_ms = 2000;       // at least 100
  uint32_t timeout_ms = 1000;        // 1..interval_ms: a probe never overlaps the next one
  int expect_status = 0;             // 0 = any 2xx or 3xx; else exactly this status (100..599)
  uint32_t healthy_threshold = 2;    // consecutive passed probes that mark a target up
  uint32_t unhealthy_threshold = 3;  // consecutive failed probes that mark a target down
};

struct UpstreamTarget {
  Address address;
  uint32_t weight = 1;
  bool backup = false;  // used only when no other (non-backup) target is up
};

// Retries allowed beyond first attempts, as Linkerd and Finagle budget them:
// a retry storm cannot multiply the load on an upstream that is already failing.
struct RetryBudgetConfig {
  double ratio = 0.2;          // 0..1: retries per first attempt in the window
  uint32_t window_ms = 10000;  // at least 1000
  // Retries always allowed per window, even at low traffic where ratio would
  // allow none (Linkerd's minRetriesPerSecond).
  uint32_t min_retries = 10;
};

struct UpstreamConfig {
  std::vector<UpstreamTarget> targets;  // at least one
  // "round_robin", "least_conn", "random_two" (power of two choices); the
  // older "random" is read as "random_two".
  std::string balance = "round_robin";
  uint32_t connect_timeout_ms = 1000;  // at least 1
  uint32_t timeout_ms = 30000;         // at least 1
  uint32_t retries = 1;                // 0..10
  std::optional<HealthCheckConfig> health_check;
  BreakerConfig breaker;
  // Idle keep-alive connections kept per worker per target, 0..10000;
  // 0 = no keep-alive to the upstream.
  uint32_t max_idle_connections = 32;
  // A pooled idle connection is closed after this (at least 1). Below the
  // upstream's own keep-alive timeout, so phalanx never reuses a connection
  // the upstream is closing at that moment; hence the low default.
  uint32_t idle_timeout_ms = 4000;
  bool required = false;  // /health/ready answers 503 while no target of it is usable
  RetryBudgetConfig retry_budget;
};

// How a limited route tells clients where they stand: the IETF draft's
// RateLimit-Policy / RateLimit ("draft", structured fields, one item per
// limit), or draft-06's RateLimit-Limit / -Remaining / -Reset trio that older
// clients read ("draft-6").
enum class RateLimitHeaders { Draft, Draft6 };

// The part of a limit that says how many and where it is decided.
struct LimitSpec {
  Rate rate;  // count 0 = no limit (a tier without "rate": an admin tier)
  uint64_t burst = 0;                    // the bucket size; defaults to rate.count
  std::string mode = "local";            // "local" (shared memory) or "cluster" (Redis)
  std::string on_redis_error = "local";  // cluster mode, Redis failed: "local", "open", "closed"
  RateLimitHeaders headers = RateLimitHeaders::Draft;
};

// A tier: what the keys (or JWT subjects) of that tier may do. Its limit
// applies, per key, on top of a route's own limits on every route with "auth".
struct TierConfig {
  LimitSpec limit;
};

struct ApiKeyConfig {
  std::string key;     // the key itself, or empty when given as sha256
  std::string sha256;  // 64 hex digits: the key's SHA-256, so the file holds no secret
  std::string tier;    // must name a tier
  std::string id;      // what logs and views show; defaults to a digest prefix
};

// What a limit counts by: the client's IP (X-Forwarded-For only from
// trusted_proxies), the authenticated key or JWT subject, one header's value
// (a request without it is not limited by this limit, as nginx does with an
// empty key), or the route (one bucket for every client).
enum class LimitKey { Ip, ApiKey, Header, Route };

struct RateLimitConfig {
  LimitKey key = LimitKey::Ip;
  std::string header;  // key == Header: the header's name
  LimitSpec limit;
};

struct JwtConfig {
  std::string jwks_file;  // required: the verification keys (JWKS, RS256/ES256/HS256)
  std::string issuer;     // "" = not checked
  std::string audience;   // "" = not checked
  std::string tier_claim = "tier";
  std::string default_tier;  // for a token without the claim; "" = such a token gets a 403
  uint32_t leeway_ms = 30000;  // clock skew allowed on exp and nbf, at most 300000
};

// The response cache's host-wide settings (a route turns it on with "cache").
struct CacheSettings {
  uint64_t memory_bytes = 64ull << 20;  // level 1, per worker: "64M"
  bool redis = false;                   // level 2 in Redis, shared by workers and hosts
};

// Upper bound of StaticResponseConfig::delay_ms: ten minutes.
inline constexpr uint32_t kMaxStaticDelayMs = 600000;

struct StaticResponseConfig {
  int status = 200;  // 200..599
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // in file order
  // Answer this long after the request arrived (0..kMaxStaticDelayMs): fault
  // injection, and a slow in-flight request on demand for tests.
  uint32_t delay_ms = 0;
};

// Endpoints phalanx answers itself:
//   live     liveness: the worker's loop runs (always 200)
//   ready    readiness: 200, or 503 while draining (or a required dependency is down)
//   status   the status object of every worker, as the control socket's `status`
//   metrics  Prometheus text exposition of the sums over every worker
//   dashboard  an HTML status page that polls a `status` route from the browser
//              (the config must have one on the dashboard's listen addresses)
enum class Builtin { Live, Ready, Status, Metrics, Dashboard };

struct CacheConfig {
  uint32_t ttl_ms = 60000;  // when the upstream gives no max-age / s-maxage
  // Responses to requests with credentials (Authorization, an API key) may be
  // cached and served to others: only for routes whose answers do not depend
  // on who asks.
  bool shared = false;
};

enum class RouteMatch { Exact, Prefix };
enum class RouteKind { Static, Builtin, Upstream };

struct RouteConfig {
  RouteMatch match = RouteMatch::Exact;
  std::string path;  // starts with '/'
  // The name its figures are kept under (metric label "route", status,
  // errors); "" = the path. Routes may share a name, and then its figures.
  std::string name;
  RouteKind kind = RouteKind::Static;
  StaticResponseConfig static_response;  // kind == Static
  Builtin builtin = Builtin::Live;       // kind == Builtin
  std::string upstream;                  // kind == Upstream: names an upstream
  std::vector<std::string> rate_limits;  // names of rate_limits entries, applied in order
  std::string auth;                      // "", "api_key" or "jwt"
  // With auth: the tiers that may use this route (others get a 403); empty = every tier.
  std::vector<std::string> tiers;
  // The peers that may use this route (others get a 403); empty = everyone.
  std::vector<Cidr> allow;
  std::optional<CacheConfig> cache;  // upstream routes only
  // The methods this route answers; others get a 405 with Allow. Empty: every
  // method but TRACE (and CONNECT, which no route accepts).
  std::vector<std::string> methods;
  // Upstream statuses that may be retried (502, 503, 504, each once); only on
  // an upstream route. Empty: no status is.
  std::vector<int> retry_on;
  // The route matches only on connections accepted on these addresses, each
  // one of Config::listen. Empty: on every listen address.
  std::vector<Address> listen;
};

// Request methods a route may list in "methods" (llhttp's HTTP methods but CONNECT).
bool isRouteMethod(std::string_view name);

// The route a dashboard route's page polls: the first one in `routes` with builtin
// "status" that serves on every listen address `dashboard` does (`listen`: the
// config's top-level addresses), or nullptr. A valid config has one for each
// dashboard route: validation refuses a dashboard without it.
const RouteConfig* statusRouteFor(const std::vector<RouteConfig>& routes,
                                  const std::vector<Address>& listen, const RouteConfig& dashboard);

struct Config {
  std::vector<Address> listen;  // required, at least one, no duplicates
  unsigned workers = 0;         // 0 = "auto": one per core
  std::string control_socket = "run/phalanx.sock";
  LogConfig log;
  Limits limits;
  HttpConfig http;
  SupervisorConfig supervisor;
  std::optional<RedisConfig> redis;  // present only when the file has "redis"
  std::map<std::string, UpstreamConfig> upstreams;
  // Peers whose X-Forwarded-For names the client (its last untrusted entry).
  std::vector<Cidr> trusted_proxies;
  std::optional<JwtConfig> jwt;
  std::string api_key_file;  // "" = none; keys as in api_keys, read at start and on reload
  CacheSettings cache;
  // Entries of the host's rate-limit table in shared memory (a power of two);
  // fixed at master start: a reload cannot change it.
  uint32_t rate_limit_entries = 65536;
  std::map<std::string, TierConfig> tiers;
  std::vector<ApiKeyConfig> api_keys;
  std::map<std::string, RateLimitConfig> rate_limits;
  std::vector<RouteConfig> routes;  // required, at least one
};

struct ConfigResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<std::string> errors;  // one line each, JSON path first
};

// Parses and validates a whole document. Never throws.
ConfigResult parseConfig(std::string_view json_text);

// Reads `path` and parses it. Every error starts with the path ("FILE: limits.x: ...");
// a missing or unreadable file is one error, "FILE: cannot read: <why>". The
// api_key_file a valid config names is read and checked too (its errors name
// that file), and so is the jwt section's jwks_file, as far as being JSON with
// a non-empty "keys" array (the workers build the keys).
// When `text_out` is given it receives the file's bytes (the master hands exactly
// these bytes to its workers, so they never read a file that changed since).
ConfigResult loadConfigFile(const std::string& path, std::string* text_out = nullptr);

// "100/h" → {100, 3600000}; units s, m, h, d with an optional count ("15m").
std::optional<Rate> parseRate(std::string_view text);

// "512M" → 536870912; units K, M, G (powers of 1024), optional trailing "B".
// A bare number has no unit and is refused.
std::optional<uint64_t> parseSize(std::string_view text);

// The number of workers to run: `workers`, or one per core for "auto".
unsigned effectiveWorkers(const Config& config);

}  // namespace phalanx::shared

#include "shared/config.h"

#include <simdjson.h>
#include <sys/un.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "shared/api_key_file.h"
#include "shared/config_parse.h"
#include "shared/json_reader.h"

namespace phalanx::shared {

std::optional<Cidr> config_parse::readCidr(Errors& errors, const std::string& path,
                                           element value) {
  std::string text;
  if (!json::readString(errors, path, value, text)) return std::nullopt;
  std::string why;
  std::optional<Cidr> cidr = parseCidr(text, &why);
  if (!cidr) errors.add(path, why);
  return cidr;
}

std::optional<Address> config_parse::readAddress(Errors& errors, const std::string& path,
                                                 element value) {
  std::string text;
  if (!json::readString(errors, path, value, text)) return std::nullopt;
  std::string why;
  std::optional<Address> address = parseAddress(text, &why);
  if (!address) errors.add(path, why);
  return address;
}

namespace {

using config_parse::Parse;
using config_parse::parseRoutes;
using config_parse::readAddress;
using json::AtLeast;
using json::element;
using json::Errors;
using json::forEachItem;
using json::indexPath;
using json::inQuotes;
using json::isNumber;
using json::jsonType;
using json::kMaxU64;
using json::ObjectReader;
using json::readNamed;
using json::readString;
using json::readUnsigned;
using simdjson::dom::element_type;

// Upper bounds of UpstreamConfig::retries and ::max_idle_connections: more
// retries only multiply an outage; more idle connections only hold fds.
constexpr uint32_t kMaxUpstreamRetries = 10;
constexpr uint32_t kMaxIdleUpstreamConnections = 10000;

std::optional<Rate> readRate(Errors& errors, const std::string& path, element value) {
  std::string text;
  if (!readString(errors, path, value, text)) return std::nullopt;
  std::optional<Rate> rate = parseRate(text);
  if (!rate)
    errors.add(path, "expected a rate like \"100/m\" or \"1000/15m\", got " + inQuotes(text));
  return rate;
}

// Adds `address` to `out` unless it is already there; `paths` holds where each
// entry of `out` was written, for the message.
void addUnique(Parse& p, const std::string& path, Address address, std::vector<Address>& out,
               std::vector<std::string>& paths) {
  auto same = std::find(out.begin(), out.end(), address);
  if (same != out.end()) return p.errors.add(path, "same address as " + paths[same - out.begin()]);
  out.push_back(std::move(address));
  paths.push_back(path);
}

void parseListen(Parse& p, element value) {
  std::vector<std::string> paths;
  forEachItem(p.errors, "listen", value, true, [&](const std::string& path, element item) {
    if (auto address = readAddress(p.errors, path, item)) {
      addUnique(p, path, std::move(*address), p.config.listen, paths);
    } else {
      p.listen_complete = false;
    }
  });
}

void parseWorkers(Parse& p, element value) {
  if (value.type() == element_type::STRING) {
    std::string_view text = value.get_string().value_unsafe();
    if (text != "auto") {
      p.errors.add("workers", "expected a positive integer or \"auto\", got " + inQuotes(text));
    }
    p.config.workers = 0;
    return;
  }
  if (!isNumber(value)) {
    p.errors.add("workers",
                 std::string("expected a positive integer or \"auto\", got ") + jsonType(value));
    return;
  }
  if (auto number = readUnsigned(p.errors, "workers", value, AtLeast::One, kMaxWorkers)) {
    p.config.workers = static_cast<unsigned>(*number);
  }
}

void parseControlSocket(Parse& p, element value) {
  std::string& out = p.config.control_socket;
  // bind() would fail much later with a vaguer error.
  if (readString(p.errors, "control_socket", value, out) &&
      out.size() >= sizeof(sockaddr_un{}.sun_path)) {
    p.errors.add("control_socket", "path too long for a unix socket (at most " +
                                       std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                       " bytes)");
  }
}

void parseLog(Parse& p, element value) {
  ObjectReader r(p.errors, "log", value);
  r.choice("level", p.config.log.level,
           {"trace", "debug", "info", "warn", "error", "critical", "off"});
  r.string("access", p.config.log.access);  // "off", "stderr" or a path: any non-empty string
}

void parseLimits(Parse& p, element value) {
  ObjectReader r(p.errors, "limits", value);
  Limits& limits = p.config.limits;
  // Below this a browser's ordinary request with cookies would already get a 431.
  // Above the upper bound a header section is no API request but a memory lever.
  if (r.u64("max_header_bytes", limits.max_header_bytes, AtLeast::One, kMaxHeaderBytes) &&
      limits.max_header_bytes < 1024) {
    p.errors.add("limits.max_header_bytes", "must be at least 1024");
  }
  r.u64("max_body_bytes", limits.max_body_bytes);
  r.u32("header_timeout_ms", limits.header_timeout_ms);
  r.u32("idle_timeout_ms", limits.idle_timeout_ms);
  r.u32("max_connections", limits.max_connections);
  if (r.u32("max_headers", limits.max_headers) && limits.max_headers > kMaxHeaderFields) {
    p.errors.add("limits.max_headers", "must be at most " + std::to_string(kMaxHeaderFields));
  }
}

void parseHttp(Parse& p, element value) {
  ObjectReader r(p.errors, "http", value);
  r.boolean("merge_slashes", p.config.http.merge_slashes);
}

// Parses "512M" and friends, 0 included; parseSize() is the public, stricter face.
std::optional<uint64_t> parseSizeAllowingZero(std::string_view text) {
  size_t digits = 0;
  uint64_t number = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    uint64_t digit = static_cast<uint64_t>(text[digits] - '0');
    if (number > (kMaxU64 - digit) / 10) return std::nullopt;
    number = number * 10 + digit;
    ++digits;
  }
  std::string_view unit = text.substr(digits);
  if (digits == 0 || unit.empty() || unit.size() > 2) return std::nullopt;
  if (unit.size() == 2 && unit[1] != 'B' && unit[1] != 'b') return std::nullopt;
  size_t power = std::string_view("KMG").find(static_cast<char>(std::toupper(unit[0])));
  if (power == std::string_view::npos) return std::nullopt;
  int shift = 10 * static_cast<int>(power + 1);
  if (number > (kMaxU64 >> shift)) return std::nullopt;
  return number << shift;
}

void parseMaxMemory(Parse& p, element value) {
  const char* path = "supervisor.max_memory";
  const char* expected = "expected a size with a unit, like \"512M\", or \"off\"";
  if (value.type() != element_type::STRING) {
    p.errors.add(path, std::string(expected) + ", got " + jsonType(value));
    return;
  }
  std::string_view text = value.get_string().value_unsafe();
  if (text == "off") {
    p.config.supervisor.max_memory_bytes = 0;
    return;
  }
  std::optional<uint64_t> size = parseSizeAllowingZero(text);
  if (!size) {
    p.errors.add(path, std::string(expected) + ", got " + inQuotes(text));
  } else if (*size == 0) {
    p.errors.add(path, "must be greater than 0");
  } else {
    p.config.supervisor.max_memory_bytes = *size;
  }
}

void parseSupervisor(Parse& p, element value) {
  ObjectReader r(p.errors, "supervisor", value);
  SupervisorConfig& s = p.config.supervisor;
  size_t before = p.errors.size();
  bool base_set = r.u32("restart_base_ms", s.restart_base_ms);
  bool max_set = r.u32("restart_max_ms", s.restart_max_ms);
  // Blame the key the file set; when it set neither, the defaults are consistent.
  if (p.errors.size() == before && (base_set || max_set) && s.restart_max_ms < s.restart_base_ms) {
    p.errors.add(max_set ? "supervisor.restart_max_ms" : "supervisor.restart_base_ms",
                 "restart_max_ms (" + std::to_string(s.restart_max_ms) +
                     ") must be at least restart_base_ms (" + std::to_string(s.restart_base_ms) +
                     ")");
  }
  if (r.number("restart_factor", s.restart_factor) && !(s.restart_factor >= 1.0)) {
    p.errors.add("supervisor.restart_factor", "must be at least 1.0");
  }
  r.u32("min_uptime_ms", s.min_uptime_ms);
  r.u32("max_unstable_restarts", s.max_unstable_restarts, AtLeast::Zero);
  if (auto memory = r.get("max_memory")) parseMaxMemory(p, *memory);
  r.u32("heartbeat_timeout_ms", s.heartbeat_timeout_ms);
  r.u32("drain_timeout_ms", s.drain_timeout_ms);
  r.u32("shutdown_timeout_ms", s.shutdown_timeout_ms);
  r.u32("ready_timeout_ms", s.ready_timeout_ms);
  r.u64("max_requests", s.max_requests, AtLeast::Zero);
  r.u64("max_requests_jitter", s.max_requests_jitter, AtLeast::Zero);
}

void parseRedis(Parse& p, element value) {
  RedisConfig& redis = p.config.redis.emplace();
  redis.address = *parseAddress("127.0.0.1:6379", nullptr);
  ObjectReader r(p.errors, "redis", value);
  if (auto address = r.get("address")) {
    if (auto parsed = readAddress(p.errors, "redis.address", *address)) redis.address = *parsed;
  }
  r.u32("timeout_ms", redis.timeout_ms);
}

// "cluster" state lives in Redis; without a redis section it could never work.
void requireRedisFor(Parse& p, const std::string& path, const std::string& value) {
  if (value == "cluster" && !p.config.redis) {
    p.errors.add(path, "\"cluster\" needs a \"redis\" section");
  }
}

void parseTargets(Parse& p, const std::string& path, element value, UpstreamConfig& out) {
  std::vector<Address> seen;
  std::vector<std::string> paths;
  forEachItem(p.errors, path, value, true, [&](const std::string& item_path, element item) {
    ObjectReader r(p.errors, item_path, item);
    UpstreamTarget target;
    r.u32("weight", target.weight);
    r.boolean("backup", target.backup);
    std::optional<element> address = r.required("address");
    if (!address) return;
    std::optional<Address> parsed = readAddress(p.errors, r.pathOf("address"), *address);
    if (!parsed) return;
    size_t before = seen.size();
    addUnique(p, r.pathOf("address"), *parsed, seen, paths);
    if (seen.size() == before) return;
    target.address = std::move(*parsed);
    out.targets.push_back(std::move(target));
  });
}

void parseBreaker(Parse& p, const std::string& path, element value, BreakerConfig& out) {
  ObjectReader r(p.errors, path, value);
  r.u32("consecutive_failures", out.consecutive_failures, AtLeast::Zero);
  if (r.number("failure_rate", out.failure_rate) &&
      !(out.failure_rate > 0 && out.failure_rate <= 1)) {
    p.errors.add(r.pathOf("failure_rate"), "must be greater than 0 and at most 1");
  }
  r.u32("minimum_calls", out.minimum_calls);
  r.u32("window_ms", out.window_ms);
  r.u32("open_ms", out.open_ms);
  r.u32("half_open_calls", out.half_open_calls);
  r.u32("slow_call_ms", out.slow_call_ms, AtLeast::Zero);
  if (r.number("slow_call_rate", out.slow_call_rate) &&
      !(out.slow_call_rate > 0 && out.slow_call_rate <= 1)) {
    p.errors.add(r.pathOf("slow_call_rate"), "must be greater than 0 and at most 1");
  }
  if (r.choice("share", out.share, {"local", "cluster"})) {
    requireRedisFor(p, r.pathOf("share"), out.share);
  }
}

void parseHealthCheck(Parse& p, const std::string& path, element value, HealthCheckConfig& out) {
  ObjectReader h(p.errors, path, value);
  if (h.string("path", out.path) && out.path[0] != '/') {
    p.errors.add(h.pathOf("path"), "must start with '/'");
  }
  size_t before = p.errors.size();
  // Faster probing is load on the upstream, not information.
  bool interval_set = h.u32("interval_ms", out.interval_ms);
  if (interval_set && out.interval_ms < 100) {
    p.errors.add(h.pathOf("interval_ms"), "must be at least 100");
  }
  bool timeout_set = h.u32("timeout_ms", out.timeout_ms);
  // A probe still running when the next is due would pile probes up on a slow target.
  // Blame the key the file set; when it set neither, the defaults are consistent.
  if (p.errors.size() == before && (interval_set || timeout_set) &&
      out.timeout_ms > out.interval_ms) {
    p.errors.add(h.pathOf(timeout_set ? "timeout_ms" : "interval_ms"),
                 "timeout_ms (" + std::to_string(out.timeout_ms) +
                     ") must be at most interval_ms (" + std::to_string(out.interval_ms) + ")");
  }
  if (auto status = h.get("expect_status")) {
    auto number =
        readUnsigned(p.errors, h.pathOf("expect_status"), *status, AtLeast::Zero, kMaxU64);
    if (number && *number != 0 && (*number < 100 || *number > 599)) {
      p.errors.add(h.pathOf("expect_status"), "must be 0 (any 2xx or 3xx) or 100-599");
    } else if (number) {
      out.expect_status = static_cast<int>(*number);
    }
  }
  h.u32("healthy_threshold", out.healthy_threshold);
  h.u32("unhealthy_threshold", out.unhealthy_threshold);
}

void parseRetryBudget(Parse& p, const std::string& path, element value, RetryBudgetConfig& out) {
  ObjectReader r(p.errors, path, value);
  if (r.number("ratio", out.ratio) && !(out.ratio >= 0 && out.ratio <= 1)) {
    p.errors.add(r.pathOf("ratio"), "must be at least 0 and at most 1");
  }
  // A shorter window counts too few requests for a ratio to mean anything.
  if (r.u32("window_ms", out.window_ms) && out.window_ms < 1000) {
    p.errors.add(r.pathOf("window_ms"), "must be at least 1000");
  }
  r.u32("min_retries", out.min_retries, AtLeast::Zero);
}

void parseUpstream(Parse& p, const std::string& path, element value, UpstreamConfig& out) {
  ObjectReader r(p.errors, path, value);
  if (auto targets = r.required("targets")) parseTargets(p, r.pathOf("targets"), *targets, out);
  std::string balance;
  if (r.string("balance", balance)) {
    // "random" was this key's first name; files that use it keep working.
    if (balance == "random") balance = "random_two";
    if (balance == "round_robin" || balance == "least_conn" || balance == "random_two") {
      out.balance = std::move(balance);
    } else {
      p.errors.add(r.pathOf("balance"), "unknown value " + inQuotes(balance) +
                                            " (known: round_robin, least_conn, random_two)");
    }
  }
  r.u32("connect_timeout_ms", out.connect_timeout_ms);
  r.u32("timeout_ms", out.timeout_ms);
  if (r.u32("retries", out.retries, AtLeast::Zero) && out.retries > kMaxUpstreamRetries) {
    p.errors.add(r.pathOf("retries"), "must be at most " + std::to_string(kMaxUpstreamRetries));
  }
  if (auto check = r.get("health_check")) {
    parseHealthCheck(p, r.pathOf("health_check"), *check, out.health_check.emplace());
  }
  if (auto breaker = r.get("breaker")) parseBreaker(p, r.pathOf("breaker"), *breaker, out.breaker);
  if (r.u32("max_idle_connections", out.max_idle_connections, AtLeast::Zero) &&
      out.max_idle_connections > kMaxIdleUpstreamConnections) {
    p.errors.add(r.pathOf("max_idle_connections"),
                 "must be at most " + std::to_string(kMaxIdleUpstreamConnections));
  }
  r.u32("idle_timeout_ms", out.idle_timeout_ms);
  r.boolean("required", out.required);
  if (auto budget = r.get("retry_budget")) {
    parseRetryBudget(p, r.pathOf("retry_budget"), *budget, out.retry_budget);
  }
}

// The shared shape of tiers and rate limits. `rate_required`: a rate limit
// needs a rate; a tier without one is not limited (an admin tier).
void parseLimitSpec(Parse& p, ObjectReader& r, LimitSpec& out, bool rate_required) {
  std::optional<element> text = rate_required ? r.required("rate") : r.get("rate");
  if (text) {
    if (auto parsed = readRate(p.errors, r.pathOf("rate"), *text)) out.rate = *parsed;
  }
  if (r.u64("burst", out.burst)) {
    if (!text) p.errors.add(r.pathOf("burst"), "needs a \"rate\"");
  } else {
    out.burst = out.rate.count;
  }
  if (r.choice("mode", out.mode, {"local", "cluster"})) {
    requireRedisFor(p, r.pathOf("mode"), out.mode);
  }
  r.choice("on_redis_error", out.on_redis_error, {"local", "open", "closed"});
  std::string headers;
  if (r.choice("headers", headers, {"draft", "draft-6"})) {
    out.headers = headers == "draft-6" ? RateLimitHeaders::Draft6 : RateLimitHeaders::Draft;
  }
}

void parseTier(Parse& p, const std::string& path, element value, TierConfig& out) {
  ObjectReader r(p.errors, path, value);
  parseLimitSpec(p, r, out.limit, false);
}

// A header name is an RFC 9110 token.
bool isToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
  });
}

void parseRateLimit(Parse& p, const std::string& path, element value, RateLimitConfig& out) {
  ObjectReader r(p.errors, path, value);
  std::string key = "ip";
  if (r.choice("key", key, {"ip", "api_key", "header", "route"})) {
    static const std::map<std::string, LimitKey> kKeys = {{"ip", LimitKey::Ip},
                                                           {"api_key", LimitKey::ApiKey},
                                                           {"header", LimitKey::Header},
                                                           {"route", LimitKey::Route}};
    out.key = kKeys.at(key);
  }
  bool has_header = r.string("header", out.header);
  if (out.key == LimitKey::Header && !has_header) {
    p.errors.add(r.pathOf("header"), "required with \"key\": \"header\" (the header to count by)");
  } else if (has_header && out.key != LimitKey::Header) {
    p.errors.add(r.pathOf("header"), "only with \"key\": \"header\"");
  } else if (has_header && !isToken(out.header)) {
    p.errors.add(r.pathOf("header"), "not a header name: " + inQuotes(out.header));
  }
  parseLimitSpec(p, r, out.limit, true);
}

bool isHex64(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](unsigned char c) {
           return std::isxdigit(c) != 0;
         });
}

void parseApiKey(Parse& p, const std::string& path, element value) {
  ObjectReader r(p.errors, path, value);
  ApiKeyConfig api_key;
  std::optional<element> key = r.get("key");
  std::optional<element> digest = r.get("sha256");
  if (key.has_value() == digest.has_value()) {
    p.errors.add(path, "needs one of \"key\" or \"sha256\"");
  }
  if (key && readString(p.errors, r.pathOf("key"), *key, api_key.key)) {
    // Keys travel in a header: anything else could never be sent. Never echo a key: it is a secret.
    bool printable = std::all_of(api_key.key.begin(), api_key.key.end(),
                                 [](unsigned char c) { return c > 0x20 && c < 0x7f; });
    if (!printable) {
      p.errors.add(r.pathOf("key"), "must be printable ASCII without spaces");
    } else if (api_key.key.size() < 16 || api_key.key.size() > 256) {
      p.errors.add(r.pathOf("key"), "must be 16 to 256 bytes long");
    }
    for (size_t i = 0; i < p.config.api_keys.size(); ++i) {
      if (!api_key.key.empty() && p.config.api_keys[i].key == api_key.key) {
        p.errors.add(r.pathOf("key"), "same key as " + indexPath("api_keys", i));
      }
    }
  }
  if (digest && readString(p.errors, r.pathOf("sha256"), *digest, api_key.sha256)) {
    if (!isHex64(api_key.sha256)) {
      p.errors.add(r.pathOf("sha256"), "expected 64 hex digits (the key's SHA-256)");
    }
    std::transform(api_key.sha256.begin(), api_key.sha256.end(), api_key.sha256.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  if (r.string("id", api_key.id) &&
      (api_key.id.empty() || api_key.id.size() > 64 ||
       !std::all_of(api_key.id.begin(), api_key.id.end(),
                    [](unsigned char c) { return c > 0x20 && c < 0x7f; }))) {
    p.errors.add(r.pathOf("id"), "must be 1 to 64 printable ASCII bytes without spaces");
  }
  std::optional<element> tier = r.required("tier");
  if (tier && readString(p.errors, r.pathOf("tier"), *tier, api_key.tier) &&
      p.config.tiers.count(api_key.tier) == 0) {
    p.errors.add(r.pathOf("tier"), "no tier named " + inQuotes(api_key.tier));
  }
  p.config.api_keys.push_back(std::move(api_key));
}

void parseApiKeys(Parse& p, element value) {
  forEachItem(p.errors, "api_keys", value, false,
              [&p](const std::string& path, element item) { parseApiKey(p, path, item); });
}

void parseApiKeyFile(Parse& p, element value) {
  if (readString(p.errors, "api_key_file", value, p.config.api_key_file) &&
      p.config.api_key_file.empty()) {
    p.errors.add("api_key_file", "must not be empty");
  }
}

void parseTrustedProxies(Parse& p, element value) {
  forEachItem(p.errors, "trusted_proxies", value, false,
              [&p](const std::string& path, element item) {
                if (auto cidr = config_parse::readCidr(p.errors, path, item)) {
                  p.config.trusted_proxies.push_back(std::move(*cidr));
                }
              });
}

void parseJwt(Parse& p, element value) {
  JwtConfig& jwt = p.config.jwt.emplace();
  ObjectReader r(p.errors, "jwt", value);
  if (auto file = r.required("jwks_file")) {
    if (readString(p.errors, r.pathOf("jwks_file"), *file, jwt.jwks_file) && jwt.jwks_file.empty()) {
      p.errors.add(r.pathOf("jwks_file"), "must not be empty");
    }
  }
  r.string("issuer", jwt.issuer);
  r.string("audience", jwt.audience);
  if (r.string("tier_claim", jwt.tier_claim) && jwt.tier_claim.empty()) {
    p.errors.add(r.pathOf("tier_claim"), "must not be empty");
  }
  if (r.string("default_tier", jwt.default_tier) && p.config.tiers.count(jwt.default_tier) == 0) {
    p.errors.add(r.pathOf("default_tier"), "no tier named " + inQuotes(jwt.default_tier));
  }
  // More skew than five minutes is a broken clock, not skew.
  if (r.u32("leeway_ms", jwt.leeway_ms, AtLeast::Zero) && jwt.leeway_ms > 300000) {
    p.errors.add(r.pathOf("leeway_ms"), "must be at most 300000");
  }
}

void parseCache(Parse& p, element value) {
  ObjectReader r(p.errors, "cache", value);
  if (auto memory = r.get("memory")) {
    std::string text;
    if (readString(p.errors, r.pathOf("memory"), *memory, text)) {
      std::optional<uint64_t> bytes = parseSize(text);
      if (!bytes || *bytes < 1024 * 1024) {
        p.errors.add(r.pathOf("memory"), "expected a size of at least 1M like \"64M\", got " +
                                             inQuotes(text));
      } else {
        p.config.cache.memory_bytes = *bytes;
      }
    }
  }
  if (r.boolean("redis", p.config.cache.redis) && p.config.cache.redis && !p.config.redis) {
    p.errors.add(r.pathOf("redis"), "needs a \"redis\" section");
  }
}

void parseRateLimitEntries(Parse& p, element value) {
  auto number = readUnsigned(p.errors, "rate_limit_entries", value, AtLeast::One, kMaxU64);
  if (!number) return;
  if (*number < 1024 || *number > (1u << 24) || (*number & (*number - 1)) != 0) {
    p.errors.add("rate_limit_entries", "must be a power of two from 1024 to 16777216");
    return;
  }
  p.config.rate_limit_entries = static_cast<uint32_t>(*number);
}

void parseUpstreams(Parse& p, element value) {
  readNamed(p.errors, "upstreams", value, p.config.upstreams,
            [&p](auto&&... args) { parseUpstream(p, args...); });
  size_t targets = 0;
  for (const auto& [name, upstream] : p.config.upstreams) targets += upstream.targets.size();
  // Shared memory keeps names for the operator's views in fixed-size fields
  // (addresses are IP literals: the longest IPv6 one with a port fits).
  for (const auto& [name, upstream] : p.config.upstreams) {
    if (name.size() > kMaxUpstreamNameBytes) {
      p.errors.add("upstreams." + name, "names are at most " +
                                            std::to_string(kMaxUpstreamNameBytes) + " bytes");
    }
  }
  if (targets > kMaxUpstreamTargets) {
    p.errors.add("upstreams", std::to_string(targets) + " targets over all upstreams, at most " +
                                  std::to_string(kMaxUpstreamTargets));
  }
}

void parseTiers(Parse& p, element value) {
  readNamed(p.errors, "tiers", value, p.config.tiers,
            [&p](auto&&... args) { parseTier(p, args...); });
}

void parseRateLimits(Parse& p, element value) {
  readNamed(p.errors, "rate_limits", value, p.config.rate_limits,
            [&p](auto&&... args) { parseRateLimit(p, args...); });
}

struct Section {
  std::string_view key;
  void (*parse)(Parse&, element);
  bool required;
};

// In dependency order: a section may check its references against the ones above it.
constexpr Section kSections[] = {
    {"listen", parseListen, true},
    {"workers", parseWorkers, false},
    {"control_socket", parseControlSocket, false},
    {"log", parseLog, false},
    {"limits", parseLimits, false},
    {"http", parseHttp, false},
    {"supervisor", parseSupervisor, false},
    {"redis", parseRedis, false},
    {"upstreams", parseUpstreams, false},
    {"trusted_proxies", parseTrustedProxies, false},
    {"cache", parseCache, false},
    {"rate_limit_entries", parseRateLimitEntries, false},
    {"tiers", parseTiers, false},
    {"jwt", parseJwt, false},
    {"api_keys", parseApiKeys, false},
    {"api_key_file", parseApiKeyFile, false},
    {"rate_limits", parseRateLimits, false},
    {"routes", parseRoutes, true},
};

void parseTop(Parse& p, element root) {
  ObjectReader top(p.errors, "", root);
  if (!top.valid()) return;
  for (const Section& section : kSections) {
    std::optional<element> value =
        section.required ? top.required(section.key) : top.get(section.key);
    if (value) section.parse(p, *value);
  }
}

std::optional<uint64_t> parseDigits(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;  // 19 digits always fit in 64 bits
  uint64_t number = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    number = number * 10 + static_cast<uint64_t>(c - '0');
  }
  return number;
}

}  // namespace

ConfigResult parseConfig(std::string_view json_text) {
  simdjson::dom::parser parser;
  element root;
  simdjson::error_code error = parser.parse(json_text.data(), json_text.size()).get(root);
  if (error != simdjson::SUCCESS) {
    return {.config = std::nullopt,
            .errors = {std::string("invalid JSON: ") + simdjson::error_message(error)}};
  }
  Parse p;
  parseTop(p, root);
  if (p.errors.size() != 0) return {.config = std::nullopt, .errors = p.errors.take()};
  return {.config = std::move(p.config), .errors = {}};
}

ConfigResult loadConfigFile(const std::string& path, std::string* text_out) {
  auto cannotRead = [&](int error) {
    return ConfigResult{.config = std::nullopt,
                        .errors = {path + ": cannot read: " + std::strerror(error)}};
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) return cannotRead(errno);
  std::string text;
  char buffer[65536];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, got);
  // A directory opens fine and fails here, with EISDIR.
  if (std::ferror(file.get())) return cannotRead(errno);
  ConfigResult result = parseConfig(text);
  for (auto& error : result.errors) error.insert(0, path + ": ");
  // The key file is part of what the config says: a reload (or -t) that
  // would start workers unable to read it fails here, naming the file.
  if (result.config && !result.config->api_key_file.empty()) {
    std::set<std::string> tiers;
    for (const auto& [name, tier] : result.config->tiers) tiers.insert(name);
    ApiKeyFileResult keys = loadApiKeyFile(result.config->api_key_file, tiers);
    if (!keys.errors.empty()) {
      result.errors = std::move(keys.errors);
      result.config.reset();
    }
  }
  // The JWKS: read and parsed as JSON here, so a file that is missing or not
  // a key set fails the reload with its name; the keys themselves are built
  // (and checked further) by the workers (gateway/jwks.h).
  if (result.config && result.config->jwt) {
    const std::string& jwks = result.config->jwt->jwks_file;
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    simdjson::dom::array keys;
    if (parser.load(jwks).get(root) != simdjson::SUCCESS) {
      result.errors = {jwks + ": cannot read, or not JSON"};
      result.config.reset();
    } else if (root.at_key("keys").get_array().get(keys) != simdjson::SUCCESS || keys.size() == 0) {
      result.errors = {jwks + ": keys: expected a non-empty array of JWKs"};
      result.config.reset();
    }
  }
  if (text_out != nullptr) *text_out = std::move(text);
  return result;
}

std::optional<Rate> parseRate(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::optional<uint64_t> count = parseDigits(text.substr(0, slash));
  std::string_view period = text.substr(slash + 1);
  if (!count || *count == 0 || period.empty()) return std::nullopt;
  static constexpr std::pair<char, uint64_t> kUnits[] = {
      {'s', 1000}, {'m', 60'000}, {'h', 3'600'000}, {'d', 86'400'000}};
  auto unit = std::find_if(std::begin(kUnits), std::end(kUnits),
                           [&](const auto& u) { return u.first == period.back(); });
  if (unit == std::end(kUnits)) return std::nullopt;
  uint64_t unit_ms = unit->second;
  uint64_t units = 1;
  if (period.size() > 1) {
    std::optional<uint64_t> n = parseDigits(period.substr(0, period.size() - 1));
    if (!n || *n == 0 || *n > kMaxU64 / unit_ms) return std::nullopt;
    units = *n;
  }
  return Rate{.count = *count, .period_ms = units * unit_ms};
}

std::optional<uint64_t> parseSize(std::string_view text) {
  std::optional<uint64_t> size = parseSizeAllowingZero(text);
  if (!size || *size == 0) return std::nullopt;
  return size;
}

unsigned effectiveWorkers(const Config& config) {
  if (config.workers != 0) return config.workers;
  return std::clamp(uv_available_parallelism(), 1u, kMaxWorkers);
}

}  // namespace phalanx::shared

#include "worker/redis/redis_rate_limiter.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "shared/stable_hash.h"

namespace phalanx::worker {

namespace {

// KEYS[1]: the bucket, holding its theoretical arrival time (µs, Redis clock).
// ARGV[1]: T, ARGV[2]: tau, both µs. Every value stays an integer below 2^53,
// where Lua's doubles are exact; numbers go to Redis through '%.0f', as
// tostring() would print 1.7e+15 and lose the microseconds.
// Returns {allowed (0|1), remaining, reset_ms, retry_after_ms}.
constexpr std::string_view kScript = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local ahead = tat + T - now
if ahead <= tau then
  redis.call('SET', KEYS[1], string.format('%.0f', tat + T),
             'PX', string.format('%.0f', math.ceil(ahead / 1000) + 1))
  local remaining = 0
  if T > 0 then remaining = math.floor((tau - ahead) / T) end
  return {1, remaining, math.ceil(ahead / 1000), 0}
end
local retry = math.ceil((ahead - tau) / 1000)
if retry < 1 then retry = 1 end
return {0, 0, math.ceil((tat - now) / 1000), retry}
)lua";

bool isNoScript(const RedisReply& reply) {
  return reply.answered() && reply.type == RedisReply::Type::Error &&
         reply.str.starts_with("NOSCRIPT");
}

// The script's reply, checked: four non-negative integers, the first 0 or 1.
std::optional<RedisGcraDecision> parseDecision(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::Array || reply.elements.size() != 4) return std::nullopt;
  for (const RedisReply& e : reply.elements) {
    if (e.type != RedisReply::Type::Integer || e.integer < 0) return std::nullopt;
  }
  if (reply.elements[0].integer > 1) return std::nullopt;
  return RedisGcraDecision{.allowed = reply.elements[0].integer == 1,
                           .remaining = static_cast<uint64_t>(reply.elements[1].integer),
                           .reset_ms = static_cast<uint64_t>(reply.elements[2].integer),
                           .retry_after_ms = static_cast<uint64_t>(reply.elements[3].integer)};
}


constexpr size_t kMaxNameBytes = 128;
constexpr char kHex[] = "0123456789ABCDEF";

bool plain(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

std::string sanitize(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (unsigned char c : raw) {
    if (plain(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (out.size() <= kMaxNameBytes) return out;
  uint64_t h = shared::stableHash(raw);  // the same on every host and build
  out = "#";
  for (int shift = 60; shift >= 0; shift -= 4) out += "0123456789abcdef"[(h >> shift) & 0xf];
  return out;
}

}  // namespace

std::string redisRateLimitKey(std::string_view limit, std::string_view key) {
  return "phalanx:rl:{" + sanitize(limit) + ":" + sanitize(key) + "}";
}

std::string_view RedisRateLimiter::script() {
  return kScript;
}

RedisRateLimiter::RedisRateLimiter(RedisClient& client) : client_(client) {
  client_.onConnected([this] { loadScript(); });
  loadScript();  // does nothing unless the client is connected already
}

void RedisRateLimiter::loadScript() {
  if (loading_ || !client_.connected()) return;
  loading_ = true;
  ++counters_.script_loads;
  client_.command({"SCRIPT", "LOAD", std::string(kScript)}, [this](RedisReply reply) {
    loading_ = false;
    if (reply.ok() && reply.type == RedisReply::Type::String) {
      sha_ = std::move(reply.str);
    } else if (reply.answered()) {
      // Decisions still go as EVAL, which will likely fail the same way.
      spdlog::warn("redis rate limiter: SCRIPT LOAD refused: {}", reply.str);
    }
  });
}

void RedisRateLimiter::decide(std::string key, const RedisGcraParams& params, Done done) {
  ++counters_.decisions;
  if (sha_.empty()) loadScript();
  send(std::move(key), params, std::move(done), !sha_.empty());
}

void RedisRateLimiter::send(std::string key, const RedisGcraParams& params, Done done,
                            bool by_sha) {
  std::vector<std::string> args = {by_sha ? "EVALSHA" : "EVAL",
                                   by_sha ? sha_ : std::string(kScript),
                                   "1",
                                   by_sha ? key : std::move(key),
                                   std::to_string(params.emission_interval_us),
                                   std::to_string(params.tolerance_us)};
  // Only an EVALSHA may be sent again, so only it keeps the key.
  client_.command(std::move(args), [this, key = by_sha ? std::move(key) : std::string(), params,
                                    done = std::move(done), by_sha](RedisReply reply) mutable {
    if (by_sha && isNoScript(reply)) {
      // The server forgot the script: this decision goes again with the
      // script's text (one more timeout_ms at most), and the SHA is reloaded.
      ++counters_.noscript;
      sha_.clear();
      loadScript();
      send(std::move(key), params, std::move(done), false);
      return;
    }
    finish(reply, done);
  });
}

void RedisRateLimiter::finish(const RedisReply& reply, Done& done) {
  RedisGcraResult result;
  if (!reply.answered()) {
    result.failure = reply.failure;
  } else if (reply.type == RedisReply::Type::Error) {
    result.error = true;
    result.error_text = reply.str;
  } else {
    result.decision = parseDecision(reply);
    if (!result.decision) {
      result.error = true;
      result.error_text = "unexpected reply to the rate-limit script";
    }
  }
  if (!result.decision) {
    ++counters_.failures;
  } else if (!result.decision->allowed) {
    ++counters_.refused;
  }
  done(std::move(result));
}

}  // namespace phalanx::worker

// Rate limits in `cluster` mode: one atomic GCRA decision per request, made by
// a Lua script inside Redis, so every host of a fleet shares each bucket.
//
// GCRA, with T = emission_interval_us and tau = tolerance_us (T * limit):
// a request is allowed iff max(tat, now) + T - now <= tau; then
//   new_tat = max(tat, now) + T, stored with an expiry of ceil((new_tat - now) / 1000) + 1 ms,
//   remaining = floor((tau - (new_tat - now)) / T), reset_ms = ceil((new_tat - now) / 1000).
// Refused: nothing is written; remaining = 0,
//   retry_after_ms = max(1, ceil((max(tat, now) + T - tau - now) / 1000)),
//   reset_ms = ceil((max(tat, now) - now) / 1000).
// `now` is Redis's own clock (TIME, in µs), so hosts with skewed clocks still
// agree. Redis 7 replicates a script's effects, not the script, so reading
// TIME before a write is allowed (older servers are asked to do the same).
//
// Contract:
// - decide() never blocks. Its callback runs exactly once, from the loop,
//   within the client's timeout_ms (as RedisClient::command(); after the
//   client's close() it runs at once, from inside decide()).
//   One exception: a decision answered NOSCRIPT (the server lost its script
//   cache: SCRIPT FLUSH, a restart, a failover to a replica that never loaded
//   it) is sent again once, as EVAL with the script's text, so that one
//   decision may take up to 2 x timeout_ms.
// - The script is loaded (SCRIPT LOAD) each time the command connection comes
//   up and again after a NOSCRIPT; until its SHA is known, decisions go as EVAL.
// - The RedisClient must outlive the limiter, and the limiter must outlive the
//   client's use of it (its callbacks and its onConnected handler reach the
//   limiter): close the client before destroying the limiter.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "worker/redis/redis_client.h"

namespace phalanx::worker {

struct RedisGcraParams {
  uint64_t limit;                 // requests allowed at once (the burst)
  uint64_t emission_interval_us;  // T: one request's share of the refill
  uint64_t tolerance_us;          // tau: T * limit
};

struct RedisGcraDecision {
  bool allowed;
  uint64_t remaining;       // requests still allowed right now, after this one
  uint64_t reset_ms;        // until the bucket is full again
  uint64_t retry_after_ms;  // refused: until a request would be allowed (>= 1); allowed: 0
};

// What decide() hands back. `decision` is empty when Redis did not decide:
// - failure != None: no reply (not connected, timeout, disconnected, closed);
// - error: Redis answered, but with an Error reply other than NOSCRIPT (the
//   key holds another type, the script failed, a cluster MOVED, ...) or with
//   a reply the script cannot have produced; `error_text` says which.
struct RedisGcraResult {
  std::optional<RedisGcraDecision> decision;
  RedisFailure failure = RedisFailure::None;
  bool error = false;
  std::string error_text;
};

class RedisRateLimiter {
 public:
  // Figures for /metrics, each only ever growing.
  struct Counters {
    uint64_t decisions = 0;     // decide() calls
    uint64_t refused = 0;       // decisions that came back refused
    uint64_t failures = 0;      // decisions without a decision (failure or error)
    uint64_t noscript = 0;      // NOSCRIPT replies answered by a resend as EVAL
    uint64_t script_loads = 0;  // SCRIPT LOAD commands sent
  };
  using Done = std::function<void(RedisGcraResult)>;

  // Registers client.onConnected to SCRIPT LOAD the script (and loads it now
  // if the client is connected already).
  explicit RedisRateLimiter(RedisClient& client);
  RedisRateLimiter(const RedisRateLimiter&) = delete;
  RedisRateLimiter& operator=(const RedisRateLimiter&) = delete;

  // `key`: the full Redis key, built with redisRateLimitKey().
  void decide(std::string key, const RedisGcraParams& params, Done done);

  // The script's SHA1 as SCRIPT LOAD last reported it; empty until then.
  const std::string& scriptSha() const { return sha_; }
  const Counters& counters() const { return counters_; }

  // The Lua source, for tests and for operators who want to read it.
  static std::string_view script();

 private:
  void loadScript();
  void send(std::string key, const RedisGcraParams& params, Done done, bool by_sha);
  void finish(const RedisReply& reply, Done& done);

  RedisClient& client_;
  std::string sha_;
  bool loading_ = false;
  Counters counters_;
};

// The Redis key of one bucket: "phalanx:rl:{" + limit + ":" + key + "}". The
// hash tag (the braces) keeps each decision on one Redis Cluster shard.
// `limit` and `key` are each sanitized: bytes outside [A-Za-z0-9._:-] (so '{',
// '}', '%', '#', spaces, any byte >= 0x80) become %XX (upper-case hex); a
// result longer than 128 bytes is replaced by '#' and the 16 hex digits of a
// 64-bit hash of the raw bytes ('#' cannot occur in a sanitized name, so a
// hashed name never equals a short one).
std::string redisRateLimitKey(std::string_view limit, std::string_view key);

}  // namespace phalanx::worker

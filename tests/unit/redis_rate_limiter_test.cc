#include "worker/redis/redis_rate_limiter.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "redis_server.h"

using phalanx::worker::RedisClient;
using phalanx::worker::RedisFailure;
using phalanx::worker::RedisGcraParams;
using phalanx::worker::RedisGcraResult;
using phalanx::worker::RedisRateLimiter;
using phalanx::worker::redisRateLimitKey;
using phalanx::worker::RedisReply;

namespace {

RedisClient::Options testOptions(uint16_t port, uint32_t timeout_ms) {
  return RedisClient::Options{.address = loopbackAddress(port),
                              .timeout_ms = timeout_ms,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 100};
}

// "limit per period_ms", as the config's rate with burst = limit.
RedisGcraParams rate(uint64_t limit, uint64_t period_ms) {
  uint64_t t = period_ms * 1000 / limit;
  return RedisGcraParams{.limit = limit, .emission_interval_us = t, .tolerance_us = t * limit};
}

// One decision's outcome and when it came (ms after decide()).
struct Outcome {
  std::optional<RedisGcraResult> result;
  uint64_t issued_ms = TestLoop::nowMs();
  uint64_t after_ms = 0;
  bool done() const { return result.has_value(); }
};

RedisRateLimiter::Done into(Outcome& outcome) {
  outcome = Outcome{};
  return [&outcome](RedisGcraResult result) {
    CHECK_FALSE(outcome.done());  // exactly once
    outcome.after_ms = TestLoop::nowMs() - outcome.issued_ms;
    outcome.result = std::move(result);
  };
}

bool allDone(const std::vector<Outcome>& outcomes) {
  for (const Outcome& o : outcomes) {
    if (!o.done()) return false;
  }
  return true;
}

// `count` decisions issued back to back, all answered.
std::vector<Outcome> burst(TestLoop& loop, RedisRateLimiter& limiter, const std::string& key,
                           const RedisGcraParams& params, size_t count) {
  std::vector<Outcome> outcomes(count);
  for (Outcome& o : outcomes) limiter.decide(key, params, into(o));
  REQUIRE(loop.runUntil([&] { return allDone(outcomes); }, 3000));
  return outcomes;
}

RedisGcraResult decideOne(TestLoop& loop, RedisRateLimiter& limiter, const std::string& key,
                          const RedisGcraParams& params) {
  return *burst(loop, limiter, key, params, 1)[0].result;
}

RedisReply run(TestLoop& loop, RedisClient& client, std::vector<std::string> args) {
  std::optional<RedisReply> reply;
  client.command(std::move(args), [&](RedisReply r) { reply = std::move(r); });
  REQUIRE(loop.runUntil([&] { return reply.has_value(); }, 1000));
  return *reply;
}

// A client connected to `server`, with the limiter's script loaded.
struct Fixture {
  explicit Fixture(RedisServer& server, uint32_t timeout_ms = 1000)
      : client(loop.get(), testOptions(server.port(), timeout_ms)), limiter(client) {
    client.start();
    REQUIRE(
        loop.runUntil([&] { return client.connected() && !limiter.scriptSha().empty(); }, 2000));
  }
  ~Fixture() { client.close(); }

  TestLoop loop;
  RedisClient client;
  RedisRateLimiter limiter;
};

}  // namespace

TEST_CASE("redis rate limit key: hash-tagged, sanitized, long keys hashed") {
  CHECK(redisRateLimitKey("per_ip", "10.0.0.1") == "phalanx:rl:{per_ip:10.0.0.1}");
  CHECK(redisRateLimitKey("per_ip", "::1") == "phalanx:rl:{per_ip:::1}");
  CHECK(redisRateLimitKey("tier-free", "k.123_A-z") == "phalanx:rl:{tier-free:k.123_A-z}");
  // Braces would move the hash tag; '%' and '#' would make encodings ambiguous.
  CHECK(redisRateLimitKey("a{b}", "}{") == "phalanx:rl:{a%7Bb%7D:%7D%7B}");
  CHECK(redisRateLimitKey("l", "100%") == "phalanx:rl:{l:100%25}");
  CHECK(redisRateLimitKey("l", "#1") == "phalanx:rl:{l:%231}");
  CHECK(redisRateLimitKey("l", std::string("a b\0\n\xff/*", 8)) ==
        "phalanx:rl:{l:a%20b%00%0A%FF%2F%2A}");
  CHECK(redisRateLimitKey("", "") == "phalanx:rl:{:}");

  // 128 bytes once sanitized stay; 129 are hashed, the same on every call.
  std::string at_limit(128, 'k');
  CHECK(redisRateLimitKey("l", at_limit) == "phalanx:rl:{l:" + at_limit + "}");
  std::string encoded_long(43, ' ');  // 129 bytes once encoded
  std::string hashed = redisRateLimitKey("l", encoded_long);
  REQUIRE(hashed.size() == std::string("phalanx:rl:{l:#0123456789abcdef}").size());
  CHECK(hashed.starts_with("phalanx:rl:{l:#"));
  CHECK(hashed.find_first_not_of("0123456789abcdef", 15) == hashed.size() - 1);
  CHECK(redisRateLimitKey("l", encoded_long) == hashed);
  CHECK(redisRateLimitKey("l", std::string(42, ' ')).size() == 14 + 126 + 1);
  // Distinct long keys get distinct buckets.
  CHECK(redisRateLimitKey("l", std::string(200, 'a')) !=
        redisRateLimitKey("l", std::string(200, 'a') + "b"));
  // The limit name is bounded the same way.
  CHECK(redisRateLimitKey(std::string(300, 'n'), "k").size() == 12 + 17 + 1 + 1 + 1);
}

TEST_CASE("redis rate limit: 100/m allows exactly 100 of 300 sent back to back") {
  RedisServer server;
  Fixture f(server);
  RedisGcraParams params = rate(100, 60'000);
  std::string key = redisRateLimitKey("per_ip", "10.0.0.1");

  uint64_t started_ms = TestLoop::nowMs();
  std::vector<Outcome> outcomes = burst(f.loop, f.limiter, key, params, 300);
  uint64_t elapsed_ms = TestLoop::nowMs() - started_ms;
  MESSAGE("300 decisions in " << elapsed_ms << " ms");

  int allowed = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const RedisGcraResult& r = *outcomes[i].result;
    REQUIRE(r.decision.has_value());
    CHECK(r.failure == RedisFailure::None);
    CHECK_FALSE(r.error);
    if (i < 100) {
      // One connection, so Redis runs them in the order sent.
      CHECK(r.decision->allowed);
      CHECK(r.decision->remaining == 99 - i);
      CHECK(r.decision->retry_after_ms == 0);
      uint64_t full_ms = (i + 1) * 600;  // T = 600 ms per request taken
      CHECK(r.decision->reset_ms <= full_ms);
      CHECK(r.decision->reset_ms + elapsed_ms + 1 >= full_ms);
    } else {
      CHECK_FALSE(r.decision->allowed);
      CHECK(r.decision->remaining == 0);
      CHECK(r.decision->retry_after_ms >= 1);
      CHECK(r.decision->retry_after_ms <= 600);
      CHECK(r.decision->retry_after_ms + elapsed_ms + 1 >= 600);
      CHECK(r.decision->reset_ms <= 60'000);
      CHECK(r.decision->reset_ms + elapsed_ms + 1 >= 60'000);
    }
    allowed += r.decision->allowed ? 1 : 0;
  }
  CHECK(allowed == 100);
  CHECK(f.limiter.counters().decisions == 300);
  CHECK(f.limiter.counters().refused == 200);
  CHECK(f.limiter.counters().failures == 0);
  CHECK(f.limiter.counters().noscript == 0);

  // The bucket holds its TAT (µs on Redis's clock) and expires when full again, + 1 ms.
  RedisReply pttl = run(f.loop, f.client, {"PTTL", key});
  CHECK(pttl.integer <= 60'001);
  CHECK(pttl.integer >= 60'001 - static_cast<int64_t>(elapsed_ms) - 50);
  RedisReply tat = run(f.loop, f.client, {"GET", key});
  RedisReply time = run(f.loop, f.client, {"TIME"});
  REQUIRE(time.elements.size() == 2);
  int64_t now_us = std::stoll(time.elements[0].str) * 1'000'000 + std::stoll(time.elements[1].str);
  int64_t ahead_us = std::stoll(tat.str) - now_us;
  CHECK(ahead_us <= 60'000'000);
  CHECK(ahead_us >= 60'000'000 - static_cast<int64_t>(elapsed_ms + 50) * 1000);

  // Another key has a bucket of its own.
  RedisGcraResult other =
      decideOne(f.loop, f.limiter, redisRateLimitKey("per_ip", "10.0.0.2"), params);
  REQUIRE(other.decision.has_value());
  CHECK(other.decision->allowed);
  CHECK(other.decision->remaining == 99);
  CHECK(other.decision->reset_ms == 600);
}

TEST_CASE("redis rate limit: the bucket refills on Redis's clock, one request per T") {
  RedisServer server;
  Fixture f(server);
  RedisGcraParams params = rate(5, 100);  // T = 20 ms, 5 at once
  std::string key = redisRateLimitKey("fast", "k");

  std::vector<Outcome> outcomes = burst(f.loop, f.limiter, key, params, 6);
  for (size_t i = 0; i < 5; ++i) CHECK(outcomes[i].result->decision->allowed);
  const auto& refused = *outcomes[5].result->decision;
  REQUIRE_FALSE(refused.allowed);
  CHECK(refused.retry_after_ms >= 1);
  CHECK(refused.retry_after_ms <= 20);

  f.loop.runFor(refused.retry_after_ms + 5);
  RedisGcraResult again = decideOne(f.loop, f.limiter, key, params);
  REQUIRE(again.decision.has_value());
  CHECK(again.decision->allowed);
  CHECK(again.decision->remaining == 0);

  // Idle for tau: full again, and the key is gone (its expiry is the reset, + 1 ms).
  f.loop.runFor(130);
  CHECK(run(f.loop, f.client, {"EXISTS", key}).integer == 0);
  RedisGcraResult fresh = decideOne(f.loop, f.limiter, key, params);
  CHECK(fresh.decision->allowed);
  CHECK(fresh.decision->remaining == 4);
  CHECK(fresh.decision->reset_ms == 20);
  RedisReply pttl = run(f.loop, f.client, {"PTTL", key});
  CHECK(pttl.integer <= 21);
  CHECK(pttl.integer > 0);
}

TEST_CASE(
    "redis rate limit: after SCRIPT FLUSH a decision is still made, by EVAL, and the SHA "
    "reloaded") {
  RedisServer server;
  Fixture f(server);
  RedisGcraParams params = rate(10, 60'000);
  std::string key = redisRateLimitKey("per_key", "flush");
  std::string sha = f.limiter.scriptSha();
  CHECK(sha.size() == 40);

  for (const Outcome& o : burst(f.loop, f.limiter, key, params, 3))
    CHECK(o.result->decision->allowed);
  CHECK(run(f.loop, f.client, {"SCRIPT", "FLUSH"}).ok());
  CHECK(run(f.loop, f.client, {"SCRIPT", "EXISTS", sha}).elements[0].integer == 0);

  // In flight together: each is answered NOSCRIPT and sent again once.
  std::vector<Outcome> after = burst(f.loop, f.limiter, key, params, 3);
  for (size_t i = 0; i < after.size(); ++i) {
    REQUIRE(after[i].result->decision.has_value());
    CHECK(after[i].result->decision->allowed);
    CHECK(after[i].result->decision->remaining == 6 - i);  // the bucket survived the flush
  }
  CHECK(f.limiter.counters().noscript == 3);
  REQUIRE(f.loop.runUntil([&] { return !f.limiter.scriptSha().empty(); }, 1000));
  CHECK(f.limiter.scriptSha() == sha);

  // By SHA again: no more NOSCRIPT.
  RedisGcraResult next = decideOne(f.loop, f.limiter, key, params);
  CHECK(next.decision->remaining == 3);
  CHECK(f.limiter.counters().noscript == 3);
  CHECK(f.limiter.counters().failures == 0);
}

TEST_CASE("redis rate limit: a bucket key of another type is an error reply, not a failure") {
  RedisServer server;
  Fixture f(server);
  std::string key = redisRateLimitKey("per_key", "list");
  run(f.loop, f.client, {"RPUSH", key, "x"});
  RedisGcraResult r = decideOne(f.loop, f.limiter, key, rate(10, 1000));
  CHECK_FALSE(r.decision.has_value());
  CHECK(r.failure == RedisFailure::None);
  CHECK(r.error);
  CHECK(r.error_text.find("WRONGTYPE") != std::string::npos);
  CHECK(f.limiter.counters().failures == 1);

  // A value that is not a number is taken as no bucket (a fresh one replaces it).
  std::string junk = redisRateLimitKey("per_key", "junk");
  run(f.loop, f.client, {"SET", junk, "not a number"});
  RedisGcraResult fresh = decideOne(f.loop, f.limiter, junk, rate(10, 1000));
  REQUIRE(fresh.decision.has_value());
  CHECK(fresh.decision->remaining == 9);
}

TEST_CASE("redis rate limit: Redis killed or hung, every decision fails within timeout_ms") {
  RedisServer server;
  Fixture f(server, 50);
  RedisGcraParams params = rate(100, 60'000);
  std::string key = redisRateLimitKey("per_ip", "down");
  uint64_t bound_ms = f.client.options().timeout_ms + 50;  // the slack redis_client_test allows

  SUBCASE("killed with decisions in flight, and decisions after") {
    std::vector<Outcome> pending(20);
    for (Outcome& o : pending) f.limiter.decide(key, params, into(o));
    server.stop();
    REQUIRE(f.loop.runUntil([&] { return allDone(pending); }, 1000));
    uint64_t slowest = 0;
    for (const Outcome& o : pending) {
      // Some may have been answered before the kill; the rest fail.
      if (!o.result->decision) CHECK(o.result->failure != RedisFailure::None);
      CHECK(o.after_ms <= bound_ms);
      slowest = std::max(slowest, o.after_ms);
    }
    MESSAGE("in-flight decisions over within " << slowest << " ms of the kill");
    std::vector<Outcome> later(5);
    for (Outcome& o : later) f.limiter.decide(key, params, into(o));
    for (const Outcome& o : later) CHECK_FALSE(o.done());  // never from inside decide()
    REQUIRE(f.loop.runUntil([&] { return allDone(later); }, 1000));
    for (const Outcome& o : later) {
      CHECK_FALSE(o.result->decision.has_value());
      CHECK(o.result->failure == RedisFailure::NotConnected);
      CHECK_FALSE(o.result->error);
      CHECK(o.after_ms <= bound_ms);
    }
  }
  SUBCASE("hung: each decision times out") {
    server.pause();
    std::vector<Outcome> pending(2);
    for (Outcome& o : pending) f.limiter.decide(key, params, into(o));
    REQUIRE(f.loop.runUntil([&] { return allDone(pending); }, 1000));
    for (const Outcome& o : pending) {
      CHECK_FALSE(o.result->decision.has_value());
      CHECK(o.result->failure == RedisFailure::Timeout);
      CHECK(o.after_ms <= bound_ms);
    }
    server.resume();
  }
  CHECK(f.limiter.counters().noscript == 0);
}

TEST_CASE("redis rate limit: the script is loaded again when the connection comes back") {
  RedisServer server;
  Fixture f(server);
  uint64_t loads = f.limiter.counters().script_loads;
  server.stop();
  f.loop.runFor(50);
  server.start();  // a fresh server: an empty script cache
  REQUIRE(f.loop.runUntil(
      [&] {
        return f.client.connected() && f.limiter.counters().script_loads > loads &&
               !f.limiter.scriptSha().empty();
      },
      2000));
  RedisGcraResult r = decideOne(f.loop, f.limiter, redisRateLimitKey("l", "k"), rate(2, 1000));
  REQUIRE(r.decision.has_value());
  CHECK(r.decision->allowed);
  CHECK(f.limiter.counters().noscript == 0);  // loaded before it was needed
}

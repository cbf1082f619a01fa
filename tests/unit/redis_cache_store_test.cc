#include "worker/redis/redis_cache_store.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "redis_server.h"

using phalanx::worker::escapeRedisGlob;
using phalanx::worker::RedisCacheStore;
using phalanx::worker::RedisClient;
using phalanx::worker::RedisReply;

namespace {

RedisClient::Options testOptions(uint16_t port, uint32_t timeout_ms) {
  return RedisClient::Options{.address = loopbackAddress(port),
                              .timeout_ms = timeout_ms,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 100};
}

struct Fixture {
  explicit Fixture(RedisServer& server, uint32_t timeout_ms = 1000)
      : client(loop.get(), testOptions(server.port(), timeout_ms)), store(client) {
    client.start();
    REQUIRE(loop.runUntil([&] { return client.connected(); }, 2000));
  }
  ~Fixture() { client.close(); }

  // get(), with the time it took and a check that it answered once.
  std::optional<std::string> get(std::string_view key, uint64_t* took_ms = nullptr) {
    int calls = 0;
    std::optional<std::string> value;
    uint64_t started = TestLoop::nowMs();
    store.get(key, [&](std::optional<std::string> v) {
      ++calls;
      value = std::move(v);
    });
    CHECK(calls == 0);  // never from inside get()
    REQUIRE(loop.runUntil([&] { return calls > 0; }, 2000));
    if (took_ms) *took_ms = TestLoop::nowMs() - started;
    loop.runFor(1);
    CHECK(calls == 1);
    return value;
  }
  int64_t purge(std::string_view key_prefix) {
    std::optional<int64_t> removed;
    store.purge(key_prefix, [&](int64_t n) {
      CHECK_FALSE(removed.has_value());
      removed = n;
    });
    REQUIRE(loop.runUntil([&] { return removed.has_value(); }, 5000));
    return *removed;
  }
  RedisReply run(std::vector<std::string> args) {
    std::optional<RedisReply> reply;
    client.command(std::move(args), [&](RedisReply r) { reply = std::move(r); });
    REQUIRE(loop.runUntil([&] { return reply.has_value(); }, 2000));
    return *reply;
  }
  // Waits until every command sent so far (set() included) has been answered.
  void sync() { REQUIRE(run({"PING"}).str == "PONG"); }

  TestLoop loop;
  RedisClient client;
  RedisCacheStore store;
};

}  // namespace

TEST_CASE("redis glob escaping: * ? [ ] \\ match themselves only") {
  CHECK(escapeRedisGlob("plain/key:1") == "plain/key:1");
  CHECK(escapeRedisGlob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f");
  CHECK(escapeRedisGlob(std::string("\0^-", 3)) == std::string("\0^-", 3));
}

TEST_CASE("redis cache: set, get and a miss; keys and values are binary") {
  RedisServer server;
  Fixture f(server);
  std::string key("GET /a\0b\r\n\xff", 11);
  std::string value("HTTP/1.1 200 OK\r\n\r\n\0body\xff", 25);
  f.store.set(key, value, 60'000);
  f.sync();
  CHECK(f.get(key) == value);
  CHECK(f.run({"GET", "phalanx:cache:" + key}).str == value);
  CHECK(f.get(std::string("GET /a\0c", 8)) == std::nullopt);
  CHECK(f.get("") == std::nullopt);

  // Overwritten whole, with its new TTL.
  f.store.set(key, "v2", 5'000);
  f.sync();
  CHECK(f.get(key) == "v2");
  int64_t pttl = f.run({"PTTL", "phalanx:cache:" + key}).integer;
  CHECK(pttl <= 5'000);
  CHECK(pttl > 4'000);

  // A ttl of 0 stores nothing.
  f.store.set("zero", "x", 0);
  f.sync();
  CHECK(f.get("zero") == std::nullopt);

  // Another prefix is another namespace.
  RedisCacheStore other(f.client, "other:");
  other.set(key, "theirs", 60'000);
  f.sync();
  CHECK(f.get(key) == "v2");

  auto c = f.store.counters();
  CHECK(c.hits == 3);
  CHECK(c.misses == 3);
  CHECK(c.failures == 0);
  CHECK(c.stores == 2);
  CHECK(c.store_failures == 0);
}

TEST_CASE("redis cache: an entry expires after its ttl") {
  RedisServer server;
  Fixture f(server);
  f.store.set("short", "v", 50);
  f.store.set("long", "v", 60'000);
  f.sync();
  CHECK(f.get("short") == "v");
  f.loop.runFor(120);
  CHECK(f.get("short") == std::nullopt);
  CHECK(f.get("long") == "v");
}

TEST_CASE("redis cache: purge removes exactly the keys under a prefix, over many SCAN batches") {
  RedisServer server;
  Fixture f(server);
  // 1200 to purge, more than two SCAN batches of 500.
  for (int i = 0; i < 1200; ++i) f.store.set("GET /users/" + std::to_string(i), "u", 60'000);
  // Around them: near misses, glob look-alikes, and another prefix.
  std::vector<std::string> kept = {"GET /users",    "GET /user/1", "GET /usersx", "GET /Users/1",
                                   "HEAD /users/1", "GET /u*/1",   "GET /users?"};
  for (const std::string& k : kept) f.store.set(k, "k", 60'000);
  f.run({"SET", "other:GET /users/1", "x"});
  f.run({"SET", "phalanx:cacheGET /users/1", "x"});
  f.sync();
  REQUIRE(f.run({"DBSIZE"}).integer == 1200 + 7 + 2);

  uint64_t commands = f.client.counters().commands;
  CHECK(f.purge("GET /users/") == 1200);
  uint64_t steps = f.client.counters().commands - commands;
  MESSAGE("purge of 1200 keys: " << steps << " commands");
  CHECK(steps >= 3 * 2);  // SCAN + UNLINK, several times
  CHECK(f.run({"DBSIZE"}).integer == 7 + 2);
  for (const std::string& k : kept) CHECK(f.get(k) == "k");
  CHECK(f.get("GET /users/7") == std::nullopt);

  // Glob characters in the prefix are literal: "GET /u*" matches only "GET /u*/1".
  CHECK(f.purge("GET /u*") == 1);
  CHECK(f.get("GET /user/1") == "k");
  CHECK(f.purge("GET /users?") == 1);
  CHECK(f.get("GET /usersx") == "k");
  CHECK(f.purge("nothing here") == 0);

  // remove(): the same, unreported. Then an empty prefix: all of this store's keys.
  f.store.remove("HEAD ");
  f.sync();
  CHECK(f.get("HEAD /users/1") == std::nullopt);
  CHECK(f.purge("") == 4);
  CHECK(f.run({"DBSIZE"}).integer == 2);
  CHECK(f.run({"GET", "other:GET /users/1"}).str == "x");
}

TEST_CASE(
    "redis cache: with Redis killed or hung, get is a miss within timeout_ms and purge reports "
    "-1") {
  RedisServer server;
  Fixture f(server, 50);
  f.store.set("k", "v", 60'000);
  f.sync();
  uint64_t bound_ms = f.client.options().timeout_ms + 50;  // the slack redis_client_test allows
  uint64_t took = 0;

  SUBCASE("hung") {
    server.pause();
    CHECK(f.get("k", &took) == std::nullopt);
    CHECK(took <= bound_ms);
    CHECK(f.purge("") == -1);
    server.resume();
  }
  SUBCASE("killed") {
    server.stop();
    f.loop.runFor(20);
    CHECK(f.get("k", &took) == std::nullopt);
    CHECK(took <= bound_ms);
    CHECK(f.purge("") == -1);
    f.store.set("k", "v", 1000);  // lost, and counted
    f.loop.runFor(5);
    CHECK(f.store.counters().store_failures == 1);
  }
  CHECK(f.store.counters().failures == 1);
  CHECK(f.store.counters().hits == 0);
}

TEST_CASE("redis cache: close() fails a purge under way") {
  RedisServer server;
  Fixture f(server);
  for (int i = 0; i < 10; ++i) f.store.set("p/" + std::to_string(i), "v", 60'000);
  f.sync();
  std::optional<int64_t> removed;
  f.store.purge("p/", [&](int64_t n) { removed = n; });
  f.client.close();
  REQUIRE(removed.has_value());
  CHECK(*removed == -1);
}

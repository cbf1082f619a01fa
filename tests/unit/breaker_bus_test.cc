#include "worker/redis/breaker_bus.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "redis_server.h"

using phalanx::worker::BreakerBus;
using phalanx::worker::BreakerTransition;
using phalanx::worker::decodeTransition;
using phalanx::worker::encodeTransition;
using phalanx::worker::RedisClient;
using phalanx::worker::RedisReply;

namespace {

BreakerTransition opened(uint64_t at_wall_ms = 1'700'000'000'000) {
  return BreakerTransition{.upstream = "api",
                           .target = "127.0.0.1:9001",
                           .state = 1,
                           .at_wall_ms = at_wall_ms,
                           .open_until_wall_ms = at_wall_ms + 30'000,
                           .origin = "web-1:4242"};
}

RedisClient::Options testOptions(uint16_t port) {
  return RedisClient::Options{.address = loopbackAddress(port),
                              .timeout_ms = 50,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 100};
}

// One host: its client and its bus, and what the bus handed over.
struct Host {
  Host(uv_loop_t* loop, uint16_t port, std::string origin)
      : client(loop, testOptions(port)), bus(client, std::move(origin), "test") {
    bus.onTransition([this](const BreakerTransition& t) {
      seen.push_back(t);
      seen_at_ms.push_back(TestLoop::nowMs());
    });
    client.start();
  }
  ~Host() { client.close(); }
  RedisClient client;
  BreakerBus bus;
  std::vector<BreakerTransition> seen;
  std::vector<uint64_t> seen_at_ms;
};

// Waits until Redis counts `n` subscribers on the bus's channel.
void waitForSubscribers(TestLoop& loop, Host& host, int64_t n) {
  bool ready = false;
  uint64_t deadline = TestLoop::nowMs() + 1000;
  while (!ready && TestLoop::nowMs() < deadline) {
    bool answered = false;
    host.client.command({"PUBSUB", "NUMSUB", host.bus.channel()}, [&](RedisReply reply) {
      answered = true;
      ready = reply.type == RedisReply::Type::Array && reply.elements.size() == 2 &&
              reply.elements[1].integer == n;
    });
    loop.runUntil([&] { return answered; }, 200);
    if (!ready) loop.runFor(5);
  }
  REQUIRE(ready);
}

}  // namespace

TEST_CASE("breaker transitions encode to one JSON object and decode back") {
  BreakerTransition t = opened();
  std::string text = encodeTransition(t);
  CHECK(text ==
        R"({"upstream":"api","target":"127.0.0.1:9001","state":"open","at_wall_ms":1700000000000,)"
        R"("open_until_wall_ms":1700000030000,"origin":"web-1:4242"})");
  auto back = decodeTransition(text);
  REQUIRE(back);
  CHECK(*back == t);
  for (uint32_t state : {0u, 2u}) {
    t.state = state;
    t.open_until_wall_ms = 0;
    CHECK(decodeTransition(encodeTransition(t)) == t);
  }
  // Key order does not matter; names with quotes and unicode survive.
  t.upstream = "a \"quoted\" \xc3\xa9 name";
  CHECK(decodeTransition(encodeTransition(t)) == t);
  CHECK(decodeTransition(R"({"origin":"h:1","state":"closed","target":"t","upstream":"u",)"
                         R"("open_until_wall_ms":0,"at_wall_ms":5})"));
}

TEST_CASE("breaker transition decoding refuses anything malformed") {
  const std::string good = encodeTransition(opened());
  auto without = [&](const std::string& key) {
    std::string text = good;
    size_t at = text.find("\"" + key + "\"");
    size_t comma = text.find(',', at);
    text.erase(at, comma == std::string::npos ? std::string::npos : comma - at + 1);
    return text;
  };
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  std::vector<std::string> bad = {
      "",
      "null",
      "[]",
      "{}",
      "42",
      "\"open\"",
      "{",
      good.substr(0, good.size() - 1),
      good + "x",
      std::string("\xff\xfe garbage \x00\x01", 13),
      without("upstream"),
      without("target"),
      without("state"),
      without("at_wall_ms"),
      without("open_until_wall_ms"),
      replaced("\"origin\":\"web-1:4242\"}", "\"origin\":\"web-1:4242\",\"extra\":1}"),
      replaced("{", "{\"state\":\"open\","),  // duplicate key
      replaced("\"open\"", "\"opened\""),
      replaced("\"open\"", "1"),
      replaced("\"api\"", "\"\""),
      replaced("\"api\"", "\"a\\nb\""),
      replaced("\"api\"", "7"),
      replaced("1700000000000", "0"),
      replaced("1700000000000", "-5"),
      replaced("1700000000000", "1.5"),
      replaced("1700000000000", "\"1700000000000\""),
      replaced("1700000000000", "99999999999999999999999"),
      replaced("1700000030000", "null"),
      replaced("\"web-1:4242\"", "[]")};
  for (const std::string& text : bad) {
    CAPTURE(text);
    CHECK_FALSE(decodeTransition(text));
  }
  // Over 4 KB: refused before parsing, even when otherwise valid.
  BreakerTransition big = opened();
  big.origin = std::string(phalanx::worker::kMaxTransitionBytes, 'h');
  CHECK_FALSE(decodeTransition(encodeTransition(big)));
  big.origin = std::string(3900, 'h');
  CHECK(decodeTransition(encodeTransition(big)));
}

TEST_CASE("a host's origin is its hostname and the master's pid") {
  std::string origin = phalanx::worker::hostOrigin(4242);
  CHECK(origin.size() > 5);
  CHECK(origin.ends_with(":4242"));
}

TEST_CASE("breaker bus: a transition reaches the other hosts, not its own, and later hosts") {
  RedisServer server;
  TestLoop loop;
  Host a(loop.get(), server.port(), "host-a:1");
  Host b(loop.get(), server.port(), "host-b:2");
  waitForSubscribers(loop, a, 2);

  BreakerTransition t = opened(1'700'000'000'000);
  t.origin = "whatever";  // the bus speaks for its host
  uint64_t published_ms = TestLoop::nowMs();
  a.bus.publish(t);
  REQUIRE(loop.runUntil([&] { return !b.seen.empty(); }, 1000));
  MESSAGE("delivered to the other host in " << b.seen_at_ms[0] - published_ms << " ms");
  CHECK(b.seen_at_ms[0] - published_ms <= 100);
  t.origin = "host-a:1";
  CHECK(b.seen[0] == t);
  loop.runFor(30);
  CHECK(a.seen.empty());  // its own message came back and was skipped
  CHECK(a.bus.counters().ignored == 1);
  CHECK(a.bus.counters().published == 1);

  // A host that starts later reads the stored state once subscribed.
  Host c(loop.get(), server.port(), "host-c:3");
  REQUIRE(loop.runUntil([&] { return !c.seen.empty(); }, 1000));
  CHECK(c.seen[0] == t);

  // An older transition for the same breaker (a slow publisher) changes nothing.
  BreakerTransition older = opened(1'600'000'000'000);
  older.state = 0;
  b.bus.publish(older);
  loop.runFor(50);
  CHECK(c.seen.size() == 1);
  CHECK(c.bus.counters().ignored >= 1);
  CHECK(a.seen.empty());  // a's own, newer transition counts as seen
}

TEST_CASE("breaker bus: with Redis down, publish drops and counts, and nothing waits") {
  TestLoop loop;
  Host lone(loop.get(), freeLoopbackPort(), "host-a:1");
  loop.runFor(20);
  lone.bus.publish(opened());
  CHECK(lone.bus.counters().dropped == 1);
  CHECK(lone.bus.counters().published == 0);
  loop.runFor(20);
  CHECK(lone.seen.empty());
}

TEST_CASE("breaker bus: a restarted Redis is re-read after the resubscription") {
  auto server = std::make_unique<RedisServer>();
  uint16_t port = server->port();
  TestLoop loop;
  Host a(loop.get(), port, "host-a:1");
  Host b(loop.get(), port, "host-b:2");
  waitForSubscribers(loop, a, 2);
  server->stop();
  loop.runFor(30);
  server->start();
  REQUIRE(loop.runUntil([&] { return a.client.connected() && b.client.connected(); }, 1000));
  waitForSubscribers(loop, a, 2);
  a.bus.publish(opened());
  REQUIRE(loop.runUntil([&] { return !b.seen.empty(); }, 1000));
  CHECK(b.seen[0].origin == "host-a:1");
}

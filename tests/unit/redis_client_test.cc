#include "worker/redis/redis_client.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "redis_server.h"

using phalanx::worker::ReconnectBackoff;
using phalanx::worker::RedisClient;
using phalanx::worker::RedisFailure;
using phalanx::worker::redisFailureName;
using phalanx::worker::RedisReply;

namespace {

// Short reconnect delays: a test waits for reconnects, not for production backoff.
RedisClient::Options testOptions(uint16_t port) {
  return RedisClient::Options{.address = loopbackAddress(port),
                              .timeout_ms = 50,
                              .reconnect_min_ms = 20,
                              .reconnect_max_ms = 100};
}

// A command's outcome and when it came (ms after the command was issued).
struct Outcome {
  std::optional<RedisReply> reply;
  uint64_t issued_ms = TestLoop::nowMs();
  uint64_t after_ms = 0;
  bool done() const { return reply.has_value(); }
};

RedisClient::Callback into(Outcome& outcome) {
  outcome = Outcome{};
  return [&outcome](RedisReply reply) {
    CHECK_FALSE(outcome.done());  // exactly once
    outcome.after_ms = TestLoop::nowMs() - outcome.issued_ms;
    outcome.reply = std::move(reply);
  };
}

RedisReply run(TestLoop& loop, RedisClient& client, std::vector<std::string> args) {
  Outcome outcome;
  client.command(std::move(args), into(outcome));
  REQUIRE(loop.runUntil([&] { return outcome.done(); }, 1000));
  return *outcome.reply;
}

}  // namespace

TEST_CASE("reconnect backoff doubles from min to max, jittered into the upper half") {
  ReconnectBackoff backoff(100, 1000, 42);
  std::vector<uint64_t> nominal = {100, 200, 400, 800, 1000, 1000, 1000};
  for (uint64_t n : nominal) {
    uint64_t delay = backoff.next();
    CHECK(delay >= std::max<uint64_t>(100, n / 2));
    CHECK(delay <= n);
  }
  backoff.reset();
  CHECK(backoff.next() == 100);
  // Two hosts draw different delays: no reconnect in lockstep.
  ReconnectBackoff a(100, 5000, 1), b(100, 5000, 2);
  bool differ = false;
  for (int i = 0; i < 6; ++i) differ |= a.next() != b.next();
  CHECK(differ);
}

// hiredis 0.14's own libuv adapter drops libuv's poll errors, so a refused
// connect (POLLERR) went unnoticed until the connect timeout: one attempt per
// timeout instead of one per backoff step. redis_uv_adapter.h hands it on.
TEST_CASE("redis: a refused connect is noticed at once, not at the connect timeout") {
  TestLoop loop;
  phalanx::worker::RedisConnection connection(loop.get(),
                                              {.address = loopbackAddress(freeLoopbackPort()),
                                               .connect_timeout_ms = 1000,
                                               .reconnect_min_ms = 5,
                                               .reconnect_max_ms = 5},
                                              {});
  connection.start();
  loop.runFor(100);
  CHECK(connection.failedConnects() >= 5);
  CHECK_FALSE(connection.ready());
  connection.close();
}

TEST_CASE("redis: commands round-trip and every reply type is copied") {
  RedisServer server;
  TestLoop loop;
  RedisClient client(loop.get(), testOptions(server.port()));
  client.start();
  REQUIRE(loop.runUntil([&] { return client.connected(); }, 1000));

  RedisReply set = run(loop, client, {"SET", "greeting", std::string("hi\0there", 8)});
  CHECK(set.ok());
  CHECK(set.type == RedisReply::Type::Status);
  CHECK(set.str == "OK");
  RedisReply get = run(loop, client, {"GET", "greeting"});
  CHECK(get.type == RedisReply::Type::String);
  CHECK(get.str == std::string("hi\0there", 8));
  CHECK(run(loop, client, {"GET", "absent"}).type == RedisReply::Type::Nil);
  RedisReply incr = run(loop, client, {"INCRBY", "n", "41"});
  CHECK(incr.type == RedisReply::Type::Integer);
  CHECK(incr.integer == 41);
  run(loop, client, {"RPUSH", "list", "a", "b"});
  RedisReply range = run(loop, client, {"LRANGE", "list", "0", "-1"});
  REQUIRE(range.type == RedisReply::Type::Array);
  REQUIRE(range.elements.size() == 2);
  CHECK(range.elements[1].str == "b");
  RedisReply error = run(loop, client, {"NOSUCHCOMMAND"});
  CHECK(error.answered());
  CHECK_FALSE(error.ok());
  CHECK(error.type == RedisReply::Type::Error);

  auto counters = client.counters();
  CHECK(counters.commands == 7);
  CHECK(counters.failures == 0);
  client.close();
}

TEST_CASE("redis: with nothing listening, a command fails on a later loop turn, in time") {
  TestLoop loop;
  RedisClient client(loop.get(), testOptions(freeLoopbackPort()));
  client.start();
  Outcome outcome;
  client.command({"PING"}, into(outcome));
  CHECK_FALSE(outcome.done());  // never from inside command()
  REQUIRE(loop.runUntil([&] { return outcome.done(); }, 1000));
  CHECK(outcome.reply->failure == RedisFailure::NotConnected);
  CHECK(outcome.after_ms <= client.options().timeout_ms + 50);
  MESSAGE("failure with nothing listening after " << outcome.after_ms << " ms");
  // Still not connected after a few backoff rounds, and no crash.
  loop.runFor(150);
  CHECK_FALSE(client.connected());
  CHECK(client.counters().failures == 1);
  client.close();
}

TEST_CASE("redis: a server killed mid-run fails pending and new commands; a restart is picked up") {
  RedisServer server;
  TestLoop loop;
  RedisClient client(loop.get(), testOptions(server.port()));
  int subscribed = 0;
  std::vector<std::string> messages;
  int connects = 0;
  client.onConnected([&] { ++connects; });
  client.subscribe(
      "news", [&](std::string_view m) { messages.emplace_back(m); }, [&] { ++subscribed; });
  client.start();
  REQUIRE(loop.runUntil([&] { return client.connected() && subscribed == 1; }, 1000));

  std::vector<Outcome> pending(5);
  for (Outcome& o : pending) client.command({"INCR", "c"}, into(o));
  server.stop();
  auto all_done = [&] {
    for (const Outcome& o : pending) {
      if (!o.done()) return false;
    }
    return true;
  };
  REQUIRE(loop.runUntil(all_done, 1000));
  uint64_t slowest = 0;
  for (const Outcome& o : pending) {
    CHECK_FALSE(o.reply->answered());
    CHECK(o.after_ms <= client.options().timeout_ms + 50);
    slowest = std::max(slowest, o.after_ms);
  }
  MESSAGE("pending commands failed (" << std::string(redisFailureName(pending[0].reply->failure))
                                      << ") within " << slowest << " ms of the kill");
  Outcome after;
  client.command({"PING"}, into(after));
  REQUIRE(loop.runUntil([&] { return after.done(); }, 1000));
  CHECK(after.reply->failure == RedisFailure::NotConnected);
  CHECK(after.after_ms <= client.options().timeout_ms + 50);

  loop.runFor(50);  // a few failed reconnects
  server.start();
  uint64_t restarted_ms = TestLoop::nowMs();
  REQUIRE(loop.runUntil([&] { return client.connected() && subscribed == 2; }, 1000));
  MESSAGE("reconnected " << TestLoop::nowMs() - restarted_ms << " ms after the restart");
  CHECK(run(loop, client, {"PING"}).str == "PONG");
  CHECK(run(loop, client, {"PUBLISH", "news", "back"}).integer == 1);
  REQUIRE(loop.runUntil([&] { return !messages.empty(); }, 1000));
  CHECK(messages == std::vector<std::string>{"back"});
  CHECK(client.counters().reconnects == 2);  // both connections
  CHECK(connects == 2);
  client.close();
}

TEST_CASE("redis: a hung server times commands out, a late reply is dropped, 3 in a row drop the connection") {
  RedisServer server;
  TestLoop loop;
  RedisClient client(loop.get(), testOptions(server.port()));
  client.start();
  REQUIRE(loop.runUntil([&] { return client.connected(); }, 1000));

  server.pause();
  Outcome late;
  client.command({"ECHO", "late"}, into(late));
  REQUIRE(loop.runUntil([&] { return late.done(); }, 1000));
  CHECK(late.reply->failure == RedisFailure::Timeout);
  CHECK(late.after_ms >= client.options().timeout_ms - 1);
  CHECK(late.after_ms <= client.options().timeout_ms + 50);
  MESSAGE("timeout after " << late.after_ms << " ms");

  // The reply to "late" now arrives first and must not be taken for this one's.
  server.resume();
  RedisReply next = run(loop, client, {"ECHO", "next"});
  CHECK(next.str == "next");
  CHECK(client.counters().timeouts == 1);

  // kDeadAfterTimeouts in a row: the connection is dropped and made again.
  server.pause();
  std::vector<Outcome> stuck(RedisClient::kDeadAfterTimeouts);
  for (Outcome& o : stuck) client.command({"PING"}, into(o));
  REQUIRE(loop.runUntil([&] { return stuck.back().done(); }, 1000));
  for (const Outcome& o : stuck) CHECK(o.reply->failure == RedisFailure::Timeout);
  server.resume();
  REQUIRE(
      loop.runUntil([&] { return client.counters().reconnects == 1 && client.connected(); }, 1000));
  CHECK(run(loop, client, {"PING"}).str == "PONG");
  client.close();
}

TEST_CASE("redis: close() fails pending commands, and later ones, and leaves the loop free") {
  RedisServer server;
  TestLoop loop;
  RedisClient client(loop.get(), testOptions(server.port()));
  client.subscribe(
      "c", [](std::string_view) {}, [] {});
  client.start();
  REQUIRE(loop.runUntil([&] { return client.connected(); }, 1000));
  Outcome pending, after;
  client.command({"PING"}, into(pending));
  client.close();
  CHECK(pending.reply->failure == RedisFailure::Closed);
  client.command({"PING"}, into(after));
  CHECK(after.reply->failure == RedisFailure::Closed);
  // TestLoop's destructor checks that no handle is left.
}

TEST_CASE("redis: a client destroyed without close() and a loop left to end by itself") {
  RedisServer server;
  TestLoop loop;
  {
    RedisClient client(loop.get(), testOptions(server.port()));
    client.start();
    REQUIRE(loop.runUntil([&] { return client.connected(); }, 1000));
    client.command({"PING"}, [](RedisReply) {});
  }
  // Nothing active: uv_run returns instead of waiting forever.
  CHECK(uv_run(loop.get(), UV_RUN_DEFAULT) == 0);
}

#include "worker/gateway/upstream_group.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace phalanx::worker;
namespace policy = phalanx::shared::policy;
using phalanx::shared::UpstreamConfig;

namespace {

// Zeroed shared state for a group's targets, as shm gives it.
struct TargetStorage {
  std::atomic<uint64_t> in_flight{0}, requests{0}, failures{0}, latency_sum_us{0}, changed{0};
  std::atomic<uint64_t> latency_buckets[64] = {};
  policy::BreakerCell breaker{};
  policy::HealthCell health{};
};

struct Fixture {
  UpstreamConfig config;
  std::vector<std::unique_ptr<TargetStorage>> storage;
  std::atomic<uint64_t> requests{0}, retries{0}, exhausted{0}, no_target{0}, refusals{0};
  policy::RetryBudgetCell budget{};
  std::unique_ptr<UpstreamGroup> group;

  Fixture() {
    config.breaker.consecutive_failures = 3;
    config.breaker.failure_rate = 0.5;
    config.breaker.minimum_calls = 100;
    config.breaker.open_ms = 30000;
    config.breaker.half_open_calls = 2;
  }

  // weights[i] (0 = backup of weight 1)
  UpstreamGroup& build(std::vector<uint32_t> weights, std::vector<bool> backups = {},
                       uint64_t seed = 1) {
    std::vector<UpstreamGroup::Target> targets;
    storage.clear();
    for (size_t i = 0; i < weights.size(); ++i) {
      storage.push_back(std::make_unique<TargetStorage>());
      TargetStorage& s = *storage.back();
      UpstreamGroup::Target t;
      t.address = "127.0.0.1:" + std::to_string(9000 + i);
      t.pool_index = static_cast<uint32_t>(i);
      t.weight = weights[i];
      t.backup = i < backups.size() && backups[i];
      t.cells = {.in_flight = &s.in_flight,
                 .requests = &s.requests,
                 .failures = &s.failures,
                 .latency_buckets = s.latency_buckets,
                 .latency_sum_us = &s.latency_sum_us,
                 .breaker_changed_wall_ms = &s.changed,
                 .breaker = &s.breaker,
                 .health = &s.health};
      targets.push_back(std::move(t));
    }
    UpstreamCells cells{.requests = &requests,
                        .retries = &retries,
                        .retry_budget_exhausted = &exhausted,
                        .no_target = &no_target,
                        .breaker_refusals = &refusals,
                        .retry_budget = &budget};
    group = std::make_unique<UpstreamGroup>("api", config, std::move(targets), cells, seed);
    return *group;
  }

  std::optional<UpstreamGroup::Attempt> pick(uint64_t now_ms, std::vector<uint32_t> tried = {},
                                             uint64_t* retry_after = nullptr) {
    uint64_t ignored = 0;
    return group->pick(tried, now_ms, retry_after ? retry_after : &ignored);
  }

  uint64_t inFlight(size_t i) const { return storage[i]->in_flight.load(); }
};

constexpr uint64_t kT0 = 1000000;

}  // namespace

TEST_CASE("round_robin follows the weights (smooth: 5:1:1 gives a a b a c a a)") {
  Fixture f;
  f.config.balance = "round_robin";
  UpstreamGroup& g = f.build({5, 1, 1});
  std::string sequence;
  for (int i = 0; i < 7; ++i) {
    auto a = f.pick(kT0);
    REQUIRE(a);
    sequence += static_cast<char>('a' + a->target);
    g.finish(*a, AttemptResult::Success, kT0, 1000);
  }
  CHECK(sequence == "aabacaa");
  int counts[3] = {};
  for (int i = 0; i < 700; ++i) {
    auto a = f.pick(kT0);
    ++counts[a->target];
    g.finish(*a, AttemptResult::Success, kT0, 1000);
  }
  CHECK(counts[0] == 500);
  CHECK(counts[1] == 100);
  CHECK(counts[2] == 100);
  CHECK(f.storage[0]->requests.load() == 505);
  CHECK(f.inFlight(0) == 0);
}

TEST_CASE("in_flight goes up on pick and down on finish, whatever the result") {
  Fixture f;
  UpstreamGroup& g = f.build({1});
  auto a = f.pick(kT0);
  auto b = f.pick(kT0);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(f.inFlight(0) == 2);
  CHECK(a->started_ms == kT0);
  g.finish(*a, AttemptResult::Neutral, kT0 + 5, 1000);
  CHECK(f.inFlight(0) == 1);
  g.finish(*b, AttemptResult::Failure, kT0 + 5, 5000);
  CHECK(f.inFlight(0) == 0);
  CHECK(f.storage[0]->failures.load() == 1);
  CHECK(f.storage[0]->requests.load() == 2);
  // Latency counted for results, not for Neutral.
  uint64_t recorded = 0;
  for (auto& bucket : f.storage[0]->latency_buckets) recorded += bucket.load();
  CHECK(recorded == 1);
  CHECK(f.storage[0]->latency_sum_us.load() == 5000);
}

TEST_CASE("least_conn follows the in-flight counts, by weight") {
  Fixture f;
  f.config.balance = "least_conn";
  UpstreamGroup& g = f.build({1, 1, 1});
  f.storage[0]->in_flight = 5;
  f.storage[1]->in_flight = 2;
  f.storage[2]->in_flight = 7;
  for (int i = 0; i < 20; ++i) {
    auto a = f.pick(kT0);
    REQUIRE(a);
    CHECK(a->target == 1);
    g.finish(*a, AttemptResult::Success, kT0, 1000);
  }
  // Picks raise the count: without finish, the least loaded changes.
  f.storage[1]->in_flight = 4;
  auto a = f.pick(kT0);  // 1 (4) → 5
  REQUIRE(a);
  CHECK(a->target == 1);
  CHECK(f.inFlight(1) == 5);
  auto b = f.pick(kT0);  // 0 and 1 tie at 5
  REQUIRE(b);
  CHECK((b->target == 0 || b->target == 1));
  // Weight 3 with 6 in flight (2 per weight) beats weight 1 with 3.
  Fixture w;
  w.config.balance = "least_conn";
  w.build({1, 3});
  w.storage[0]->in_flight = 3;
  w.storage[1]->in_flight = 6;
  CHECK(w.pick(kT0)->target == 1);
}

TEST_CASE("random_two prefers the less loaded and spreads over equals") {
  Fixture f;
  f.config.balance = "random_two";
  UpstreamGroup& g = f.build({1, 1});
  f.storage[0]->in_flight = 100;
  for (int i = 0; i < 50; ++i) {
    auto a = f.pick(kT0);
    REQUIRE(a);
    CHECK(a->target == 1);
    g.finish(*a, AttemptResult::Success, kT0, 1000);
  }
  Fixture e;
  e.config.balance = "random_two";
  UpstreamGroup& ge = e.build({1, 1, 1, 1}, {}, 12345);
  int counts[4] = {};
  for (int i = 0; i < 4000; ++i) {
    auto a = e.pick(kT0);
    ++counts[a->target];
    ge.finish(*a, AttemptResult::Success, kT0, 1000);
  }
  for (int c : counts) CHECK(c > 600);
  // The one idle target among loaded ones wins whenever drawn: more than half of the picks.
  Fixture l;
  l.config.balance = "random_two";
  UpstreamGroup& gl = l.build({1, 1, 1, 1}, {}, 99);
  for (size_t i = 0; i < 3; ++i) l.storage[i]->in_flight = 10;
  int idle = 0;
  for (int i = 0; i < 1000; ++i) {
    auto a = l.pick(kT0);
    idle += a->target == 3 ? 1 : 0;
    gl.finish(*a, AttemptResult::Success, kT0, 1000);
  }
  CHECK(idle > 400);
}

TEST_CASE("tried targets are skipped; nothing left gives nullopt without retry_after") {
  for (const char* balance : {"round_robin", "least_conn", "random_two"}) {
    CAPTURE(balance);
    Fixture f;
    f.config.balance = balance;
    UpstreamGroup& g = f.build({1, 1, 1});
    for (int i = 0; i < 30; ++i) {
      auto a = f.pick(kT0, {0, 2});
      REQUIRE(a);
      CHECK(a->target == 1);
      g.finish(*a, AttemptResult::Success, kT0, 1000);
    }
    uint64_t retry_after = 77;
    CHECK_FALSE(f.pick(kT0, {0, 1, 2}, &retry_after));
    CHECK(retry_after == 0);
    CHECK(f.inFlight(0) + f.inFlight(1) + f.inFlight(2) == 0);
  }
}

TEST_CASE("a target marked down by health checks is skipped") {
  for (const char* balance : {"round_robin", "least_conn", "random_two"}) {
    CAPTURE(balance);
    Fixture f;
    f.config.balance = balance;
    UpstreamGroup& g = f.build({1, 1});
    f.storage[0]->health.down = 1;
    for (int i = 0; i < 20; ++i) {
      auto a = f.pick(kT0);
      REQUIRE(a);
      CHECK(a->target == 1);
      g.finish(*a, AttemptResult::Success, kT0, 1000);
    }
    CHECK(g.anyUsable(kT0));
    f.storage[1]->health.down = 1;
    uint64_t retry_after = 5;
    CHECK_FALSE(f.pick(kT0, {}, &retry_after));
    CHECK(retry_after == 0);
    CHECK_FALSE(g.anyUsable(kT0));
    f.storage[0]->health.down = 0;
    CHECK(g.anyUsable(kT0));
    CHECK(f.pick(kT0)->target == 0);
  }
}

TEST_CASE("a backup is used only when the others are unusable") {
  for (const char* balance : {"round_robin", "least_conn", "random_two"}) {
    CAPTURE(balance);
    Fixture f;
    f.config.balance = balance;
    UpstreamGroup& g = f.build({1, 1, 1}, {false, false, true});
    f.storage[0]->in_flight = 50;
    f.storage[1]->in_flight = 50;
    for (int i = 0; i < 30; ++i) {
      auto a = f.pick(kT0);
      REQUIRE(a);
      CHECK(a->target != 2);
      g.finish(*a, AttemptResult::Success, kT0, 1000);
    }
    f.storage[0]->health.down = 1;
    auto tried = f.pick(kT0, {1});
    REQUIRE(tried);
    CHECK(tried->target == 2);  // 0 down, 1 tried
    g.finish(*tried, AttemptResult::Success, kT0, 1000);
    f.storage[1]->health.down = 1;
    for (int i = 0; i < 5; ++i) {
      auto a = f.pick(kT0);
      REQUIRE(a);
      CHECK(a->target == 2);
      g.finish(*a, AttemptResult::Success, kT0, 1000);
    }
    f.storage[0]->health.down = 0;
    CHECK(f.pick(kT0)->target == 0);
  }
}

TEST_CASE("breaker: consecutive failures open it; pick skips the target; retry_after near open_ms") {
  Fixture f;
  UpstreamGroup& g = f.build({1, 1});
  uint64_t now = kT0;
  std::optional<UpstreamGroup::BreakerEvent> event;
  int failures = 0;
  while (failures < 3) {
    auto a = f.pick(now, {1});
    REQUIRE(a);
    REQUIRE(a->target == 0);
    event = g.finish(*a, AttemptResult::Failure, now, 1000);
    ++failures;
    if (failures < 3) CHECK_FALSE(event);
  }
  REQUIRE(event);
  CHECK(event->target == 0);
  CHECK(event->change.to == policy::BreakerState::Open);
  CHECK(event->change.opened_at_ms == now);
  CHECK(f.storage[0]->changed.load() != 0);
  for (int i = 0; i < 10; ++i) {
    auto a = f.pick(now + 10);
    REQUIRE(a);
    CHECK(a->target == 1);
    g.finish(*a, AttemptResult::Success, now + 10, 1000);
  }
  // With only that target: nullopt and when to come back.
  uint64_t retry_after = 0;
  CHECK_FALSE(f.pick(now + 1000, {1}, &retry_after));
  CHECK(retry_after >= 28000);
  CHECK(retry_after <= 29000);
  CHECK(g.anyUsable(now + 1000));  // target 1 still is
  // A group of that target alone.
  Fixture one;
  UpstreamGroup& go = one.build({1});
  for (int i = 0; i < 3; ++i) go.finish(*one.pick(now), AttemptResult::Failure, now, 1000);
  retry_after = 0;
  CHECK_FALSE(one.pick(now, {}, &retry_after));
  CHECK(retry_after == 30000);
  CHECK_FALSE(go.anyUsable(now + 29999));
  CHECK(go.anyUsable(now + 30000));
  CHECK(one.inFlight(0) == 0);
}

TEST_CASE("breaker: a success resets the consecutive count") {
  Fixture f;
  UpstreamGroup& g = f.build({1});
  for (int round = 0; round < 5; ++round) {
    g.finish(*f.pick(kT0), AttemptResult::Failure, kT0, 1000);
    g.finish(*f.pick(kT0), AttemptResult::Failure, kT0, 1000);
    g.finish(*f.pick(kT0), AttemptResult::Success, kT0, 1000);
  }
  CHECK(f.pick(kT0));
}

TEST_CASE("breaker: after open_ms half-open probes are admitted, at most half_open_calls") {
  Fixture f;
  UpstreamGroup& g = f.build({1});
  uint64_t now = kT0;
  for (int i = 0; i < 3; ++i) g.finish(*f.pick(now), AttemptResult::Failure, now, 1000);
  uint64_t retry_after = 0;
  CHECK_FALSE(f.pick(now + 29999, {}, &retry_after));
  CHECK(retry_after == 1);
  now += 30000;
  auto p1 = f.pick(now);
  REQUIRE(p1);
  CHECK(p1->probe);
  auto p2 = f.pick(now);
  REQUIRE(p2);
  CHECK(p2->probe);
  retry_after = 0;
  CHECK_FALSE(f.pick(now, {}, &retry_after));  // the two probes are out
  CHECK(retry_after == policy::kHalfOpenRetryAfterMs);
  CHECK(f.refusals.load() >= 1);
  CHECK(f.inFlight(0) == 2);
  // Neutral gives a probe back.
  CHECK_FALSE(g.finish(*p1, AttemptResult::Neutral, now, 1000));
  CHECK(f.inFlight(0) == 1);
  auto p3 = f.pick(now);
  REQUIRE(p3);
  CHECK(p3->probe);
  CHECK_FALSE(f.pick(now));
  // Two passing probes close it.
  CHECK_FALSE(g.finish(*p2, AttemptResult::Success, now + 1, 1000));
  auto closed = g.finish(*p3, AttemptResult::Success, now + 2, 1000);
  REQUIRE(closed);
  CHECK(closed->change.to == policy::BreakerState::Closed);
  auto normal = f.pick(now + 3);
  REQUIRE(normal);
  CHECK_FALSE(normal->probe);
  g.finish(*normal, AttemptResult::Success, now + 3, 1000);
  CHECK(f.inFlight(0) == 0);
}

TEST_CASE("breaker: a failing probe opens it again for open_ms") {
  Fixture f;
  UpstreamGroup& g = f.build({1});
  uint64_t now = kT0;
  for (int i = 0; i < 3; ++i) g.finish(*f.pick(now), AttemptResult::Failure, now, 1000);
  now += 30000;
  auto probe = f.pick(now);
  REQUIRE(probe);
  CHECK(probe->probe);
  auto event = g.finish(*probe, AttemptResult::Failure, now + 100, 1000);
  REQUIRE(event);
  CHECK(event->change.to == policy::BreakerState::Open);
  uint64_t retry_after = 0;
  CHECK_FALSE(f.pick(now + 100, {}, &retry_after));
  CHECK(retry_after == 30000);
}

TEST_CASE("tryRetry honours the budget: min_retries, then the ratio") {
  Fixture f;
  f.config.retry_budget = {.ratio = 0.5, .window_ms = 10000, .min_retries = 3};
  UpstreamGroup& g = f.build({1});
  // No traffic: min_retries.
  int granted = 0;
  for (int i = 0; i < 10; ++i) granted += g.tryRetry(kT0) ? 1 : 0;
  CHECK(granted == 3);
  CHECK(f.retries.load() == 3);
  CHECK(f.exhausted.load() == 7);
  // 20 requests at 0.5: 10 retries in the window.
  Fixture r;
  r.config.retry_budget = {.ratio = 0.5, .window_ms = 10000, .min_retries = 3};
  UpstreamGroup& gr = r.build({1});
  for (int i = 0; i < 20; ++i) gr.countRequest(kT0);
  CHECK(r.requests.load() == 20);
  granted = 0;
  for (int i = 0; i < 30; ++i) granted += gr.tryRetry(kT0) ? 1 : 0;
  CHECK(granted == 10);
  // A window later the budget is back.
  CHECK(gr.tryRetry(kT0 + 20000));
  // Ratio 0 and min 0: no retry at all.
  Fixture z;
  z.config.retry_budget = {.ratio = 0, .window_ms = 10000, .min_retries = 0};
  UpstreamGroup& gz = z.build({1});
  for (int i = 0; i < 10; ++i) gz.countRequest(kT0);
  CHECK_FALSE(gz.tryRetry(kT0));
}

TEST_CASE("countNoTarget counts, and the group exposes its config and targets") {
  Fixture f;
  f.config.balance = "least_conn";
  UpstreamGroup& g = f.build({2, 3}, {false, true});
  g.countNoTarget();
  g.countNoTarget();
  CHECK(f.no_target.load() == 2);
  CHECK(g.name() == "api");
  CHECK(g.config().balance == "least_conn");
  REQUIRE(g.targets().size() == 2);
  CHECK(g.targets()[1].weight == 3);
  CHECK(g.targets()[1].backup);
  CHECK(g.targets()[1].address == "127.0.0.1:9001");
}

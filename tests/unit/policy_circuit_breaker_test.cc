#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "shared/policy/circuit_breaker.h"

using namespace phalanx::shared::policy;

namespace {

// Consecutive failures only, unless a test turns the rates on.
BreakerOptions consecutiveOnly() {
  return {.consecutive_failures = 3,
          .failure_rate = 0,
          .minimum_calls = 10,
          .window_ms = 10000,
          .open_ms = 30000,
          .half_open_calls = 2};
}

BreakerOptions rateOnly() {
  return {.consecutive_failures = 0,
          .failure_rate = 0.5,
          .minimum_calls = 10,
          .window_ms = 10000,
          .open_ms = 30000,
          .half_open_calls = 2};
}

std::optional<BreakerChange> fail(BreakerCell& cell, const BreakerOptions& o, uint64_t now) {
  return record(cell, o, now, CallResult::Failure, 10, false, 0);
}

std::optional<BreakerChange> succeed(BreakerCell& cell, const BreakerOptions& o, uint64_t now,
                                     uint64_t duration_ms = 10) {
  return record(cell, o, now, CallResult::Success, duration_ms, false, 0);
}

// A cell opened at `at` by consecutive failures.
void openAt(BreakerCell& cell, const BreakerOptions& o, uint64_t at) {
  for (uint32_t i = 0; i < o.consecutive_failures; ++i) fail(cell, o, at);
  REQUIRE(view(cell, o, at).state == BreakerState::Open);
}

}  // namespace

TEST_CASE("breaker: a zeroed cell is closed, admits, and shows an empty window") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  Admission a = admit(cell, o, 5);
  CHECK(a.allowed);
  CHECK_FALSE(a.probe);
  CHECK_FALSE(a.change);
  BreakerView v = view(cell, o, 5);
  CHECK(v.state == BreakerState::Closed);
  CHECK(v.window_calls == 0);
  CHECK(v.transitions == 0);
  CHECK(std::string(breakerStateName(BreakerState::HalfOpen)) == "half_open");
  CHECK(std::string(breakerStateName(BreakerState::Open)) == "open");
  CHECK(std::string(breakerStateName(BreakerState::Closed)) == "closed");
}

TEST_CASE("breaker: opens on consecutive failures; a success resets the count") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  CHECK_FALSE(fail(cell, o, 100));
  CHECK_FALSE(fail(cell, o, 101));
  CHECK_FALSE(succeed(cell, o, 102));
  CHECK(view(cell, o, 102).consecutive_failures == 0);
  CHECK_FALSE(fail(cell, o, 103));
  CHECK_FALSE(fail(cell, o, 104));
  auto change = fail(cell, o, 105);
  REQUIRE(change);
  CHECK(change->from == BreakerState::Closed);
  CHECK(change->to == BreakerState::Open);
  CHECK(change->at_ms == 105);
  CHECK(change->opened_at_ms == 105);
  CHECK(view(cell, o, 105).opened_at_ms == 105);
  CHECK(view(cell, o, 105).transitions == 1);
}

TEST_CASE("breaker: openRemainingMs is the open time left, 0 when closed, due or half-open") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  CHECK(openRemainingMs(cell, o, 100) == 0);
  openAt(cell, o, 1000);
  CHECK(openRemainingMs(cell, o, 1000) == 30000);
  CHECK(openRemainingMs(cell, o, 30999) == 1);
  CHECK(openRemainingMs(cell, o, 31000) == 0);  // due: admit() half-opens it
  REQUIRE(admit(cell, o, 31000).allowed);
  CHECK(view(cell, o, 31000).state == BreakerState::HalfOpen);
  CHECK(openRemainingMs(cell, o, 31000) == 0);
}

TEST_CASE("breaker: the failure rate counts only once the window holds minimum_calls") {
  BreakerCell cell{};
  auto o = rateOnly();
  // F S F S F S F S F: 5 of 9 fail, but 9 calls are fewer than minimum_calls.
  for (int i = 0; i < 9; ++i) {
    auto change = i % 2 == 0 ? fail(cell, o, 1000 + i) : succeed(cell, o, 1000 + i);
    CHECK_FALSE(change);
  }
  // The tenth call, a success, makes 5 of 10: 50% >= failure_rate.
  auto change = succeed(cell, o, 1009);
  REQUIRE(change);
  CHECK(change->to == BreakerState::Open);
}

TEST_CASE("breaker: a failure rate below the threshold keeps it closed") {
  BreakerCell cell{};
  auto o = rateOnly();
  for (int i = 0; i < 100; ++i) {
    auto change = i % 3 == 0 ? fail(cell, o, 1000) : succeed(cell, o, 1000);
    CHECK_FALSE(change);
  }
  CHECK(view(cell, o, 1000).window_calls == 100);
  CHECK(view(cell, o, 1000).window_failures == 34);
}

TEST_CASE("breaker: opens on the slow-call rate, slow successes included") {
  BreakerCell cell{};
  BreakerOptions o = rateOnly();
  o.failure_rate = 0;
  o.slow_call_ms = 100;
  o.slow_call_rate = 0.5;
  for (int i = 0; i < 9; ++i) CHECK_FALSE(succeed(cell, o, 1000, i % 2 == 0 ? 100 : 99));
  CHECK(view(cell, o, 1000).window_slow == 5);
  auto change = succeed(cell, o, 1000, 10);
  REQUIRE(change);
  CHECK(change->to == BreakerState::Open);
}

TEST_CASE("breaker: open refuses with the time left until open_ms has passed") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  Admission a = admit(cell, o, 1000);
  CHECK_FALSE(a.allowed);
  CHECK(a.retry_after_ms == 30000);
  CHECK(admit(cell, o, 11000).retry_after_ms == 20000);
  CHECK(admit(cell, o, 30999).retry_after_ms == 1);
  CHECK_FALSE(admit(cell, o, 30999).allowed);
}

TEST_CASE("breaker: a result while open changes nothing") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  CHECK_FALSE(fail(cell, o, 2000));
  CHECK_FALSE(succeed(cell, o, 2000));
  BreakerView v = view(cell, o, 2000);
  CHECK(v.state == BreakerState::Open);
  CHECK(v.transitions == 1);
  CHECK(v.window_calls == 3);
}

TEST_CASE("breaker: after open_ms one admit moves it to half-open, and probes are limited") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  Admission first = admit(cell, o, 31000);
  CHECK(first.allowed);
  CHECK(first.probe);
  REQUIRE(first.change);
  CHECK(first.change->from == BreakerState::Open);
  CHECK(first.change->to == BreakerState::HalfOpen);
  Admission second = admit(cell, o, 31001);
  CHECK(second.allowed);
  CHECK(second.probe);
  CHECK_FALSE(second.change);
  CHECK(second.sequence == first.sequence);
  Admission third = admit(cell, o, 31002);
  CHECK_FALSE(third.allowed);
  CHECK(third.retry_after_ms == kHalfOpenRetryAfterMs);
  CHECK_FALSE(third.change);
  BreakerView v = view(cell, o, 31002);
  CHECK(v.state == BreakerState::HalfOpen);
  CHECK(v.probes_taken == 2);
  CHECK(v.transitions == 2);
}

TEST_CASE("breaker: a failing probe re-opens at once, from now") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  Admission a = admit(cell, o, 31000);
  auto change = record(cell, o, 31500, CallResult::Failure, 500, true, a.sequence);
  REQUIRE(change);
  CHECK(change->from == BreakerState::HalfOpen);
  CHECK(change->to == BreakerState::Open);
  CHECK(change->opened_at_ms == 31500);
  CHECK(admit(cell, o, 31500).retry_after_ms == 30000);
}

TEST_CASE("breaker: a slow probe re-opens too") {
  BreakerCell cell{};
  BreakerOptions o = consecutiveOnly();
  o.slow_call_ms = 200;
  openAt(cell, o, 1000);
  Admission a = admit(cell, o, 31000);
  auto change = record(cell, o, 31300, CallResult::Success, 300, true, a.sequence);
  REQUIRE(change);
  CHECK(change->to == BreakerState::Open);
}

TEST_CASE("breaker: half_open_calls passing probes close it, with counts cleared") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  Admission a = admit(cell, o, 31000);
  Admission b = admit(cell, o, 31000);
  CHECK_FALSE(record(cell, o, 31100, CallResult::Success, 100, true, a.sequence));
  CHECK(view(cell, o, 31100).probes_passed == 1);
  auto change = record(cell, o, 31200, CallResult::Success, 200, true, b.sequence);
  REQUIRE(change);
  CHECK(change->from == BreakerState::HalfOpen);
  CHECK(change->to == BreakerState::Closed);
  CHECK(change->opened_at_ms == 0);
  BreakerView v = view(cell, o, 31200);
  CHECK(v.state == BreakerState::Closed);
  CHECK(v.consecutive_failures == 0);
  CHECK(v.window_calls == 0);
  CHECK(v.transitions == 3);
  CHECK(admit(cell, o, 31200).allowed);
}

TEST_CASE("breaker: a stale probe from an earlier episode can neither close nor re-open") {
  BreakerCell cell{};
  BreakerOptions o = consecutiveOnly();
  o.half_open_calls = 1;
  openAt(cell, o, 1000);
  Admission old_probe = admit(cell, o, 31000);  // episode 1
  // The episode ends without it (a forced re-open), then a new one starts.
  force(cell, BreakerState::Open, 32000, 32000);
  Admission new_probe = admit(cell, o, 62000);  // episode 2
  REQUIRE(new_probe.probe);
  REQUIRE(new_probe.sequence != old_probe.sequence);
  CHECK_FALSE(record(cell, o, 62001, CallResult::Success, 1, true, old_probe.sequence));
  CHECK(view(cell, o, 62001).state == BreakerState::HalfOpen);
  CHECK_FALSE(record(cell, o, 62002, CallResult::Failure, 1, true, old_probe.sequence));
  CHECK(view(cell, o, 62002).state == BreakerState::HalfOpen);
  // The current episode's own probe decides.
  auto change = record(cell, o, 62003, CallResult::Success, 1, true, new_probe.sequence);
  REQUIRE(change);
  CHECK(change->to == BreakerState::Closed);
}

TEST_CASE("breaker: a released probe permit can be taken again") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  Admission a = admit(cell, o, 31000);
  admit(cell, o, 31000);
  CHECK_FALSE(admit(cell, o, 31000).allowed);
  releaseProbe(cell, a.sequence);
  CHECK(view(cell, o, 31000).probes_taken == 1);
  CHECK(admit(cell, o, 31000).allowed);
  // Releasing a permit of another episode changes nothing.
  releaseProbe(cell, a.sequence + 1);
  CHECK(view(cell, o, 31000).probes_taken == 2);
}

TEST_CASE("breaker: a half-open episode whose probes never report restarts after open_ms") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  openAt(cell, o, 1000);
  Admission a = admit(cell, o, 31000);
  admit(cell, o, 31000);
  CHECK_FALSE(admit(cell, o, 60999).allowed);
  Admission restarted = admit(cell, o, 61000);
  CHECK(restarted.allowed);
  CHECK(restarted.probe);
  REQUIRE(restarted.change);
  CHECK(restarted.change->from == BreakerState::HalfOpen);
  CHECK(restarted.change->to == BreakerState::HalfOpen);
  CHECK(restarted.sequence != a.sequence);
  CHECK(view(cell, o, 61000).probes_taken == 1);
}

TEST_CASE("breaker: the window forgets calls older than window_ms") {
  BreakerCell cell{};
  auto o = rateOnly();  // buckets of 1000 ms
  for (int i = 0; i < 9; ++i) CHECK_FALSE(fail(cell, o, 500));
  CHECK(view(cell, o, 9999).window_calls == 9);   // bucket 0 is still in the window
  CHECK(view(cell, o, 10000).window_calls == 0);  // bucket 0 has left it
  // Ten buckets later the same ring slot is reused: the old period is dropped,
  // not added to, so one more failure does not make ten.
  CHECK_FALSE(fail(cell, o, 10500));
  BreakerView v = view(cell, o, 10500);
  CHECK(v.window_calls == 1);
  CHECK(v.window_failures == 1);
  CHECK(v.state == BreakerState::Closed);
}

TEST_CASE("breaker: calls spread over the window all count") {
  BreakerCell cell{};
  auto o = rateOnly();
  for (int i = 0; i < 9; ++i) CHECK_FALSE(fail(cell, o, 1000 * i));
  auto change = fail(cell, o, 9999);
  REQUIRE(change);
  CHECK(change->to == BreakerState::Open);
}

TEST_CASE("breaker: force is idempotent and clears the counts when closing") {
  BreakerCell cell{};
  auto o = consecutiveOnly();
  fail(cell, o, 100);
  auto opened = force(cell, BreakerState::Open, 5000, 4000);
  REQUIRE(opened);
  CHECK(opened->from == BreakerState::Closed);
  CHECK(opened->opened_at_ms == 4000);
  CHECK(admit(cell, o, 5000).retry_after_ms == 29000);
  CHECK_FALSE(force(cell, BreakerState::Open, 6000, 4000));
  auto moved = force(cell, BreakerState::Open, 6000, 6000);  // another host opened later
  REQUIRE(moved);
  CHECK(moved->from == BreakerState::Open);
  // An opened_at in the future (clocks of other hosts) is taken as now.
  CHECK(force(cell, BreakerState::Open, 7000, 99999)->opened_at_ms == 7000);
  auto closed = force(cell, BreakerState::Closed, 8000, 0);
  REQUIRE(closed);
  CHECK(closed->to == BreakerState::Closed);
  CHECK_FALSE(force(cell, BreakerState::Closed, 8001, 0));
  BreakerView v = view(cell, o, 8001);
  CHECK(v.consecutive_failures == 0);
  CHECK(v.window_calls == 0);
  CHECK(v.transitions == 4);
  CHECK(force(cell, BreakerState::HalfOpen, 9000, 0));
  CHECK_FALSE(force(cell, BreakerState::HalfOpen, 9001, 0));
  CHECK(admit(cell, o, 9001).probe);
}

TEST_CASE("breaker: threads hammering one cell each win a distinct transition") {
  auto cell = std::make_unique<BreakerCell>();
  BreakerOptions o{.consecutive_failures = 3,
                   .failure_rate = 0.5,
                   .minimum_calls = 10,
                   .window_ms = 100,
                   .open_ms = 20,
                   .half_open_calls = 2,
                   .slow_call_ms = 50,
                   .slow_call_rate = 0.9};
  std::atomic<uint64_t> clock{1};
  std::atomic<uint64_t> changes{0};
  std::atomic<uint64_t> to_closed{0};
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 20000; ++i) {
        uint64_t now = clock.fetch_add(1, std::memory_order_relaxed) / 16;
        Admission a = admit(*cell, o, now);
        if (a.change) changes.fetch_add(1);
        if (!a.allowed) continue;
        if (rng() % 7 == 0 && a.probe) {
          releaseProbe(*cell, a.sequence);
          continue;
        }
        bool failed = rng() % 3 == 0;
        auto change = record(*cell, o, now, failed ? CallResult::Failure : CallResult::Success,
                             rng() % 60, a.probe, a.sequence);
        if (change) {
          changes.fetch_add(1);
          if (change->to == BreakerState::Closed) to_closed.fetch_add(1);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  uint64_t transitions = view(*cell, o, clock.load() / 16).transitions;
  CHECK(transitions > 10);
  CHECK(to_closed.load() > 0);
  CHECK(changes.load() == transitions);
}

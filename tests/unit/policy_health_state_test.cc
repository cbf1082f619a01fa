#include <doctest/doctest.h>

#include "shared/policy/health_state.h"

using namespace phalanx::shared::policy;

namespace {
const HealthOptions kOptions{.healthy_threshold = 2, .unhealthy_threshold = 3};
}  // namespace

TEST_CASE("health: a zeroed cell is healthy with no history") {
  HealthCell cell{};
  HealthStatus s = load(cell);
  CHECK(s.healthy);
  CHECK(s.passes == 0);
  CHECK(s.fails == 0);
}

TEST_CASE("health: down only after unhealthy_threshold failures in a row") {
  HealthStatus s;
  bool flipped = true;
  s = step(s, false, kOptions, &flipped);
  CHECK_FALSE(flipped);
  s = step(s, false, kOptions, &flipped);
  s = step(s, true, kOptions, &flipped);  // the streak resets
  CHECK(s.fails == 0);
  CHECK(s.passes == 1);
  s = step(s, false, kOptions, &flipped);
  s = step(s, false, kOptions, &flipped);
  CHECK(s.healthy);
  CHECK_FALSE(flipped);
  s = step(s, false, kOptions, &flipped);
  CHECK_FALSE(s.healthy);
  CHECK(flipped);
  CHECK(s.fails == 3);
  s = step(s, false, kOptions, &flipped);
  CHECK_FALSE(flipped);
}

TEST_CASE("health: up after healthy_threshold passes in a row") {
  HealthStatus s{.healthy = false, .passes = 0, .fails = 5};
  bool flipped = true;
  s = step(s, true, kOptions, &flipped);
  CHECK_FALSE(s.healthy);
  CHECK(s.fails == 0);
  s = step(s, false, kOptions, &flipped);  // the streak resets
  CHECK(s.passes == 0);
  s = step(s, true, kOptions, &flipped);
  s = step(s, true, kOptions, nullptr);
  CHECK(s.healthy);
  s = step(HealthStatus{.healthy = false}, true, HealthOptions{0, 0}, &flipped);
  CHECK(s.healthy);  // a threshold of 0 counts as 1
  CHECK(flipped);
}

TEST_CASE("health: recordCheck keeps the cell's state, streaks and totals") {
  HealthCell cell{};
  CHECK_FALSE(recordCheck(cell, kOptions, false, 100, 503));
  CHECK_FALSE(recordCheck(cell, kOptions, false, 200, 503));
  CHECK(recordCheck(cell, kOptions, false, 300, -111));
  CHECK(cell.down.load() == 1);
  CHECK(cell.fails.load() == 3);
  CHECK(cell.last_detail.load() == -111);
  CHECK(cell.last_transition_ms.load() == 300);
  CHECK_FALSE(recordCheck(cell, kOptions, true, 400, 200));
  CHECK(recordCheck(cell, kOptions, true, 500, 200));
  CHECK(load(cell).healthy);
  CHECK(cell.checks.load() == 5);
  CHECK(cell.failures.load() == 3);
  CHECK(cell.transitions.load() == 2);
  CHECK(cell.last_check_ms.load() == 500);
  CHECK(cell.last_transition_ms.load() == 500);
}

#include "master/restart_policy.h"

#include <doctest/doctest.h>

using phalanx::master::RestartPolicy;
using phalanx::shared::SupervisorConfig;

namespace {
SupervisorConfig settings() {
  SupervisorConfig c;
  c.restart_base_ms = 100;
  c.restart_factor = 2;
  c.restart_max_ms = 1000;
  c.min_uptime_ms = 5000;
  c.max_unstable_restarts = 3;
  return c;
}
}  // namespace

TEST_CASE("fast exits back off by the factor up to the cap") {
  RestartPolicy policy(settings());
  CHECK(policy.onExit(10, true).delay_ms == 100);
  CHECK(policy.onExit(10, true).delay_ms == 200);
  CHECK(policy.onExit(10, true).delay_ms == 400);
  CHECK(policy.unstable() == 3);
  CHECK_FALSE(policy.errored());
}

TEST_CASE("more than max_unstable_restarts fast exits: errored, retried at the cap") {
  RestartPolicy policy(settings());
  for (int i = 0; i < 3; ++i) CHECK_FALSE(policy.onExit(0, true).errored);
  auto d = policy.onExit(0, true);
  CHECK(d.errored);
  CHECK(d.unstable == 4);
  CHECK(d.delay_ms == 1000);
  CHECK(policy.onExit(0, true).delay_ms == 1000);
}

TEST_CASE("an exit after min_uptime starts over at the base delay") {
  RestartPolicy policy(settings());
  policy.onExit(0, true);
  policy.onExit(0, true);
  auto d = policy.onExit(5000, true);
  CHECK(d.delay_ms == 100);
  CHECK(d.unstable == 0);
  CHECK_FALSE(d.errored);
}

TEST_CASE("stable() ends an errored streak") {
  RestartPolicy policy(settings());
  for (int i = 0; i < 5; ++i) policy.onExit(0, true);
  CHECK(policy.errored());
  policy.stable();
  CHECK_FALSE(policy.errored());
  CHECK(policy.onExit(0, true).delay_ms == 100);
}

TEST_CASE("the delay never overflows, whatever the streak") {
  SupervisorConfig c = settings();
  c.restart_factor = 10;
  c.restart_max_ms = 15000;
  CHECK(RestartPolicy::delayMs(c, 1'000'000) == 15000);
  c.restart_factor = 1;
  CHECK(RestartPolicy::delayMs(c, 50) == 100);
}

TEST_CASE("workers that die before ready, twice in a row, are a crash loop") {
  RestartPolicy policy(settings());
  policy.onExit(10, false);
  CHECK_FALSE(policy.crashLooping());
  policy.onExit(10, false);
  CHECK(policy.crashLooping());
  policy.onExit(10, true);  // one that got ready ends it
  CHECK_FALSE(policy.crashLooping());
}

TEST_CASE("with no ready worker, the waiting slot due soonest is rescued") {
  using phalanx::master::slotToRescue;
  using phalanx::master::WaitingSlot;
  const uint64_t now = 10'000;
  CHECK_FALSE(slotToRescue({}, now, 100).has_value());
  std::vector<WaitingSlot> waiting = {{.slot = 0, .restart_at_ms = now + 4800},
                                      {.slot = 1, .restart_at_ms = now + 2250},
                                      {.slot = 2, .restart_at_ms = now + 900}};
  CHECK(slotToRescue(waiting, now, 100) == 2u);
  waiting[2].crash_looping = true;  // a broken worker keeps its backoff
  CHECK(slotToRescue(waiting, now, 100) == 1u);
  waiting[1].restart_at_ms = now + 80;  // due within the base delay anyway
  CHECK_FALSE(slotToRescue(waiting, now, 100).has_value());
  for (auto& w : waiting) w.crash_looping = true;
  CHECK_FALSE(slotToRescue(waiting, now, 100).has_value());
}

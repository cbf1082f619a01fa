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
  CHECK(policy.onExit(10).delay_ms == 100);
  CHECK(policy.onExit(10).delay_ms == 200);
  CHECK(policy.onExit(10).delay_ms == 400);
  CHECK(policy.unstable() == 3);
  CHECK_FALSE(policy.errored());
}

TEST_CASE("more than max_unstable_restarts fast exits: errored, retried at the cap") {
  RestartPolicy policy(settings());
  for (int i = 0; i < 3; ++i) CHECK_FALSE(policy.onExit(0).errored);
  auto d = policy.onExit(0);
  CHECK(d.errored);
  CHECK(d.unstable == 4);
  CHECK(d.delay_ms == 1000);
  CHECK(policy.onExit(0).delay_ms == 1000);
}

TEST_CASE("an exit after min_uptime starts over at the base delay") {
  RestartPolicy policy(settings());
  policy.onExit(0);
  policy.onExit(0);
  auto d = policy.onExit(5000);
  CHECK(d.delay_ms == 100);
  CHECK(d.unstable == 0);
  CHECK_FALSE(d.errored);
}

TEST_CASE("stable() ends an errored streak") {
  RestartPolicy policy(settings());
  for (int i = 0; i < 5; ++i) policy.onExit(0);
  CHECK(policy.errored());
  policy.stable();
  CHECK_FALSE(policy.errored());
  CHECK(policy.onExit(0).delay_ms == 100);
}

TEST_CASE("the delay never overflows, whatever the streak") {
  SupervisorConfig c = settings();
  c.restart_factor = 10;
  c.restart_max_ms = 15000;
  CHECK(RestartPolicy::delayMs(c, 1'000'000) == 15000);
  c.restart_factor = 1;
  CHECK(RestartPolicy::delayMs(c, 50) == 100);
}

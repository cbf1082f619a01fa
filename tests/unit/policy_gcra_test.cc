#include <doctest/doctest.h>

#include <cstdint>

#include "shared/policy/gcra.h"

using namespace phalanx::shared::policy;

namespace {

constexpr uint64_t kSecondUs = 1'000'000;
constexpr uint64_t kMinuteMs = 60'000;
constexpr uint64_t kDayMs = 86'400'000;

// Decides and stores like the table does; returns the decision.
GcraDecision take(const GcraParams& p, uint64_t& tat, uint64_t now) {
  GcraDecision d = gcraDecide(p, tat, now);
  if (d.allowed) tat = d.new_tat_us;
  return d;
}

// How many of `attempts` requests at one instant are allowed.
int burstAt(const GcraParams& p, uint64_t& tat, uint64_t now, int attempts) {
  int allowed = 0;
  for (int i = 0; i < attempts; ++i) allowed += take(p, tat, now).allowed;
  return allowed;
}

}  // namespace

TEST_CASE("gcra: params of \"100/m\"") {
  GcraParams p = gcraParams(100, kMinuteMs, 0);
  CHECK(p.limit == 100);
  CHECK(p.emission_interval_us == 600'000);
  CHECK(p.tolerance_us == 60'000'000);
  CHECK(p.window_ms == kMinuteMs);
  GcraParams burst = gcraParams(100, kMinuteMs, 10);
  CHECK(burst.limit == 10);
  CHECK(burst.emission_interval_us == 600'000);
  CHECK(burst.tolerance_us == 6'000'000);
}

TEST_CASE("gcra: the interval is microseconds, rounded up so the rate is never exceeded") {
  GcraParams p = gcraParams(3000, 1000, 0);
  CHECK(p.emission_interval_us == 334);  // 333.3…: 2994 per second sustained, not 3003
  CHECK(p.limit == 3000);
  CHECK(p.tolerance_us == 1'002'000);
  // Above one per microsecond: one per microsecond.
  CHECK(gcraParams(5'000'000, 1000, 0).emission_interval_us == 1);
  // 0 is taken as 1.
  GcraParams zero = gcraParams(0, 0, 0);
  CHECK(zero.limit == 1);
  CHECK(zero.emission_interval_us == 1000);
  CHECK(zero.window_ms == 1);
}

TEST_CASE("gcra: \"100/m\" allows exactly 100 at one instant, then one every 600 ms") {
  GcraParams p = gcraParams(100, kMinuteMs, 0);
  uint64_t tat = 0;
  const uint64_t t0 = 5 * kSecondUs;
  GcraDecision first = take(p, tat, t0);
  CHECK(first.allowed);
  CHECK(first.new_tat_us == t0 + 600'000);
  CHECK(first.remaining == 99);
  CHECK(first.reset_ms == 600);
  CHECK(first.retry_after_ms == 0);
  CHECK(burstAt(p, tat, t0, 98) == 98);
  GcraDecision last = take(p, tat, t0);  // the 100th
  CHECK(last.allowed);
  CHECK(last.remaining == 0);
  CHECK(last.reset_ms == 60'000);
  CHECK(tat == t0 + 60'000'000);

  GcraDecision refused = take(p, tat, t0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.new_tat_us == tat);  // unchanged
  CHECK(refused.remaining == 0);
  CHECK(refused.reset_ms == 60'000);
  CHECK(refused.retry_after_ms == 600);
  CHECK(burstAt(p, tat, t0, 1000) == 0);

  // 1 µs early is still refused, and Retry-After rounds up to 1 ms.
  GcraDecision early = take(p, tat, t0 + 599'999);
  CHECK_FALSE(early.allowed);
  CHECK(early.retry_after_ms == 1);
  CHECK(early.reset_ms == 59'401);  // 59'400.001 ms, rounded up
  // At 600 ms exactly one more.
  GcraDecision next = take(p, tat, t0 + 600'000);
  CHECK(next.allowed);
  CHECK(next.remaining == 0);
  CHECK(next.reset_ms == 60'000);
  CHECK_FALSE(take(p, tat, t0 + 600'000).allowed);
  // After 3 s (five intervals), five.
  CHECK(burstAt(p, tat, t0 + 3'600'000, 10) == 5);
}

TEST_CASE("gcra: a bucket refills at the rate, and a refilled one is a never-seen one") {
  GcraParams p = gcraParams(10, 1000, 0);  // T = 100 ms, tolerance 1 s
  uint64_t tat = 0;
  CHECK(burstAt(p, tat, kSecondUs, 10) == 10);
  // Half refilled after 500 ms: 5 more.
  CHECK(burstAt(p, tat, kSecondUs + 500'000, 10) == 5);
  // Full again 1 s after the last admission: tat <= now.
  uint64_t full_at = tat;
  GcraDecision d = gcraDecide(p, tat, full_at);
  CHECK(d.allowed);
  CHECK(d.remaining == 9);
  GcraDecision fresh = gcraDecide(p, 0, full_at);
  CHECK(fresh.allowed == d.allowed);
  CHECK(fresh.new_tat_us == d.new_tat_us);
  CHECK(fresh.remaining == d.remaining);
  CHECK(fresh.reset_ms == d.reset_ms);
  // Long idle changes nothing more: still 10, not more.
  CHECK(burstAt(p, tat, full_at + 3600 * kSecondUs, 20) == 10);
}

TEST_CASE("gcra: burst 1 spaces requests by the interval") {
  GcraParams p = gcraParams(10, 1000, 1);
  CHECK(p.tolerance_us == 100'000);
  uint64_t tat = 0;
  GcraDecision first = take(p, tat, 0);  // now 0 works as any instant
  CHECK(first.allowed);
  CHECK(first.remaining == 0);
  CHECK(first.reset_ms == 100);
  GcraDecision second = take(p, tat, 40'000);
  CHECK_FALSE(second.allowed);
  CHECK(second.retry_after_ms == 60);
  CHECK(second.reset_ms == 60);
  CHECK(take(p, tat, 100'000).allowed);
}

TEST_CASE("gcra: a burst larger than the count") {
  GcraParams p = gcraParams(1, 1000, 5);  // 1/s, 5 at once
  CHECK(p.tolerance_us == 5 * kSecondUs);
  uint64_t tat = 0;
  CHECK(burstAt(p, tat, 10 * kSecondUs, 8) == 5);
  GcraDecision d = take(p, tat, 10 * kSecondUs);
  CHECK(d.retry_after_ms == 1000);
  CHECK(d.reset_ms == 5000);
}

TEST_CASE("gcra: \"1/d\" with burst 1e6 does not overflow") {
  GcraParams p = gcraParams(1, kDayMs, 1'000'000);
  CHECK(p.emission_interval_us == 86'400'000'000ull);
  CHECK(p.limit == 1'000'000);
  CHECK(p.tolerance_us == 86'400'000'000'000'000ull);
  const uint64_t now = 3 * 365 * kDayMs * 1000;  // three years of uptime
  uint64_t tat = 0;
  GcraDecision first = take(p, tat, now);
  CHECK(first.allowed);
  CHECK(first.remaining == 999'999);
  CHECK(first.reset_ms == kDayMs);
  tat = now + p.tolerance_us;  // the bucket emptied
  GcraDecision refused = take(p, tat, now);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after_ms == kDayMs);
  CHECK(refused.reset_ms == p.tolerance_us / 1000);
}

TEST_CASE("gcra: absurd configs are capped at 2^62 µs of tolerance, and nothing wraps") {
  GcraParams huge = gcraParams(1, UINT64_MAX, UINT64_MAX);
  // The period is capped first, in whole milliseconds.
  CHECK(huge.emission_interval_us == 4'611'686'018'427'387'000ull);
  CHECK(huge.limit == 1);
  CHECK(huge.tolerance_us == huge.emission_interval_us);
  CHECK(huge.window_ms == UINT64_MAX);
  GcraParams wide = gcraParams(1, kDayMs, UINT64_MAX);
  CHECK(wide.limit == 53'375'995);  // 2^62 / 8.64e10
  CHECK(wide.tolerance_us <= kGcraMaxToleranceUs);
  CHECK(wide.tolerance_us == wide.limit * wide.emission_interval_us);

  GcraDecision d = gcraDecide(huge, 0, kGcraMaxToleranceUs);
  CHECK(d.allowed);
  CHECK(d.new_tat_us == kGcraMaxToleranceUs + huge.emission_interval_us);
  CHECK(d.remaining == 0);
  // A garbage tat near the top saturates instead of wrapping into "allowed".
  GcraDecision garbage = gcraDecide(gcraParams(100, kMinuteMs, 0), UINT64_MAX - 5, 1000);
  CHECK_FALSE(garbage.allowed);
  CHECK(garbage.new_tat_us == UINT64_MAX - 5);
  CHECK(garbage.retry_after_ms >= 1);
}

TEST_CASE("gcra: defaulted params refuse instead of dividing by zero") {
  GcraDecision d = gcraDecide(GcraParams{}, 0, 1000);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_ms == 1);
}

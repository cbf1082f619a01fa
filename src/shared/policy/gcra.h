// GCRA, the generic cell rate algorithm: a token bucket kept as one number.
//
// What: a key's whole state is its "theoretical arrival time" (tat), the
// moment its bucket would be full again if nothing more came. Each admitted
// request pushes it one emission interval T (period / count) further; a request
// is admitted iff, after the push, the tat is at most `tolerance` (the bucket
// as time: T × limit) ahead of now:
//
//   allowed  ⇔  max(tat, now) + T − now ≤ tolerance
//
// so "100/m" with burst 100 admits exactly 100 requests at one instant, then
// one more every 600 ms (nginx's limit_req with `nodelay` and burst − 1). A tat
// at or before now is a full bucket: a key never seen (tat 0) and a key whose
// bucket refilled are the same thing, which is what lets the shared table
// forget expired keys.
//
// Why: one 64-bit word per key means one compare-and-swap per decision across
// processes (shared/rate_limit_table.h); no counters to reset, no windows
// whose edges let 2 × count through.
//
// Units: microseconds (so "3000/s" has an interval of 334 µs instead of 0 ms),
// monotonic, passed in as now_us; nothing here reads a clock.
//
// Rounding: the interval is rounded *up* to whole microseconds, so a limit is
// never exceeded: "3000/s" sustains 2994 per second, never 3003. Rates above
// one per microsecond are one per microsecond.
//
// Overflow: the tolerance is capped at kGcraMaxToleranceUs (2^62 µs, about
// 146,000 years) by lowering `limit` (the interval first, if the period alone
// exceeds it), so T × limit never wraps and a stored tat, at most now +
// tolerance, stays below 2^63 for any monotonic clock below 2^62. "1/d" with
// burst 1e6 (8.64e16 µs) is well inside; only absurd configs are capped.
// Additions saturate, so even a garbage tat cannot wrap a decision around.
#pragma once

#include <cstdint>

namespace phalanx::shared::policy {

inline constexpr uint64_t kGcraMaxToleranceUs = uint64_t{1} << 62;

struct GcraParams {
  uint64_t limit = 0;                 // the bucket size (burst), >= 1
  uint64_t emission_interval_us = 0;  // period / count (rounded up), >= 1
  uint64_t tolerance_us = 0;          // emission_interval_us * limit: the bucket as time
  uint64_t window_ms = 0;             // the configured period, for the policy header's w=
};

// `count` requests per `period_ms`, a bucket of `burst` (0 = count). count and
// period_ms are >= 1 (0 is taken as 1). See "Rounding" and "Overflow" above.
GcraParams gcraParams(uint64_t count, uint64_t period_ms, uint64_t burst);

struct GcraDecision {
  bool allowed = false;
  uint64_t new_tat_us = 0;      // the value to store when allowed (== old tat when refused)
  uint64_t remaining = 0;       // requests still allowed right now after this one
  uint64_t reset_ms = 0;        // until the bucket is full again (ceil)
  uint64_t retry_after_ms = 0;  // refused: until one request would be allowed (ceil, >= 1);
                                // 0 when allowed
};

// One decision. tat_us is the stored theoretical arrival time (0 = never
// seen); now_us is monotonic. Allowed: new_tat = max(tat, now) + T, remaining
// = floor((tolerance − (new_tat − now)) / T), reset_ms = ceil((new_tat − now)
// / 1000). Refused: new_tat = tat, remaining = 0, reset_ms from the unchanged
// tat, retry_after_ms = ceil((max(tat, now) + T − now − tolerance) / 1000),
// at least 1. Pure: the caller stores new_tat (with a CAS from tat_us).
GcraDecision gcraDecide(const GcraParams& p, uint64_t tat_us, uint64_t now_us);

}  // namespace phalanx::shared::policy

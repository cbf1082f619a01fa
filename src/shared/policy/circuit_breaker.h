// Circuit breaker for one upstream target, shared by every worker of a host.
//
// What: a state machine Closed → Open → HalfOpen → Closed (or back to Open) kept
// in a BreakerCell in shared memory. Every transition is one compare-and-swap
// on a packed 64-bit word, so exactly one process wins it, and only that caller
// gets a BreakerChange back (to log it, count it, publish it to other hosts).
//
// Why: a failing upstream should get a rest instead of every request; a few
// probes decide when it is back. The knobs are resilience4j's (failure rate over
// a sliding time window once minimum_calls were seen, slow calls, half-open
// permitted calls) plus consecutive failures.
//
// Units: every time is monotonic milliseconds (CLOCK_MONOTONIC of this host, the
// same clock in every process), passed in as `now_ms`; nothing here reads a
// clock. Times are stored in 42 bits (139 years of uptime) and masked to them.
//
// How a caller uses it:
//   Admission a = admit(cell, options, now);          // before sending
//   if (!a.allowed) → 503 with Retry-After: a.retry_after_ms
//   ... send ...
//   record(cell, options, now, result, duration_ms, a.probe, a.sequence);
//   or, if the request was never sent: if (a.probe) releaseProbe(cell, a.sequence);
//
// Rules:
// - Closed: every call is admitted. Results count in a ring of kBreakerBuckets
//   time buckets over window_ms (each bucket window_ms / 10 wide; the window is
//   the current bucket and the 9 before it) and in the consecutive-failure count
//   (a success resets it). It opens when consecutive_failures (0 = off) are
//   reached, or, once the window holds >= minimum_calls calls, when
//   failures / calls >= failure_rate (0 = off), or when slow_call_ms > 0 and
//   slow / calls >= slow_call_rate. A call is slow when duration_ms >=
//   slow_call_ms; a slow success is still a success for the consecutive count.
//   Every result in Closed is evaluated, a success included (the ninth failure
//   then a success make ten calls at 90%).
// - Open: refused with retry_after_ms = opened_at + open_ms - now. At or after
//   opened_at + open_ms, the caller that wins the CAS Open → HalfOpen starts a
//   half-open episode and is normally its first probe.
// - HalfOpen: at most half_open_calls (at least 1) probes are admitted, each
//   with probe = true; others are refused with retry_after_ms =
//   kHalfOpenRetryAfterMs (capped at open_ms): probes should settle within a
//   second or so, and a client told "30 s" would wait long after recovery. A
//   failing or slow probe re-opens at once (opened_at = now); when
//   half_open_calls probes have passed it closes, with the window and the
//   consecutive count cleared. If every permit is taken and the episode has not
//   settled within max(open_ms, kHalfOpenRetryAfterMs) of its start (a worker
//   died holding a probe), the next admit
//   restarts the episode (HalfOpen → HalfOpen, fresh permits) so the target is
//   not shut out forever.
// - A result is matched to its episode by the transition sequence the Admission
//   carried: a probe result from an earlier episode is ignored, so it cannot
//   close (or re-open) a newer one. Non-probe results are judged by the current
//   state: they count only while Closed; a result while Open or HalfOpen (a
//   request admitted before the breaker opened) changes nothing.
// - force() sets a state by hand (phalanxctl breaker open|close) or from a
//   transition another host published; it is idempotent.
//
// Sequence numbers are 20 bits and wrap; they are only compared for equality.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace phalanx::shared::policy {

struct BreakerOptions {
  uint32_t consecutive_failures = 5;  // 0 = off
  double failure_rate = 0.5;          // 0 = off; failures / calls, in (0, 1]
  uint32_t minimum_calls = 10;        // calls in the window before any rate counts
  uint32_t window_ms = 10000;
  uint32_t open_ms = 30000;
  uint32_t half_open_calls = 2;  // probes admitted, and needed to close; 0 counts as 1
  uint32_t slow_call_ms = 0;     // 0 = off
  double slow_call_rate = 1.0;
};

enum class BreakerState : uint32_t { Closed = 0, Open = 1, HalfOpen = 2 };
// "closed", "open", "half_open".
const char* breakerStateName(BreakerState state);

inline constexpr size_t kBreakerBuckets = 10;
// Retry-After for a request refused while the half-open probes are out.
inline constexpr uint64_t kHalfOpenRetryAfterMs = 1000;

// Shared memory: one per upstream target. Zero bytes = Closed, never opened,
// empty window. Standard layout, lock-free atomics only.
struct BreakerCell {
  // state (bits 0-1) | sequence (bits 2-21, +1 on every transition) |
  // since_ms (bits 22-63): when the current state began; for Open it is the
  // opened_at_ms (which force() may set from another host).
  std::atomic<uint64_t> status;
  // Half-open permits: episode sequence (bits 32-51) | taken (16-31) |
  // passed (0-15). A word whose sequence is not the current episode's counts
  // as zero taken, zero passed.
  std::atomic<uint64_t> probes;
  std::atomic<uint64_t> transitions;  // total, every CAS that changed `status`
  std::atomic<uint32_t> consecutive_failures;
  std::atomic<uint32_t> reserved;  // zero; keeps the layout explicit
  // Time buckets: epoch low 16 bits (48-63) | calls (32-47) | failures (16-31) |
  // slow (0-15). Counts saturate: a call that finds `calls` full is not counted
  // at all, so the rates stay unbiased.
  std::atomic<uint64_t> buckets[kBreakerBuckets];
};
static_assert(sizeof(BreakerCell) == 112 && offsetof(BreakerCell, buckets) == 32,
              "BreakerCell is an shm ABI: bump kShmLayoutVersion if it changes");
static_assert(alignof(BreakerCell) == 8);
static_assert(std::is_standard_layout_v<BreakerCell>);
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
              std::atomic<uint32_t>::is_always_lock_free);

// A transition, returned only to the caller whose CAS made it.
struct BreakerChange {
  BreakerState from;
  BreakerState to;
  uint64_t at_ms;
  uint64_t opened_at_ms;  // to == Open: when it opened; otherwise 0
};

struct Admission {
  bool allowed;
  bool probe;               // a half-open probe: record() it or releaseProbe() it
  uint64_t retry_after_ms;  // when refused
  uint64_t sequence;        // the cell's transition sequence at admission; pass to record()
  std::optional<BreakerChange> change;  // this caller moved Open → HalfOpen (or restarted
                                        // a stuck half-open episode)
};

enum class CallResult { Success, Failure };

Admission admit(BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms);

// The outcome of an admitted call. `probe` and `sequence` come from its
// Admission. A connect refusal, a timeout or a 5xx the route counts as failure
// are Failure; a request refused for concurrency is not recorded at all.
std::optional<BreakerChange> record(BreakerCell& cell, const BreakerOptions& options,
                                    uint64_t now_ms, CallResult result, uint64_t duration_ms,
                                    bool probe, uint64_t sequence);

// A probe that was admitted but never sent (the client left) gives its permit back.
void releaseProbe(BreakerCell& cell, uint64_t sequence);

// Sets the state by hand or from another host. to == Open uses opened_at_ms
// (this host's monotonic ms; clamped to now_ms if later); other states ignore
// it. Forcing the state the cell is in changes nothing and returns nullopt
// (for Open: only with the same opened_at_ms). Closing clears the window and
// the consecutive count; HalfOpen starts a fresh episode.
std::optional<BreakerChange> force(BreakerCell& cell, BreakerState to, uint64_t now_ms,
                                   uint64_t opened_at_ms);

struct BreakerView {
  BreakerState state;
  uint64_t opened_at_ms;  // Open: when it opened; otherwise 0
  uint64_t since_ms;      // when the current state began (0: never changed)
  uint64_t sequence;
  uint64_t window_calls, window_failures, window_slow;
  uint32_t consecutive_failures;
  uint32_t probes_taken, probes_passed;  // current half-open episode; 0 otherwise
  uint64_t transitions;
};

// For status and metrics: a snapshot, each field read atomically.
BreakerView view(const BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms);

// How long an open breaker still refuses every call (until opened_at +
// open_ms); 0 when it is not open, or is due to half-open (admit() decides
// then). One load, for the request path, where view() would sum the window.
uint64_t openRemainingMs(const BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms);

}  // namespace phalanx::shared::policy

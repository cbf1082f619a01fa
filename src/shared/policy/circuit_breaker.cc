#include "shared/policy/circuit_breaker.h"

#include <algorithm>

#include "shared/policy/time_window.h"

namespace phalanx::shared::policy {

namespace {

// status word: state | sequence | since_ms.
constexpr uint64_t kStateMask = 3;
constexpr int kSequenceShift = 2;
constexpr uint64_t kSequenceMask = (uint64_t{1} << 20) - 1;
constexpr int kSinceShift = 22;
constexpr uint64_t kTimeMask = (uint64_t{1} << 42) - 1;

struct Status {
  BreakerState state;
  uint64_t sequence;
  uint64_t since_ms;
};

Status decode(uint64_t word) {
  return {static_cast<BreakerState>(word & kStateMask), (word >> kSequenceShift) & kSequenceMask,
          word >> kSinceShift};
}

uint64_t encode(BreakerState state, uint64_t sequence, uint64_t since_ms) {
  return static_cast<uint64_t>(state) | ((sequence & kSequenceMask) << kSequenceShift) |
         ((since_ms & kTimeMask) << kSinceShift);
}

// probes word: episode sequence | taken | passed.
struct Probes {
  uint64_t sequence;
  uint64_t taken;
  uint64_t passed;
};

Probes decodeProbes(uint64_t word) {
  return {word >> 32, (word >> 16) & 0xffff, word & 0xffff};
}

uint64_t encodeProbes(const Probes& p) {
  return (p.sequence << 32) | (p.taken << 16) | p.passed;
}

// The episode's counts, or zeros when the word belongs to another episode.
Probes probesOf(uint64_t word, uint64_t sequence) {
  Probes p = decodeProbes(word);
  if (p.sequence != sequence) return {sequence, 0, 0};
  return p;
}

// Breaker bucket payload: calls (32-47) | failures (16-31) | slow (0-15).
constexpr uint64_t kCountMax = 0xffff;

struct Window {
  uint64_t calls = 0, failures = 0, slow = 0;
};

uint64_t widthOf(const BreakerOptions& options) {
  return time_window::bucketWidth(options.window_ms, kBreakerBuckets);
}

Window sumWindow(const BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms) {
  Window w;
  time_window::forEach(cell.buckets, kBreakerBuckets, widthOf(options), now_ms,
                       [&](uint64_t payload) {
                         w.calls += time_window::field(payload, 32, 16);
                         w.failures += time_window::field(payload, 16, 16);
                         w.slow += time_window::field(payload, 0, 16);
                       });
  return w;
}

void countCall(BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms, bool failed,
               bool slow) {
  time_window::add(cell.buckets, kBreakerBuckets, widthOf(options), now_ms,
                   [&](uint64_t payload) -> std::optional<uint64_t> {
                     uint64_t calls = time_window::field(payload, 32, 16);
                     uint64_t failures = time_window::field(payload, 16, 16);
                     uint64_t slows = time_window::field(payload, 0, 16);
                     if (calls >= kCountMax) return std::nullopt;  // keep the rates unbiased
                     return ((calls + 1) << 32) | ((failures + failed) << 16) | (slows + slow);
                   });
}

uint32_t halfOpenCalls(const BreakerOptions& options) {
  return std::max<uint32_t>(1, options.half_open_calls);
}

// How long a half-open episode with every permit out may last before admit()
// restarts it: a worker may have died holding a probe.
uint64_t stuckAfterMs(const BreakerOptions& options) {
  return std::max<uint64_t>(options.open_ms, kHalfOpenRetryAfterMs);
}

// Closing starts afresh: old calls say nothing about the recovered target.
void clearCounts(BreakerCell& cell) {
  cell.consecutive_failures.store(0, std::memory_order_relaxed);
  for (auto& bucket : cell.buckets) bucket.store(0, std::memory_order_relaxed);
}

// The one CAS that moves the state. `expected` is the status word the caller
// judged; if anyone moved it since, this caller loses and gets nullopt.
std::optional<BreakerChange> transition(BreakerCell& cell, uint64_t expected, BreakerState to,
                                        uint64_t since_ms, uint64_t now_ms) {
  Status from = decode(expected);
  uint64_t desired = encode(to, from.sequence + 1, since_ms);
  if (!cell.status.compare_exchange_strong(expected, desired, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
    return std::nullopt;
  }
  cell.transitions.fetch_add(1, std::memory_order_relaxed);
  if (to == BreakerState::Closed) clearCounts(cell);
  return BreakerChange{from.state, to, now_ms,
                       to == BreakerState::Open ? (since_ms & kTimeMask) : 0};
}

// Takes one half-open permit of episode `sequence`, if one is left.
bool takeProbe(BreakerCell& cell, uint64_t sequence, uint32_t limit) {
  uint64_t word = cell.probes.load(std::memory_order_relaxed);
  for (;;) {
    Probes p = probesOf(word, sequence);
    if (p.taken >= limit) return false;
    ++p.taken;
    if (cell.probes.compare_exchange_weak(word, encodeProbes(p), std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      return true;
    }
  }
}

// Counts a passed probe of episode `sequence`; returns the passes so far, or 0
// when the permits word has moved to another episode.
uint64_t passProbe(BreakerCell& cell, uint64_t sequence) {
  uint64_t word = cell.probes.load(std::memory_order_relaxed);
  for (;;) {
    Probes p = decodeProbes(word);
    if (p.sequence != sequence || p.passed >= p.taken) return 0;
    ++p.passed;
    if (cell.probes.compare_exchange_weak(word, encodeProbes(p), std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      return p.passed;
    }
  }
}

Admission refused(uint64_t retry_after_ms, uint64_t sequence,
                  std::optional<BreakerChange> change = std::nullopt) {
  return {false, false, retry_after_ms, sequence, change};
}

bool shouldTrip(BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms,
                uint32_t consecutive) {
  if (options.consecutive_failures > 0 && consecutive >= options.consecutive_failures) return true;
  bool rates = options.failure_rate > 0 || (options.slow_call_ms > 0 && options.slow_call_rate > 0);
  if (!rates) return false;
  Window w = sumWindow(cell, options, now_ms);
  if (w.calls == 0 || w.calls < options.minimum_calls) return false;
  double calls = static_cast<double>(w.calls);
  if (options.failure_rate > 0 && static_cast<double>(w.failures) >= options.failure_rate * calls)
    return true;
  return options.slow_call_ms > 0 && options.slow_call_rate > 0 &&
         static_cast<double>(w.slow) >= options.slow_call_rate * calls;
}

std::optional<BreakerChange> recordClosed(BreakerCell& cell, const BreakerOptions& options,
                                          uint64_t status_word, uint64_t now_ms, bool failed,
                                          bool slow) {
  countCall(cell, options, now_ms, failed, slow);
  uint32_t consecutive = 0;
  if (failed) {
    consecutive = cell.consecutive_failures.fetch_add(1, std::memory_order_acq_rel) + 1;
  } else if (cell.consecutive_failures.load(std::memory_order_relaxed) != 0) {
    cell.consecutive_failures.store(0, std::memory_order_relaxed);  // no write when already 0
  }
  if (!shouldTrip(cell, options, now_ms, consecutive)) return std::nullopt;
  return transition(cell, status_word, BreakerState::Open, now_ms, now_ms);
}

}  // namespace

const char* breakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::Closed: return "closed";
    case BreakerState::Open: return "open";
    case BreakerState::HalfOpen: return "half_open";
  }
  return "unknown";
}

Admission admit(BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms) {
  std::optional<BreakerChange> change;
  // Each pass either decides or follows a transition somebody made: lock-free.
  for (;;) {
    uint64_t word = cell.status.load(std::memory_order_acquire);
    Status s = decode(word);
    if (s.state == BreakerState::Closed) return {true, false, 0, s.sequence, change};
    if (s.state == BreakerState::Open) {
      uint64_t until = s.since_ms + options.open_ms;
      if (now_ms < until)
        return refused(std::min<uint64_t>(until - now_ms, options.open_ms), s.sequence, change);
      if (auto c = transition(cell, word, BreakerState::HalfOpen, now_ms, now_ms)) change = c;
      continue;
    }
    if (takeProbe(cell, s.sequence, halfOpenCalls(options))) {
      // A permit of an episode that just ended would send a probe nobody counts.
      if (decode(cell.status.load(std::memory_order_acquire)).sequence != s.sequence) continue;
      return {true, true, 0, s.sequence, change};
    }
    if (!change && now_ms >= s.since_ms + stuckAfterMs(options)) {
      if (auto c = transition(cell, word, BreakerState::HalfOpen, now_ms, now_ms)) {
        change = c;
        continue;
      }
    }
    return refused(std::min<uint64_t>(kHalfOpenRetryAfterMs, options.open_ms), s.sequence, change);
  }
}

std::optional<BreakerChange> record(BreakerCell& cell, const BreakerOptions& options,
                                    uint64_t now_ms, CallResult result, uint64_t duration_ms,
                                    bool probe, uint64_t sequence) {
  uint64_t word = cell.status.load(std::memory_order_acquire);
  Status s = decode(word);
  bool failed = result == CallResult::Failure;
  bool slow = options.slow_call_ms > 0 && duration_ms >= options.slow_call_ms;
  if (!probe) {
    if (s.state != BreakerState::Closed) return std::nullopt;
    return recordClosed(cell, options, word, now_ms, failed, slow);
  }
  if (s.state != BreakerState::HalfOpen || s.sequence != (sequence & kSequenceMask))
    return std::nullopt;  // a probe of an episode that is over
  if (failed || slow) return transition(cell, word, BreakerState::Open, now_ms, now_ms);
  if (passProbe(cell, s.sequence) < halfOpenCalls(options)) return std::nullopt;
  return transition(cell, word, BreakerState::Closed, now_ms, now_ms);
}

void releaseProbe(BreakerCell& cell, uint64_t sequence) {
  uint64_t word = cell.probes.load(std::memory_order_relaxed);
  for (;;) {
    Probes p = decodeProbes(word);
    if (p.sequence != (sequence & kSequenceMask) || p.taken <= p.passed) return;
    --p.taken;
    if (cell.probes.compare_exchange_weak(word, encodeProbes(p), std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      return;
    }
  }
}

std::optional<BreakerChange> force(BreakerCell& cell, BreakerState to, uint64_t now_ms,
                                   uint64_t opened_at_ms) {
  uint64_t opened = std::min(opened_at_ms, now_ms) & kTimeMask;
  for (;;) {
    uint64_t word = cell.status.load(std::memory_order_acquire);
    Status s = decode(word);
    if (s.state == to && (to != BreakerState::Open || s.since_ms == opened)) return std::nullopt;
    uint64_t since = to == BreakerState::Open ? opened : now_ms;
    if (auto change = transition(cell, word, to, since, now_ms)) return change;
  }
}

uint64_t openRemainingMs(const BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms) {
  Status s = decode(cell.status.load(std::memory_order_acquire));
  if (s.state != BreakerState::Open) return 0;
  uint64_t until = s.since_ms + options.open_ms;
  return until > now_ms ? until - now_ms : 0;
}

BreakerView view(const BreakerCell& cell, const BreakerOptions& options, uint64_t now_ms) {
  Status s = decode(cell.status.load(std::memory_order_acquire));
  Window w = sumWindow(cell, options, now_ms);
  BreakerView v{};
  v.state = s.state;
  v.opened_at_ms = s.state == BreakerState::Open ? s.since_ms : 0;
  v.since_ms = s.since_ms;
  v.sequence = s.sequence;
  v.window_calls = w.calls;
  v.window_failures = w.failures;
  v.window_slow = w.slow;
  v.consecutive_failures = cell.consecutive_failures.load(std::memory_order_relaxed);
  if (s.state == BreakerState::HalfOpen) {
    Probes p = probesOf(cell.probes.load(std::memory_order_relaxed), s.sequence);
    v.probes_taken = static_cast<uint32_t>(p.taken);
    v.probes_passed = static_cast<uint32_t>(p.passed);
  }
  v.transitions = cell.transitions.load(std::memory_order_relaxed);
  return v;
}

}  // namespace phalanx::shared::policy

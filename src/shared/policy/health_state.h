// Active health state of one upstream target.
//
// What: a target goes down after unhealthy_threshold consecutive failed checks
// and comes back after healthy_threshold consecutive passed checks (HAProxy's
// rise / fall, nginx's passes / fails). step() is the pure rule; HealthCell is
// where the result lives in shared memory.
//
// Why shared: the checks run once per host, in the worker holding the
// health-check lease (lease.h), and every worker routes by the result. So a
// HealthCell has a single writer (the lease holder) and many readers: plain
// relaxed stores, no read-modify-write.
//
// Zero bytes = healthy with no history: a new target gets traffic until checks
// say otherwise (hence `down`, not `healthy`).
//
// Units: monotonic milliseconds for times; detail is the caller's code for the
// last check (e.g. the HTTP status, or -errno when the check did not get one).
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace phalanx::shared::policy {

struct HealthOptions {
  uint32_t healthy_threshold = 2;    // passes in a row to come up; 0 counts as 1
  uint32_t unhealthy_threshold = 3;  // failures in a row to go down; 0 counts as 1
};

// Shared memory: one per upstream target; one writer (the lease holder).
struct HealthCell {
  std::atomic<uint32_t> down;    // 0 = healthy
  std::atomic<uint32_t> passes;  // current streak of passed checks
  std::atomic<uint32_t> fails;   // current streak of failed checks
  std::atomic<int32_t> last_detail;
  std::atomic<uint64_t> checks;    // total
  std::atomic<uint64_t> failures;  // total failed checks
  std::atomic<uint64_t> transitions;
  std::atomic<uint64_t> last_transition_ms;  // monotonic; 0 = never
  std::atomic<uint64_t> last_check_ms;       // monotonic; 0 = never
};
static_assert(sizeof(HealthCell) == 56 && alignof(HealthCell) == 8,
              "HealthCell is an shm ABI: bump kShmLayoutVersion if it changes");
static_assert(std::is_standard_layout_v<HealthCell>);
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
              std::atomic<uint32_t>::is_always_lock_free &&
              std::atomic<int32_t>::is_always_lock_free);

struct HealthStatus {
  bool healthy = true;
  uint32_t passes = 0;  // current streak
  uint32_t fails = 0;   // current streak
};

// One check's result applied to a status: the streak of the other result
// resets; the state flips when a threshold is reached. *transitioned (may be
// null) says whether it flipped. Streaks saturate at UINT32_MAX.
HealthStatus step(HealthStatus status, bool passed, const HealthOptions& options,
                  bool* transitioned);

HealthStatus load(const HealthCell& cell);

// Writes one check: the status after it, the totals, the times and the detail.
void store(HealthCell& cell, const HealthStatus& status, bool passed, bool transitioned,
           uint64_t now_ms, int32_t detail);

// load + step + store; returns whether the state flipped (to log it).
bool recordCheck(HealthCell& cell, const HealthOptions& options, bool passed, uint64_t now_ms,
                 int32_t detail);

}  // namespace phalanx::shared::policy

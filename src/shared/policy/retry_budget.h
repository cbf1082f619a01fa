// Retry budget for one upstream target, shared by every worker of a host.
//
// What: retries are allowed while the retries in the last window_ms stay below
// max(min_retries, ratio × first attempts in the same window) (Envoy's and
// Finagle's retry budget). Kept in a RetryBudgetCell in shared memory: a ring of
// kRetryBuckets time buckets, each bucket window_ms / 10 wide; the window is
// the current bucket and the 9 before it.
//
// Why: retries multiply load exactly when an upstream is struggling; a budget
// keeps them a bounded fraction of real traffic, while min_retries lets a
// quiet target still retry its rare failure.
//
// Units: monotonic milliseconds passed in as now_ms; nothing here reads a clock.
//
// Exactness: tryRetry() reads the window and then counts its retry in two
// steps, so concurrent callers may overshoot the budget by at most one retry
// each (the number of concurrent callers); it never drifts further, because
// every granted retry is counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace phalanx::shared::policy {

struct RetryBudgetOptions {
  double ratio = 0.2;  // retries per first attempt
  uint32_t window_ms = 10000;
  uint32_t min_retries = 10;  // allowed in any window, whatever the traffic
};

inline constexpr size_t kRetryBuckets = 10;

// Shared memory: one per upstream target. Zero bytes = empty window.
struct RetryBudgetCell {
  // epoch low 16 bits (48-63) | requests (24-47) | retries (0-23); counts saturate.
  std::atomic<uint64_t> buckets[kRetryBuckets];
};
static_assert(sizeof(RetryBudgetCell) == 80 && alignof(RetryBudgetCell) == 8,
              "RetryBudgetCell is an shm ABI: bump kShmLayoutVersion if it changes");
static_assert(std::is_standard_layout_v<RetryBudgetCell>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// Every first attempt of a request to the target.
void countRequest(RetryBudgetCell& cell, const RetryBudgetOptions& options, uint64_t now_ms);

// True, and the retry counted, iff the window's retries are below
// max(min_retries, ratio × requests). False: do not retry.
bool tryRetry(RetryBudgetCell& cell, const RetryBudgetOptions& options, uint64_t now_ms);

struct RetryBudgetView {
  uint64_t requests, retries;
};
RetryBudgetView view(const RetryBudgetCell& cell, const RetryBudgetOptions& options,
                     uint64_t now_ms);

}  // namespace phalanx::shared::policy

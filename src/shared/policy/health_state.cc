#include "shared/policy/health_state.h"

#include <algorithm>
#include <limits>

namespace phalanx::shared::policy {

namespace {

uint32_t bumped(uint32_t streak) {
  return streak == std::numeric_limits<uint32_t>::max() ? streak : streak + 1;
}

// The cell has one writer: a relaxed load and store, no read-modify-write.
void add(std::atomic<uint64_t>& counter, uint64_t by) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace

HealthStatus step(HealthStatus status, bool passed, const HealthOptions& options,
                  bool* transitioned) {
  bool flipped = false;
  if (passed) {
    status.fails = 0;
    status.passes = bumped(status.passes);
    if (!status.healthy && status.passes >= std::max<uint32_t>(1, options.healthy_threshold)) {
      status.healthy = true;
      flipped = true;
    }
  } else {
    status.passes = 0;
    status.fails = bumped(status.fails);
    if (status.healthy && status.fails >= std::max<uint32_t>(1, options.unhealthy_threshold)) {
      status.healthy = false;
      flipped = true;
    }
  }
  if (transitioned) *transitioned = flipped;
  return status;
}

HealthStatus load(const HealthCell& cell) {
  return {cell.down.load(std::memory_order_acquire) == 0,
          cell.passes.load(std::memory_order_relaxed), cell.fails.load(std::memory_order_relaxed)};
}

void store(HealthCell& cell, const HealthStatus& status, bool passed, bool transitioned,
           uint64_t now_ms, int32_t detail) {
  cell.passes.store(status.passes, std::memory_order_relaxed);
  cell.fails.store(status.fails, std::memory_order_relaxed);
  cell.last_detail.store(detail, std::memory_order_relaxed);
  add(cell.checks, 1);
  if (!passed) add(cell.failures, 1);
  cell.last_check_ms.store(now_ms, std::memory_order_relaxed);
  if (transitioned) {
    add(cell.transitions, 1);
    cell.last_transition_ms.store(now_ms, std::memory_order_relaxed);
  }
  // Last, with release: a reader that sees the new state sees the rest too.
  cell.down.store(status.healthy ? 0 : 1, std::memory_order_release);
}

bool recordCheck(HealthCell& cell, const HealthOptions& options, bool passed, uint64_t now_ms,
                 int32_t detail) {
  bool transitioned = false;
  HealthStatus next = step(load(cell), passed, options, &transitioned);
  store(cell, next, passed, transitioned, now_ms, detail);
  return transitioned;
}

}  // namespace phalanx::shared::policy

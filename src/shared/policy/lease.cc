#include "shared/policy/lease.h"

namespace phalanx::shared::policy {

namespace {

constexpr int kPidShift = 42;
constexpr uint64_t kExpiryMask = (uint64_t{1} << kPidShift) - 1;

int32_t pidOf(uint64_t word) {
  return static_cast<int32_t>(word >> kPidShift);
}
uint64_t expiryOf(uint64_t word) {
  return word & kExpiryMask;
}

}  // namespace

bool tryAcquire(LeaseCell& cell, int32_t pid, uint64_t now_ms, uint64_t ttl_ms) {
  if (pid <= 0 || pid > kLeaseMaxPid) return false;
  uint64_t expiry = (now_ms + ttl_ms) & kExpiryMask;
  uint64_t desired = (static_cast<uint64_t>(pid) << kPidShift) | expiry;
  uint64_t word = cell.word.load(std::memory_order_acquire);
  for (;;) {
    int32_t owner = pidOf(word);
    if (owner != 0 && owner != pid && expiryOf(word) > now_ms) return false;
    if (cell.word.compare_exchange_weak(word, desired, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
      return true;
    }
  }
}

void release(LeaseCell& cell, int32_t pid) {
  uint64_t word = cell.word.load(std::memory_order_acquire);
  while (pid > 0 && pidOf(word) == pid) {
    if (cell.word.compare_exchange_weak(word, 0, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
      return;
    }
  }
}

int32_t holder(const LeaseCell& cell, uint64_t now_ms) {
  uint64_t word = cell.word.load(std::memory_order_acquire);
  return expiryOf(word) > now_ms ? pidOf(word) : 0;
}

}  // namespace phalanx::shared::policy

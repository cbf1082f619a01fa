// Internal to src/shared/policy: a ring of time buckets in shared memory, each
// one packed 64-bit word, epoch (low 16 bits, bits 48-63) | payload (48 bits).
// The circuit breaker and the retry budget pack their counts into the payload.
//
// A bucket is `width` ms wide and belongs to ring slot epoch % size. Adding to
// it is one CAS loop: a bucket still holding an older period is started over
// in the same CAS that counts the new call, so a roll-over never mixes two
// periods. A bucket a little *ahead* of the caller's epoch (another process
// read its clock a moment later) is added to as it is, never rolled back.
//
// Epochs are compared modulo 2^16: a slot left untouched for exactly a
// multiple of lcm(size, 65536) epochs would be taken for current, and one
// untouched for 64513-65535 epochs for a bucket ahead. With 1 s buckets that
// is 18 hours of silence landing on a 17-minute stretch; accepted. A slot
// never written (the word 0) is neither: it would otherwise read as "ahead"
// for those 17 minutes of every 18 hours of the clock, and nothing added to it
// would be seen.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace phalanx::shared::policy::time_window {

inline constexpr int kEpochShift = 48;
inline constexpr uint64_t kPayloadMask = (uint64_t{1} << kEpochShift) - 1;
// How far ahead (in epochs) a bucket may be and still be "a moment later".
inline constexpr uint16_t kAheadTolerance = 1024;

inline uint64_t bucketWidth(uint32_t window_ms, size_t size) {
  return std::max<uint64_t>(1, window_ms / size);
}

// (current - bucket epoch) mod 2^16.
inline uint16_t age(uint64_t word, uint64_t epoch) {
  return static_cast<uint16_t>(static_cast<uint16_t>(epoch) -
                               static_cast<uint16_t>(word >> kEpochShift));
}

// Adds to the bucket of now_ms: `add(payload)` returns the new payload, or
// nullopt to count nothing (a saturated bucket). Returns whether it counted.
template <class Add>
bool add(std::atomic<uint64_t>* ring, size_t size, uint64_t width, uint64_t now_ms, Add add) {
  uint64_t epoch = now_ms / width;
  std::atomic<uint64_t>& bucket = ring[epoch % size];
  uint64_t word = bucket.load(std::memory_order_relaxed);
  for (;;) {
    uint16_t behind = age(word, epoch);
    uint16_t ahead = static_cast<uint16_t>(-behind);
    bool keep = behind == 0 || (word != 0 && ahead < kAheadTolerance);
    uint64_t epoch_bits = keep ? (word >> kEpochShift) : (epoch & 0xffff);
    std::optional<uint64_t> payload = add(keep ? (word & kPayloadMask) : 0);
    if (!payload) return false;
    uint64_t desired = (epoch_bits << kEpochShift) | (*payload & kPayloadMask);
    if (bucket.compare_exchange_weak(word, desired, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
}

// Calls `visit(payload)` for each bucket in the window that ends at now_ms:
// the current bucket and the size - 1 before it.
template <class Visit>
void forEach(const std::atomic<uint64_t>* ring, size_t size, uint64_t width, uint64_t now_ms,
             Visit visit) {
  uint64_t epoch = now_ms / width;
  for (size_t i = 0; i < size; ++i) {
    uint64_t word = ring[i].load(std::memory_order_acquire);
    if (age(word, epoch) < size) visit(word & kPayloadMask);
  }
}

// A saturating field of `bits` bits at `shift` in a payload.
inline uint64_t field(uint64_t payload, int shift, int bits) {
  return (payload >> shift) & ((uint64_t{1} << bits) - 1);
}

}  // namespace phalanx::shared::policy::time_window

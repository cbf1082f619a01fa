// The one 64-bit hash behind every key that processes or hosts must agree
// on: shared-memory record keys (upstreams, targets, limits, key usage,
// rate-limit buckets) and hashed Redis key names. FNV-1a over the bytes, then
// splitmix64's finalizer, because FNV's low bits (the ones that pick a slot)
// mix poorly. Defined here, in full, so every build computes the same value:
// changing it changes the shared-memory ABI (bump kShmLayoutVersion).
#pragma once

#include <cstdint>
#include <string_view>

namespace phalanx::shared {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;

// Continues an FNV-1a hash `h` over `bytes` (start from kFnvOffset).
inline uint64_t fnv1a(uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// splitmix64's finalizer.
inline uint64_t mix64(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

// fnv1a then mix64: the whole hash of one byte string.
inline uint64_t stableHash(std::string_view bytes) {
  return mix64(fnv1a(kFnvOffset, bytes));
}

}  // namespace phalanx::shared

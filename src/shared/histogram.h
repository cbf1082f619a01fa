// The request-latency histogram: fixed log-scale buckets, shared by the
// workers (which count), shared memory (which stores) and /metrics (which
// prints Prometheus `le` bounds). Changing the buckets changes the shm layout.
#pragma once

#include <cstddef>
#include <cstdint>

namespace phalanx::shared {

// Upper bounds in microseconds, inclusive; a last bucket above them is +Inf.
inline constexpr uint64_t kLatencyBoundsUs[] = {100,    250,    500,     1000,    2500,   5000,
                                                10000,  25000,  50000,   100000,  250000, 500000,
                                                1000000, 2500000, 5000000, 10000000};
inline constexpr size_t kLatencyBuckets = sizeof(kLatencyBoundsUs) / sizeof(kLatencyBoundsUs[0]) + 1;

// The bucket a latency of `us` microseconds falls in: the first bound ≥ us.
constexpr size_t latencyBucket(uint64_t us) {
  size_t i = 0;
  while (i < kLatencyBuckets - 1 && us > kLatencyBoundsUs[i]) ++i;
  return i;
}

}  // namespace phalanx::shared

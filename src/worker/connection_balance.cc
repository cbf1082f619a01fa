#include "worker/connection_balance.h"

#include <algorithm>

namespace phalanx::worker {

uint64_t connectionsToShed(uint64_t mine, std::span<const uint64_t> ready_workers) {
  if (ready_workers.size() < 2) return 0;
  uint64_t total = 0;
  for (uint64_t n : ready_workers) total += n;
  // Rounded up: never shed below the mean, so two workers cannot both shed
  // toward each other.
  uint64_t mean = (total + ready_workers.size() - 1) / ready_workers.size();
  uint64_t slack = std::max<uint64_t>(2, mean / 20);
  if (mine <= mean + slack) return 0;
  return mine - mean;
}

}  // namespace phalanx::worker

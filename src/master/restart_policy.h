// When to respawn a slot's worker: exponential backoff with a cap, a crash-loop
// count, and its reset. Plain arithmetic over the times the caller passes in:
// no clock, no syscalls, so unit tests drive it directly.
//
//   delay(n) = min(restart_base_ms · restart_factor^n, restart_max_ms)
//
// where n counts the fast exits before this one in the current streak. An exit
// after at least min_uptime_ms of uptime (or a call to stable()) ends the
// streak. More than max_unstable_restarts fast exits in a row make the slot
// errored: it is still retried, at the cap, until a worker stays up.
#pragma once

#include <cstdint>

#include "shared/config.h"

namespace phalanx::master {

struct RestartDecision {
  uint64_t delay_ms = 0;
  uint32_t unstable = 0;  // fast exits in a row, this one included
  bool errored = false;
};

class RestartPolicy {
 public:
  explicit RestartPolicy(const shared::SupervisorConfig& config) : config_(config) {}

  // Settings change on reload; the streak is kept.
  void configure(const shared::SupervisorConfig& config) { config_ = config; }

  // A worker ended after `uptime_ms`: how long to wait before the next one.
  RestartDecision onExit(uint64_t uptime_ms);

  // A worker has now been up min_uptime_ms: the streak is over.
  void stable() { unstable_ = 0; }
  bool isStable(uint64_t uptime_ms) const { return uptime_ms >= config_.min_uptime_ms; }

  uint32_t unstable() const { return unstable_; }
  bool errored() const { return unstable_ > config_.max_unstable_restarts; }

  // min(base · factor^n, cap), computed without overflow for any n.
  static uint64_t delayMs(const shared::SupervisorConfig& config, uint32_t n);

 private:
  shared::SupervisorConfig config_;
  uint32_t unstable_ = 0;
};

}  // namespace phalanx::master

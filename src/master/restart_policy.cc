#include "master/restart_policy.h"

#include <algorithm>

namespace phalanx::master {

uint64_t RestartPolicy::delayMs(const shared::SupervisorConfig& config, uint32_t n) {
  double cap = config.restart_max_ms;
  double delay = config.restart_base_ms;
  if (config.restart_factor <= 1.0) return static_cast<uint64_t>(std::min(delay, cap));
  for (uint32_t i = 0; i < n && delay < cap; ++i) delay *= config.restart_factor;
  return static_cast<uint64_t>(std::min(delay, cap));
}

RestartDecision RestartPolicy::onExit(uint64_t uptime_ms) {
  if (isStable(uptime_ms)) unstable_ = 0;
  uint32_t n = unstable_;  // fast exits before this one
  if (!isStable(uptime_ms)) ++unstable_;
  RestartDecision d;
  d.unstable = unstable_;
  d.errored = errored();
  d.delay_ms = d.errored ? config_.restart_max_ms : delayMs(config_, n);
  return d;
}

}  // namespace phalanx::master

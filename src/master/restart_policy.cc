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

RestartDecision RestartPolicy::onExit(uint64_t uptime_ms, bool was_ready) {
  if (isStable(uptime_ms)) unstable_ = 0;
  uint32_t n = unstable_;  // fast exits before this one
  if (!isStable(uptime_ms)) ++unstable_;
  not_ready_exits_ = was_ready ? 0 : not_ready_exits_ + 1;
  RestartDecision d;
  d.unstable = unstable_;
  d.errored = errored();
  d.delay_ms = d.errored ? config_.restart_max_ms : delayMs(config_, n);
  return d;
}

std::optional<uint32_t> slotToRescue(const std::vector<WaitingSlot>& waiting, uint64_t now_ms,
                                     uint64_t base_ms) {
  const WaitingSlot* soonest = nullptr;
  for (const WaitingSlot& w : waiting) {
    if (w.crash_looping) continue;
    if (!soonest || w.restart_at_ms < soonest->restart_at_ms) soonest = &w;
  }
  if (!soonest || soonest->restart_at_ms <= now_ms + base_ms) return std::nullopt;
  return soonest->slot;
}

}  // namespace phalanx::master

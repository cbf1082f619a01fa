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
//
// Backoff protects the host from a broken binary or config, whose workers die
// before they ever get ready. It must not keep a host without any worker when
// healthy workers are being killed (kill -9, the OOM killer): then the slot due
// soonest is restarted at the base delay (slotToRescue), unless its own recent
// workers died before getting ready.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "shared/config.h"

namespace phalanx::master {

struct RestartDecision {
  uint64_t delay_ms = 0;
  uint32_t unstable = 0;  // fast exits in a row, this one included
  bool errored = false;
};

class RestartPolicy {
 public:
  // Exits before ready in a row that make a slot a crash loop, never rescued.
  static constexpr uint32_t kCrashLoopNotReady = 2;

  explicit RestartPolicy(const shared::SupervisorConfig& config) : config_(config) {}

  // Settings change on reload; the streak is kept.
  void configure(const shared::SupervisorConfig& config) { config_ = config; }

  // A worker ended after `uptime_ms`; `was_ready` says whether it ever reported
  // ready. Returns how long to wait before the next one.
  RestartDecision onExit(uint64_t uptime_ms, bool was_ready);

  // A worker has now been up min_uptime_ms: the streak is over.
  void stable() { unstable_ = 0; }

  bool isStable(uint64_t uptime_ms) const { return uptime_ms >= config_.min_uptime_ms; }
  uint32_t unstable() const { return unstable_; }
  bool errored() const { return unstable_ > config_.max_unstable_restarts; }
  // Its last kCrashLoopNotReady workers died before getting ready.
  bool crashLooping() const { return not_ready_exits_ >= kCrashLoopNotReady; }
  uint64_t baseDelayMs() const { return config_.restart_base_ms; }

  // min(base · factor^n, cap), computed without overflow for any n.
  static uint64_t delayMs(const shared::SupervisorConfig& config, uint32_t n);

 private:
  shared::SupervisorConfig config_;
  uint32_t unstable_ = 0;
  uint32_t not_ready_exits_ = 0;  // in a row
};

// A slot waiting out its backoff, as slotToRescue sees it.
struct WaitingSlot {
  uint32_t slot = 0;
  uint64_t restart_at_ms = 0;
  bool crash_looping = false;
};

// Called when no worker of the host is ready: the slot to restart at `base_ms`
// from `now_ms` instead of its own time. That is the one due soonest among
// those not crash-looping, and only when it is due later than that; nullopt
// otherwise (nothing waits, every waiting slot crash-loops, or one is due
// within the base delay anyway).
std::optional<uint32_t> slotToRescue(const std::vector<WaitingSlot>& waiting, uint64_t now_ms,
                                     uint64_t base_ms);

}  // namespace phalanx::master

// A lease for work done once per host (active health checks, a shared Redis
// subscriber): at most one live process holds it at a time.
//
// What: one 64-bit word, pid (bits 42-63, 22 bits) | expiry_ms (bits 0-41),
// taken, renewed and released with a compare-and-swap. The holder renews it
// from its loop (say every ttl / 3); a holder that dies or hangs stops
// renewing and loses it at expiry, and the next tryAcquire by another process
// takes it over.
//
// Why 22 bits: Linux pids are below pid_max, whose ceiling is 2^22
// (PID_MAX_LIMIT), so a pid and a 42-bit monotonic millisecond expiry (139
// years of uptime) fit one word and one CAS moves both. tryAcquire refuses a
// pid outside 1 .. 2^22-1.
//
// A holder must check tryAcquire's answer on every renewal: false means it
// was too late (it hung past the expiry and someone else took over) and must
// stop the work.
//
// Units: monotonic milliseconds of this host, passed in; nothing here reads a clock.
// Zero bytes = free.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace phalanx::shared::policy {

struct LeaseCell {
  std::atomic<uint64_t> word;  // pid << 42 | expiry_ms; 0 = free
};
static_assert(sizeof(LeaseCell) == 8 && alignof(LeaseCell) == 8,
              "LeaseCell is an shm ABI: bump kShmLayoutVersion if it changes");
static_assert(std::is_standard_layout_v<LeaseCell>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

inline constexpr int32_t kLeaseMaxPid = (1 << 22) - 1;

// Takes a free or expired lease, or renews `pid`'s own, until now_ms + ttl_ms.
// True iff `pid` holds it afterwards.
bool tryAcquire(LeaseCell& cell, int32_t pid, uint64_t now_ms, uint64_t ttl_ms);

// Gives it up if `pid` holds it (expired or not); otherwise changes nothing.
void release(LeaseCell& cell, int32_t pid);

// The holder, or 0 when free or expired.
int32_t holder(const LeaseCell& cell, uint64_t now_ms);

}  // namespace phalanx::shared::policy

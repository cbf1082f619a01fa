// The host-wide rate-limit table: one GCRA state (policy/gcra.h) per key,
// shared by every worker of a host, so a limit is exact for the host.
//
// What: open addressing over 64-bit key hashes in memory the caller hands in
// (the shm region embeds it; zero bytes are an empty table). Each entry is a
// key and its theoretical arrival time (tat); a decision is one CAS loop on
// the tat, with no lock, so N workers deciding for one key at one instant
// admit exactly `limit` between them.
//
// Finding a key: a key lives within kRateLimitProbe slots of its home slot
// (key_hash & (capacity − 1); hashes must be well mixed: rateLimitKeyHash).
// Slots are never emptied once used, so a lookup stops at the first empty one.
// A new key takes the first slot of its window that is empty or expired.
//
// Expiry: an entry whose tat is at or before now has a full bucket, which is
// what an absent entry means too, so it may be taken for another key at any
// time (counted in `evictions`): keys are never deleted, they expire. Except
// tat 0: a key gets its entry with tat 0 (a full bucket) and its first CAS
// follows, so tat 0 means "first decision in flight", not "expired"; else a
// neighbour inserting at the same moment would take the entry before it is
// used.
//
// A full window: when every slot of the window is live, the table neither
// stops enforcing nor refuses for want of room: it evicts the live entry with
// the smallest tat, the one closest to full, whose owner regains (tat − now) /
// T requests, the fewest any eviction could give back (also in `evictions`).
// Fresh entries (tat 0) are the last choice, which also recycles one left by
// a process that died before its first CAS. A table too small for its live
// keys thus shows as evictions and costs the evicted keys some leniency; size
// it for the keys live at once (a key is live until its tolerance after its
// last request).
//
// Taking a slot from another key (key X → key K) is three steps:
//   1. CAS key X → kRateLimitClaimingKey: from here no lookup finds X there,
//      and no decider for X starts a CAS on it (a decider checks the key
//      before each CAS);
//   2. store tat 0: K starts with a full bucket, X's history is erased;
//   3. store key K (release): K's deciders see the reset tat.
// Races, and what they can cost (never a corrupt entry: a tat is always some
// key's plausible state):
// - A decider for X that checked the key before step 1 may still land one
//   CAS (one per such decider, in the nanoseconds of a takeover). It re-reads
//   the key after its CAS. If that still says X, step 2 erases the request
//   with X's entry (X gains one). If the key changed, it takes its increment
//   back (a CAS from the value it wrote) and decides again elsewhere; if its
//   CAS landed after step 2 (only possible when X's tat was 0) and K already
//   built on it, the undo fails and K carries one phantom request. At worst
//   one request's accounting per racing decider, for X or for K.
// - A slot seen expired may have become live just before step 1; its owner
//   loses the requests of that moment, as an evicted key does.
// - Two processes inserting one new key at once normally meet on one slot
//   (the first CAS wins, the other finds the key and shares it). If they pick
//   different slots (they judged an expiry differently, their clocks read a
//   moment apart, or one skipped a slot mid-takeover) the key has two
//   entries: lookups find the first in probe order, the other expires, and
//   the requests decided on it (one per racer) go uncounted.
// - A process killed between steps 1 and 3 leaves its slot claiming for good:
//   its window has one slot fewer until the region is made anew.
// A decision that finds no slot at all (every slot of its window claiming) or
// loses kRateLimitAttempts races in a row is made as for a full bucket with no
// entry (allowed, not remembered) and counted in `full`.
//
// The hash and the layout are an ABI: across a reload old and new workers
// share the table, so rateLimitKeyHash must not change without a new
// kShmLayoutVersion.
//
// Units: microseconds, monotonic, passed in; nothing here reads a clock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "shared/policy/gcra.h"

namespace phalanx::shared {

// Shared memory: an array of them. Zero bytes = empty.
struct RateLimitEntry {
  std::atomic<uint64_t> key;     // 0 = empty; kRateLimitClaimingKey: being taken over
  std::atomic<uint64_t> tat_us;  // the key's theoretical arrival time
};
static_assert(sizeof(RateLimitEntry) == 16 && alignof(RateLimitEntry) == 8,
              "RateLimitEntry is an shm ABI: bump kShmLayoutVersion if it changes");
static_assert(std::is_standard_layout_v<RateLimitEntry>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// Shared memory, one per table; fetch_add by every process (only on inserts
// and evictions, not on every decision, so the shared line is not hot).
struct RateLimitTableCounters {
  std::atomic<uint64_t> inserts;    // entries made for a key: in an empty slot or a taken one
  std::atomic<uint64_t> evictions;  // slots taken from another key, expired or live
  std::atomic<uint64_t> full;       // decisions made with no entry: no slot could be had
};
static_assert(sizeof(RateLimitTableCounters) == 24 &&
                  std::is_standard_layout_v<RateLimitTableCounters>,
              "RateLimitTableCounters is an shm ABI: bump kShmLayoutVersion if it changes");

// How many slots from its home a key may live.
inline constexpr uint32_t kRateLimitProbe = 16;
inline constexpr uint32_t kRateLimitMinCapacity = kRateLimitProbe;
// Lookups that lose a race to a takeover look again, this many times.
inline constexpr int kRateLimitAttempts = 8;
// A slot's key while it is being taken over; never a key.
inline constexpr uint64_t kRateLimitClaimingKey = UINT64_MAX;

// A view over memory it does not own; cheap to copy, one per process.
class RateLimitTable {
 public:
  // capacity: a power of two >= kRateLimitMinCapacity (anything else aborts).
  // Memory zeroed = empty table.
  RateLimitTable(RateLimitEntry* entries, uint32_t capacity, RateLimitTableCounters* counters);

  // One decision for key_hash, counted when allowed. 0 and
  // kRateLimitClaimingKey are not keys: both are taken as 1.
  policy::GcraDecision decide(uint64_t key_hash, const policy::GcraParams& params, uint64_t now_us);

  // Entries whose tat is still after now_us (live), by a scan: for /metrics.
  // Fresh entries (tat 0) count as live.
  uint32_t occupancy(uint64_t now_us) const;
  uint32_t capacity() const { return mask_ + 1; }
  static size_t bytesFor(uint32_t capacity);

 private:
  struct Probe;
  Probe find(uint64_t key, uint64_t now_us) const;
  RateLimitEntry* claim(const Probe& probe, uint64_t key);

  RateLimitEntry* entries_;
  uint32_t mask_;
  RateLimitTableCounters* counters_;
};

// The key hash of one client (`key`: an address, an API key) under one limit
// (its config name): FNV-1a over both, the name's length first so "ab"+"c"
// and "a"+"bc" differ, then splitmix64's finalizer. Never 0 nor
// kRateLimitClaimingKey.
uint64_t rateLimitKeyHash(std::string_view limit_name, std::string_view key);

}  // namespace phalanx::shared

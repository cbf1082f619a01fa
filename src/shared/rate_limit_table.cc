#include "shared/rate_limit_table.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>

#include "shared/stable_hash.h"

namespace phalanx::shared {

namespace {

uint64_t normalized(uint64_t key_hash) {
  return key_hash == 0 || key_hash == kRateLimitClaimingKey ? 1 : key_hash;
}

// One decision on an entry that held `key` when it was found: the CAS loop.
// nullopt: the entry was taken for another key meanwhile (nothing of this
// request is left in it, unless someone built on it already: see the header).
std::optional<policy::GcraDecision> decideIn(RateLimitEntry& entry, uint64_t key,
                                             const policy::GcraParams& params, uint64_t now_us) {
  uint64_t tat = entry.tat_us.load(std::memory_order_acquire);
  for (;;) {
    // The tat just read is key's only if the key still says so after it.
    if (entry.key.load(std::memory_order_acquire) != key) return std::nullopt;
    policy::GcraDecision d = policy::gcraDecide(params, tat, now_us);
    if (!d.allowed) return d;
    uint64_t before = tat;
    if (entry.tat_us.compare_exchange_weak(tat, d.new_tat_us, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
      if (entry.key.load(std::memory_order_acquire) == key) return d;
      // Taken over between the check and the CAS: take the increment back
      // unless the new owner already built on it.
      uint64_t mine = d.new_tat_us;
      entry.tat_us.compare_exchange_strong(mine, before, std::memory_order_acq_rel,
                                           std::memory_order_relaxed);
      return std::nullopt;
    }
  }
}

}  // namespace

// What a scan of a key's window found.
struct RateLimitTable::Probe {
  RateLimitEntry* found = nullptr;  // the key's entry
  // Where the key would go: the first empty or expired slot, else the live
  // entry with the smallest tat; null when every slot is being claimed.
  RateLimitEntry* target = nullptr;
  uint64_t target_key = 0;  // the key seen in `target` (0: empty)
};

RateLimitTable::RateLimitTable(RateLimitEntry* entries, uint32_t capacity,
                               RateLimitTableCounters* counters)
    : entries_(entries), mask_(capacity - 1), counters_(counters) {
  if (capacity < kRateLimitMinCapacity || (capacity & (capacity - 1)) != 0) {
    spdlog::critical("rate limit table: capacity {} is not a power of two >= {}", capacity,
                     kRateLimitMinCapacity);
    std::abort();
  }
}

size_t RateLimitTable::bytesFor(uint32_t capacity) {
  return sizeof(RateLimitEntry) * capacity;
}

RateLimitTable::Probe RateLimitTable::find(uint64_t key, uint64_t now_us) const {
  Probe probe;
  bool reusable = false;  // target is empty or expired, not a live victim
  uint64_t victim_rank = 0;
  for (uint32_t i = 0; i < kRateLimitProbe; ++i) {
    RateLimitEntry& entry = entries_[(key + i) & mask_];
    uint64_t seen = entry.key.load(std::memory_order_acquire);
    if (seen == key) {
      probe.found = &entry;
      return probe;
    }
    if (seen == 0) {  // slots are never emptied: the key is not further on
      if (!reusable) probe = Probe{.found = nullptr, .target = &entry, .target_key = 0};
      return probe;
    }
    if (seen == kRateLimitClaimingKey || reusable) continue;
    uint64_t tat = entry.tat_us.load(std::memory_order_acquire);
    if (tat != 0 && tat <= now_us) {
      probe = Probe{.found = nullptr, .target = &entry, .target_key = seen};
      reusable = true;
      continue;
    }
    // A fresh entry (tat 0: its first decision is in flight) is the last choice.
    uint64_t rank = tat == 0 ? UINT64_MAX : tat;
    if (probe.target == nullptr || rank < victim_rank) {
      probe = Probe{.found = nullptr, .target = &entry, .target_key = seen};
      victim_rank = rank;
    }
  }
  return probe;
}

// Makes probe.target key's entry; null when a race was lost (look again).
RateLimitEntry* RateLimitTable::claim(const Probe& probe, uint64_t key) {
  RateLimitEntry& entry = *probe.target;
  uint64_t seen = probe.target_key;
  if (seen == 0) {
    // An empty slot's tat is 0 (never written): publishing the key is enough.
    if (entry.key.compare_exchange_strong(seen, key, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      counters_->inserts.fetch_add(1, std::memory_order_relaxed);
      return &entry;
    }
    return seen == key ? &entry : nullptr;  // another process inserted it first: share it
  }
  if (!entry.key.compare_exchange_strong(seen, kRateLimitClaimingKey, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
    return seen == key ? &entry : nullptr;
  }
  // Release: a decider whose CAS lands on this 0 then sees the claiming key.
  entry.tat_us.store(0, std::memory_order_release);
  entry.key.store(key, std::memory_order_release);
  counters_->inserts.fetch_add(1, std::memory_order_relaxed);
  counters_->evictions.fetch_add(1, std::memory_order_relaxed);
  return &entry;
}

policy::GcraDecision RateLimitTable::decide(uint64_t key_hash, const policy::GcraParams& params,
                                            uint64_t now_us) {
  uint64_t key = normalized(key_hash);
  for (int attempt = 0; attempt < kRateLimitAttempts; ++attempt) {
    Probe probe = find(key, now_us);
    RateLimitEntry* entry = probe.found;
    if (entry == nullptr) {
      if (probe.target == nullptr) break;  // every slot of the window is being claimed
      entry = claim(probe, key);
      if (entry == nullptr) continue;
    }
    if (std::optional<policy::GcraDecision> d = decideIn(*entry, key, params, now_us)) return *d;
  }
  counters_->full.fetch_add(1, std::memory_order_relaxed);
  return policy::gcraDecide(params, 0, now_us);
}

uint32_t RateLimitTable::occupancy(uint64_t now_us) const {
  uint32_t live = 0;
  for (uint32_t i = 0; i <= mask_; ++i) {
    uint64_t key = entries_[i].key.load(std::memory_order_relaxed);
    if (key == 0 || key == kRateLimitClaimingKey) continue;
    uint64_t tat = entries_[i].tat_us.load(std::memory_order_relaxed);
    live += tat == 0 || tat > now_us;
  }
  return live;
}

uint64_t rateLimitKeyHash(std::string_view limit_name, std::string_view key) {
  // The name's length first, so ("ab", "c") and ("a", "bc") differ.
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>(limit_name.size() >> (8 * i));
  uint64_t h = fnv1a(kFnvOffset, std::string_view(length, sizeof length));
  return normalized(mix64(fnv1a(fnv1a(h, limit_name), key)));
}

}  // namespace phalanx::shared

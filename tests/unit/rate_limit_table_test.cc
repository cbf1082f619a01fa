#include "shared/rate_limit_table.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "shared/policy/gcra.h"

using namespace phalanx::shared;
using phalanx::shared::policy::GcraDecision;
using phalanx::shared::policy::GcraParams;
using phalanx::shared::policy::gcraParams;

namespace {

constexpr uint64_t kT0 = 1'000'000'000;  // 1000 s of uptime, in µs

// Zeroed memory for a table, as the shm region gives it.
struct Memory {
  explicit Memory(uint32_t capacity) : entries(capacity) {}
  RateLimitTable table() { return RateLimitTable(entries.data(), entries.size(), &counters); }
  std::vector<RateLimitEntry> entries;
  RateLimitTableCounters counters{};
};

int allowedOf(RateLimitTable& table, uint64_t key, const GcraParams& p, uint64_t now, int n) {
  int allowed = 0;
  for (int i = 0; i < n; ++i) allowed += table.decide(key, p, now).allowed;
  return allowed;
}

uint64_t keyAt(const Memory& m, uint32_t slot) {
  return m.entries[slot].key.load();
}

// Runs body(thread index, its own table view) on 4 threads released at once.
template <class Body>
void onFourThreads(Memory& m, Body body) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      RateLimitTable mine = m.table();  // as each process builds its own view
      ready.fetch_add(1);
      while (ready.load() < 4) std::this_thread::yield();
      body(t, mine);
    });
  }
  for (auto& thread : threads) thread.join();
}

}  // namespace

TEST_CASE("rate limit table: one key, \"100/m\": exactly 100 at one instant") {
  Memory m(64);
  RateLimitTable table = m.table();
  GcraParams p = gcraParams(100, 60'000, 0);
  GcraDecision first = table.decide(7, p, kT0);
  CHECK(first.allowed);
  CHECK(first.remaining == 99);
  CHECK(allowedOf(table, 7, p, kT0, 200) == 99);
  GcraDecision refused = table.decide(7, p, kT0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after_ms == 600);
  CHECK(refused.reset_ms == 60'000);
  CHECK(m.entries[7].tat_us.load() == kT0 + 60'000'000);  // refusals wrote nothing
  CHECK(allowedOf(table, 7, p, kT0 + 600'000, 5) == 1);
  CHECK(m.counters.inserts.load() == 1);
  CHECK(m.counters.evictions.load() == 0);
  CHECK(m.counters.full.load() == 0);
}

TEST_CASE("rate limit table: keys are independent; 0 is taken as 1") {
  Memory m(64);
  RateLimitTable table = m.table();
  GcraParams p = gcraParams(3, 1000, 0);
  CHECK(allowedOf(table, 1, p, kT0, 5) == 3);
  CHECK(allowedOf(table, 2, p, kT0, 5) == 3);
  CHECK(allowedOf(table, 0, p, kT0, 5) == 0);  // key 1's bucket
  CHECK(allowedOf(table, kRateLimitClaimingKey, p, kT0, 5) == 0);
  // 65 has home slot 1 too (capacity 64): it goes to the next free slot.
  CHECK(allowedOf(table, 65, p, kT0, 5) == 3);
  CHECK(keyAt(m, 1) == 1);
  CHECK(keyAt(m, 2) == 2);
  CHECK(keyAt(m, 3) == 65);
  CHECK(m.counters.inserts.load() == 3);
}

TEST_CASE("rate limit table: occupancy counts live entries only") {
  Memory m(32);
  RateLimitTable table = m.table();
  CHECK(table.capacity() == 32);
  CHECK(RateLimitTable::bytesFor(32) == 512);
  CHECK(table.occupancy(kT0) == 0);
  GcraParams p = gcraParams(1, 1000, 0);  // tolerance 1 s
  table.decide(1, p, kT0);
  table.decide(2, p, kT0 + 500'000);
  CHECK(table.occupancy(kT0 + 500'000) == 2);
  CHECK(table.occupancy(kT0 + 999'999) == 2);
  CHECK(table.occupancy(kT0 + 1'000'000) == 1);  // key 1's tat is now: full again
  CHECK(table.occupancy(kT0 + 1'500'000) == 0);
}

TEST_CASE("rate limit table: an expired entry is reclaimed before any live one") {
  Memory m(16);  // the window is the whole table
  RateLimitTable table = m.table();
  GcraParams p = gcraParams(1, 1000, 0);  // one per second, tolerance 1 s
  // Keys 1..16 fill slots 1..15 and 0; key 5 was last seen 2 s ago.
  for (uint64_t key = 1; key <= 16; ++key) {
    CHECK(table.decide(key, p, key == 5 ? kT0 - 2'000'000 : kT0).allowed);
  }
  CHECK(table.occupancy(kT0) == 15);
  // Key 17 (home 1) takes key 5's slot, not the live entry with the smallest tat.
  CHECK(table.decide(17, p, kT0).allowed);
  CHECK(keyAt(m, 5) == 17);
  CHECK(m.entries[5].tat_us.load() == kT0 + 1'000'000);  // a fresh bucket, then one request
  CHECK(m.counters.inserts.load() == 17);
  CHECK(m.counters.evictions.load() == 1);
  CHECK(m.counters.full.load() == 0);
  CHECK(table.occupancy(kT0) == 16);
  // Everyone else is still remembered.
  for (uint64_t key = 1; key <= 17; ++key) {
    if (key != 5) CHECK_FALSE(table.decide(key, p, kT0).allowed);
  }
  CHECK(m.counters.evictions.load() == 1);
}

TEST_CASE("rate limit table: a table full of live keys evicts the one closest to full") {
  Memory m(16);
  RateLimitTable table = m.table();
  GcraParams p = gcraParams(10, 60'000, 0);  // T = 6 s, tolerance 60 s
  // Key k makes k requests: its tat is kT0 + 6 s × k, so key 1 is closest to full.
  for (uint64_t key = 1; key <= 16; ++key) {
    CHECK(allowedOf(table, key, p, kT0, static_cast<int>(key)) == std::min<int>(key, 10));
  }
  CHECK(table.occupancy(kT0) == 16);
  // Key 17: no empty slot, none expired: key 1 is evicted, and 17 still enforced.
  CHECK(allowedOf(table, 17, p, kT0, 20) == 10);
  CHECK(keyAt(m, 1) == 17);
  CHECK(m.counters.evictions.load() == 1);
  CHECK(m.counters.inserts.load() == 17);
  CHECK(m.counters.full.load() == 0);
  // Key 1 lost its state (one request, nine left in its bucket: it gets 10);
  // coming back it evicts the next closest to full, key 2.
  CHECK(allowedOf(table, 1, p, kT0, 20) == 10);
  CHECK(keyAt(m, 2) == 1);
  CHECK(m.counters.evictions.load() == 2);
  // The others kept theirs: key 3 has 7 left, key 16 none.
  CHECK(allowedOf(table, 3, p, kT0, 20) == 7);
  CHECK(allowedOf(table, 16, p, kT0, 20) == 0);
  CHECK(m.counters.evictions.load() == 2);
}

TEST_CASE("rate limit table: a window of slots being claimed decides without an entry") {
  Memory m(16);
  for (auto& entry : m.entries) entry.key.store(kRateLimitClaimingKey);
  RateLimitTable table = m.table();
  GcraParams p = gcraParams(1, 1000, 0);
  GcraDecision d = table.decide(3, p, kT0);
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  CHECK(m.counters.full.load() == 1);
  CHECK(m.counters.inserts.load() == 0);
  CHECK(table.occupancy(kT0) == 0);
  // One slot left: the key goes there.
  m.entries[9].key.store(0);
  CHECK(table.decide(3, p, kT0).allowed);
  CHECK_FALSE(table.decide(3, p, kT0).allowed);
  CHECK(keyAt(m, 9) == 3);
  CHECK(m.counters.full.load() == 1);
}

TEST_CASE("rate limit table: 4 threads on one key at one instant admit exactly the limit") {
  const uint64_t key = rateLimitKeyHash("per_ip", "192.0.2.1");
  for (uint64_t limit : {1ull, 7ull, 1000ull, 20'000ull, 400'000ull}) {
    CAPTURE(limit);
    Memory m(1024);
    GcraParams p = gcraParams(limit, 60'000, 0);
    std::atomic<uint64_t> allowed{0};
    onFourThreads(m, [&](int, RateLimitTable& table) {
      uint64_t n = 0;
      for (uint64_t i = 0; i < limit / 2 + 1000; ++i) n += table.decide(key, p, kT0).allowed;
      allowed.fetch_add(n);
    });
    CHECK(allowed.load() == limit);
    CHECK(m.counters.inserts.load() == 1);
    CHECK(m.counters.full.load() == 0);
    CHECK(m.table().occupancy(kT0) == 1);
    CHECK(m.table().decide(key, p, kT0 + p.emission_interval_us).allowed);
  }
}

TEST_CASE("rate limit table: 4 threads inserting 12 keys into one window stay exact") {
  for (int run = 0; run < 20; ++run) {
    Memory m(64);
    GcraParams p = gcraParams(200, 1000, 0);
    constexpr int kKeys = 12;  // all with home slot 5: they share one window
    std::atomic<int> allowed[kKeys] = {};
    onFourThreads(m, [&](int t, RateLimitTable& table) {
      for (int round = 0; round < 100; ++round) {
        for (int k = 0; k < kKeys; ++k) {
          int key = (k + 3 * t) % kKeys;  // each thread starts at another key
          if (table.decide(5 + 64 * key, p, kT0).allowed) allowed[key].fetch_add(1);
        }
      }
    });
    for (int k = 0; k < kKeys; ++k) CHECK(allowed[k].load() == 200);
    CHECK(m.counters.inserts.load() == kKeys);
    CHECK(m.counters.evictions.load() == 0);
    CHECK(m.counters.full.load() == 0);
  }
}

TEST_CASE("rate limit table: churn from threads through a small table leaves no corruption") {
  Memory m(16);
  GcraParams p = gcraParams(5, 1000, 0);
  constexpr uint64_t kKeys = 40;
  std::atomic<uint64_t> clock{kT0};
  onFourThreads(m, [&](int t, RateLimitTable& table) {
    for (uint64_t i = 0; i < 20000; ++i) {
      uint64_t now = clock.fetch_add(37);
      table.decide(1 + (i * 7 + static_cast<uint64_t>(t)) % kKeys, p, now);
    }
  });
  // Every slot holds one of the keys, none left claiming, every tat a time of
  // the run. (A key may hold two slots: see "Two processes inserting".)
  for (uint32_t slot = 0; slot < 16; ++slot) {
    uint64_t key = keyAt(m, slot);
    CHECK(key >= 1);
    CHECK(key <= kKeys);
    uint64_t tat = m.entries[slot].tat_us.load();
    CHECK(tat > kT0);
    CHECK(tat <= clock.load() + p.tolerance_us);
  }
  // Each empty slot was filled once, for good; every other insert took a slot.
  CHECK(m.counters.inserts.load() - m.counters.evictions.load() == 16);
  CHECK(m.counters.evictions.load() > 1000);
  CHECK(m.counters.full.load() < 100);  // lost 8 races in a row: rare
}

TEST_CASE("rate limit key hash: stable, and the name and the key stay apart") {
  // Part of the shm ABI: old and new workers share the table across a reload,
  // so a change here needs a new kShmLayoutVersion.
  CHECK(rateLimitKeyHash("per_ip", "192.0.2.1") == 0x4d21858e2096e0b4ull);
  CHECK(rateLimitKeyHash("", "") == 0x813f0174a2367c13ull);
  CHECK(rateLimitKeyHash("ab", "c") != rateLimitKeyHash("a", "bc"));
  CHECK(rateLimitKeyHash("per_ip", "192.0.2.1") != rateLimitKeyHash("per_key", "192.0.2.1"));
  CHECK(rateLimitKeyHash("per_ip", "192.0.2.1") != rateLimitKeyHash("per_ip", "192.0.2.2"));
  CHECK(rateLimitKeyHash("", "") != 0);
  // Similar keys spread over the slots of a 1024-slot table.
  std::set<uint64_t> homes;
  for (int i = 0; i < 256; ++i) {
    homes.insert(rateLimitKeyHash("per_ip", "10.0.0." + std::to_string(i)) & 1023);
  }
  CHECK(homes.size() > 200);
}

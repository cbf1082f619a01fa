#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "shared/policy/lease.h"

using namespace phalanx::shared::policy;

TEST_CASE("lease: two pids contend, exactly one holds it") {
  LeaseCell cell{};
  CHECK(holder(cell, 0) == 0);
  CHECK(tryAcquire(cell, 100, 1000, 5000));
  CHECK_FALSE(tryAcquire(cell, 200, 1000, 5000));
  CHECK(holder(cell, 1000) == 100);
  CHECK(holder(cell, 5999) == 100);
}

TEST_CASE("lease: renewal keeps it, expiry hands it over") {
  LeaseCell cell{};
  CHECK(tryAcquire(cell, 100, 1000, 5000));
  CHECK(tryAcquire(cell, 100, 4000, 5000));  // renewed until 9000
  CHECK_FALSE(tryAcquire(cell, 200, 8999, 5000));
  CHECK(holder(cell, 9000) == 0);  // the holder stopped renewing: expired
  CHECK(tryAcquire(cell, 200, 9000, 5000));
  CHECK(holder(cell, 9000) == 200);
  CHECK_FALSE(tryAcquire(cell, 100, 9001, 5000));  // too late: 100 must stop the work
}

TEST_CASE("lease: release frees it only for its holder") {
  LeaseCell cell{};
  CHECK(tryAcquire(cell, 100, 1000, 5000));
  release(cell, 200);
  CHECK(holder(cell, 1000) == 100);
  release(cell, 100);
  CHECK(holder(cell, 1000) == 0);
  CHECK(tryAcquire(cell, 200, 1000, 5000));
}

TEST_CASE("lease: pids outside what the word holds are refused") {
  LeaseCell cell{};
  CHECK_FALSE(tryAcquire(cell, 0, 1000, 5000));
  CHECK_FALSE(tryAcquire(cell, -1, 1000, 5000));
  CHECK_FALSE(tryAcquire(cell, kLeaseMaxPid + 1, 1000, 5000));
  CHECK(tryAcquire(cell, kLeaseMaxPid, 1000, 5000));
  CHECK(holder(cell, 1000) == kLeaseMaxPid);
}

TEST_CASE("lease: threads contending never see two holders at once") {
  LeaseCell cell{};
  constexpr int kThreads = 8;
  std::atomic<uint64_t> clock{1};
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> acquisitions{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, pid = 1000 + t] {
      for (int i = 0; i < 20000; ++i) {
        uint64_t now = clock.fetch_add(1) / 64;
        if (!tryAcquire(cell, pid, now, 1'000'000)) continue;  // does not expire in this test
        acquisitions.fetch_add(1);
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        inside.fetch_sub(1);
        if (i % 8 == 0) release(cell, pid);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(overlaps.load() == 0);
  CHECK(acquisitions.load() > 0);
}

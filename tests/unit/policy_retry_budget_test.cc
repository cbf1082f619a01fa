#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "shared/policy/retry_budget.h"

using namespace phalanx::shared::policy;

namespace {

const RetryBudgetOptions kOptions{.ratio = 0.2, .window_ms = 10000, .min_retries = 10};

int grant(RetryBudgetCell& cell, uint64_t now, int attempts) {
  int granted = 0;
  for (int i = 0; i < attempts; ++i) granted += tryRetry(cell, kOptions, now);
  return granted;
}

}  // namespace

TEST_CASE("retry budget: 20% of the window's requests") {
  RetryBudgetCell cell{};
  for (int i = 0; i < 200; ++i) countRequest(cell, kOptions, 1000);
  CHECK(grant(cell, 1000, 100) == 40);
  CHECK_FALSE(tryRetry(cell, kOptions, 1000));
  RetryBudgetView v = view(cell, kOptions, 1000);
  CHECK(v.requests == 200);
  CHECK(v.retries == 40);
  // 205 · 0.2 = 41: one more.
  countRequest(cell, kOptions, 1000);
  countRequest(cell, kOptions, 1000);
  countRequest(cell, kOptions, 1000);
  countRequest(cell, kOptions, 1000);
  countRequest(cell, kOptions, 1000);
  CHECK(grant(cell, 1000, 5) == 1);
}

TEST_CASE("retry budget: min_retries is allowed whatever the traffic") {
  RetryBudgetCell cell{};
  CHECK(grant(cell, 1000, 50) == 10);
  for (int i = 0; i < 10; ++i) countRequest(cell, kOptions, 1000);  // 20% of 10 is 2 < 10
  CHECK_FALSE(tryRetry(cell, kOptions, 1000));
}

TEST_CASE("retry budget: the window slides") {
  RetryBudgetCell cell{};
  for (int i = 0; i < 100; ++i) countRequest(cell, kOptions, 500);   // bucket 0
  for (int i = 0; i < 100; ++i) countRequest(cell, kOptions, 5500);  // bucket 5
  CHECK(grant(cell, 500, 100) == 20);
  CHECK(grant(cell, 5500, 100) == 20);  // 200 requests: 40 in all
  CHECK(view(cell, kOptions, 9999).retries == 40);
  // Bucket 0 has left: 100 requests and 20 retries remain, 20 granted anew.
  RetryBudgetView v = view(cell, kOptions, 10000);
  CHECK(v.requests == 100);
  CHECK(v.retries == 20);
  CHECK(grant(cell, 10000, 100) == 0);
  // Everything has left: the floor again.
  CHECK(grant(cell, 15500, 100) == 10);
}

TEST_CASE("retry budget: a storm from threads overshoots by at most the thread count") {
  RetryBudgetCell cell{};
  for (int i = 0; i < 1000; ++i) countRequest(cell, kOptions, 1000);  // budget 200
  constexpr int kThreads = 8;
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000 / kThreads; ++i) {
        if (tryRetry(cell, kOptions, 1000)) granted.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(granted.load() >= 200);
  CHECK(granted.load() <= 200 + kThreads);
  CHECK(view(cell, kOptions, 1000).retries == static_cast<uint64_t>(granted.load()));
}

TEST_CASE("retry budget: a fresh cell counts whatever the clock reads") {
  // 1 s buckets: epochs 64513-65535 (mod 2^16) once read a never-written bucket
  // as one a moment ahead, kept its epoch 0, and the window never saw what was
  // added to it: every retry was granted. CLOCK_MONOTONIC passes there after
  // 17.9 hours of uptime, and every 18.2 hours after.
  for (uint64_t epoch : {uint64_t{64513}, uint64_t{65471}, uint64_t{65535}, uint64_t{65536},
                         uint64_t{131071}, uint64_t{1000}}) {
    CAPTURE(epoch);
    RetryBudgetCell cell{};
    uint64_t now = epoch * 1000;
    for (int i = 0; i < 200; ++i) countRequest(cell, kOptions, now);
    CHECK(view(cell, kOptions, now).requests == 200);
    CHECK(grant(cell, now, 100) == 40);
  }
}

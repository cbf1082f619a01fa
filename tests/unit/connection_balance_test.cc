#include "worker/connection_balance.h"

#include <doctest/doctest.h>

#include <vector>

using phalanx::worker::connectionsToShed;

TEST_CASE("a worker well above the mean sheds down to it") {
  std::vector<uint64_t> counts = {40, 24};
  CHECK(connectionsToShed(40, counts) == 8);
  CHECK(connectionsToShed(24, counts) == 0);
}

TEST_CASE("within the slack nothing is shed") {
  std::vector<uint64_t> counts = {34, 30};
  CHECK(connectionsToShed(34, counts) == 0);
  std::vector<uint64_t> large = {1040, 960};  // slack is 5% of the mean: 50
  CHECK(connectionsToShed(1040, large) == 0);
  std::vector<uint64_t> skewed = {1100, 900};
  CHECK(connectionsToShed(1100, skewed) == 100);
}

TEST_CASE("alone, or with nobody ready beside it, a worker keeps its connections") {
  std::vector<uint64_t> alone = {64};
  CHECK(connectionsToShed(64, alone) == 0);
  CHECK(connectionsToShed(0, std::vector<uint64_t>{}) == 0);
}

TEST_CASE("never below the rounded-up mean") {
  std::vector<uint64_t> counts = {10, 3, 0};  // mean 13/3 rounds up to 5
  CHECK(connectionsToShed(10, counts) == 5);
}

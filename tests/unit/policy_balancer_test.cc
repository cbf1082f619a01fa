#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "shared/policy/balancer.h"

using namespace phalanx::shared::policy;

namespace {

Candidate target(uint32_t weight, uint64_t in_flight = 0, bool backup = false) {
  return {.weight = weight, .in_flight = in_flight, .usable = true, .backup = backup};
}

}  // namespace

TEST_CASE("round robin: weights 5:1:1 give nginx's smooth sequence") {
  std::vector<Candidate> c{target(5), target(1), target(1)};
  SmoothRoundRobin rr;
  std::string sequence;
  for (int i = 0; i < 7; ++i) sequence += static_cast<char>('a' + rr.pick(c));
  CHECK(sequence == "aabacaa");
}

TEST_CASE("round robin: the distribution over 7000 picks is exact") {
  std::vector<Candidate> c{target(5), target(1), target(1)};
  SmoothRoundRobin rr;
  int counts[3] = {};
  for (int i = 0; i < 7000; ++i) ++counts[rr.pick(c)];
  CHECK(counts[0] == 5000);
  CHECK(counts[1] == 1000);
  CHECK(counts[2] == 1000);
}

TEST_CASE("round robin: skips the unusable, uses backups last, and resizes") {
  std::vector<Candidate> c{target(1), target(1), target(1, 0, true)};
  SmoothRoundRobin rr;
  c[0].usable = false;
  for (int i = 0; i < 5; ++i) CHECK(rr.pick(c) == 1);
  c[1].usable = false;
  CHECK(rr.pick(c) == 2);
  c[2].usable = false;
  CHECK(rr.pick(c) == kNoCandidate);
  std::vector<Candidate> two{target(1), target(1)};
  CHECK(rr.pick(two) == 0);
  CHECK(rr.pick(two) == 1);
  CHECK(rr.pick({}) == kNoCandidate);
}

TEST_CASE("least conn: picks the idle one, by in_flight per weight") {
  std::vector<Candidate> c{target(1, 3), target(1, 0), target(1, 5)};
  CHECK(pickLeastConn(c, 0) == 1);
  CHECK(pickLeastConn(c, 12345) == 1);
  // 4 on weight 2 (2 each) beats 3 on weight 1.
  std::vector<Candidate> weighted{target(1, 3), target(2, 4)};
  CHECK(pickLeastConn(weighted, 0) == 1);
}

TEST_CASE("least conn: ties are spread by the random number") {
  std::vector<Candidate> c{target(1, 2), target(1, 0), target(1, 0), target(2, 0)};
  CHECK(pickLeastConn(c, 0) == 1);
  CHECK(pickLeastConn(c, 1) == 2);
  CHECK(pickLeastConn(c, 2) == 3);
  CHECK(pickLeastConn(c, 3) == 1);
}

TEST_CASE("least conn: backups only as a last resort, kNoCandidate when nothing is usable") {
  std::vector<Candidate> c{target(1, 100), target(1, 0, true)};
  CHECK(pickLeastConn(c, 0) == 0);
  c[0].usable = false;
  CHECK(pickLeastConn(c, 0) == 1);
  c[1].usable = false;
  CHECK(pickLeastConn(c, 0) == kNoCandidate);
}

TEST_CASE("p2c: never picks the most loaded of three when the other two are idle") {
  std::vector<Candidate> c{target(1, 0), target(1, 50), target(1, 0)};
  uint64_t random = 0x9e3779b97f4a7c15ull;
  int counts[3] = {};
  for (int i = 0; i < 10000; ++i) {
    random = random * 6364136223846793005ull + 1442695040888963407ull;
    size_t picked = pickRandomTwo(c, random);
    REQUIRE(picked < 3);
    ++counts[picked];
  }
  CHECK(counts[1] == 0);
  CHECK(counts[0] > 3000);
  CHECK(counts[2] > 3000);
}

TEST_CASE("p2c: draws the two distinct, weighs the load, and handles one or none") {
  std::vector<Candidate> c{target(1, 1), target(3, 2)};
  // Whatever the draw, both are compared: 2 of weight 3 is below 1 of weight 1.
  for (uint64_t r : {0ull, 1ull, 0xffffffffull, 0x123456789abcdefull})
    CHECK(pickRandomTwo(c, r) == 1);
  std::vector<Candidate> one{target(1, 9), target(1, 0)};
  one[1].usable = false;
  CHECK(pickRandomTwo(one, 7) == 0);
  one[0].usable = false;
  CHECK(pickRandomTwo(one, 7) == kNoCandidate);
  std::vector<Candidate> backups{target(1, 0, true), target(1, 0)};
  CHECK(pickRandomTwo(backups, 0) == 1);
  backups[1].usable = false;
  CHECK(pickRandomTwo(backups, 0) == 0);
}

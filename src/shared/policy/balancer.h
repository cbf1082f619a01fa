// Which upstream target gets the next attempt: pure choices over plain data.
//
// What: three strategies over a span of Candidates, in the upstream's target
// order. The caller fills `usable` (healthy, breaker admits, not yet tried by
// this request) and `in_flight` (the target's count in shared memory, summed
// over the host's workers). Each returns an index into the span, or
// kNoCandidate when nothing is usable.
//
// Backups (HAProxy's `backup`, nginx's `backup`): considered only when no
// usable non-backup candidate exists; then the usable backups are balanced the
// same way.
//
// Weights: a weight of 0 counts as 1 (config validation should refuse it).
// Load is compared as in_flight / weight without division:
// a is less loaded than b iff in_flight_a · weight_b < in_flight_b · weight_a.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace phalanx::shared::policy {

struct Candidate {
  uint32_t weight;
  uint64_t in_flight;
  bool usable;
  bool backup;
};

inline constexpr size_t kNoCandidate = SIZE_MAX;

// nginx's smooth weighted round robin, one per worker and upstream: each pick
// adds every eligible candidate's weight to its current value, picks the
// largest (the first on a tie) and subtracts the eligible total from it. 5:1:1
// gives a a b a c a a. The state resets when the candidate count changes
// (a reload that changes the targets).
class SmoothRoundRobin {
 public:
  size_t pick(std::span<const Candidate> candidates);

 private:
  std::vector<int64_t> current_;
};

// Least connections: the lowest in_flight / weight; among equals the
// (random % ties)-th, so workers do not all pile on the first target.
size_t pickLeastConn(std::span<const Candidate> candidates, uint64_t random);

// Power of two choices: two distinct eligible candidates drawn with probability
// proportional to weight (the low 32 bits of `random` draw the first, the high
// 32 bits the second among the rest); the one with the lower in_flight / weight
// wins, the first drawn on a tie. One eligible candidate is returned as is.
size_t pickRandomTwo(std::span<const Candidate> candidates, uint64_t random);

}  // namespace phalanx::shared::policy

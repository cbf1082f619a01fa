#include "shared/policy/balancer.h"

namespace phalanx::shared::policy {

namespace {

uint64_t weightOf(const Candidate& c) {
  return c.weight == 0 ? 1 : c.weight;
}

// Backups take part only when no usable primary exists.
bool backupsOnly(std::span<const Candidate> candidates) {
  for (const Candidate& c : candidates) {
    if (c.usable && !c.backup) return false;
  }
  return true;
}

struct Eligible {
  bool backups;
  bool operator()(const Candidate& c) const { return c.usable && c.backup == backups; }
};

// a is less loaded than b: in_flight_a / weight_a < in_flight_b / weight_b, in
// 128 bits so no count overflows.
bool lessLoaded(const Candidate& a, const Candidate& b) {
  using Wide = unsigned __int128;
  return Wide{a.in_flight} * weightOf(b) < Wide{b.in_flight} * weightOf(a);
}

// The index of the eligible candidate that `point` (in [0, total weight))
// falls on, skipping `skip`.
size_t byWeight(std::span<const Candidate> candidates, Eligible eligible, uint64_t point,
                size_t skip) {
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (i == skip || !eligible(candidates[i])) continue;
    uint64_t w = weightOf(candidates[i]);
    if (point < w) return i;
    point -= w;
  }
  return kNoCandidate;
}

}  // namespace

size_t SmoothRoundRobin::pick(std::span<const Candidate> candidates) {
  if (current_.size() != candidates.size()) current_.assign(candidates.size(), 0);
  Eligible eligible{backupsOnly(candidates)};
  int64_t total = 0;
  size_t best = kNoCandidate;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!eligible(candidates[i])) continue;
    int64_t w = static_cast<int64_t>(weightOf(candidates[i]));
    current_[i] += w;
    total += w;
    if (best == kNoCandidate || current_[i] > current_[best]) best = i;
  }
  if (best != kNoCandidate) current_[best] -= total;
  return best;
}

size_t pickLeastConn(std::span<const Candidate> candidates, uint64_t random) {
  Eligible eligible{backupsOnly(candidates)};
  size_t best = kNoCandidate;
  uint64_t ties = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!eligible(candidates[i])) continue;
    if (best == kNoCandidate || lessLoaded(candidates[i], candidates[best])) {
      best = i;
      ties = 1;
    } else if (!lessLoaded(candidates[best], candidates[i])) {
      ++ties;
    }
  }
  if (ties <= 1) return best;
  uint64_t chosen = random % ties;
  for (size_t i = best; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    if (!eligible(c) || lessLoaded(candidates[best], c)) continue;
    if (chosen-- == 0) return i;
  }
  return best;  // not reached: there are `ties` equals from `best` on
}

size_t pickRandomTwo(std::span<const Candidate> candidates, uint64_t random) {
  Eligible eligible{backupsOnly(candidates)};
  uint64_t total = 0;
  size_t count = 0;
  for (const Candidate& c : candidates) {
    if (!eligible(c)) continue;
    total += weightOf(c);
    ++count;
  }
  if (count == 0) return kNoCandidate;
  size_t first = byWeight(candidates, eligible, (random & 0xffffffff) % total, kNoCandidate);
  if (count == 1) return first;
  uint64_t rest = total - weightOf(candidates[first]);
  size_t second = byWeight(candidates, eligible, (random >> 32) % rest, first);
  return lessLoaded(candidates[second], candidates[first]) ? second : first;
}

}  // namespace phalanx::shared::policy

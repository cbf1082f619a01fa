// How the differential harnesses cut one input into reads: a small
// deterministic generator (splitmix64), so the same seed gives the same pieces.
#pragma once

#include <cstddef>
#include <cstdint>

class Splitter {
 public:
  explicit Splitter(uint64_t seed) : state_(seed) {}
  // Mostly short pieces (where state is cut mid-token), sometimes long ones.
  size_t next(size_t left) {
    uint64_t r = step();
    size_t size = (r & 3) == 0 ? 1 + (r >> 8) % 512 : 1 + (r >> 8) % 8;
    return size < left ? size : left;
  }

 private:
  uint64_t step() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

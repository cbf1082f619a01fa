// X-Request-Id: kept when the client sent a sane one, made up otherwise, so
// one id follows a request through phalanx, the upstream and both logs.
//
// Sane: 1 to kMaxLength characters of [A-Za-z0-9._:+/=-] (UUIDs, hex, base64,
// and the "svc:1234" styles load balancers use). Anything else, the id of a
// log-injection or header-splitting attempt, is replaced, not echoed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace phalanx::worker {

class RequestIds {
 public:
  static constexpr size_t kMaxLength = 128;

  // `seed` makes ids of different processes differ (pid, time, getrandom).
  explicit RequestIds(uint64_t seed);

  static bool isSane(std::string_view id);

  // 32 lowercase hex digits, unique per worker and random enough that two
  // workers or hosts do not collide.
  std::string next();

 private:
  uint64_t state_[2];
};

}  // namespace phalanx::worker

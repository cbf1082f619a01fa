// The `Date` header value (RFC 9110 IMF-fixdate), formatted once per second.
#pragma once

#include <ctime>
#include <string_view>

namespace phalanx::worker {

class HttpDate {
 public:
  // The date for the current second (CLOCK_REALTIME_COARSE: no syscall, and a
  // resolution far below the header's one second).
  std::string_view now();
  // The date for `second`; reformats only when the second changed.
  std::string_view at(time_t second);

 private:
  time_t cached_second_ = -1;
  char text_[32] = {};
  size_t length_ = 0;
};

}  // namespace phalanx::worker

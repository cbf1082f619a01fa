#include "worker/http/http_date.h"

#include <time.h>

namespace phalanx::worker {

std::string_view HttpDate::now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return at(ts.tv_sec);
}

std::string_view HttpDate::at(time_t second) {
  if (second != cached_second_) {
    tm utc{};
    gmtime_r(&second, &utc);
    length_ = strftime(text_, sizeof text_, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    cached_second_ = second;
  }
  return {text_, length_};
}

}  // namespace phalanx::worker

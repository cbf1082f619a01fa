#include "shared/log_throttle.h"

#include <doctest/doctest.h>

using phalanx::shared::LogThrottle;

TEST_CASE("the first event is said at once, alone") {
  LogThrottle throttle(10'000);
  LogThrottle::Report report = throttle.note(5'000);
  CHECK(report);
  CHECK(report.count == 1);
  CHECK(report.since_ms == 0);
  CHECK(throttle.pending() == 0);
}

TEST_CASE("events within the interval are counted, then said in one line with the count") {
  LogThrottle throttle(10'000);
  CHECK(throttle.note(1'000));
  for (uint64_t t = 1'100; t < 11'000; t += 100) CHECK_FALSE(throttle.note(t));
  CHECK(throttle.pending() == 99);
  LogThrottle::Report report = throttle.note(11'000);
  CHECK(report.count == 100);  // the 99 held back and this one
  CHECK(report.since_ms == 10'000);
  CHECK_FALSE(throttle.note(11'001));  // and the interval starts over
}

TEST_CASE("note() takes a count of events at once") {
  LogThrottle throttle(10'000);
  CHECK(throttle.note(0, 12).count == 12);
  CHECK_FALSE(throttle.note(500, 7));
  CHECK_FALSE(throttle.note(600, 0));
  CHECK(throttle.note(10'000, 3).count == 10);
}

TEST_CASE("due() says what is pending once the interval is up, even with no new event") {
  LogThrottle throttle(10'000);
  CHECK_FALSE(throttle.due(0));  // nothing happened
  CHECK(throttle.note(0));
  CHECK_FALSE(throttle.note(100));
  CHECK_FALSE(throttle.note(200));
  CHECK_FALSE(throttle.due(9'999));
  LogThrottle::Report report = throttle.due(10'000);
  CHECK(report.count == 2);
  CHECK(report.since_ms == 10'000);
  CHECK_FALSE(throttle.due(30'000));  // said: nothing left
}

TEST_CASE("after a quiet interval the next event is said at once again") {
  LogThrottle throttle(10'000);
  CHECK(throttle.note(0));
  LogThrottle::Report report = throttle.note(60'000);
  CHECK(report.count == 1);
  CHECK(report.since_ms == 60'000);
}

TEST_CASE("take() says what is pending whatever the interval (a last line before closing)") {
  LogThrottle throttle(10'000);
  CHECK(throttle.note(0));
  CHECK_FALSE(throttle.note(1'000, 4));
  LogThrottle::Report report = throttle.take(2'000);
  CHECK(report.count == 4);
  CHECK(report.since_ms == 2'000);
  CHECK_FALSE(throttle.take(2'001));
}

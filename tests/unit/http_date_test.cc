#include "worker/http/http_date.h"

#include <doctest/doctest.h>

TEST_CASE("IMF-fixdate, cached per second") {
  phalanx::worker::HttpDate date;
  CHECK(date.at(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(date.at(1795425600) == "Mon, 23 Nov 2026 09:20:00 GMT");
  CHECK(date.now().size() == 29);
}

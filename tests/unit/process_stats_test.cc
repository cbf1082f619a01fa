#include "master/process_stats.h"

#include <doctest/doctest.h>
#include <unistd.h>

using namespace phalanx::master;

TEST_CASE("proc stat: fields counted from the last parenthesis") {
  // A command name with spaces and a ')' must not shift the fields.
  const char* text =
      "4242 (phalanx: worker) 0) S 1 4242 4242 0 -1 4194560 1200 0 0 0 "
      "250 50 0 0 20 0 1 0 12345 21000000 1200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 "
      "0 0 0 0 0\n";
  auto stats = parseProcStat(text, 4096, 100);
  REQUIRE(stats);
  CHECK(stats->cpu_ms == 3000);  // (250 + 50) ticks at 100 Hz
  CHECK(stats->rss_bytes == 1200 * 4096);
}

TEST_CASE("proc stat: truncated or garbled text is refused") {
  CHECK_FALSE(parseProcStat("4242 (x) S 1 2 3", 4096, 100));
  CHECK_FALSE(parseProcStat("no parenthesis", 4096, 100));
}

TEST_CASE("proc stat of this process reads a plausible RSS") {
  auto stats = readProcessStats(getpid());
  REQUIRE(stats);
  CHECK(stats->rss_bytes > 1024 * 1024);
  CHECK_FALSE(readProcessStats(0x3fffffff));
}

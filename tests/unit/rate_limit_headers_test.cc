#include "worker/gateway/rate_limit_headers.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using namespace phalanx::worker;

namespace {

std::string render(RateLimitHeaderStyle style, const AppliedLimit* limits, size_t count) {
  std::string out = "HTTP/1.1 200 OK\r\n";  // appended to, never replaced
  appendRateLimitHeaders(out, style, limits, count);
  return out;
}

const AppliedLimit kTwo[] = {
    {.name = "per_ip", .limit = 100, .window_s = 60, .remaining = 99, .reset_s = 60},
    {.name = "per_key", .limit = 1000, .window_s = 3600, .remaining = 999, .reset_s = 3600},
};

}  // namespace

TEST_CASE("rate limit headers: draft, one list item per limit") {
  CHECK(render(RateLimitHeaderStyle::Draft, kTwo, 2) ==
        "HTTP/1.1 200 OK\r\n"
        "RateLimit-Policy: \"per_ip\";q=100;w=60, \"per_key\";q=1000;w=3600\r\n"
        "RateLimit: \"per_ip\";r=99;t=60, \"per_key\";r=999;t=3600\r\n");
  CHECK(render(RateLimitHeaderStyle::Draft, kTwo, 1) ==
        "HTTP/1.1 200 OK\r\n"
        "RateLimit-Policy: \"per_ip\";q=100;w=60\r\n"
        "RateLimit: \"per_ip\";r=99;t=60\r\n");
}

TEST_CASE("rate limit headers: draft-6, the most restrictive limit and every policy") {
  const AppliedLimit limits[] = {
      {.name = "per_ip", .limit = 100, .window_s = 60, .remaining = 40, .reset_s = 36},
      {.name = "per_key", .limit = 1000, .window_s = 3600, .remaining = 3, .reset_s = 3590},
      {.name = "burst", .limit = 10, .window_s = 1, .remaining = 7, .reset_s = 1},
  };
  CHECK(render(RateLimitHeaderStyle::Draft6, limits, 3) ==
        "HTTP/1.1 200 OK\r\n"
        "RateLimit-Limit: 1000\r\n"
        "RateLimit-Remaining: 3\r\n"
        "RateLimit-Reset: 3590\r\n"
        "RateLimit-Policy: 100;w=60, 1000;w=3600, 10;w=1\r\n");
}

TEST_CASE("rate limit headers: draft-6 ties go to the later reset, then to the first") {
  const AppliedLimit limits[] = {
      {.name = "a", .limit = 5, .window_s = 1, .remaining = 0, .reset_s = 1},
      {.name = "b", .limit = 50, .window_s = 60, .remaining = 0, .reset_s = 60},
      {.name = "c", .limit = 500, .window_s = 600, .remaining = 0, .reset_s = 60},
  };
  std::string out;
  appendRateLimitHeaders(out, RateLimitHeaderStyle::Draft6, limits, 3);
  CHECK(out ==
        "RateLimit-Limit: 50\r\n"
        "RateLimit-Remaining: 0\r\n"
        "RateLimit-Reset: 60\r\n"
        "RateLimit-Policy: 5;w=1, 50;w=60, 500;w=600\r\n");
}

TEST_CASE("rate limit headers: names are sf-strings, escaped, other bytes dropped") {
  const AppliedLimit limits[] = {
      {.name = "a\"b\\c", .limit = 1, .window_s = 1, .remaining = 0, .reset_s = 1},
      {.name = "x\r\ny\x7f\xc3\xa9z\tw", .limit = 2, .window_s = 2, .remaining = 1, .reset_s = 2},
  };
  CHECK(render(RateLimitHeaderStyle::Draft, limits, 2) ==
        "HTTP/1.1 200 OK\r\n"
        "RateLimit-Policy: \"a\\\"b\\\\c\";q=1;w=1, \"xyzw\";q=2;w=2\r\n"
        "RateLimit: \"a\\\"b\\\\c\";r=0;t=1, \"xyzw\";r=1;t=2\r\n");
}

TEST_CASE("rate limit headers: no limits, no lines; big numbers in full") {
  std::string out = "x";
  appendRateLimitHeaders(out, RateLimitHeaderStyle::Draft, nullptr, 0);
  appendRateLimitHeaders(out, RateLimitHeaderStyle::Draft6, nullptr, 0);
  CHECK(out == "x");
  const AppliedLimit big[] = {{.name = "",
                               .limit = UINT64_MAX,
                               .window_s = 86'400,
                               .remaining = 18'446'744'073'709'551'614ull,
                               .reset_s = 0}};
  CHECK(render(RateLimitHeaderStyle::Draft, big, 1) ==
        "HTTP/1.1 200 OK\r\n"
        "RateLimit-Policy: \"\";q=18446744073709551615;w=86400\r\n"
        "RateLimit: \"\";r=18446744073709551614;t=0\r\n");
}

TEST_CASE("rate limit headers: Retry-After in whole seconds, rounded up, at least 1") {
  CHECK(retryAfterSeconds(0) == 1);
  CHECK(retryAfterSeconds(1) == 1);
  CHECK(retryAfterSeconds(600) == 1);
  CHECK(retryAfterSeconds(1000) == 1);
  CHECK(retryAfterSeconds(1001) == 2);
  CHECK(retryAfterSeconds(59'400) == 60);
  CHECK(retryAfterSeconds(86'400'000) == 86'400);
}

#include "worker/gateway/request_id.h"

#include <doctest/doctest.h>

#include <string>
#include <unordered_set>

using namespace phalanx::worker;

TEST_CASE("isSane: 1 to 128 characters of [A-Za-z0-9._:+/=-]") {
  CHECK_FALSE(RequestIds::isSane(""));
  CHECK(RequestIds::isSane("a"));
  CHECK(RequestIds::isSane(std::string(RequestIds::kMaxLength, 'a')));
  CHECK(RequestIds::kMaxLength == 128);
  CHECK_FALSE(RequestIds::isSane(std::string(129, 'a')));
  CHECK(RequestIds::isSane("ABCXYZabcxyz0189"));
  CHECK(RequestIds::isSane("123e4567-e89b-12d3-a456-426614174000"));
  CHECK(RequestIds::isSane("svc:1234"));
  CHECK(RequestIds::isSane("dGVzdA+/=="));
  for (char c : std::string("._:+/=-")) {
    CAPTURE(c);
    CHECK(RequestIds::isSane(std::string(1, c)));
    CHECK(RequestIds::isSane("a" + std::string(1, c) + "b"));
  }
}

TEST_CASE("isSane refuses anything else") {
  for (int c = 0; c < 256; ++c) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   std::string("._:+/=-").find(static_cast<char>(c)) != std::string::npos;
    std::string id = "ab" + std::string(1, static_cast<char>(c)) + "cd";
    CAPTURE(c);
    CHECK(RequestIds::isSane(id) == allowed);
  }
  CHECK_FALSE(RequestIds::isSane("a b"));
  CHECK_FALSE(RequestIds::isSane("a\"b"));
  CHECK_FALSE(RequestIds::isSane("a'b"));
  CHECK_FALSE(RequestIds::isSane("id\r\nX-Injected: 1"));
  CHECK_FALSE(RequestIds::isSane("id\n"));
  CHECK_FALSE(RequestIds::isSane("id\r"));
  CHECK_FALSE(RequestIds::isSane("\xc3\xa9t\xc3\xa9"));
  CHECK_FALSE(RequestIds::isSane("\x80"));
  CHECK_FALSE(RequestIds::isSane(std::string("a\0b", 3)));
  CHECK_FALSE(RequestIds::isSane(" a"));
  CHECK_FALSE(RequestIds::isSane(std::string(128, 'a') + "\n"));
}

TEST_CASE("next(): 32 lowercase hex digits, distinct over 100000 draws, and sane") {
  RequestIds ids(42);
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 100000; ++i) {
    std::string id = ids.next();
    REQUIRE(id.size() == 32);
    for (char c : id) REQUIRE(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
    REQUIRE(RequestIds::isSane(id));
    seen.insert(std::move(id));
  }
  CHECK(seen.size() == 100000);
}

TEST_CASE("next(): digits are spread (every hex digit in every position)") {
  RequestIds ids(7);
  int counts[32][16] = {};
  for (int i = 0; i < 4096; ++i) {
    std::string id = ids.next();
    for (int p = 0; p < 32; ++p) {
      int d = id[p] <= '9' ? id[p] - '0' : id[p] - 'a' + 10;
      ++counts[p][d];
    }
  }
  for (int p = 0; p < 32; ++p) {
    for (int d = 0; d < 16; ++d) {
      CAPTURE(p);
      CAPTURE(d);
      CHECK(counts[p][d] > 128);  // 256 expected
    }
  }
}

TEST_CASE("next(): different seeds give different ids, the same seed the same") {
  std::unordered_set<std::string> firsts;
  for (uint64_t seed : {0ull, 1ull, 2ull, 3ull, 12345ull, 0xffffffffffffffffull, 1ull << 63}) {
    RequestIds ids(seed);
    firsts.insert(ids.next());
  }
  CHECK(firsts.size() == 7);
  RequestIds a(99), b(99), c(100);
  std::unordered_set<std::string> from_a;
  for (int i = 0; i < 1000; ++i) {
    std::string x = a.next();
    CHECK(x == b.next());
    from_a.insert(x);
  }
  int shared = 0;
  for (int i = 0; i < 1000; ++i) shared += from_a.count(c.next()) ? 1 : 0;
  CHECK(shared == 0);
}

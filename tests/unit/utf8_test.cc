#include "shared/utf8.h"

#include <doctest/doctest.h>

#include <string>

using phalanx::shared::isValidUtf8;
using phalanx::shared::nextUtf8;

TEST_CASE("well-formed UTF-8 is one sequence per character") {
  CHECK(isValidUtf8(""));
  CHECK(isValidUtf8("plain ASCII, DEL \x7f and NUL " + std::string(1, '\0')));
  CHECK(isValidUtf8("\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbf"));
  CHECK(isValidUtf8("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"));  // U+10000, U+10FFFF
  auto euro = nextUtf8("\xe2\x82\xac!");
  CHECK(euro.valid);
  CHECK(euro.length == 3);
}

TEST_CASE("ill-formed UTF-8: overlong, surrogates, past U+10FFFF, stray or missing bytes") {
  for (const char* bad : {"\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80",
                          "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
                          "\xfe", "\xc3", "\xe2\x82", "\xf0\x9f\x98"}) {
    CAPTURE(std::string(bad));
    CHECK_FALSE(isValidUtf8(bad));
    CHECK_FALSE(nextUtf8(bad).valid);
  }
  // The maximal subpart: lead byte plus the continuations that still fitted.
  CHECK(nextUtf8("\xe2\x82(").length == 2);
  CHECK(nextUtf8("\xf0\x9f\x98(").length == 3);
  CHECK(nextUtf8("\xed\xa0\x80").length == 1);  // A0 cannot follow ED
  CHECK(nextUtf8("\xc3(").length == 1);
  CHECK(nextUtf8("\xff").length == 1);
}

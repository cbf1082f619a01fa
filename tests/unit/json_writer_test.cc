#include "shared/json_writer.h"

#include <doctest/doctest.h>

using phalanx::shared::appendJsonEscaped;
using phalanx::shared::JsonWriter;

TEST_CASE("json writer places commas and escapes strings") {
  JsonWriter w;
  w.beginObject();
  w.field("a", 1);
  w.field("s", "q\"\n");
  w.key("list");
  w.beginArray();
  w.value(true);
  w.beginObject();
  w.endObject();
  w.null();
  w.endArray();
  w.field("x", 0.5);
  w.endObject();
  CHECK(w.text() == R"({"a":1,"s":"q\"\n","list":[true,{},null],"x":0.5})");
}

TEST_CASE("control characters are escaped as \\u00XX") {
  std::string s;
  appendJsonEscaped(s, std::string_view("\x01", 1));
  CHECK(s == "\\u0001");
}

TEST_CASE("bytes that are not UTF-8 become \\ufffd; well-formed UTF-8 goes through") {
  std::string s;
  appendJsonEscaped(s, "\xff\xfe status");
  CHECK(s == "\\ufffd\\ufffd status");
  s.clear();
  appendJsonEscaped(s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // é € 😀
  CHECK(s == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  s.clear();
  // A truncated sequence is one piece; the byte after it is itself again.
  appendJsonEscaped(s, "\xc3\x28 \xe2\x82\"");
  CHECK(s == "\\ufffd( \\ufffd\\\"");
  JsonWriter w;
  w.field("error", "unknown \xed\xa0\x80");  // an encoded surrogate is no character
  CHECK(w.text() == "\"error\":\"unknown \\ufffd\\ufffd\\ufffd\"");
}

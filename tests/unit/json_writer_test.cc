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

#include "worker/http/request_target.h"

#include <doctest/doctest.h>

#include <string>

using phalanx::worker::isValidAuthority;
using phalanx::worker::splitTarget;
using phalanx::worker::TargetForm;
using phalanx::worker::TargetParts;

namespace {
TargetParts split(std::string_view target, bool options = false) {
  TargetParts parts;
  const char* why = "";
  REQUIRE_MESSAGE(splitTarget(target, options, parts, &why), why);
  return parts;
}

bool refused(std::string_view target, bool options = false) {
  TargetParts parts;
  const char* why = "";
  return !splitTarget(target, options, parts, &why) && std::string_view(why).size() > 0;
}
}  // namespace

TEST_CASE("origin-form: path and query") {
  TargetParts p = split("/a/b?c=d&e");
  CHECK(p.form == TargetForm::Origin);
  CHECK(p.path == "/a/b");
  CHECK(p.has_query);
  CHECK(p.query == "c=d&e");
  CHECK_FALSE(split("/x").has_query);
  CHECK(split("/x?").has_query);
  CHECK(split("/x?").query == "");
}

TEST_CASE("absolute-form: http or https, authority, path defaulting to /") {
  TargetParts p = split("http://example.com:8080/x?y");
  CHECK(p.form == TargetForm::Absolute);
  CHECK(p.authority == "example.com:8080");
  CHECK(p.path == "/x");
  CHECK(p.query == "y");
  CHECK(split("HTTPS://[::1]").path == "/");
  CHECK(split("http://h?q").path == "/");
  CHECK(split("http://h?q").query == "q");
  CHECK(refused("ftp://h/"));
  CHECK(refused("http://u:p@h/"));
  CHECK(refused("http:///x"));
  CHECK(refused("http://h h/"));
  CHECK(refused("http:/h/x"));
}

TEST_CASE("asterisk-form only for OPTIONS; fragments and other forms are refused") {
  CHECK(split("*", true).form == TargetForm::Asterisk);
  CHECK(refused("*"));
  CHECK(refused("/a#b"));
  CHECK(refused("http://h/#"));
  CHECK(refused("a/b"));
  CHECK(refused(""));
  CHECK(refused("example.com:443"));
}

TEST_CASE("authority: reg-name, IPv4, IP-literal, optional port") {
  for (std::string_view good : {"a", "a.b.c", "1.2.3.4", "1.2.3.4:0", "[::]", "[2001:db8::1]:443",
                                "a:65535", "%7Eme", "sub-delims!$&'()*+,;="}) {
    CAPTURE(good);
    CHECK(isValidAuthority(good));
  }
  for (std::string_view bad : {"", ":80", "a:", "a:65536", "a:123456", "[]", "[::1", "::1", "a b",
                               "a/b", "a@b", "a\"b", "a%zz", "[v1.x]", "[::1%25eth0]", "a\x01"}) {
    CAPTURE(bad);
    CHECK_FALSE(isValidAuthority(bad));
  }
}

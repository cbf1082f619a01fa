#include "worker/http/path_normalizer.h"

#include <doctest/doctest.h>

#include <iterator>
#include <random>
#include <string>
#include <string_view>

using phalanx::worker::normalizePath;
using phalanx::worker::PathOptions;

namespace {

constexpr const char* kClimbs = "refused: path climbs above the root";
constexpr const char* kBadEscape = "refused: bad percent-encoding in path";
constexpr const char* kControl = "refused: control byte in path";

// The normalized path, or "refused: " and the reason, so a failed CHECK shows both.
std::string norm(std::string_view raw, PathOptions options = {}) {
  std::string out = "left over from the previous request";
  const char* why = nullptr;
  if (!normalizePath(raw, options, out, &why)) return std::string("refused: ") + why;
  return out;
}

std::string unmerged(std::string_view raw) {
  return norm(raw, {.merge_slashes = false});
}

// RFC 3986 5.2.2 and 5.2.3 for the path alone, against the base URI
// "http://a/b/c/d;p?q" of 5.4: a reference's query and fragment are cut off, an
// empty path keeps the base path, an absolute path stands alone, and a
// relative one is appended to the base's directory "/b/c/".
std::string resolved(std::string_view reference) {
  const std::string_view path = reference.substr(0, reference.find_first_of("?#"));
  if (path.empty()) return norm("/b/c/d;p");
  if (path[0] == '/') return norm(path);
  return norm("/b/c/" + std::string(path));
}

}  // namespace

// "g:h", "//g" and "http:g" are left out: they change the scheme or the
// authority, which is not the path's business.
TEST_CASE("RFC 3986 5.4.1 normal examples: the path of each target") {
  CHECK(resolved("g") == "/b/c/g");
  CHECK(resolved("./g") == "/b/c/g");
  CHECK(resolved("g/") == "/b/c/g/");
  CHECK(resolved("/g") == "/g");
  CHECK(resolved("?y") == "/b/c/d;p");
  CHECK(resolved("g?y") == "/b/c/g");
  CHECK(resolved("#s") == "/b/c/d;p");
  CHECK(resolved("g#s") == "/b/c/g");
  CHECK(resolved("g?y#s") == "/b/c/g");
  CHECK(resolved(";x") == "/b/c/;x");
  CHECK(resolved("g;x") == "/b/c/g;x");
  CHECK(resolved("g;x?y#s") == "/b/c/g;x");
  CHECK(resolved("") == "/b/c/d;p");
  CHECK(resolved(".") == "/b/c/");
  CHECK(resolved("./") == "/b/c/");
  CHECK(resolved("..") == "/b/");
  CHECK(resolved("../") == "/b/");
  CHECK(resolved("../g") == "/b/g");
  CHECK(resolved("../..") == "/");
  CHECK(resolved("../../") == "/");
  CHECK(resolved("../../g") == "/g");
}

TEST_CASE("RFC 3986 5.4.2 abnormal examples, except that climbing is refused") {
  // The RFC clamps these three at the root and gets "/g"; we refuse them.
  CHECK(resolved("../../../g") == kClimbs);
  CHECK(resolved("../../../../g") == kClimbs);
  CHECK(resolved("/../g") == kClimbs);
  // The rest as the RFC says.
  CHECK(resolved("/./g") == "/g");
  CHECK(resolved("g.") == "/b/c/g.");
  CHECK(resolved(".g") == "/b/c/.g");
  CHECK(resolved("g..") == "/b/c/g..");
  CHECK(resolved("..g") == "/b/c/..g");
  CHECK(resolved("./../g") == "/b/g");
  CHECK(resolved("./g/.") == "/b/c/g/");
  CHECK(resolved("g/./h") == "/b/c/g/h");
  CHECK(resolved("g/../h") == "/b/c/h");
  CHECK(resolved("g;x=1/./y") == "/b/c/g;x=1/y");
  CHECK(resolved("g;x=1/../y") == "/b/c/y");
  CHECK(resolved("g?y/./x") == "/b/c/g");
  CHECK(resolved("g?y/../x") == "/b/c/g");
  CHECK(resolved("g#s/./x") == "/b/c/g");
  CHECK(resolved("g#s/../x") == "/b/c/g");
}

TEST_CASE("the issue's bypasses of a prefix route guarding /admin") {
  CHECK(norm("/public/../admin") == "/admin");
  CHECK(norm("/%2e%2e/") == kClimbs);
  CHECK(norm("/%2e%2e/x") == kClimbs);
  CHECK(norm("/public/%2e%2e/admin") == "/admin");
  CHECK(norm("/public/%2E./admin") == "/admin");
  CHECK(norm("/public/.%2e/admin") == "/admin");
  CHECK(norm("//admin") == "/admin");
  CHECK(unmerged("//admin") == "//admin");
  CHECK(norm("/a%00b") == "refused: encoded NUL in path");
  CHECK(norm("/a%2Fb") == "/a%2Fb");
  CHECK(norm("/a%2fb") == "/a%2Fb");
  CHECK(norm("/a%2f..%2fadmin") == "/a%2F..%2Fadmin");
  CHECK(norm("/%7Euser") == "/~user");
  CHECK(norm("/%41") == "/A");
  CHECK(norm("/%e9") == "/%E9");
}

TEST_CASE("climbing above the root is refused however it is spelled") {
  CHECK(norm("/..") == kClimbs);
  CHECK(norm("/../") == kClimbs);
  CHECK(norm("/a/../..") == kClimbs);
  CHECK(norm("/a/./../../b") == kClimbs);
  CHECK(norm("/%2E%2E") == kClimbs);
  CHECK(norm("/a/../b/../..") == kClimbs);
  // Merging runs first, so "//.." is "/..". Unmerged, the ".." removes the
  // empty segment between the slashes and stays at the root, as in the RFC.
  CHECK(norm("//..") == kClimbs);
  CHECK(unmerged("//..") == "/");
  CHECK(unmerged("//../..") == kClimbs);
}

TEST_CASE("a dot-segment at the end leaves its directory's slash (RFC 3986 5.2.4)") {
  CHECK(norm("/a/b/..") == "/a/");
  CHECK(norm("/a/b/../") == "/a/");
  CHECK(norm("/a/.") == "/a/");
  CHECK(norm("/a/./") == "/a/");
  CHECK(norm("/.") == "/");
  CHECK(norm("/a/..") == "/");
  CHECK(norm("/a/%2e") == "/a/");
  CHECK(norm("/") == "/");
}

TEST_CASE("merge_slashes merges runs of '/' before dot-segments are resolved") {
  CHECK(norm("/a//b///c") == "/a/b/c");
  CHECK(norm("/a//") == "/a/");
  CHECK(norm("//") == "/");
  CHECK(norm("/a//../b") == "/b");
  CHECK(unmerged("/a//b///c") == "/a//b///c");
  CHECK(unmerged("/a//../b") == "/a/b");
  CHECK(unmerged("/.//b") == "//b");
}

TEST_CASE("unreserved escapes are decoded, the others kept in uppercase") {
  CHECK(norm("/%2D%2E%5F%7E") == "/-._~");
  CHECK(norm("/%30%39%61%7a%5a") == "/09azZ");
  CHECK(norm("/%3a%3A%25%20%3f%23") == "/%3A%3A%25%20%3F%23");
  CHECK(norm("/%c3%a9t%C3%A9") == "/%C3%A9t%C3%A9");
  CHECK(norm("/%252e%252e") == "/%252e%252e");  // "%25" is '%', which is kept encoded
}

TEST_CASE("a '%' without two hex digits after it is refused") {
  CHECK(norm("/%") == kBadEscape);
  CHECK(norm("/%4") == kBadEscape);
  CHECK(norm("/%zz") == kBadEscape);
  CHECK(norm("/%4g") == kBadEscape);
  CHECK(norm("/%/a") == kBadEscape);
  CHECK(norm("/%4/a") == kBadEscape);
  CHECK(norm("/a%") == kBadEscape);
  CHECK(norm("/%%41") == kBadEscape);
}

TEST_CASE("control bytes are refused, raw or encoded") {
  CHECK(norm("/%00") == "refused: encoded NUL in path");
  CHECK(norm(std::string_view("/a\0b", 4)) == kControl);
  CHECK(norm("/a\tb") == kControl);
  CHECK(norm("/a\r\n") == kControl);
  CHECK(norm("/\x1f") == kControl);
  CHECK(norm("/\x7f") == kControl);
  CHECK(norm("/%01") == kControl);
  CHECK(norm("/%0a") == kControl);
  CHECK(norm("/%0D%0A") == kControl);
  CHECK(norm("/%1F") == kControl);
  CHECK(norm("/%7f") == kControl);
  CHECK(norm("/a/../\x01") == kControl);
}

TEST_CASE("bytes 0x80-0xFF are kept raw") {
  CHECK(norm("/caf\xC3\xA9") == "/caf\xC3\xA9");
  CHECK(norm("/\x80\xff/./x") == "/\x80\xff/x");
  CHECK(norm("/%41\xfe") == "/A\xfe");
}

TEST_CASE("a path that is already normal comes back unchanged") {
  for (const char* path : {"/", "/api/v1/users", "/a/b/", "/.well-known/x", "/a/.../b", "/a/..b/",
                           "/a./", "/...", "/a;p=1,2", "/~user/-_.x"}) {
    CAPTURE(path);
    CHECK(norm(path) == path);
    CHECK(unmerged(path) == path);
  }
}

TEST_CASE("a target that does not start with '/' is refused (the caller's check, defended)") {
  CHECK(norm("") == "refused: path does not start with '/'");
  CHECK(norm("a/b") == "refused: path does not start with '/'");
}

TEST_CASE("normalizing twice gives the same path (pseudo-random paths, fixed seed)") {
  static constexpr const char* kPieces[] = {"/",   ".",   "..", "%2e", "%2E",
                                            "%2f", "%41", "a",  "%",   "//"};
  std::mt19937 random(20240917);
  int normalized = 0;
  for (int n = 0; n < 400; ++n) {
    std::string raw = "/";
    const int pieces = static_cast<int>(random() % 12);
    for (int i = 0; i < pieces; ++i) raw += kPieces[random() % std::size(kPieces)];
    for (const bool merge : {true, false}) {
      CAPTURE(raw);
      CAPTURE(merge);
      const std::string once = norm(raw, {.merge_slashes = merge});
      if (once.starts_with("refused: ")) continue;
      ++normalized;
      CHECK(once.starts_with("/"));
      CHECK(norm(once, {.merge_slashes = merge}) == once);
      if (merge) CHECK(once.find("//") == std::string::npos);
    }
  }
  CHECK(normalized > 200);  // the property was not checked on refusals alone
}

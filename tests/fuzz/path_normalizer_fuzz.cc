// Fuzzing of the path normalizer: for any bytes, normalizePath() must not
// crash, and what it returns must be a path no prefix route can be bypassed
// with: rooted, no dot-segment, no escape of an unreserved character, no NUL
// or control byte, no repeated '/' when merging, and a fixed point (normalizing
// it again changes nothing).
//
// Input: the first byte picks merge_slashes (its low bit); the rest is the path.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "worker/http/path_normalizer.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view path) {
  std::fprintf(stderr, "path_normalizer_fuzz: %s: %.*s\n", what, static_cast<int>(path.size()),
               path.data());
  __builtin_trap();
}

bool isUpperHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int hexValue(char c) {
  return c <= '9' ? c - '0' : c - 'A' + 10;
}

bool isUnreserved(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void checkNormal(std::string_view out, bool merge) {
  if (out.empty() || out.front() != '/') fail("result not rooted", out);
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(out[i]);
    if (c < 0x20 || c == 0x7f) fail("control byte in the result", out);
    if (c == '%') {
      if (i + 2 >= out.size() || !isUpperHex(out[i + 1]) || !isUpperHex(out[i + 2]))
        fail("escape not two uppercase hex digits", out);
      int decoded = hexValue(out[i + 1]) * 16 + hexValue(out[i + 2]);
      if (isUnreserved(decoded)) fail("escaped unreserved character kept", out);
      if (decoded < 0x20 || decoded == 0x7f) fail("escaped control byte kept", out);
    }
  }
  size_t start = 1;
  while (start <= out.size()) {
    size_t end = out.find('/', start);
    if (end == std::string_view::npos) end = out.size();
    std::string_view segment = out.substr(start, end - start);
    if (segment == "." || segment == "..") fail("dot-segment in the result", out);
    if (merge && segment.empty() && end < out.size()) fail("repeated '/' with merge_slashes", out);
    start = end + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  phalanx::worker::PathOptions options{.merge_slashes = (data[0] & 1) != 0};
  std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string out;
  const char* why = nullptr;
  if (!phalanx::worker::normalizePath(raw, options, out, &why)) {
    if (why == nullptr || *why == '\0') fail("refused without a reason", raw);
    return 0;
  }
  checkNormal(out, options.merge_slashes);
  std::string again;
  if (!phalanx::worker::normalizePath(out, options, again, &why)) fail("result refused", out);
  if (again != out) fail("not a fixed point", out);
  return 0;
}

// Fuzzing of the response cache's shared-level format: parseCachedResponse()
// reads what Redis hands back, which another version, a truncated write or
// anything else may have put there. For any bytes it must not crash, and what
// it accepts must be servable: a status of three digits, a lifetime left, a
// head of "Name: value\r\n" lines that cannot split a response, lower-case
// token Vary names. The format has one encoding per response, so serializing
// an accepted record at the same instant gives the input back byte for byte.
// An accepted response must also go through a ResponseCache: stored (when
// small enough), found again by a request with its Vary values.
//
// Input: the bytes as stored (the seeds are records); each is read at three
// instants, 0, one in the middle and one near the clock's end (the lifetime
// left must not overflow it).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "worker/gateway/response_cache.h"

namespace {

using phalanx::worker::CachedResponse;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "cached_response_fuzz: %s\n", what);
  __builtin_trap();
}

bool isTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void checkHead(std::string_view head) {
  while (!head.empty()) {
    size_t end = head.find("\r\n");
    if (end == std::string_view::npos) fail("a head line without CRLF");
    std::string_view line = head.substr(0, end);
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) fail("a head line without a name");
    for (size_t i = 0; i < colon; ++i) {
      if (!isTokenChar(line[i])) fail("a head field name not a token");
    }
    for (char c : line.substr(colon + 1)) {
      if (c == '\r' || c == '\n' || c == '\0') fail("CR, LF or NUL in a head field value");
    }
    head.remove_prefix(end + 2);
  }
}

void checkCache(const CachedResponse& r, uint64_t now_ms) {
  phalanx::worker::ResponseCache cache(uint64_t{1} << 20);
  std::string key = phalanx::worker::cacheKey("example.com", "/", "");
  if (!cache.store(key, r)) return;  // too large for this cache
  // A request with the stored Vary values, when they can all hold at once.
  for (const auto& [name, value] : r.vary) {
    for (const auto& [other, other_value] : r.vary) {
      if (name == other && value != other_value) return;
    }
  }
  auto header = [&](std::string_view name) -> std::string_view {
    for (const auto& [n, v] : r.vary) {
      if (n == name) return v;
    }
    return {};
  };
  auto hit = cache.find(key, header, now_ms);
  if (hit == nullptr) fail("a stored response is not found");
  if (hit->body != r.body || hit->head != r.head) fail("the cache found another response");
  if (cache.find(key, header, r.expires_ms) != nullptr) fail("a stale response is found");
}

void check(std::string_view input, uint64_t now_ms) {
  std::optional<CachedResponse> r = phalanx::worker::parseCachedResponse(input, now_ms);
  if (!r) return;
  if (r->status < 100 || r->status > 999) fail("a status not of three digits");
  if (r->stored_ms != now_ms) fail("stored_ms is not the instant of reading");
  if (r->expires_ms <= now_ms) fail("no lifetime left");
  checkHead(r->head);
  for (const auto& [name, value] : r->vary) {
    if (name.empty()) fail("an empty Vary name");
    for (char c : name) {
      if (!isTokenChar(c) || (c >= 'A' && c <= 'Z')) fail("a Vary name not a lower-case token");
    }
  }
  if (phalanx::worker::ageSeconds(*r, now_ms) != r->age_at_store_s) fail("age moved at once");
  if (phalanx::worker::serializeCachedResponse(*r, now_ms) != input)
    fail("serializing an accepted record does not give it back");
  checkCache(*r, now_ms);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check(input, 0);
  check(input, uint64_t{1} << 40);
  check(input, std::numeric_limits<uint64_t>::max() - 1000);
  return 0;
}

// ASCII tests the client side shares, spelled out because <cctype> answers by
// locale and libc's strncasecmp showed in profiles.
#pragma once

#include <string_view>

namespace phalanx::worker {

// `lower` must be lowercase ASCII.
inline bool equalsLowercase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    if (c != lower[i]) return false;
  }
  return true;
}

// Optional whitespace in HTTP (RFC 9110 5.6.3): SP or HTAB.
inline bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

// The value of a hex digit, or -1.
inline int hexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace phalanx::worker

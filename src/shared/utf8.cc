#include "shared/utf8.h"

namespace phalanx::shared {

Utf8Sequence nextUtf8(std::string_view text) {
  if (text.empty()) return {0, false};
  auto lead = static_cast<unsigned char>(text[0]);
  if (lead < 0x80) return {1, true};
  // The continuation bytes needed, and the range of the first one: E0, ED, F0
  // and F4 narrow it to exclude overlong forms, surrogates and > U+10FFFF.
  size_t need = 0;
  unsigned char low = 0x80, high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    need = 1;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    need = 2;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 3;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return {1, false};  // a continuation byte, C0/C1 (overlong) or F5..FF
  }
  for (size_t i = 1; i <= need; ++i) {
    if (i >= text.size()) return {i, false};
    auto c = static_cast<unsigned char>(text[i]);
    if (c < low || c > high) return {i, false};
    low = 0x80;
    high = 0xbf;
  }
  return {need + 1, true};
}

bool isValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    Utf8Sequence s = nextUtf8(text.substr(i));
    if (!s.valid) return false;
    i += s.length;
  }
  return true;
}

}  // namespace phalanx::shared

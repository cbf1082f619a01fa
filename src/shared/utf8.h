// UTF-8 well-formedness, for text that came from outside (a request line, a
// header, a control-socket command) and must go into JSON, which is UTF-8 only.
//
// "Well-formed" is Unicode's Table 3-7: no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF, no stray continuation bytes.
#pragma once

#include <cstddef>
#include <string_view>

namespace phalanx::shared {

struct Utf8Sequence {
  size_t length;  // bytes consumed, at least 1 unless `text` was empty
  bool valid;     // a well-formed character; else `length` bytes are one ill-formed piece
};

// The sequence at the start of `text`. An ill-formed piece is Unicode's
// "maximal subpart" (what a decoder replaces by one U+FFFD, as Python and
// browsers do): the lead byte and the continuation bytes that still fitted.
Utf8Sequence nextUtf8(std::string_view text);

// True if every byte of `text` belongs to a well-formed sequence.
bool isValidUtf8(std::string_view text);

}  // namespace phalanx::shared

// The path routes match, made from the path a client sent (what Envoy's
// normalize_path and merge_slashes do), so that `/public/../admin`, `/%2e%2e/`
// and `//admin` cannot slip past a prefix route that guards `/admin`.
//
// Contract of normalizePath(raw, options, out):
// - `raw` is the path part of a request target (no query, no fragment); it
//   starts with '/' (the caller checked).
// - Percent-encoded unreserved characters (RFC 3986 2.3: ALPHA DIGIT - . _ ~)
//   are decoded; every other escape is kept, its hex digits made uppercase
//   (RFC 3986 6.2.2.1). `%2F` stays encoded: it is never a path separator.
// - Dot-segments are removed as RFC 3986 5.2.4 says, after that decoding
//   (so `%2e%2e` is `..`).
// - With options.merge_slashes, runs of '/' become one.
// - Refused (returns false, `out` unspecified, `*why` set to a short reason
//   for the 400): `%00` or any other encoded or raw control byte (0x00-0x1F,
//   0x7F), a '%' not followed by two hex digits, and a path whose dot-segments
//   climb above the root (`/..`, `/a/../..`).
// - Bytes 0x80-0xFF are kept as they came (a client's raw UTF-8).
// - On success `out` holds the normalized path, starting with '/'. A path that
//   is already normal (no '%', no dot-segment, no repeated '/') is copied
//   unchanged after one scan: the common case costs a memcpy.
// - Idempotent: normalizing the result again gives the same result.
// - Never allocates beyond growing `out` (reuse it across requests).
#pragma once

#include <string>
#include <string_view>

namespace phalanx::worker {

struct PathOptions {
  bool merge_slashes = true;
};

bool normalizePath(std::string_view raw, const PathOptions& options, std::string& out,
                   const char** why);

}  // namespace phalanx::worker

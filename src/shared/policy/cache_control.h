// Cache-Control for phalanx's shared response cache (RFC 9111): what the
// directives say, how long a response may be kept, and what a request asks of
// the cache.
//
// Parsing (RFC 9111 5.2): a comma list of `name [= token | quoted-string]`,
// names case-insensitive, empty list elements and optional whitespace allowed,
// a quoted-string argument may hold commas and backslash escapes. Several
// Cache-Control fields mean their concatenation: mergeCacheControl() adds one
// more field value to what earlier ones said. Unknown directives are ignored
// (5.2.3).
//
// Malformed input never makes a response more cacheable:
// - max-age and s-maxage take delta-seconds (1*DIGIT, also in quotes: "5").
//   A missing or malformed value counts as 0, a stale response (4.2.1: invalid
//   freshness information); a value past 2^31 counts as 2^31 (1.2.2).
// - A directive repeated keeps its first value (4.2.1), across fields too.
// - no-store, no-cache, private and must-revalidate apply whatever follows
//   their name (an argument, garbage); public only when well formed.
// - no-cache="field" and private="field" (the qualified forms, 5.2.2.4 and
//   5.2.2.7) count as their unqualified forms: the whole response, not only the
//   named fields (allowed, and simpler than storing part of a response).
//
// Storing (storeTtlMs) and the request side (requestCacheMode) are stated at
// their declarations. phalanx never revalidates and never serves a stale
// response, so no-cache means "do not store" and must-revalidate holds
// trivially.
//
// Pure functions over plain data; nothing here reads a clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace phalanx::shared::policy {

struct CacheDirectives {
  bool no_store = false;
  bool no_cache = false;
  bool private_ = false;
  bool public_ = false;
  bool must_revalidate = false;
  std::optional<uint64_t> max_age_s;   // seconds, at most kMaxDeltaSeconds
  std::optional<uint64_t> s_maxage_s;  // seconds, at most kMaxDeltaSeconds
};

// RFC 9111 1.2.2: the greatest delta-seconds a cache needs to represent.
inline constexpr uint64_t kMaxDeltaSeconds = uint64_t{1} << 31;

// The directives of one Cache-Control field value ("" gives none).
CacheDirectives parseCacheControl(std::string_view value);

// Adds the directives of one more Cache-Control field value of the same
// message: flags accumulate, max-age and s-maxage keep their first value.
void mergeCacheControl(CacheDirectives& directives, std::string_view value);

// What a response and its request say about storing the response.
struct StoreInput {
  int status;
  const CacheDirectives& response;
  bool has_set_cookie;
  bool vary_star;                // Vary: * (never matches a later request, RFC 9111 4.1)
  bool request_had_credentials;  // the request carried Authorization
  bool shared_with_credentials;  // the route lets authorized responses be shared
  uint64_t route_ttl_ms;         // the route's lifetime when the upstream gives none
  // The upstream's Age header (seconds): the time the response has already
  // spent in caches before phalanx, deducted from its lifetime (RFC 9111 4.2).
  uint64_t age_s = 0;
  // Expires minus Date in seconds, when the upstream sent Expires (RFC 9111
  // 5.3); 0 for an Expires in the past or invalid ("Expires: 0"). Counts only
  // without s-maxage and max-age, which override it.
  std::optional<uint64_t> expires_lifetime_s = std::nullopt;
};

// How long a shared cache may keep the response, in milliseconds; 0 = do not
// store. In order:
// - only 200..299, and not 206 (phalanx stores whole responses only);
// - Vary: *, no-store, private or no-cache: 0 (no revalidation, see above);
// - Set-Cookie: 0 unless public (the cached head never replays Set-Cookie);
// - a request with credentials: 0 unless the route shares such responses or
//   the response says public or s-maxage (RFC 9111 3.5; its must-revalidate
//   case is left out on purpose: not storing is never wrong);
// - lifetime = s-maxage, else max-age, else Expires, else route_ttl_ms; the
//   upstream's explicit lifetime wins over the route's, longer or shorter;
// - minus age_s, down to 0; saturating, never overflowing.
uint64_t storeTtlMs(const StoreInput& in);

// What a request's own Cache-Control asks of the cache (RFC 9111 5.2.1).
enum class RequestCacheMode {
  Use,      // a fresh stored response may answer it
  Refresh,  // no-cache or max-age=0: do not answer from the cache, fetch and store
  Bypass,   // no-store: neither answer from the cache nor store the response
};
RequestCacheMode requestCacheMode(const CacheDirectives& request);

// Request max-age=N > 0 (mode Use): a stored response older than N seconds
// does not answer it (fetch and store instead). True when `age_s` is acceptable.
bool acceptsAge(const CacheDirectives& request, uint64_t age_s);

}  // namespace phalanx::shared::policy

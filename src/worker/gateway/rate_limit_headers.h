// The rate-limit response headers: what a client is told about the limits
// that applied to its request, on every response of a limited route and on
// the 429 that refuses it.
//
// Two styles (config "headers"):
// - Draft, the default: draft-ietf-httpapi-ratelimit-headers as it stands
//   (structured fields, one list item per limit, named by its config key):
//     RateLimit-Policy: "per_ip";q=100;w=60, "per_key";q=1000;w=3600
//     RateLimit: "per_ip";r=99;t=60, "per_key";r=999;t=3600
// - Draft6: the draft-06 fields many clients still read; the three numbers
//   are those of the most restrictive limit (lowest remaining; on a tie the
//   later reset; then the first listed), and the policy lists every limit:
//     RateLimit-Limit: 100
//     RateLimit-Remaining: 99
//     RateLimit-Reset: 60
//     RateLimit-Policy: 100;w=60, 1000;w=3600
//
// Names are emitted as sf-strings: '"' and '\' are escaped, bytes outside
// 0x20..0x7e dropped (config keys are text; this keeps a header line one
// line whatever a config says). Pure: no clock, no allocation but `out`'s.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace phalanx::worker {

enum class RateLimitHeaderStyle { Draft, Draft6 };  // config "headers": "draft" | "draft-6"

struct AppliedLimit {
  std::string_view name;  // the limit's config key
  uint64_t limit;         // the bucket size: requests at once (q=, RateLimit-Limit)
  uint64_t window_s;      // the configured period (w=)
  uint64_t remaining;     // after this request (r=, RateLimit-Remaining)
  uint64_t reset_s;       // until the bucket is full again (t=, RateLimit-Reset)
};

// Appends the header lines, each ending "\r\n", for `count` limits (none for
// 0) to `out`.
void appendRateLimitHeaders(std::string& out, RateLimitHeaderStyle style,
                            const AppliedLimit* limits, size_t count);

// The 429's Retry-After value in whole seconds: rounded up, at least 1.
uint64_t retryAfterSeconds(uint64_t retry_after_ms);

}  // namespace phalanx::worker

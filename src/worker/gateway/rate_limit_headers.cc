#include "worker/gateway/rate_limit_headers.h"

#include <algorithm>
#include <charconv>

namespace phalanx::worker {

namespace {

void appendNumber(std::string& out, uint64_t value) {
  char digits[20];  // 2^64 − 1 has 20
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  (void)ec;  // cannot fail: the buffer holds any uint64_t
  out.append(digits, end);
}

// An sf-string (RFC 8941 §3.3.3): DQUOTE, printable ASCII with '"' and '\'
// escaped, DQUOTE. Anything else cannot be in one, so it is dropped.
void appendSfString(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void appendDraft(std::string& out, const AppliedLimit* limits, size_t count) {
  out += "RateLimit-Policy: ";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out += ", ";
    appendSfString(out, limits[i].name);
    out += ";q=";
    appendNumber(out, limits[i].limit);
    out += ";w=";
    appendNumber(out, limits[i].window_s);
  }
  out += "\r\nRateLimit: ";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out += ", ";
    appendSfString(out, limits[i].name);
    out += ";r=";
    appendNumber(out, limits[i].remaining);
    out += ";t=";
    appendNumber(out, limits[i].reset_s);
  }
  out += "\r\n";
}

// Lowest remaining; on a tie the one that takes longer to refill; then the first.
const AppliedLimit& mostRestrictive(const AppliedLimit* limits, size_t count) {
  const AppliedLimit* best = &limits[0];
  for (size_t i = 1; i < count; ++i) {
    const AppliedLimit& l = limits[i];
    if (l.remaining < best->remaining ||
        (l.remaining == best->remaining && l.reset_s > best->reset_s)) {
      best = &l;
    }
  }
  return *best;
}

void appendDraft6(std::string& out, const AppliedLimit* limits, size_t count) {
  const AppliedLimit& top = mostRestrictive(limits, count);
  out += "RateLimit-Limit: ";
  appendNumber(out, top.limit);
  out += "\r\nRateLimit-Remaining: ";
  appendNumber(out, top.remaining);
  out += "\r\nRateLimit-Reset: ";
  appendNumber(out, top.reset_s);
  out += "\r\nRateLimit-Policy: ";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out += ", ";
    appendNumber(out, limits[i].limit);
    out += ";w=";
    appendNumber(out, limits[i].window_s);
  }
  out += "\r\n";
}

}  // namespace

void appendRateLimitHeaders(std::string& out, RateLimitHeaderStyle style,
                            const AppliedLimit* limits, size_t count) {
  if (count == 0) return;
  switch (style) {
    case RateLimitHeaderStyle::Draft: appendDraft(out, limits, count); return;
    case RateLimitHeaderStyle::Draft6: appendDraft6(out, limits, count); return;
  }
}

uint64_t retryAfterSeconds(uint64_t retry_after_ms) {
  return std::max<uint64_t>(1, retry_after_ms / 1000 + (retry_after_ms % 1000 != 0));
}

}  // namespace phalanx::worker

#include "shared/policy/gcra.h"

#include <algorithm>

namespace phalanx::shared::policy {

namespace {

uint64_t ceilDiv(uint64_t a, uint64_t b) {
  return a / b + (a % b != 0);
}

uint64_t saturatingAdd(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

}  // namespace

GcraParams gcraParams(uint64_t count, uint64_t period_ms, uint64_t burst) {
  count = std::max<uint64_t>(1, count);
  period_ms = std::max<uint64_t>(1, period_ms);
  uint64_t period_us = std::min(period_ms, kGcraMaxToleranceUs / 1000) * 1000;
  uint64_t interval = std::max<uint64_t>(1, ceilDiv(period_us, count));
  uint64_t limit = burst == 0 ? count : burst;
  limit = std::min(limit, kGcraMaxToleranceUs / interval);  // interval <= cap: limit >= 1
  return {.limit = limit,
          .emission_interval_us = interval,
          .tolerance_us = interval * limit,
          .window_ms = period_ms};
}

GcraDecision gcraDecide(const GcraParams& p, uint64_t tat_us, uint64_t now_us) {
  // Defaulted params (T = 0) must not divide by zero; they refuse everything.
  uint64_t interval = std::max<uint64_t>(1, p.emission_interval_us);
  uint64_t new_tat = saturatingAdd(std::max(tat_us, now_us), interval);
  uint64_t ahead = new_tat - now_us;  // >= interval
  if (ahead <= p.tolerance_us) {
    return {.allowed = true,
            .new_tat_us = new_tat,
            .remaining = (p.tolerance_us - ahead) / interval,
            .reset_ms = ceilDiv(ahead, 1000),
            .retry_after_ms = 0};
  }
  uint64_t backlog = tat_us > now_us ? tat_us - now_us : 0;
  return {.allowed = false,
          .new_tat_us = tat_us,
          .remaining = 0,
          .reset_ms = ceilDiv(backlog, 1000),
          .retry_after_ms = std::max<uint64_t>(1, ceilDiv(ahead - p.tolerance_us, 1000))};
}

}  // namespace phalanx::shared::policy

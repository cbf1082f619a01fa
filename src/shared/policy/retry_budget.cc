#include "shared/policy/retry_budget.h"

#include <algorithm>
#include <optional>

#include "shared/policy/time_window.h"

namespace phalanx::shared::policy {

namespace {

// Bucket payload: requests (24-47) | retries (0-23).
constexpr uint64_t kCountMax = (uint64_t{1} << 24) - 1;

uint64_t widthOf(const RetryBudgetOptions& options) {
  return time_window::bucketWidth(options.window_ms, kRetryBuckets);
}

uint64_t requestsOf(uint64_t payload) {
  return time_window::field(payload, 24, 24);
}
uint64_t retriesOf(uint64_t payload) {
  return time_window::field(payload, 0, 24);
}

}  // namespace

void countRequest(RetryBudgetCell& cell, const RetryBudgetOptions& options, uint64_t now_ms) {
  time_window::add(cell.buckets, kRetryBuckets, widthOf(options), now_ms,
                   [](uint64_t payload) -> std::optional<uint64_t> {
                     uint64_t requests = requestsOf(payload);
                     if (requests >= kCountMax) return std::nullopt;
                     return ((requests + 1) << 24) | retriesOf(payload);
                   });
}

bool tryRetry(RetryBudgetCell& cell, const RetryBudgetOptions& options, uint64_t now_ms) {
  RetryBudgetView window = view(cell, options, now_ms);
  double budget = std::max(static_cast<double>(options.min_retries),
                           options.ratio * static_cast<double>(window.requests));
  if (static_cast<double>(window.retries) >= budget) return false;
  // A saturated bucket cannot count the retry, so it is not granted either.
  return time_window::add(cell.buckets, kRetryBuckets, widthOf(options), now_ms,
                          [](uint64_t payload) -> std::optional<uint64_t> {
                            uint64_t retries = retriesOf(payload);
                            if (retries >= kCountMax) return std::nullopt;
                            return (requestsOf(payload) << 24) | (retries + 1);
                          });
}

RetryBudgetView view(const RetryBudgetCell& cell, const RetryBudgetOptions& options,
                     uint64_t now_ms) {
  RetryBudgetView v{0, 0};
  time_window::forEach(cell.buckets, kRetryBuckets, widthOf(options), now_ms,
                       [&](uint64_t payload) {
                         v.requests += requestsOf(payload);
                         v.retries += retriesOf(payload);
                       });
  return v;
}

}  // namespace phalanx::shared::policy

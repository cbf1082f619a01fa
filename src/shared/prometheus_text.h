// Prometheus text exposition (format 0.0.4): the pieces every /metrics family
// is written with, shared by the worker and upstream metrics. No I/O; the
// caller takes the text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shared/histogram.h"

namespace phalanx::shared {

// A Prometheus label value with backslash, double quote and newline escaped.
std::string escapeLabelValue(std::string_view value);

// `name="value"`, the value escaped.
std::string label(std::string_view name, std::string_view value);

// `value` / 10^decimals in plain decimal, trailing zeros trimmed: 250 µs with 6
// decimals is "0.00025", 10'000'000 µs is "10". Exact, unlike a double.
void appendScaled(std::string& out, uint64_t value, int decimals);

// One family at a time: family() writes HELP and TYPE, then its samples follow.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);

  // `labels` is already rendered: `code="2xx"`, or empty.
  void sample(std::string_view name, std::string_view labels, uint64_t value);

  // A value in units of 10^-decimals (milliseconds: 3, microseconds: 6).
  void sampleScaled(std::string_view name, std::string_view labels, uint64_t value, int decimals);

  // The samples of a latency histogram family `name` (in seconds): cumulative
  // _bucket{le} at the kLatencyBoundsUs bounds and +Inf, _sum, _count. `labels`
  // (rendered, may be empty) go before `le`. `buckets` are per-bucket counts.
  void latencyHistogram(std::string_view name, std::string_view labels,
                        const uint64_t (&buckets)[kLatencyBuckets], uint64_t sum_us);

  std::string take() { return std::move(out_); }

 private:
  void begin(std::string_view name, std::string_view labels);

  std::string out_;
};

}  // namespace phalanx::shared

#include "shared/prometheus_text.h"

#include <cstdio>

namespace phalanx::shared {

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string label(std::string_view name, std::string_view value) {
  std::string text(name);
  text += "=\"";
  text += escapeLabelValue(value);
  text += '"';
  return text;
}

void appendScaled(std::string& out, uint64_t value, int decimals) {
  uint64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  out += std::to_string(value / scale);
  uint64_t fraction = value % scale;
  if (fraction == 0) return;
  char digits[24];
  std::snprintf(digits, sizeof digits, "%0*llu", decimals,
                static_cast<unsigned long long>(fraction));
  std::string_view text(digits);
  while (text.back() == '0') text.remove_suffix(1);
  out += '.';
  out += text;
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += help;
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::sample(std::string_view name, std::string_view labels, uint64_t value) {
  begin(name, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}

void Exposition::sampleScaled(std::string_view name, std::string_view labels, uint64_t value,
                              int decimals) {
  begin(name, labels);
  appendScaled(out_, value, decimals);
  out_ += '\n';
}

void Exposition::latencyHistogram(std::string_view name, std::string_view labels,
                                  const uint64_t (&buckets)[kLatencyBuckets], uint64_t sum_us) {
  std::string bucket_name = std::string(name) + "_bucket";
  std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i + 1 < kLatencyBuckets; ++i) {
    cumulative += buckets[i];
    std::string le;
    appendScaled(le, kLatencyBoundsUs[i], 6);
    sample(bucket_name, prefix + label("le", le), cumulative);
  }
  cumulative += buckets[kLatencyBuckets - 1];
  sample(bucket_name, prefix + label("le", "+Inf"), cumulative);
  sampleScaled(std::string(name) + "_sum", labels, sum_us, 6);
  sample(std::string(name) + "_count", labels, cumulative);
}

void Exposition::begin(std::string_view name, std::string_view labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ';
}

}  // namespace phalanx::shared

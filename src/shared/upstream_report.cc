#include "shared/upstream_report.h"

#include <string>

namespace phalanx::shared {

namespace {

void writeQuantile(JsonWriter& w, const char* name, const TargetView& t, double q) {
  w.key(name);
  if (auto ms = latencyQuantileMs(t.latency_buckets, q)) {
    w.value(*ms);
  } else {
    w.null();
  }
}

void writeTarget(JsonWriter& w, const TargetView& t) {
  w.beginObject();
  w.field("address", t.address);
  w.field("state", recordStateName(t.state));
  w.key("health");
  w.beginObject();
  w.field("up", t.healthy);
  w.field("passes", t.health_passes);
  w.field("fails", t.health_fails);
  w.field("checks", t.health_checks);
  w.endObject();
  w.key("breaker");
  w.beginObject();
  w.field("state", policy::breakerStateName(t.breaker.state));
  w.field("since_ms", t.breaker_changed_wall_ms);
  w.field("transitions", t.breaker.transitions);
  w.field("consecutive_failures", t.breaker.consecutive_failures);
  w.field("window_calls", t.breaker.window_calls);
  w.field("window_failures", t.breaker.window_failures);
  w.endObject();
  w.field("in_flight", t.in_flight);
  w.field("requests", t.requests);
  w.field("failures", t.failures);
  w.field("last_status", t.last_status);
  w.key("latency_ms");
  w.beginObject();
  writeQuantile(w, "p50", t, 0.5);
  writeQuantile(w, "p99", t, 0.99);
  w.endObject();
  w.key("latency_us");
  w.beginObject();
  w.key("counts");
  w.beginArray();
  for (uint64_t count : t.latency_buckets) w.value(count);
  w.endArray();
  w.field("sum", t.latency_sum_us);
  w.endObject();
  w.endObject();
}

std::string targetLabels(const TargetView& t) {
  return label("upstream", t.upstream) + "," + label("target", t.address);
}

// One sample per target of a family.
template <typename Value>
void perTarget(Exposition& e, const Snapshot& s, const char* name, const char* type,
               const char* help, Value value) {
  e.family(name, type, help);
  for (const TargetView& t : s.targets) e.sample(name, targetLabels(t), value(t));
}

template <typename Value>
void perUpstream(Exposition& e, const Snapshot& s, const char* name, const char* help,
                 Value value) {
  e.family(name, "counter", help);
  for (const UpstreamView& u : s.upstreams) e.sample(name, label("upstream", u.name), value(u));
}

}  // namespace

void writeUpstreams(JsonWriter& w, const Snapshot& s) {
  w.key("upstreams");
  w.beginArray();
  for (const UpstreamView& u : s.upstreams) {
    w.beginObject();
    w.field("name", u.name);
    w.field("state", recordStateName(u.state));
    w.field("requests", u.requests);
    w.field("retries", u.retries);
    w.field("retry_budget_exhausted", u.retry_budget_exhausted);
    w.field("no_target", u.no_target);
    w.field("breaker_refusals", u.breaker_refusals);
    w.key("targets");
    w.beginArray();
    for (const TargetView& t : s.targets) {
      if (t.upstream == u.name) writeTarget(w, t);
    }
    w.endArray();
    w.endObject();
  }
  w.endArray();
}

void upstreamMetrics(Exposition& e, const Snapshot& s) {
  if (s.upstreams.empty() && s.targets.empty()) return;
  perTarget(e, s, "phalanx_upstream_requests_total", "counter",
            "Attempts sent to each upstream target, retries included.",
            [](const TargetView& t) { return t.requests; });
  perTarget(e, s, "phalanx_upstream_failures_total", "counter",
            "Attempts that failed: connect errors, resets, timeouts, 5xx the breaker counts.",
            [](const TargetView& t) { return t.failures; });
  perTarget(e, s, "phalanx_upstream_in_flight", "gauge",
            "Requests sent to each target and not yet answered, over every worker.",
            [](const TargetView& t) { return t.in_flight; });
  perTarget(e, s, "phalanx_upstream_healthy", "gauge",
            "1 while the target passes its health checks (or has none), else 0.",
            [](const TargetView& t) { return uint64_t{t.healthy}; });
  perTarget(e, s, "phalanx_breaker_state", "gauge",
            "Circuit breaker state: 0 closed, 1 open, 2 half_open.",
            [](const TargetView& t) { return static_cast<uint64_t>(t.breaker.state); });
  perTarget(e, s, "phalanx_breaker_transitions_total", "counter",
            "Circuit breaker state changes of each target.",
            [](const TargetView& t) { return t.breaker.transitions; });
  e.family("phalanx_upstream_latency_seconds", "histogram",
           "Time from sending a request to a target to its response head.");
  for (const TargetView& t : s.targets) {
    e.latencyHistogram("phalanx_upstream_latency_seconds", targetLabels(t), t.latency_buckets,
                       t.latency_sum_us);
  }
  perUpstream(e, s, "phalanx_upstream_retries_total", "Attempts after a request's first.",
              [](const UpstreamView& u) { return u.retries; });
  perUpstream(e, s, "phalanx_upstream_retry_budget_exhausted_total",
              "Retries not made because the upstream's retry budget was spent.",
              [](const UpstreamView& u) { return u.retry_budget_exhausted; });
  perUpstream(e, s, "phalanx_upstream_no_target_total",
              "Requests answered 503 because no target was usable.",
              [](const UpstreamView& u) { return u.no_target; });
  perUpstream(e, s, "phalanx_upstream_breaker_refusals_total",
              "Attempts a target's open circuit breaker refused.",
              [](const UpstreamView& u) { return u.breaker_refusals; });
}

std::optional<double> latencyQuantileMs(const uint64_t (&buckets)[kLatencyBuckets], double q) {
  uint64_t total = 0;
  for (uint64_t count : buckets) total += count;
  if (total == 0) return std::nullopt;
  double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    if (buckets[i] == 0 || static_cast<double>(below + buckets[i]) < rank) {
      below += buckets[i];
      continue;
    }
    if (i + 1 == kLatencyBuckets) break;  // above every bound
    double lower = i == 0 ? 0.0 : static_cast<double>(kLatencyBoundsUs[i - 1]);
    double upper = static_cast<double>(kLatencyBoundsUs[i]);
    double fraction = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
    return (lower + (upper - lower) * fraction) / 1000.0;
  }
  return static_cast<double>(kLatencyBoundsUs[kLatencyBuckets - 2]) / 1000.0;
}

}  // namespace phalanx::shared

#include "worker/gateway/upstream_group.h"

#include "shared/histogram.h"
#include "shared/shm.h"

namespace phalanx::worker {

namespace policy = shared::policy;

namespace {

void add(std::atomic<uint64_t>* counter, uint64_t by = 1) {
  if (counter != nullptr) counter->fetch_add(by, std::memory_order_relaxed);
}

}  // namespace

UpstreamGroup::UpstreamGroup(std::string name, const shared::UpstreamConfig& config,
                             std::vector<Target> targets, UpstreamCells cells,
                             uint64_t random_seed)
    : name_(std::move(name)),
      config_(config),
      targets_(std::move(targets)),
      cells_(cells),
      random_(random_seed | 1) {
  const shared::BreakerConfig& b = config.breaker;
  breaker_options_ = {.consecutive_failures = b.consecutive_failures,
                      .failure_rate = b.failure_rate,
                      .minimum_calls = b.minimum_calls,
                      .window_ms = b.window_ms,
                      .open_ms = b.open_ms,
                      .half_open_calls = b.half_open_calls,
                      .slow_call_ms = b.slow_call_ms,
                      .slow_call_rate = b.slow_call_rate};
  budget_options_ = {.ratio = config.retry_budget.ratio,
                     .window_ms = config.retry_budget.window_ms,
                     .min_retries = config.retry_budget.min_retries};
  candidates_.resize(targets_.size());
}

// Health says down, or the breaker is open and not yet due to half-open.
// Half-open (and due) targets are candidates: admit() decides on the probe.
bool UpstreamGroup::usable(const Target& target, uint64_t now_ms) const {
  if (target.cells.health != nullptr &&
      target.cells.health->down.load(std::memory_order_relaxed) != 0) {
    return false;
  }
  return policy::openRemainingMs(*target.cells.breaker, breaker_options_, now_ms) == 0;
}

size_t UpstreamGroup::choose(std::span<const policy::Candidate> candidates) {
  // xorshift64: a fresh random per pick for the strategies that want one.
  random_ ^= random_ << 13;
  random_ ^= random_ >> 7;
  random_ ^= random_ << 17;
  if (config_.balance == "least_conn") return policy::pickLeastConn(candidates, random_);
  if (config_.balance == "random_two") return policy::pickRandomTwo(candidates, random_);
  return round_robin_.pick(candidates);
}

std::optional<UpstreamGroup::Attempt> UpstreamGroup::pick(std::span<const uint32_t> tried,
                                                          uint64_t now_ms,
                                                          uint64_t* retry_after_ms) {
  *retry_after_ms = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const Target& t = targets_[i];
    bool was_tried = false;
    for (uint32_t j : tried) was_tried = was_tried || j == i;
    candidates_[i] = {.weight = t.weight,
                      .in_flight = t.cells.in_flight->load(std::memory_order_relaxed),
                      .usable = !was_tried && usable(t, now_ms),
                      .backup = t.backup};
  }
  // A candidate whose breaker refuses at admission (its probes are taken) is
  // dropped and the choice made again among the rest.
  for (size_t round = 0; round < targets_.size(); ++round) {
    size_t chosen = choose(candidates_);
    if (chosen == policy::kNoCandidate) break;
    Target& t = targets_[chosen];
    policy::Admission admission = policy::admit(*t.cells.breaker, breaker_options_, now_ms);
    if (admission.change && t.cells.breaker_changed_wall_ms != nullptr) {
      t.cells.breaker_changed_wall_ms->store(shared::wallMs(), std::memory_order_relaxed);
    }
    if (!admission.allowed) {
      candidates_[chosen].usable = false;
      add(cells_.breaker_refusals);
      if (*retry_after_ms == 0 || admission.retry_after_ms < *retry_after_ms) {
        *retry_after_ms = admission.retry_after_ms;
      }
      continue;
    }
    t.cells.in_flight->fetch_add(1, std::memory_order_relaxed);
    add(t.cells.requests);
    return Attempt{.target = static_cast<uint32_t>(chosen),
                   .probe = admission.probe,
                   .sequence = admission.sequence,
                   .started_ms = now_ms};
  }
  // Nothing usable: say when the soonest open breaker half-opens, or a
  // refused half-open one may take a probe again.
  for (const Target& t : targets_) {
    policy::BreakerView v = policy::view(*t.cells.breaker, breaker_options_, now_ms);
    if (v.state != policy::BreakerState::Open) continue;
    uint64_t due = v.opened_at_ms + breaker_options_.open_ms;
    uint64_t wait = due > now_ms ? due - now_ms : 1;
    if (*retry_after_ms == 0 || wait < *retry_after_ms) *retry_after_ms = wait;
  }
  return std::nullopt;
}

std::optional<UpstreamGroup::BreakerEvent> UpstreamGroup::finish(const Attempt& attempt,
                                                                 AttemptResult result,
                                                                 uint64_t now_ms,
                                                                 uint64_t duration_us) {
  Target& t = targets_[attempt.target];
  t.cells.in_flight->fetch_sub(1, std::memory_order_relaxed);
  uint64_t duration_ms = now_ms >= attempt.started_ms ? now_ms - attempt.started_ms : 0;
  if (t.cells.latency_buckets != nullptr && result != AttemptResult::Neutral) {
    add(&t.cells.latency_buckets[shared::latencyBucket(duration_us)]);
    add(t.cells.latency_sum_us, duration_us);
  }
  if (result == AttemptResult::Neutral) {
    if (attempt.probe) policy::releaseProbe(*t.cells.breaker, attempt.sequence);
    return std::nullopt;
  }
  if (result == AttemptResult::Failure) add(t.cells.failures);
  auto call = result == AttemptResult::Success ? policy::CallResult::Success
                                               : policy::CallResult::Failure;
  std::optional<policy::BreakerChange> change = policy::record(
      *t.cells.breaker, breaker_options_, now_ms, call, duration_ms, attempt.probe, attempt.sequence);
  if (!change) return std::nullopt;
  if (t.cells.breaker_changed_wall_ms != nullptr) {
    t.cells.breaker_changed_wall_ms->store(shared::wallMs(), std::memory_order_relaxed);
  }
  return BreakerEvent{attempt.target, *change};
}

void UpstreamGroup::countRequest(uint64_t now_ms) {
  add(cells_.requests);
  if (cells_.retry_budget != nullptr) policy::countRequest(*cells_.retry_budget, budget_options_, now_ms);
}

bool UpstreamGroup::tryRetry(uint64_t now_ms) {
  bool ok = cells_.retry_budget == nullptr ||
            policy::tryRetry(*cells_.retry_budget, budget_options_, now_ms);
  add(ok ? cells_.retries : cells_.retry_budget_exhausted);
  return ok;
}

void UpstreamGroup::countNoTarget() {
  add(cells_.no_target);
}

bool UpstreamGroup::anyUsable(uint64_t now_ms) const {
  for (const Target& t : targets_) {
    if (usable(t, now_ms)) return true;
  }
  return false;
}

}  // namespace phalanx::worker

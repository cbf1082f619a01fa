// One upstream as a worker sees it: its targets, where their shared state
// lives, and the decisions made per attempt (which target, may it be tried,
// may this request retry, what a result does to the breaker).
//
// Shared state (in-flight counts, breakers, health, counters, the retry
// budget) lives in shared memory, so every worker of the host balances over
// the same in-flight counts and sees one breaker per target. This class holds
// pointers to it (TargetCells, UpstreamCells); unit tests point them at
// their own storage. The choice itself is shared/policy/balancer.h.
//
// An attempt: pick() → (send) → finish(). pick() skips targets that are
// down (health), whose breaker refuses, or that this request already tried,
// and takes the breaker's admission (a half-open probe is one of the few
// allowed); finish() gives the in-flight slot back and records the result.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shared/config.h"
#include "shared/policy/balancer.h"
#include "shared/policy/circuit_breaker.h"
#include "shared/policy/health_state.h"
#include "shared/policy/retry_budget.h"

namespace phalanx::worker {

// Where one target's shared state lives.
struct TargetCells {
  std::atomic<uint64_t>* in_flight = nullptr;
  std::atomic<uint64_t>* requests = nullptr;
  std::atomic<uint64_t>* failures = nullptr;
  std::atomic<uint64_t>* latency_buckets = nullptr;  // kLatencyBuckets of them
  std::atomic<uint64_t>* latency_sum_us = nullptr;
  std::atomic<uint64_t>* breaker_changed_wall_ms = nullptr;
  shared::policy::BreakerCell* breaker = nullptr;
  shared::policy::HealthCell* health = nullptr;
};

struct UpstreamCells {
  std::atomic<uint64_t>* requests = nullptr;
  std::atomic<uint64_t>* retries = nullptr;
  std::atomic<uint64_t>* retry_budget_exhausted = nullptr;
  std::atomic<uint64_t>* no_target = nullptr;
  std::atomic<uint64_t>* breaker_refusals = nullptr;
  shared::policy::RetryBudgetCell* retry_budget = nullptr;
};

// What an attempt's end says about its target.
enum class AttemptResult {
  Success,  // a response (any status the breaker does not count as failure)
  Failure,  // connect error, reset, timeout, or a 5xx
  Neutral,  // the client left before the upstream could answer: no verdict
};

class UpstreamGroup {
 public:
  struct Target {
    std::string address;      // "127.0.0.1:9001", as in the config
    uint32_t pool_index = 0;  // the target's index in the worker's UpstreamPool
    uint32_t weight = 1;
    bool backup = false;
    TargetCells cells;
  };
  struct Attempt {
    uint32_t target = 0;  // index in targets()
    bool probe = false;
    uint64_t sequence = 0;
    uint64_t started_ms = 0;
  };
  // A change of a breaker this worker caused (for the log and other hosts).
  struct BreakerEvent {
    uint32_t target;
    shared::policy::BreakerChange change;
  };

  UpstreamGroup(std::string name, const shared::UpstreamConfig& config, std::vector<Target> targets,
                UpstreamCells cells, uint64_t random_seed);

  const std::string& name() const { return name_; }
  const shared::UpstreamConfig& config() const { return config_; }
  const std::vector<Target>& targets() const { return targets_; }
  const shared::policy::BreakerOptions& breakerOptions() const { return breaker_options_; }

  // A target for the next attempt, not one of `tried`. nullopt when none is
  // usable; *retry_after_ms then says when an open breaker may admit again
  // (0 when no breaker is the reason).
  std::optional<Attempt> pick(std::span<const uint32_t> tried, uint64_t now_ms,
                              uint64_t* retry_after_ms);
  // The attempt is over. A change of its breaker is returned to the one
  // worker whose result made it.
  // `duration_us`: from the attempt's start to its end, for the latency histogram.
  std::optional<BreakerEvent> finish(const Attempt& attempt, AttemptResult result, uint64_t now_ms,
                                     uint64_t duration_us);

  // Every request's first attempt counts toward the retry budget's base.
  void countRequest(uint64_t now_ms);
  // True (and counted) when a retry fits the budget.
  bool tryRetry(uint64_t now_ms);
  void countNoTarget();

  // Anything usable at all (for /health/ready of a required upstream).
  bool anyUsable(uint64_t now_ms) const;

 private:
  bool usable(const Target& target, uint64_t now_ms) const;
  size_t choose(std::span<const shared::policy::Candidate> candidates);

  std::string name_;
  const shared::UpstreamConfig& config_;
  std::vector<Target> targets_;
  UpstreamCells cells_;
  shared::policy::BreakerOptions breaker_options_;
  shared::policy::RetryBudgetOptions budget_options_;
  shared::policy::SmoothRoundRobin round_robin_;
  std::vector<shared::policy::Candidate> candidates_;  // reused between picks
  uint64_t random_;
};

}  // namespace phalanx::worker

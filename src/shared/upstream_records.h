// The gateway's records in the shared-memory region: one per upstream, one per
// upstream target (upstream name, address), and the host's leases. Every
// worker of a host reads and counts into the same records, so balancing
// (in-flight), breakers, health and retry budgets are per host, not per worker.
//
// Finding a record: open addressing over 64-bit key hashes with linear
// probing, one table per kind. A key is never 0 (0 = free) nor kReusingKey.
// A probe starts at key % capacity and stops at the key or at a free record.
//
// Who writes what:
// - Only the master inserts, re-keys and retires records
//   (provisionUpstreams), at start and on every reload *before* the new
//   generation is spawned. It writes a record's names, position and options
//   first and publishes its key last, with release: a worker that finds the
//   key (acquire) sees the names. A published record's names do not change
//   until the record is reused for another key, which only happens to a
//   Retired record that no live process may still use (see below).
// - Workers look records up (findTarget, findUpstream) when they build their
//   router from the config, keep the pointers for their life, and count into
//   them: in_flight, requests, failures, latency with fetch_add (many
//   writers); the breaker, retry budget, health and lease cells through
//   shared/policy/; breaker_changed_wall_ms with a store when their CAS won a
//   breaker transition.
//
// Reload: a record whose key the new config still has keeps everything (its
// breaker stays open, its counters keep counting). One the new config lacks
// becomes Retired: draining workers of older generations may still send to
// it, and the views keep showing it while in_flight > 0. A Retired record is
// reused for a new key only when its in_flight is 0 and no live worker runs a
// generation that included it (last_generation); a retired key that comes
// back before then gets its old record back, state and all.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "shared/config.h"
#include "shared/histogram.h"
#include "shared/policy/circuit_breaker.h"
#include "shared/policy/health_state.h"
#include "shared/policy/lease.h"
#include "shared/policy/retry_budget.h"
#include "shared/shm.h"

namespace phalanx::shared {

enum class RecordState : uint32_t {
  Free = 0,
  Active,   // in the config being served
  Retired,  // removed by a reload; older workers may still use it until they drain
};
// "free", "active", "retired".
const char* recordStateName(RecordState state);

// Names and addresses are stored NUL-terminated: at most 63 bytes of text.
inline constexpr size_t kRecordTextBytes = 64;
inline constexpr size_t kMaxRecordText = kRecordTextBytes - 1;

// Key of a record being rewritten for another key: probes pass over it (it
// is not free), nobody looks it up.
inline constexpr uint64_t kReusingKey = UINT64_MAX;

// Capacity bounds: max(minimum, 2 × configured), capped. The caps stay above
// what a config may hold (kMaxUpstreamTargets = 1024 targets) with room to
// reload into.
inline constexpr uint32_t kMaxTargetRecords = 4096;
inline constexpr uint32_t kMaxUpstreamRecords = 1024;

struct alignas(64) TargetRecord {
  std::atomic<uint64_t> key;                // targetKey(upstream, address); 0 = free
  std::atomic<uint32_t> state;              // RecordState; master
  std::atomic<uint32_t> last_generation;    // the newest generation whose config has it; master
  char upstream[kRecordTextBytes];          // master, before `key` is published
  char address[kRecordTextBytes];           // as written in the config: "127.0.0.1:9001"
  std::atomic<uint32_t> position;           // index in its upstream's targets; master
  std::atomic<uint32_t> breaker_window_ms;  // the upstream's breaker.window_ms, for views; master
  std::atomic<uint64_t> in_flight;          // requests sent and not yet answered, all workers
  std::atomic<uint64_t> requests;           // attempts sent (retries included)
  std::atomic<uint64_t> failures;     // connect errors, resets, timeouts, 5xx the breaker counts
  std::atomic<uint32_t> last_status;  // HTTP status of the latest answer; 0 = none yet
  std::atomic<uint32_t> reserved;     // zero; keeps the layout explicit
  std::atomic<uint64_t> latency_buckets[kLatencyBuckets];  // upstream response time
  std::atomic<uint64_t> latency_sum_us;
  std::atomic<uint64_t> breaker_changed_wall_ms;  // last breaker transition, wall clock; 0 = never
  policy::BreakerCell breaker;
  policy::HealthCell health;
};

struct alignas(64) UpstreamRecord {
  std::atomic<uint64_t> key;  // upstreamKey(name); 0 = free
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> last_generation;
  char name[kRecordTextBytes];
  policy::RetryBudgetCell retry_budget;
  std::atomic<uint64_t> requests;                // client requests routed to the upstream
  std::atomic<uint64_t> retries;                 // attempts after the first
  std::atomic<uint64_t> retry_budget_exhausted;  // retries refused by the budget
  std::atomic<uint64_t> no_target;               // 503s: no usable target
  std::atomic<uint64_t> breaker_refusals;        // attempts refused by a target's breaker
};

// One per region.
struct alignas(64) GatewayInfo {
  policy::LeaseCell health_lease;  // the worker that runs every active health check
  policy::LeaseCell redis_lease;   // reserved: a shared Redis subscriber
};

// The layout is an ABI between builds (see shm.h): bump kShmLayoutVersion.
static_assert(sizeof(TargetRecord) == 512 && offsetof(TargetRecord, in_flight) == 152 &&
                  offsetof(TargetRecord, latency_buckets) == 184 &&
                  offsetof(TargetRecord, breaker) == 336 && offsetof(TargetRecord, health) == 448,
              "TargetRecord layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(UpstreamRecord) == 256 && offsetof(UpstreamRecord, retry_budget) == 80 &&
                  offsetof(UpstreamRecord, breaker_refusals) == 192,
              "UpstreamRecord layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(GatewayInfo) == 64 && offsetof(GatewayInfo, redis_lease) == 8,
              "GatewayInfo layout changed: bump kShmLayoutVersion and update this assert");
static_assert(std::is_standard_layout_v<TargetRecord> &&
              std::is_standard_layout_v<UpstreamRecord> && std::is_standard_layout_v<GatewayInfo>);

// Keys: a 64-bit hash of the name, or of upstream + "\n" + address; never 0
// nor kReusingKey.
uint64_t upstreamKey(std::string_view name);
uint64_t targetKey(std::string_view upstream, std::string_view address);

// The record capacities a region needs for `config`: max(16, 2 × upstreams)
// and max(64, 2 × targets), each capped at its kMax.
UpstreamCapacity upstreamCapacityFor(const Config& config);

// Master only (the single writer for insertion). Makes the region's records
// match `config`, served by `generation`: each upstream and target gets its
// record (found by key, else a free one, else a reusable Retired one); Active
// records the config lacks become Retired. All or nothing: on false nothing
// changed and `error` says why, e.g. "upstreams: 130 targets, shared memory
// holds 128; restart phalanx to grow it", or a name longer than 63 bytes.
// A failed reload calls it again with the config still served (it cannot fail
// then: that config's records are all still there).
bool provisionUpstreams(const SharedRegion& region, const Config& config, uint32_t generation,
                        std::string* error);

// Read-only lookups, any process: the Active or Retired record of that key,
// or nullptr. Workers call them at config load and keep the pointers.
TargetRecord* findTarget(const SharedRegion& region, std::string_view upstream,
                         std::string_view address);
UpstreamRecord* findUpstream(const SharedRegion& region, std::string_view name);

// Counts one upstream response time into the record's histogram.
void recordLatency(TargetRecord& target, uint64_t us);

}  // namespace phalanx::shared

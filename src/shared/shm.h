// The shared-memory region: one memfd mapped MAP_SHARED by the master and every
// worker. It is an ABI between processes that may run different builds (a reload
// execs the new binary), so:
// - every struct is standard layout with fixed capacity, no pointers;
// - every field shared across processes is a lock-free std::atomic;
// - the header's magic and layout version are checked on attach, and a worker
//   whose build disagrees refuses to start with a message naming the region.
//
// Per-process records, each field with one writer:
// - MasterInfo (one): written by the master. Totals of exited processes
//   ("retired"), restarts by reason, reload results.
// - SlotRecord (one per worker slot, i.e. per set of listening sockets): written
//   by the master. What the supervisor knows of the slot across processes:
//   restarts, last exit reason, waiting-restart / errored.
// - WorkerCell (one per live process): counters written by the worker that owns
//   it; pid, slot, generation and the samples (RSS, CPU) by the master. During a
//   reload a slot has two processes, old and new, hence cells apart from slots.
// And the gateway's records, shared by every worker (upstream_records.h):
// GatewayInfo (one: per-host leases), UpstreamRecord (one per upstream) and
// TargetRecord (one per upstream target), found by key hash.
#pragma once

#include <atomic>
#include <cstddef>  // offsetof
#include <cstdint>
#include <string>
#include <type_traits>

#include "shared/histogram.h"

namespace phalanx::shared {

inline constexpr uint64_t kShmMagic = 0x31584c4148504850ull;  // "PHPHALX1"
inline constexpr uint32_t kShmLayoutVersion = 6;

// What a worker process says about itself, in its cell.
enum class WorkerState : uint32_t { Empty = 0, Starting, Ready, Draining, Stopped };
const char* workerStateName(WorkerState state);

// What the master says about a slot.
enum class SlotState : uint32_t {
  Unused = 0,      // never started, or scaled away
  Running,         // a process exists (its cell says whether it is ready yet)
  WaitingRestart,  // its process died; a respawn is scheduled
  Errored,         // waiting too, after more than max_unstable_restarts fast exits
  Fatal,           // its worker exited 2 (cannot start): not respawned
};
const char* slotStateName(SlotState state);

// Why a process of a slot ended. Also the label of the restart counters.
enum class ExitReason : uint32_t {
  None = 0,
  Exited,       // exited on its own with a code (detail = code)
  Signaled,     // killed by a signal nobody in phalanx sent (detail = signal)
  Memory,       // RSS above max_memory: replaced gracefully
  Heartbeat,    // loop blocked past heartbeat_timeout_ms: SIGABRT, then SIGKILL
  MaxRequests,  // served max_requests (+ jitter): replaced gracefully
  Reload,       // replaced by a new generation
  Scale,        // its slot was scaled away
  Stop,         // the master stopped
  Upgrade,      // a new master (binary upgrade) took over; its old workers drained
  Count_,
};
inline constexpr uint32_t kExitReasonCount = static_cast<uint32_t>(ExitReason::Count_);
const char* exitReasonName(ExitReason reason);

// Monotonic counters a worker accumulates. The same struct holds the totals of
// exited processes in MasterInfo, so sums stay monotonic across restarts.
struct TrafficCounters {
  std::atomic<uint64_t> requests;
  std::atomic<uint64_t> bytes_out;
  std::atomic<uint64_t> accepted_connections;
  std::atomic<uint64_t> responses_by_class[6];  // index 1..5 = 1xx..5xx
  std::atomic<uint64_t> latency_buckets[kLatencyBuckets];
  std::atomic<uint64_t> latency_sum_us;
  // Access log lines lost: the queue was full (the writer fell behind), or
  // write(2) failed (a full disk). Both written by the worker's loop thread.
  std::atomic<uint64_t> access_log_dropped_queue_full;
  std::atomic<uint64_t> access_log_dropped_write_error;
  std::atomic<uint64_t> accept_errors;  // accept4 failures but EAGAIN, EINTR, ECONNABORTED
};

// Plain-value copy of TrafficCounters, for sums and snapshots.
struct TrafficTotals {
  uint64_t requests = 0;
  uint64_t bytes_out = 0;
  uint64_t accepted_connections = 0;
  uint64_t responses_by_class[6] = {};
  uint64_t latency_buckets[kLatencyBuckets] = {};
  uint64_t latency_sum_us = 0;
  uint64_t access_log_dropped_queue_full = 0;
  uint64_t access_log_dropped_write_error = 0;
  uint64_t accept_errors = 0;

  void add(const TrafficCounters& counters);
};

// One writer per counter: a relaxed load+store, no read-modify-write on the hot path.
inline void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

struct alignas(64) WorkerCell {
  std::atomic<int32_t> pid;             // master, at spawn; 0 = free cell
  std::atomic<uint32_t> slot;           // master
  std::atomic<uint32_t> generation;     // master
  std::atomic<uint32_t> state;          // WorkerState: master sets Starting, then the worker
  std::atomic<uint64_t> started_at_ms;  // wall clock, set by the master at spawn
  std::atomic<uint64_t> heartbeat_ms;   // monotonic (CLOCK_MONOTONIC), stamped by the loop
  std::atomic<uint64_t> open_connections;
  std::atomic<uint64_t> rss_bytes;  // sampled by the master
  std::atomic<uint64_t> cpu_ms;     // user + system, sampled by the master
  TrafficCounters traffic;
  // The gateway's gauges, written by the worker.
  std::atomic<uint64_t> cache_bytes;  // its level-1 cache
  std::atomic<uint64_t> cache_entries;
  std::atomic<uint32_t> redis_state;  // RedisState: its Redis connection
  std::atomic<uint32_t> reserved;
  std::atomic<uint64_t> purge_seen;  // the latest cache purge request it carried out
};

// A worker's Redis connection, as /metrics and /health/ready show it.
enum class RedisState : uint32_t { Unused = 0, Up, Down };

struct alignas(64) SlotRecord {
  std::atomic<uint32_t> state;  // SlotState
  std::atomic<uint32_t> restarts;
  std::atomic<uint32_t> unstable_restarts;  // fast exits in a row; 0 once up min_uptime_ms
  std::atomic<uint32_t> last_exit_reason;   // ExitReason
  std::atomic<int32_t> last_exit_detail;    // exit code or signal number
  std::atomic<int32_t> pid;                 // the serving (newest) process, 0 when none
  std::atomic<uint64_t> last_exit_ms;       // wall clock
  std::atomic<uint64_t> restart_at_ms;      // wall clock, while waiting
};

struct alignas(64) MasterInfo {
  std::atomic<int32_t> pid;
  std::atomic<uint32_t> generation;
  std::atomic<uint64_t> started_at_ms;  // wall clock
  std::atomic<uint32_t> workers;        // the target count (config, scale, TTIN/TTOU)
  std::atomic<uint32_t> last_reload;    // 0 = none yet, 1 = succeeded, 2 = failed
  std::atomic<uint64_t> last_reload_ms;
  std::atomic<uint64_t> reloads_ok;
  std::atomic<uint64_t> reloads_failed;
  std::atomic<uint64_t> restarts_by_reason[kExitReasonCount];
  // Odd while the master folds an exited cell into `retired`: readers retry,
  // so a sum never counts a process twice or not at all (a seqlock).
  std::atomic<uint64_t> fold_sequence;
  TrafficCounters retired;
  std::atomic<uint64_t> max_memory_bytes;  // supervisor.max_memory of the serving config, 0 = none
};

struct ShmHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t slot_capacity;
  uint32_t cell_capacity;
  uint32_t upstream_capacity;  // UpstreamRecords
  uint64_t total_bytes;
  uint64_t master_offset;  // offsets from the start of the region
  uint64_t slots_offset;
  uint64_t cells_offset;
  uint32_t target_capacity;      // TargetRecords
  uint32_t rate_limit_capacity;  // RateLimitEntries
  uint64_t gateway_offset;
  uint64_t upstreams_offset;
  uint64_t targets_offset;
  uint64_t access_offset;
  uint64_t limits_offset;
  uint64_t key_usage_offset;
  uint64_t rate_limit_offset;
  uint64_t route_info_offset;  // route_records.h
  uint64_t routes_offset;
  uint64_t route_counters_offset;  // slot_capacity × kRouteRecords, by slot then record
  uint64_t errors_offset;
};

// Defined in upstream_records.h (which includes this header).
struct GatewayInfo;
struct UpstreamRecord;
struct TargetRecord;
// Defined in access_records.h and rate_limit_table.h.
struct AccessInfo;
struct LimitRecord;
struct KeyUsageRecord;
struct RateLimitEntry;
// Defined in route_records.h.
struct RouteInfo;
struct RouteRecord;
struct RouteCounters;
struct ErrorEntry;

// How many upstream and target records a region holds: fixed when the master
// creates it (upstreamCapacityFor(config) in upstream_records.h adds the
// headroom that reloads grow into). The defaults are the minimums.
struct UpstreamCapacity {
  uint32_t upstreams = 16;
  uint32_t targets = 64;
  uint32_t rate_limit_entries = 1024;  // a power of two (Config::rate_limit_entries)
};

// The layout is an ABI between builds: a change to any struct must bump
// kShmLayoutVersion, and these asserts make sure nobody forgets.
static_assert(kLatencyBuckets == 17, "histogram changed: bump kShmLayoutVersion");
static_assert(sizeof(TrafficCounters) == 240);
static_assert(sizeof(WorkerCell) == 384 && offsetof(WorkerCell, traffic) == 56 &&
                  offsetof(WorkerCell, purge_seen) == 320,
              "WorkerCell layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(SlotRecord) == 64 && offsetof(SlotRecord, restart_at_ms) == 32,
              "SlotRecord layout changed: bump kShmLayoutVersion and update this assert");
static_assert(offsetof(MasterInfo, retired) == 136 && offsetof(MasterInfo, max_memory_bytes) == 376,
              "MasterInfo layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(ShmHeader) == 152 && offsetof(ShmHeader, errors_offset) == 144,
              "ShmHeader layout changed: bump kShmLayoutVersion");
static_assert(std::is_standard_layout_v<WorkerCell> && std::is_standard_layout_v<SlotRecord> &&
              std::is_standard_layout_v<MasterInfo> && std::is_standard_layout_v<ShmHeader>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);

// Owns a mapping of the region (creator or attacher). Move-only; unmaps on
// destruction. The fd stays open while mapped so the master can pass it on.
class SharedRegion {
 public:
  // Creates and maps a fresh, zeroed region. Aborts on failure: without it
  // nothing can start.
  static SharedRegion create(uint32_t slot_capacity, uint32_t cell_capacity,
                             UpstreamCapacity upstreams = {});

  // Maps an inherited fd and checks magic, version and size. On mismatch returns
  // an empty region and sets `error` to a message naming what differs.
  static SharedRegion attach(int fd, std::string* error);

  SharedRegion() = default;
  SharedRegion(SharedRegion&& other) noexcept;
  SharedRegion& operator=(SharedRegion&& other) noexcept;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion();

  explicit operator bool() const { return base_ != nullptr; }
  int fd() const { return fd_; }
  const ShmHeader& header() const { return *static_cast<const ShmHeader*>(base_); }
  uint32_t slotCapacity() const { return header().slot_capacity; }
  uint32_t cellCapacity() const { return header().cell_capacity; }
  uint32_t upstreamCapacity() const { return header().upstream_capacity; }
  uint32_t targetCapacity() const { return header().target_capacity; }
  uint32_t rateLimitCapacity() const { return header().rate_limit_capacity; }

  MasterInfo& master() const;
  // Both abort on an index past the capacity: callers check it first.
  SlotRecord& slot(uint32_t index) const;
  WorkerCell& cell(uint32_t index) const;
  // The gateway's records (upstream_records.h). The record accessors abort on
  // an index past the capacity, like slot() and cell().
  GatewayInfo& gateway() const;
  UpstreamRecord& upstream(uint32_t index) const;
  TargetRecord& target(uint32_t index) const;
  // The access side's records (access_records.h).
  AccessInfo& access() const;
  LimitRecord& limit(uint32_t index) const;        // index < kLimitRecords
  KeyUsageRecord& keyUsage(uint32_t index) const;  // index < kKeyUsageRecords
  RateLimitEntry* rateLimitEntries() const;
  // Per-route figures and the recent errors (route_records.h).
  RouteInfo& routeInfo() const;
  RouteRecord& route(uint32_t index) const;                           // index < kRouteRecords
  RouteCounters& routeCounters(uint32_t slot, uint32_t route) const;  // slot < slotCapacity()
  ErrorEntry& errorEntry(uint32_t index) const;                       // index < kErrorRing

 private:
  void reset();
  void* base_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

// Masters only: takes a free cell for a process about to be spawned (its pid
// becomes kClaimedPid until the spawn stores the real one). A compare-and-swap,
// because during a binary upgrade two masters spawn into the same region.
// Returns false when every cell is taken.
inline constexpr int32_t kClaimedPid = -1;
bool claimCell(const SharedRegion& region, uint32_t* cell);

// Masters only: adds an exited process's counters to MasterInfo::retired and
// zeroes the cell, under the fold seqlock (taken with a CAS: two masters share
// the region during an upgrade). The cell is free afterwards.
void retireCell(const SharedRegion& region, uint32_t cell);

// Sum of the traffic of every process that ever ran: retired + live cells,
// read consistently with the fold seqlock. Any process may call it.
TrafficTotals sumTraffic(const SharedRegion& region);

// Monotonic milliseconds (CLOCK_MONOTONIC), comparable across processes.
uint64_t monotonicMs();
// Wall-clock milliseconds since the epoch.
uint64_t wallMs();

}  // namespace phalanx::shared

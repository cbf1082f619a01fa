#include "shared/shm.h"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "shared/access_records.h"
#include "shared/route_records.h"
#include "shared/upstream_records.h"

namespace phalanx::shared {

namespace {

constexpr size_t alignUp(size_t n) {
  return (n + 63) & ~size_t{63};
}

struct Layout {
  size_t master_offset, slots_offset, cells_offset, gateway_offset, upstreams_offset,
      targets_offset, access_offset, limits_offset, key_usage_offset, rate_limit_offset,
      route_info_offset, routes_offset, route_counters_offset, errors_offset, total;

  bool operator==(const Layout&) const = default;
};

Layout layoutFor(uint32_t slot_capacity, uint32_t cell_capacity, UpstreamCapacity upstreams) {
  Layout l{};
  l.master_offset = alignUp(sizeof(ShmHeader));
  l.slots_offset = alignUp(l.master_offset + sizeof(MasterInfo));
  l.cells_offset = alignUp(l.slots_offset + size_t{slot_capacity} * sizeof(SlotRecord));
  l.gateway_offset = alignUp(l.cells_offset + size_t{cell_capacity} * sizeof(WorkerCell));
  l.upstreams_offset = alignUp(l.gateway_offset + sizeof(GatewayInfo));
  l.targets_offset =
      alignUp(l.upstreams_offset + size_t{upstreams.upstreams} * sizeof(UpstreamRecord));
  l.access_offset = alignUp(l.targets_offset + size_t{upstreams.targets} * sizeof(TargetRecord));
  l.limits_offset = alignUp(l.access_offset + sizeof(AccessInfo));
  l.key_usage_offset = alignUp(l.limits_offset + size_t{kLimitRecords} * sizeof(LimitRecord));
  l.rate_limit_offset =
      alignUp(l.key_usage_offset + size_t{kKeyUsageRecords} * sizeof(KeyUsageRecord));
  l.route_info_offset =
      alignUp(l.rate_limit_offset + RateLimitTable::bytesFor(upstreams.rate_limit_entries));
  l.routes_offset = alignUp(l.route_info_offset + sizeof(RouteInfo));
  l.route_counters_offset = alignUp(l.routes_offset + size_t{kRouteRecords} * sizeof(RouteRecord));
  l.errors_offset = alignUp(l.route_counters_offset +
                            size_t{slot_capacity} * kRouteRecords * sizeof(RouteCounters));
  l.total = l.errors_offset + size_t{kErrorRing} * sizeof(ErrorEntry);
  return l;
}

Layout layoutOf(const ShmHeader& h) {
  return Layout{.master_offset = h.master_offset,
                .slots_offset = h.slots_offset,
                .cells_offset = h.cells_offset,
                .gateway_offset = h.gateway_offset,
                .upstreams_offset = h.upstreams_offset,
                .targets_offset = h.targets_offset,
                .access_offset = h.access_offset,
                .limits_offset = h.limits_offset,
                .key_usage_offset = h.key_usage_offset,
                .rate_limit_offset = h.rate_limit_offset,
                .route_info_offset = h.route_info_offset,
                .routes_offset = h.routes_offset,
                .route_counters_offset = h.route_counters_offset,
                .errors_offset = h.errors_offset,
                .total = h.total_bytes};
}

[[noreturn]] void pastCapacity(const char* what, uint32_t index, uint32_t capacity) {
  spdlog::critical("shm: {} {} is past the region's capacity of {}", what, index, capacity);
  std::abort();
}

// Calls f(to.x, from.x) for every counter x: the one list of the traffic
// fields, shared by every walk over them (a new counter cannot be missed by one).
template <typename To, typename From, typename F>
void forEachCounter(To& to, const From& from, F f) {
  f(to.requests, from.requests);
  f(to.bytes_out, from.bytes_out);
  f(to.accepted_connections, from.accepted_connections);
  for (size_t i = 0; i < 6; ++i) f(to.responses_by_class[i], from.responses_by_class[i]);
  for (size_t i = 0; i < kLatencyBuckets; ++i) f(to.latency_buckets[i], from.latency_buckets[i]);
  f(to.latency_sum_us, from.latency_sum_us);
  f(to.access_log_dropped_queue_full, from.access_log_dropped_queue_full);
  f(to.access_log_dropped_write_error, from.access_log_dropped_write_error);
  f(to.accept_errors, from.accept_errors);
}

[[noreturn]] void fatalSyscall(const char* what) {
  spdlog::critical("shm: {} failed: {}", what, std::strerror(errno));
  std::abort();
}

}  // namespace

const char* workerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::Empty: return "empty";
    case WorkerState::Starting: return "starting";
    case WorkerState::Ready: return "ready";
    case WorkerState::Draining: return "draining";
    case WorkerState::Stopped: return "stopped";
  }
  return "unknown";
}

const char* slotStateName(SlotState state) {
  switch (state) {
    case SlotState::Unused: return "unused";
    case SlotState::Running: return "running";
    case SlotState::WaitingRestart: return "waiting-restart";
    case SlotState::Errored: return "errored";
    case SlotState::Fatal: return "fatal";
  }
  return "unknown";
}

const char* exitReasonName(ExitReason reason) {
  switch (reason) {
    case ExitReason::None: return "none";
    case ExitReason::Exited: return "exit";
    case ExitReason::Signaled: return "signal";
    case ExitReason::Memory: return "memory";
    case ExitReason::Heartbeat: return "heartbeat";
    case ExitReason::MaxRequests: return "max_requests";
    case ExitReason::Reload: return "reload";
    case ExitReason::Scale: return "scale";
    case ExitReason::Stop: return "stop";
    case ExitReason::Upgrade: return "upgrade";
    case ExitReason::Count_: break;
  }
  return "unknown";
}

void TrafficTotals::add(const TrafficCounters& c) {
  forEachCounter(*this, c, [](uint64_t& total, const std::atomic<uint64_t>& counter) {
    total += counter.load(std::memory_order_relaxed);
  });
}

SharedRegion SharedRegion::create(uint32_t slot_capacity, uint32_t cell_capacity,
                                  UpstreamCapacity upstreams) {
  SharedRegion region;
  Layout layout = layoutFor(slot_capacity, cell_capacity, upstreams);
  size_t size = layout.total;
  region.fd_ = memfd_create("phalanx-shm", MFD_CLOEXEC);
  if (region.fd_ < 0) fatalSyscall("memfd_create(\"phalanx-shm\", MFD_CLOEXEC)");
  if (ftruncate(region.fd_, static_cast<off_t>(size)) != 0) fatalSyscall("ftruncate(shm)");
  region.base_ = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, region.fd_, 0);
  if (region.base_ == MAP_FAILED) {
    region.base_ = nullptr;
    fatalSyscall("mmap(shm)");
  }
  region.size_ = size;
  // ftruncate zero-fills: every atomic starts at 0 and WorkerState::Empty.
  auto* header = static_cast<ShmHeader*>(region.base_);
  header->magic = kShmMagic;
  header->layout_version = kShmLayoutVersion;
  header->slot_capacity = slot_capacity;
  header->cell_capacity = cell_capacity;
  header->upstream_capacity = upstreams.upstreams;
  header->target_capacity = upstreams.targets;
  header->total_bytes = size;
  header->master_offset = layout.master_offset;
  header->slots_offset = layout.slots_offset;
  header->cells_offset = layout.cells_offset;
  header->gateway_offset = layout.gateway_offset;
  header->upstreams_offset = layout.upstreams_offset;
  header->targets_offset = layout.targets_offset;
  header->rate_limit_capacity = upstreams.rate_limit_entries;
  header->access_offset = layout.access_offset;
  header->limits_offset = layout.limits_offset;
  header->key_usage_offset = layout.key_usage_offset;
  header->rate_limit_offset = layout.rate_limit_offset;
  header->route_info_offset = layout.route_info_offset;
  header->routes_offset = layout.routes_offset;
  header->route_counters_offset = layout.route_counters_offset;
  header->errors_offset = layout.errors_offset;
  return region;
}

SharedRegion SharedRegion::attach(int fd, std::string* error) {
  SharedRegion region;
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(ShmHeader)) {
    *error = "shm region phalanx-shm: inherited fd " + std::to_string(fd) + " is not a region";
    return region;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *error = std::string("shm region phalanx-shm: mmap: ") + std::strerror(errno);
    return region;
  }
  region.base_ = base;
  region.size_ = size;
  region.fd_ = fd;
  const ShmHeader& h = region.header();
  // The version first: another version's header may not even have the fields
  // the layout is computed from.
  bool same_layout = h.magic == kShmMagic && h.layout_version == kShmLayoutVersion &&
                     h.total_bytes == size &&
                     layoutFor(h.slot_capacity, h.cell_capacity,
                               {.upstreams = h.upstream_capacity,
                                .targets = h.target_capacity,
                                .rate_limit_entries = h.rate_limit_capacity}) == layoutOf(h);
  if (!same_layout) {
    *error = "shm region phalanx-shm: layout version " + std::to_string(h.layout_version) +
             " (magic " + (h.magic == kShmMagic ? "ok" : "wrong") + ", " + std::to_string(size) +
             " bytes), this build expects version " + std::to_string(kShmLayoutVersion) +
             "; restart the master to change layouts";
    region.fd_ = -1;  // the fd belongs to the caller until attach succeeds
    return SharedRegion();
  }
  return region;
}

SharedRegion::SharedRegion(SharedRegion&& other) noexcept {
  *this = std::move(other);
}

SharedRegion& SharedRegion::operator=(SharedRegion&& other) noexcept {
  if (this != &other) {
    reset();
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

SharedRegion::~SharedRegion() {
  reset();
}

void SharedRegion::reset() {
  if (base_) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
  base_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

MasterInfo& SharedRegion::master() const {
  return *reinterpret_cast<MasterInfo*>(static_cast<char*>(base_) + header().master_offset);
}

SlotRecord& SharedRegion::slot(uint32_t index) const {
  if (index >= slotCapacity()) pastCapacity("slot", index, slotCapacity());
  auto* bytes = static_cast<char*>(base_) + header().slots_offset;
  return reinterpret_cast<SlotRecord*>(bytes)[index];
}

WorkerCell& SharedRegion::cell(uint32_t index) const {
  if (index >= cellCapacity()) pastCapacity("cell", index, cellCapacity());
  auto* bytes = static_cast<char*>(base_) + header().cells_offset;
  return reinterpret_cast<WorkerCell*>(bytes)[index];
}

AccessInfo& SharedRegion::access() const {
  return *reinterpret_cast<AccessInfo*>(static_cast<char*>(base_) + header().access_offset);
}

LimitRecord& SharedRegion::limit(uint32_t index) const {
  if (index >= kLimitRecords) pastCapacity("limit record", index, kLimitRecords);
  auto* bytes = static_cast<char*>(base_) + header().limits_offset;
  return reinterpret_cast<LimitRecord*>(bytes)[index];
}

KeyUsageRecord& SharedRegion::keyUsage(uint32_t index) const {
  if (index >= kKeyUsageRecords) pastCapacity("key usage record", index, kKeyUsageRecords);
  auto* bytes = static_cast<char*>(base_) + header().key_usage_offset;
  return reinterpret_cast<KeyUsageRecord*>(bytes)[index];
}

RateLimitEntry* SharedRegion::rateLimitEntries() const {
  return reinterpret_cast<RateLimitEntry*>(static_cast<char*>(base_) + header().rate_limit_offset);
}

RouteInfo& SharedRegion::routeInfo() const {
  return *reinterpret_cast<RouteInfo*>(static_cast<char*>(base_) + header().route_info_offset);
}

RouteRecord& SharedRegion::route(uint32_t index) const {
  if (index >= kRouteRecords) pastCapacity("route record", index, kRouteRecords);
  auto* bytes = static_cast<char*>(base_) + header().routes_offset;
  return reinterpret_cast<RouteRecord*>(bytes)[index];
}

RouteCounters& SharedRegion::routeCounters(uint32_t slot, uint32_t route) const {
  if (slot >= slotCapacity()) pastCapacity("slot", slot, slotCapacity());
  if (route >= kRouteRecords) pastCapacity("route record", route, kRouteRecords);
  auto* bytes = static_cast<char*>(base_) + header().route_counters_offset;
  return reinterpret_cast<RouteCounters*>(bytes)[size_t{slot} * kRouteRecords + route];
}

ErrorEntry& SharedRegion::errorEntry(uint32_t index) const {
  if (index >= kErrorRing) pastCapacity("error entry", index, kErrorRing);
  auto* bytes = static_cast<char*>(base_) + header().errors_offset;
  return reinterpret_cast<ErrorEntry*>(bytes)[index];
}

GatewayInfo& SharedRegion::gateway() const {
  return *reinterpret_cast<GatewayInfo*>(static_cast<char*>(base_) + header().gateway_offset);
}

UpstreamRecord& SharedRegion::upstream(uint32_t index) const {
  if (index >= upstreamCapacity()) pastCapacity("upstream record", index, upstreamCapacity());
  auto* bytes = static_cast<char*>(base_) + header().upstreams_offset;
  return reinterpret_cast<UpstreamRecord*>(bytes)[index];
}

TargetRecord& SharedRegion::target(uint32_t index) const {
  if (index >= targetCapacity()) pastCapacity("target record", index, targetCapacity());
  auto* bytes = static_cast<char*>(base_) + header().targets_offset;
  return reinterpret_cast<TargetRecord*>(bytes)[index];
}

bool claimCell(const SharedRegion& region, uint32_t* cell) {
  for (uint32_t i = 0; i < region.cellCapacity(); ++i) {
    int32_t free = 0;
    if (region.cell(i).pid.compare_exchange_strong(free, kClaimedPid, std::memory_order_acq_rel)) {
      *cell = i;
      return true;
    }
  }
  return false;
}

void retireCell(const SharedRegion& region, uint32_t index) {
  MasterInfo& master = region.master();
  WorkerCell& cell = region.cell(index);
  uint64_t seq = master.fold_sequence.load(std::memory_order_relaxed);
  // Odd: the other master (an upgrade's) is folding; it takes microseconds.
  while ((seq & 1) != 0 ||
         !master.fold_sequence.compare_exchange_weak(seq, seq + 1, std::memory_order_acquire,
                                                     std::memory_order_relaxed)) {
    if (seq & 1) {
      sched_yield();
      seq = master.fold_sequence.load(std::memory_order_relaxed);
    }
  }
  std::atomic_thread_fence(std::memory_order_release);
  forEachCounter(master.retired, cell.traffic,
                 [](std::atomic<uint64_t>& total, const std::atomic<uint64_t>& counter) {
                   bump(total, counter.load(std::memory_order_relaxed));
                 });
  // The process is gone: nobody else writes this cell now.
  std::memset(static_cast<void*>(&cell), 0, sizeof cell);
  master.fold_sequence.store(seq + 2, std::memory_order_release);
}

TrafficTotals sumTraffic(const SharedRegion& region) {
  const MasterInfo& master = region.master();
  TrafficTotals totals;
  // A fold takes microseconds; yield to the master if it was preempted in
  // one. Bounded all the same, for a master that died mid-fold: the last sum
  // read is then returned, possibly off by that one process.
  for (int attempt = 0; attempt < 10000; ++attempt) {
    uint64_t before = master.fold_sequence.load(std::memory_order_acquire);
    if (before & 1) {
      sched_yield();
      continue;
    }
    totals = TrafficTotals{};
    totals.add(master.retired);
    for (uint32_t i = 0; i < region.cellCapacity(); ++i) totals.add(region.cell(i).traffic);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (master.fold_sequence.load(std::memory_order_relaxed) == before) break;
  }
  return totals;
}

uint64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t wallMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace phalanx::shared

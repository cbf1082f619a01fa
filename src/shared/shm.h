// The shared-memory region: one memfd mapped MAP_SHARED by the master and every
// worker. It is an ABI between processes that may run different builds (a reload
// execs the new binary), so:
// - every struct is standard layout with fixed capacity, no pointers;
// - every field shared across processes is a lock-free std::atomic;
// - the header's magic and layout version are checked on attach, and a worker
//   whose build disagrees refuses to start with a message naming the region.
#pragma once

#include <atomic>
#include <cstddef>  // offsetof
#include <cstdint>
#include <string>
#include <type_traits>

namespace phalanx::shared {

inline constexpr uint64_t kShmMagic = 0x31584c4148504850ull;  // "PHPHALX1"
inline constexpr uint32_t kShmLayoutVersion = 1;

// What a worker says about itself. The master adds its own view
// (waiting-restart, errored) on top, in its supervisor state.
enum class WorkerState : uint32_t { Empty = 0, Starting, Ready, Draining, Stopped };

const char* workerStateName(WorkerState state);

// One per worker slot, written by the worker that owns it (counters) and the
// master (pid, generation, rss). One writer per field: plain relaxed load+store
// suffices for counters, no read-modify-write on the hot path.
struct alignas(64) WorkerSlot {
  std::atomic<int32_t> pid;
  std::atomic<uint32_t> generation;
  std::atomic<uint32_t> state;          // WorkerState
  std::atomic<uint64_t> started_at_ms;  // wall clock, set by the worker
  std::atomic<uint64_t> heartbeat_ms;   // monotonic (CLOCK_MONOTONIC), stamped by the loop
  std::atomic<uint64_t> requests;
  std::atomic<uint64_t> bytes_out;
  std::atomic<uint64_t> open_connections;
  std::atomic<uint64_t> accepted_connections;
  std::atomic<uint64_t> responses_by_class[6];  // index 1..5 = 1xx..5xx
  std::atomic<uint64_t> rss_bytes;              // sampled by the master

  void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
};

struct ShmHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t slot_capacity;
  uint64_t total_bytes;
  uint64_t slots_offset;  // from the start of the region
};

static_assert(std::is_standard_layout_v<WorkerSlot>);
// The layout is an ABI between builds: a change to either struct must bump
// kShmLayoutVersion, and these asserts make sure nobody forgets.
static_assert(sizeof(WorkerSlot) == 128 && offsetof(WorkerSlot, rss_bytes) == 112,
              "WorkerSlot layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(ShmHeader) == 32, "ShmHeader layout changed: bump kShmLayoutVersion");
static_assert(std::is_standard_layout_v<ShmHeader>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Owns a mapping of the region (creator or attacher). Move-only; unmaps on
// destruction. The fd stays open while mapped so the master can pass it on.
class SharedRegion {
 public:
  // Creates and maps a fresh region sized for `slot_capacity` slots.
  // Aborts on failure: without it nothing can start.
  static SharedRegion create(uint32_t slot_capacity);

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
  // Aborts on an index past slotCapacity(): callers check capacity first.
  WorkerSlot& slot(uint32_t index);

 private:
  void reset();
  void* base_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

// Monotonic milliseconds (CLOCK_MONOTONIC), comparable across processes.
uint64_t monotonicMs();
// Wall-clock milliseconds since the epoch.
uint64_t wallMs();

}  // namespace phalanx::shared

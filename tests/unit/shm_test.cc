#include "shared/shm.h"

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shared/shm_snapshot.h"

using namespace phalanx::shared;

TEST_CASE("a created region is zeroed and attachable, and both see the same records") {
  SharedRegion created = SharedRegion::create(8, 16);
  REQUIRE(created);
  CHECK(created.slotCapacity() == 8);
  CHECK(created.cellCapacity() == 16);
  CHECK(created.cell(15).traffic.requests.load() == 0);
  std::string error;
  SharedRegion attached = SharedRegion::attach(dup(created.fd()), &error);
  REQUIRE_MESSAGE(attached, error);
  bump(created.cell(3).traffic.requests, 5);
  created.slot(7).restarts.store(2);
  CHECK(attached.cell(3).traffic.requests.load() == 5);
  CHECK(attached.slot(7).restarts.load() == 2);
  CHECK(reinterpret_cast<uintptr_t>(&attached.cell(1)) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(&attached.slot(1)) % 64 == 0);
}

TEST_CASE("retiring a cell keeps the sums and frees the cell") {
  SharedRegion region = SharedRegion::create(2, 4);
  WorkerCell& cell = region.cell(1);
  cell.pid.store(42);
  bump(cell.traffic.requests, 10);
  bump(cell.traffic.responses_by_class[2], 9);
  bump(cell.traffic.latency_buckets[3], 10);
  bump(region.cell(2).traffic.requests, 5);
  CHECK(sumTraffic(region).requests == 15);
  retireCell(region, 1);
  CHECK(cell.pid.load() == 0);
  CHECK(cell.traffic.requests.load() == 0);
  TrafficTotals totals = sumTraffic(region);
  CHECK(totals.requests == 15);
  CHECK(totals.responses_by_class[2] == 9);
  CHECK(totals.latency_buckets[3] == 10);
  CHECK(region.master().fold_sequence.load() % 2 == 0);
}

TEST_CASE("a snapshot lists live cells by slot and generation, and the running slots") {
  SharedRegion region = SharedRegion::create(4, 8);
  region.master().workers.store(2);
  region.slot(0).state.store(static_cast<uint32_t>(SlotState::Running));
  region.slot(1).state.store(static_cast<uint32_t>(SlotState::WaitingRestart));
  auto live = [&](uint32_t cell, uint32_t slot, uint32_t gen, int pid) {
    region.cell(cell).slot.store(slot);
    region.cell(cell).generation.store(gen);
    region.cell(cell).pid.store(pid);
  };
  live(5, 0, 2, 200);
  live(2, 0, 1, 100);
  Snapshot s = takeSnapshot(region);
  REQUIRE(s.workers_live.size() == 2);
  CHECK(s.workers_live[0].pid == 100);
  CHECK(s.workers_live[1].pid == 200);
  REQUIRE(s.slots.size() == 2);
  CHECK(s.slots[1].state == SlotState::WaitingRestart);
}

TEST_CASE("attach refuses another layout version and says which") {
  SharedRegion created = SharedRegion::create(2, 2);
  auto* header = static_cast<ShmHeader*>(
      mmap(nullptr, sizeof(ShmHeader), PROT_READ | PROT_WRITE, MAP_SHARED, created.fd(), 0));
  header->layout_version = kShmLayoutVersion + 1;
  std::string error;
  int fd = dup(created.fd());
  SharedRegion attached = SharedRegion::attach(fd, &error);
  CHECK_FALSE(attached);
  CHECK(error.find("phalanx-shm") != std::string::npos);
  CHECK(error.find("layout version " + std::to_string(kShmLayoutVersion + 1)) != std::string::npos);
  munmap(header, sizeof(ShmHeader));
  close(fd);
}

TEST_CASE("attach refuses something that is not a region") {
  int fd = memfd_create("not-shm", 0);
  std::string error;
  CHECK_FALSE(SharedRegion::attach(fd, &error));
  CHECK(error.find("not a region") != std::string::npos);
  close(fd);
}

TEST_CASE("latency buckets: the first bound at or above") {
  CHECK(latencyBucket(0) == 0);
  CHECK(latencyBucket(100) == 0);
  CHECK(latencyBucket(101) == 1);
  CHECK(latencyBucket(10'000'000) == kLatencyBuckets - 2);
  CHECK(latencyBucket(10'000'001) == kLatencyBuckets - 1);
}

#include "shared/shm.h"

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

namespace phalanx::shared {

namespace {

size_t regionSize(uint32_t slot_capacity) {
  size_t slots_offset = (sizeof(ShmHeader) + 63) & ~size_t{63};
  return slots_offset + size_t{slot_capacity} * sizeof(WorkerSlot);
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

SharedRegion SharedRegion::create(uint32_t slot_capacity) {
  SharedRegion region;
  size_t size = regionSize(slot_capacity);
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
  header->total_bytes = size;
  header->slots_offset = (sizeof(ShmHeader) + 63) & ~size_t{63};
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
  if (h.magic != kShmMagic || h.layout_version != kShmLayoutVersion || h.total_bytes != size ||
      regionSize(h.slot_capacity) != size) {
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

WorkerSlot& SharedRegion::slot(uint32_t index) {
  if (index >= slotCapacity()) {
    spdlog::critical("shm: slot {} is past the region's {} slots", index, slotCapacity());
    std::abort();
  }
  auto* bytes = static_cast<char*>(base_) + header().slots_offset;
  return reinterpret_cast<WorkerSlot*>(bytes)[index];
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

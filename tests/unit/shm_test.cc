#include "shared/shm.h"

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

using namespace phalanx::shared;

TEST_CASE("a created region is zeroed and attachable, and both see the same slots") {
  SharedRegion created = SharedRegion::create(8);
  REQUIRE(created);
  CHECK(created.slotCapacity() == 8);
  CHECK(created.slot(7).requests.load() == 0);
  std::string error;
  SharedRegion attached = SharedRegion::attach(dup(created.fd()), &error);
  REQUIRE_MESSAGE(attached, error);
  created.slot(3).bump(created.slot(3).requests, 5);
  CHECK(attached.slot(3).requests.load() == 5);
  CHECK(reinterpret_cast<uintptr_t>(&attached.slot(1)) % 64 == 0);
}

TEST_CASE("attach refuses another layout version and says which") {
  SharedRegion created = SharedRegion::create(2);
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

#include "master/listeners.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

using phalanx::master::Listeners;
using phalanx::shared::Address;
using phalanx::shared::parseAddress;

namespace {

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int connectTo(const Address& address) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(connect(fd, address.sockaddrPtr(), address.length) == 0);
  return fd;
}

int acceptAll(int listen_fd) {
  int n = 0;
  for (int c; (c = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0; ++n) close(c);
  return n;
}

}  // namespace

TEST_CASE("one SO_REUSEPORT socket per slot, and the port is refused to a second owner") {
  std::string error;
  auto address = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  REQUIRE(address);
  Listeners listeners({*address});
  REQUIRE(listeners.checkAvailable(&error));
  REQUIRE(listeners.ensureSlots(2, &error));
  CHECK(listeners.slotFds(0).size() == 1);
  CHECK(listeners.slotFds(0)[0] != listeners.slotFds(1)[0]);
  Listeners other({*address});
  CHECK_FALSE(other.checkAvailable(&error));
  CHECK(error.find("Address already in use") != std::string::npos);
}

TEST_CASE("a closed slot gets no more connections (bug: a fatal slot's backlog hung clients)") {
  std::string error;
  auto address = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  REQUIRE(address);
  Listeners listeners({*address});
  REQUIRE(listeners.ensureSlots(2, &error));
  listeners.closeSlot(0);
  std::vector<int> clients;
  for (int i = 0; i < 32; ++i) clients.push_back(connectTo(*address));
  usleep(50'000);
  CHECK(acceptAll(listeners.slotFds(1)[0]) == 32);
  for (int fd : clients) close(fd);
}

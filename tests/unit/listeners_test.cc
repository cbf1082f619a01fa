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
  Listeners listeners;
  REQUIRE(listeners.ensureSlots(2, &error));
  REQUIRE(listeners.add({*address}, &error));
  CHECK(listeners.slotFds(0, {*address}).size() == 1);
  CHECK(listeners.slotFds(0, {*address})[0] != listeners.slotFds(1, {*address})[0]);
  Listeners other;
  REQUIRE(other.ensureSlots(1, &error));
  CHECK_FALSE(other.add({*address}, &error));
  CHECK(error.find("Address already in use") != std::string::npos);
}

TEST_CASE("a closed slot gets no more connections (bug: a fatal slot's backlog hung clients)") {
  std::string error;
  auto address = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  REQUIRE(address);
  Listeners listeners;
  REQUIRE(listeners.add({*address}, &error));
  REQUIRE(listeners.ensureSlots(2, &error));
  listeners.closeSlot(0);
  std::vector<int> clients;
  for (int i = 0; i < 32; ++i) clients.push_back(connectTo(*address));
  usleep(50'000);
  CHECK(acceptAll(listeners.slotFds(1, {*address})[0]) == 32);
  for (int fd : clients) close(fd);
}

TEST_CASE("addresses added and removed; a taken one changes nothing") {
  std::string error;
  auto a = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  auto b = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  auto taken = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  REQUIRE((a && b && taken));
  int holder = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(bind(holder, taken->sockaddrPtr(), taken->length) == 0);
  REQUIRE(listen(holder, 4) == 0);

  Listeners listeners;
  REQUIRE(listeners.add({*a}, &error));
  REQUIRE(listeners.ensureSlots(2, &error));
  CHECK(listeners.sockets().size() == 2);
  CHECK_FALSE(listeners.add({*a, *b, *taken}, &error));
  CHECK(error.find(taken->text) != std::string::npos);
  CHECK(listeners.sockets().size() == 2);  // b was opened, then closed again
  REQUIRE(listeners.add({*a, *b}, &error));
  CHECK(listeners.sockets().size() == 4);
  CHECK(listeners.slotFds(1, {*b, *a}).size() == 2);
  int client = connectTo(*b);
  CHECK(acceptAll(listeners.slotFds(0, {*b})[0]) + acceptAll(listeners.slotFds(1, {*b})[0]) == 1);
  close(client);
  listeners.keepOnly({*b});
  CHECK(listeners.sockets().size() == 2);
  int refused = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(refused, a->sockaddrPtr(), a->length) != 0);
  close(refused);
  close(holder);
}

TEST_CASE("adopt takes an inherited listening socket only for its own address") {
  std::string error;
  auto a = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  auto b = parseAddress("127.0.0.1:" + std::to_string(freePort()), &error);
  REQUIRE((a && b));
  Listeners old;
  REQUIRE(old.add({*a}, &error));
  REQUIRE(old.ensureSlots(1, &error));
  int inherited = dup(old.slotFds(0, {*a})[0]);
  Listeners next;
  CHECK_FALSE(next.adopt(*b, 0, inherited, &error));
  CHECK(error.find("not a socket listening there") != std::string::npos);
  REQUIRE(next.adopt(*a, 0, inherited, &error));
  CHECK(next.isOpen(0));
  CHECK(next.slotFds(0, {*a})[0] == inherited);
  int plain = socket(AF_INET, SOCK_STREAM, 0);
  CHECK_FALSE(next.adopt(*a, 1, plain, &error));
  close(plain);
}

#include "master/listeners.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace phalanx::master {

namespace {

int openSocket(const shared::Address& address, bool reuse_port, std::string* error) {
  int fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = address.text + ": socket: " + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (address.storage.ss_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (bind(fd, address.sockaddrPtr(), address.length) != 0) {
    *error = address.text + ": bind: " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::string enableRequestMigration() {
  const char* path = "/proc/sys/net/ipv4/tcp_migrate_req";
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string(path) + ": " + std::strerror(errno) +
                     "; connections queued on a closed slot socket are reset";
  char value = '0';
  bool read_ok = pread(fd, &value, 1, 0) == 1;
  if (read_ok && value == '1') {
    close(fd);
    return "tcp_migrate_req is on: connections queued on a closed slot socket move to the others";
  }
  bool set = pwrite(fd, "1\n", 2, 0) == 2;
  int saved = errno;
  close(fd);
  if (set) return "tcp_migrate_req turned on: connections queued on a closed slot socket move to the others";
  return std::string("tcp_migrate_req is off and cannot be set (") + std::strerror(saved) +
         "); connections queued on a closed slot socket are reset";
}

Listeners::Listeners(std::vector<shared::Address> addresses) : addresses_(std::move(addresses)) {}

Listeners::~Listeners() {
  for (auto& fds : slots_) {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
}

void Listeners::closeSlot(uint32_t slot) {
  for (int& fd : slots_.at(slot)) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

bool Listeners::checkAvailable(std::string* error) const {
  // A bind without SO_REUSEPORT fails if anyone (even with SO_REUSEPORT) holds it.
  for (const auto& address : addresses_) {
    int fd = openSocket(address, false, error);
    if (fd < 0) return false;
    close(fd);
  }
  return true;
}

bool Listeners::ensureSlots(uint32_t slots, std::string* error) {
  while (slots_.size() < slots) {
    slots_.emplace_back(addresses_.size(), -1);
    if (!openSlot(static_cast<uint32_t>(slots_.size() - 1), error)) {
      slots_.pop_back();
      return false;
    }
  }
  return true;
}

bool Listeners::openSlot(uint32_t slot, std::string* error) {
  std::vector<int>& fds = slots_.at(slot);
  for (size_t i = 0; i < addresses_.size(); ++i) {
    if (fds[i] >= 0) continue;
    const shared::Address& address = addresses_[i];
    int fd = openSocket(address, true, error);
    if (fd >= 0 && listen(fd, SOMAXCONN) != 0) {
      *error = address.text + ": listen: " + std::strerror(errno);
      close(fd);
      fd = -1;
    }
    if (fd < 0) {
      closeSlot(slot);
      return false;
    }
    fds[i] = fd;
  }
  return true;
}

bool Listeners::isOpen(uint32_t slot) const {
  return slot < slots_.size() && !slots_[slot].empty() && slots_[slot].front() >= 0;
}

}  // namespace phalanx::master

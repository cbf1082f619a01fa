#include "master/listeners.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

// Is `bound` (from getsockname) `address`?
bool sameAddress(const sockaddr_storage& bound, const shared::Address& address) {
  shared::Address other = address;
  other.storage = bound;
  uint16_t port_be = 0;
  if (bound.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &bound, sizeof in);
    port_be = in.sin_port;
  } else if (bound.ss_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &bound, sizeof in6);
    port_be = in6.sin6_port;
  }
  other.port = ntohs(port_be);
  return other == address;
}

}  // namespace

std::string enableRequestMigration() {
  const char* path = "/proc/sys/net/ipv4/tcp_migrate_req";
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::string(path) + ": " + std::strerror(errno) +
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
  if (set)
    return "tcp_migrate_req turned on: connections queued on a closed slot socket move to the "
           "others";
  return std::string("tcp_migrate_req is off and cannot be set (") + std::strerror(saved) +
         "); connections queued on a closed slot socket are reset";
}

bool checkAvailable(const shared::Address& address, std::string* error) {
  // A bind without SO_REUSEPORT fails if anyone (even with SO_REUSEPORT) holds it.
  int fd = openSocket(address, false, error);
  if (fd < 0) return false;
  close(fd);
  return true;
}

void Listeners::closeAll(Held& held) {
  for (int& fd : held.fds) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

Listeners::~Listeners() {
  for (auto& held : held_) closeAll(held);
}

Listeners::Held* Listeners::find(const shared::Address& address) {
  for (auto& held : held_) {
    if (held.address == address) return &held;
  }
  return nullptr;
}

const Listeners::Held* Listeners::find(const shared::Address& address) const {
  return const_cast<Listeners*>(this)->find(address);
}

bool Listeners::openIn(Held& held, uint32_t slot, std::string* error) {
  if (held.fds[slot] >= 0) return true;
  int fd = openSocket(held.address, true, error);
  if (fd >= 0 && listen(fd, SOMAXCONN) != 0) {
    *error = held.address.text + ": listen: " + std::strerror(errno);
    close(fd);
    fd = -1;
  }
  held.fds[slot] = fd;
  return fd >= 0;
}

bool Listeners::add(const std::vector<shared::Address>& addresses, std::string* error) {
  size_t before = held_.size();
  bool ok = true;
  for (const auto& address : addresses) {
    if (find(address)) continue;
    if (!checkAvailable(address, error)) {
      ok = false;
      break;
    }
    Held& held = held_.emplace_back(Held{address, std::vector<int>(open_.size(), -1)});
    for (uint32_t slot = 0; ok && slot < open_.size(); ++slot) {
      if (open_[slot]) ok = openIn(held, slot, error);
    }
    if (!ok) break;
  }
  if (!ok) {
    for (size_t i = before; i < held_.size(); ++i) closeAll(held_[i]);
    held_.resize(before, Held{});
  }
  return ok;
}

void Listeners::keepOnly(const std::vector<shared::Address>& addresses) {
  std::erase_if(held_, [&](Held& held) {
    bool kept = std::any_of(addresses.begin(), addresses.end(),
                            [&](const shared::Address& a) { return a == held.address; });
    if (!kept) closeAll(held);
    return !kept;
  });
}

bool Listeners::adopt(const shared::Address& address, uint32_t slot, int fd, std::string* error) {
  int listening = 0, type = 0;
  socklen_t length = sizeof listening;
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof bound;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening ||
      (length = sizeof type, getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) ||
      type != SOCK_STREAM ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0 ||
      !sameAddress(bound, address)) {
    *error =
        address.text + ": inherited fd " + std::to_string(fd) + " is not a socket listening there";
    return false;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (slot >= open_.size()) {
    open_.resize(slot + 1, false);
    for (auto& held : held_) held.fds.resize(slot + 1, -1);
  }
  Held* held = find(address);
  if (!held) held = &held_.emplace_back(Held{address, std::vector<int>(open_.size(), -1)});
  if (held->fds[slot] >= 0) close(held->fds[slot]);
  held->fds[slot] = fd;
  open_[slot] = true;
  return true;
}

bool Listeners::ensureSlots(uint32_t slots, std::string* error) {
  while (open_.size() < slots) {
    open_.push_back(false);
    for (auto& held : held_) held.fds.push_back(-1);
    if (!openSlot(static_cast<uint32_t>(open_.size() - 1), error)) {
      open_.pop_back();
      for (auto& held : held_) held.fds.pop_back();
      return false;
    }
  }
  return true;
}

std::vector<int> Listeners::slotFds(uint32_t slot,
                                    const std::vector<shared::Address>& addresses) const {
  std::vector<int> fds;
  for (const auto& address : addresses) {
    const Held* held = find(address);
    fds.push_back(held && slot < held->fds.size() ? held->fds[slot] : -1);
  }
  return fds;
}

void Listeners::closeSlot(uint32_t slot) {
  if (slot >= open_.size()) return;
  for (auto& held : held_) {
    if (held.fds[slot] >= 0) close(held.fds[slot]);
    held.fds[slot] = -1;
  }
  open_[slot] = false;
}

bool Listeners::openSlot(uint32_t slot, std::string* error) {
  for (auto& held : held_) {
    if (!openIn(held, slot, error)) {
      closeSlot(slot);
      return false;
    }
  }
  open_.at(slot) = true;
  return true;
}

std::vector<Listeners::Socket> Listeners::sockets() const {
  std::vector<Socket> out;
  for (const auto& held : held_) {
    for (uint32_t slot = 0; slot < held.fds.size(); ++slot) {
      if (held.fds[slot] >= 0) out.push_back({held.address.text, slot, held.fds[slot]});
    }
  }
  return out;
}

}  // namespace phalanx::master

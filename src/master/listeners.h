// The listening sockets: one SO_REUSEPORT socket per worker slot and per listen
// address, opened by the master and kept while an address is configured, so a
// replaced worker inherits the same socket and the connections queued in its
// backlog. A reload may add addresses (opened, and checked free, before
// anything changes) and remove some (closed here once the reload commits; the
// old workers' copies close as they drain). A binary upgrade hands every
// socket to the new master (adopt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shared/address.h"

namespace phalanx::master {

// Turns on net.ipv4.tcp_migrate_req (Linux 5.14+) when it is off and this
// process may: connections queued on a listening socket that closes (a slot
// scaled away, or waiting out a long backoff) then move to another socket of
// the same SO_REUSEPORT group instead of being reset. Best effort: returns a
// line saying what holds, for the log.
std::string enableRequestMigration();

// Fails (with `error` naming the address) when another process already holds
// `address`: SO_REUSEPORT would otherwise silently share the port with it.
bool checkAvailable(const shared::Address& address, std::string* error);

class Listeners {
 public:
  Listeners() = default;
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;
  ~Listeners();

  // Starts holding the addresses of `addresses` not held yet: each is checked
  // free, then opened in every open slot. All or nothing: on failure the ones
  // added by this call are closed again and `error` names the address.
  bool add(const std::vector<shared::Address>& addresses, std::string* error);
  // Closes the sockets of every address not in `addresses`.
  void keepOnly(const std::vector<shared::Address>& addresses);
  // Takes `fd` as slot `slot`'s socket for `address` (an upgrade: the old
  // master's socket, inherited). Fails when it is not a listening TCP socket
  // bound to that address.
  bool adopt(const shared::Address& address, uint32_t slot, int fd, std::string* error);

  // Opens sockets until `slots` slots have one per held address.
  bool ensureSlots(uint32_t slots, std::string* error);
  uint32_t slotCount() const { return static_cast<uint32_t>(open_.size()); }

  // The slot's fds for `addresses`, in that order (a worker of the generation
  // whose config lists them). CLOEXEC: a worker gets only these, mapped
  // explicitly at spawn. Every address must be held.
  std::vector<int> slotFds(uint32_t slot, const std::vector<shared::Address>& addresses) const;

  // Closes a slot's sockets: the kernel stops handing that slot new
  // connections, and migrates or resets the ones queued on them
  // (net.ipv4.tcp_migrate_req). For a slot that will not run a worker for a
  // while: scaled away, or waiting out a long backoff.
  void closeSlot(uint32_t slot);
  // Opens fresh sockets for a closed slot (before its worker is spawned again).
  bool openSlot(uint32_t slot, std::string* error);
  bool isOpen(uint32_t slot) const { return slot < open_.size() && open_[slot]; }

  // Every open socket, for handing over to a new master.
  struct Socket {
    std::string address;  // Address::text
    uint32_t slot;
    int fd;
  };
  std::vector<Socket> sockets() const;

 private:
  struct Held {
    shared::Address address;
    std::vector<int> fds;  // by slot; -1 while the slot is closed
  };
  Held* find(const shared::Address& address);
  const Held* find(const shared::Address& address) const;
  bool openIn(Held& held, uint32_t slot, std::string* error);
  static void closeAll(Held& held);

  std::vector<Held> held_;
  std::vector<bool> open_;  // by slot
};

}  // namespace phalanx::master

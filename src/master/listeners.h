// The listening sockets: one SO_REUSEPORT socket per worker slot and per listen
// address, opened by the master and kept for its whole life, so a replaced
// worker inherits the same socket and the connections queued in its backlog.
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

class Listeners {
 public:
  explicit Listeners(std::vector<shared::Address> addresses);
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;
  ~Listeners();

  // Fails (with `error` naming the address) when another process already holds
  // one of the addresses: SO_REUSEPORT would otherwise silently share the port
  // with it.
  bool checkAvailable(std::string* error) const;

  // Opens sockets until `slots` slots have one per address.
  bool ensureSlots(uint32_t slots, std::string* error);

  // One fd per listen address, in config order. CLOEXEC: a worker gets only its
  // own slot's sockets, mapped explicitly at spawn.
  const std::vector<int>& slotFds(uint32_t slot) const { return slots_.at(slot); }
  uint32_t slotCount() const { return static_cast<uint32_t>(slots_.size()); }

  // Closes a slot's sockets: the kernel stops handing that slot new
  // connections, and migrates or resets the ones queued on them
  // (net.ipv4.tcp_migrate_req). For a slot that will not run a worker for a
  // while: scaled away, or waiting out a long backoff.
  void closeSlot(uint32_t slot);
  // Opens fresh sockets for a closed slot (before its worker is spawned again).
  bool openSlot(uint32_t slot, std::string* error);
  bool isOpen(uint32_t slot) const;
  const std::vector<shared::Address>& addresses() const { return addresses_; }

 private:
  std::vector<shared::Address> addresses_;
  std::vector<std::vector<int>> slots_;
};

}  // namespace phalanx::master

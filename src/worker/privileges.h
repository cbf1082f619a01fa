// Workers run with no capability at all. Only the master needs privilege: it
// binds the listening sockets (CAP_NET_BIND_SERVICE for ports below 1024, from
// systemd's AmbientCapabilities= or from running as root) and hands them down
// as fds. A worker parses client input; if it is ever subverted, it should hold
// nothing worth having.
//
// Contract of dropPrivileges():
// - Call it once everything that may need privilege is done: the inherited fds
//   adopted, the access log and the key files opened. Nothing comes back
//   afterwards, not for root either: uid 0 stays uid 0 but without
//   CAP_DAC_OVERRIDE, so a log file reopened on USR1 must be writable by its
//   owner bits (a root-owned file in a root-owned directory is).
// - It clears the ambient set, empties the bounding set when CAP_SETPCAP allows
//   it (without CAP_SETPCAP the bounding set cannot change, and an empty
//   permitted set plus no_new_privs leaves nothing it could grant), sets the
//   effective, permitted and inheritable sets to nothing with capset(2), and
//   sets no_new_privs so no exec can grant anything again.
// - Then it reads the sets back: `error` is set iff a capability is still
//   effective or permitted, and the caller must not serve. A step that failed
//   without leaving one behind (an old kernel without ambient sets, capset
//   refused to a process that held nothing) is only a `warning`.
// - A process without capabilities goes through it unchanged but for
//   no_new_privs; calling it twice is harmless.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace phalanx::worker {

struct PrivilegeDrop {
  std::vector<std::string> warnings;
  std::string error;           // capabilities remain (named in the message)
  uint64_t had_permitted = 0;  // the permitted set before, as a bit mask of CAP_* numbers
};

PrivilegeDrop dropPrivileges();

// This process's capability sets, as bit masks of CAP_* numbers (capget(2)).
struct CapabilitySets {
  uint64_t effective = 0;
  uint64_t permitted = 0;
  uint64_t inheritable = 0;
};
std::optional<CapabilitySets> readCapabilities();

}  // namespace phalanx::worker

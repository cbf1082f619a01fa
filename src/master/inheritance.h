// What a master hands to the new master of a binary upgrade (USR2, `upgrade`):
// the shm region, a pipe to say it is ready on, and every listening socket,
// as inherited fds described in one environment variable. Plain text, one
// item per line, so a new build can read an old build's:
//
//   phalanx-inherit 1
//   old-master PID
//   generation N          the old master's newest generation
//   shm FD
//   ready FD              the new master writes "ready\n" here once it serves
//   listen SLOT FD ADDRESS
//
// Formatting and parsing are plain functions: the processes are in
// master.cc and upgrade.cc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::master {

inline constexpr const char* kInheritVariable = "PHALANX_INHERIT";

struct InheritedSocket {
  uint32_t slot = 0;
  int fd = -1;
  std::string address;  // as the old config wrote it
};

struct Inheritance {
  pid_t old_master = 0;
  uint32_t generation = 0;
  int shm_fd = -1;
  int ready_fd = -1;
  std::vector<InheritedSocket> sockets;
};

std::string formatInheritance(const Inheritance& inheritance);

// nullopt with `error` saying which line is wrong.
std::optional<Inheritance> parseInheritance(std::string_view text, std::string* error);

}  // namespace phalanx::master

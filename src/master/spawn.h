// Starting a worker process: posix_spawn, not fork. glibc's posix_spawn is a
// vfork (the child borrows the master's address space until it execs), so no
// page table is copied and no page of the master turns copy-on-write; on a
// virtual machine a fork + exec of a worker measured 15-20 ms of the master's
// loop, this 1 ms. Exits are reaped by the caller (waitpid on its own pids).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace phalanx::master {

// Runs `exe` with `args` (argv[0] included). The child gets fds 0-2 as they
// are, and `fds[i]` as fd 3 + i; nothing else (everything else the master
// holds is CLOEXEC). Its signal mask is empty and its signal dispositions the
// defaults. Returns the child's pid, or -errno when it could not be started
// (the exec failing included).
pid_t spawnProcess(const std::string& exe, const std::vector<std::string>& args,
                   const std::vector<int>& fds);

}  // namespace phalanx::master

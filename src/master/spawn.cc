#include "master/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>

extern char** environ;

namespace phalanx::master {

namespace {

constexpr int kFirstChildFd = 3;

}  // namespace

pid_t spawnProcess(const std::string& exe, const std::vector<std::string>& args,
                   const std::vector<int>& fds) {
  // The child's fd i comes from a copy numbered above every target: a source
  // that happens to be a target number (fd 4 as the shm region, say) is then
  // never overwritten before it is used. The copies are CLOEXEC: they vanish
  // at exec; a dup2 onto a target clears CLOEXEC there.
  int lowest = kFirstChildFd + static_cast<int>(fds.size());
  std::vector<int> copies;
  int error = 0;
  for (int fd : fds) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, lowest);
    if (copy < 0) {
      error = errno;
      break;
    }
    copies.push_back(copy);
  }
  pid_t pid = -1;
  if (error == 0) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (size_t i = 0; i < copies.size(); ++i) {
      posix_spawn_file_actions_adddup2(&actions, copies[i], kFirstChildFd + static_cast<int>(i));
    }
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGTTIN,
                  SIGTTOU, SIGALRM}) {
      sigaddset(&defaults, s);
    }
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    error = posix_spawn(&pid, exe.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
  }
  for (int copy : copies) close(copy);
  return error == 0 ? pid : -error;
}

}  // namespace phalanx::master

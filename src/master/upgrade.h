// The old master's side of a binary upgrade (USR2, `phalanxctl upgrade`): runs
// the binary on disk as a new master that inherits the shm region and every
// listening socket (inheritance.h), then waits for the first of
//   - "ready\n" on the pipe: its workers serve, its control socket is in
//     place; done("", pid);
//   - its exit: done("the new master ... exited with ...", pid);
//   - the deadline: it is stopped (SIGQUIT, SIGKILL a second later) and
//     done("... not ready within N ms", pid).
// `done` runs once, from the loop. The old master keeps serving meanwhile and
// afterwards decides what to do (drain and exit, or keep going).
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "master/inheritance.h"
#include "master/listeners.h"

namespace phalanx::master {

class Upgrade {
 public:
  using Done = std::function<void(const std::string& error, pid_t new_master)>;

  struct Options {
    std::string exe;          // the binary on disk
    std::string config_path;  // the new master reads it (-c)
    int shm_fd = -1;
    uint32_t generation = 0;  // the old master's newest
    std::vector<Listeners::Socket> sockets;
    uint64_t timeout_ms = 0;
  };

  explicit Upgrade(uv_loop_t* loop);
  Upgrade(const Upgrade&) = delete;
  Upgrade& operator=(const Upgrade&) = delete;
  // Closes its handles; a new master still starting is left alone (`done`
  // does not run).
  ~Upgrade();

  // False with `error` when the new master cannot even be started.
  bool start(const Options& options, Done done, std::string* error);
  bool running() const;
  // This master stops while a new one is starting: the new one stops too
  // (SIGTERM), and `done` runs with `why`.
  void cancel(const std::string& why);

 private:
  struct State;
  std::shared_ptr<State> state_;
  uv_loop_t* loop_;
};

}  // namespace phalanx::master

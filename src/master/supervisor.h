// Starts one worker process per slot and keeps it running.
//
// A worker is this same binary re-executed in worker mode (uv_spawn: fork+exec)
// with its fds mapped explicitly: 3 = shm region, 4 = config text (memfd),
// 5.. = the slot's listening sockets. Nothing else is inherited (CLOEXEC).
//
// In this version a worker that dies is respawned after restart_base_ms; one
// that exits with code 2 (fatal: cannot start) is not respawned, and when no
// slot can run the supervisor reports it so the master can give up.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "master/listeners.h"
#include "shared/config.h"
#include "shared/shm.h"

namespace phalanx::master {

struct SpawnContext {
  std::string exe_path;  // resolved at start: a deploy that replaces it is what a respawn runs
  int shm_fd = -1;
  int config_fd = -1;  // memfd holding the validated config text
};

class Supervisor {
 public:
  Supervisor(uv_loop_t* loop, shared::SharedRegion& region, Listeners& listeners,
             SpawnContext context, shared::SupervisorConfig config);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();

  void start(uint32_t workers);

  // Graceful: SIGTERM (drain) to every worker, SIGKILL after shutdown_timeout_ms.
  // Immediate: SIGQUIT, then SIGKILL after a second. `done` runs once all exited.
  void stop(bool graceful, std::function<void()> done);

  bool allReady() const;
  uint32_t runningCount() const;
  // Called when every slot has failed fatally: nothing can serve.
  std::function<void()> on_all_fatal;

 private:
  // Running: a process exists (whether it is ready yet is in shm).
  enum class SlotState { Running, WaitingRestart, Fatal, Stopped };
  struct Process;
  struct Slot {
    Supervisor* owner = nullptr;
    uint32_t index = 0;
    SlotState state = SlotState::Stopped;
    std::unique_ptr<Process> process;
    uv_timer_t restart_timer{};
  };

  void spawn(Slot& slot);
  void onExit(Process& process, int64_t exit_status, int term_signal);
  void scheduleRestart(Slot& slot);
  void retire(std::unique_ptr<Process> process);
  void killAll(int signal);
  void maybeDone();

  uv_loop_t* loop_;
  shared::SharedRegion& region_;
  Listeners& listeners_;
  SpawnContext context_;
  shared::SupervisorConfig config_;
  uint32_t generation_ = 1;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<Process>> exited_;  // waiting for uv_close
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  uv_timer_t stop_timer_{};
};

}  // namespace phalanx::master

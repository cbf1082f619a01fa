// Keeps one worker process per slot running, and replaces workers without
// losing a connection: on a crash (backoff), a memory cap, a blocked loop
// (heartbeat), max_requests, a reload (a new generation), or a scale change.
//
// A worker is this same binary re-executed in worker mode (posix_spawn, spawn.h)
// with its fds mapped explicitly: 3 = shm region, 4 = config text (memfd),
// 5.. = the slot's listening sockets. Nothing else is inherited (CLOEXEC).
//
// Processes of a slot play one of three roles:
// - serving: the slot's worker (at most one);
// - pending: its replacement, started but not yet taken over (reload, memory,
//   max_requests). It takes over once its shm cell says ready: the old one
//   then drains. A pending worker that dies or never gets ready is dropped and
//   the serving one keeps going;
// - draining: told to leave (SIGTERM). It finishes in-flight requests and exits
//   within drain_timeout_ms; SIGKILL a little after that as a backstop.
//
// Policy (backoff, crash loops) is in RestartPolicy; this class does the
// processes, the timers and the bookkeeping in shm.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "master/listeners.h"
#include "master/restart_policy.h"
#include "shared/config.h"
#include "shared/shm.h"

namespace phalanx::master {

// One validated config and the memfd holding its exact text; the processes
// started from it share it.
struct Generation {
  Generation(uint32_t number_, shared::Config config_, int config_fd_)
      : number(number_), config(std::move(config_)), config_fd(config_fd_) {}
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;
  ~Generation();

  const uint32_t number;
  const shared::Config config;
  const int config_fd;
};

class Supervisor {
 public:
  Supervisor(uv_loop_t* loop, shared::SharedRegion& region, Listeners& listeners,
             std::string exe_path);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();

  // Starts `workers` slots from the first generation.
  void start(std::shared_ptr<const Generation> generation, uint32_t workers);

  // Starts `next` in `workers` slots beside the current generation; once all
  // of its workers are ready the old ones drain and `done("")` runs. If one of
  // them dies or is not ready within ready_timeout_ms, they are stopped, the
  // old generation keeps serving, and `done` gets why.
  using ReloadDone = std::function<void(const std::string& error)>;
  void reload(std::shared_ptr<const Generation> next, uint32_t workers, ReloadDone done);
  bool reloading() const { return reload_ != nullptr; }

  // Grows or shrinks the slots (TTIN/TTOU, `scale N`). Returns false with
  // `error` set when it cannot (a reload in progress, no sockets).
  bool scale(uint32_t workers, std::string* error);
  uint32_t targetWorkers() const { return target_; }
  const Generation& current() const { return *current_; }

  // Old generations still draining after a reload: the master bounds them.
  uint32_t drainingGenerations() const;

  // Sends `signal` to every live worker (USR1: reopen logs).
  void forward(int signal);

  // Graceful: SIGTERM (drain) to every worker, SIGKILL after shutdown_timeout_ms.
  // Immediate: SIGQUIT, then SIGKILL after a second. `done` runs once all exited.
  // `reason` is what their exits are counted as (stop, or upgrade).
  void stop(bool graceful, std::function<void()> done,
            shared::ExitReason reason = shared::ExitReason::Stop);

  // A new master took over (binary upgrade): the slot records and MasterInfo
  // are its own from now on, and this one only drains.
  void handOver() { handed_over_ = true; }
  // Writes this master's view back into shm (after an upgrade that failed,
  // whose new master had written its own).
  void republish();

  // Every wanted slot has a serving worker that said ready.
  bool allReady() const;
  // Called when every slot has failed fatally (exit code 2): nothing can serve.
  std::function<void()> on_all_fatal;

 private:
  enum class Role { Serving, Pending, Draining };
  struct Process;
  struct Slot;
  struct ReloadTxn;
  struct ClosingOld;

  void initSlots(uint32_t count);
  Process* spawn(Slot& slot, std::shared_ptr<const Generation> generation, Role role);
  void onExit(Process& process, int64_t exit_status, int term_signal);
  void onServingExit(Slot& slot, uint64_t uptime_ms, bool was_ready);
  void scheduleRestart(Slot& slot, uint64_t delay_ms);
  void startRestartTimer(Slot& slot, uint64_t delay_ms);
  bool anyReady() const;
  void rescueIfNoneReady();
  void checkStarting();
  void advanceStarted(uint64_t now_ms);
  void onRestartTimer(Slot& slot);
  void recycle(Slot& slot, shared::ExitReason reason);
  void takeOver(Slot& slot);
  void drain(Process& process, shared::ExitReason reason);
  void unwant(Slot& slot);
  void check();
  void checkProcess(Process& process, uint64_t now_ms, bool sample);
  void checkReload(uint64_t now_ms);
  void finishReload(const std::string& error);
  void checkClosing();
  void publish(const Slot& slot);
  void countRestart(Slot& slot, shared::ExitReason reason);
  void countReplacement(shared::ExitReason reason);
  void signalAll(int signal);
  void maybeDone();
  void reap();
  bool cellReady(const Process& process) const;

  uv_loop_t* loop_;
  shared::SharedRegion& region_;
  Listeners& listeners_;
  std::string exe_path_;  // resolved at start: a deploy that replaces it is what a respawn runs
  std::shared_ptr<const Generation> current_;
  uint32_t target_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::list<std::unique_ptr<Process>> processes_;  // every live process
  std::vector<std::unique_ptr<Process>> exited_;   // reaped; freed on the next reap
  std::unique_ptr<ReloadTxn> reload_;
  std::unique_ptr<ClosingOld> closing_;  // committed, answered when the old workers closed
  std::mt19937_64 random_;
  uint64_t check_count_ = 0;
  bool stopping_ = false;
  bool handed_over_ = false;
  std::function<void()> on_stopped_;
  uv_timer_t check_timer_{};
  uv_timer_t closing_timer_{};
  uv_timer_t starting_timer_{};
  uv_signal_t sigchld_{};
  uv_timer_t stop_timer_{};
};

}  // namespace phalanx::master

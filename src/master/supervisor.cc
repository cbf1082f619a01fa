#include "master/supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "shared/exit_codes.h"

namespace phalanx::master {

struct Supervisor::Process {
  uv_process_t handle{};
  Supervisor* supervisor = nullptr;
  uint32_t slot = 0;
  uint32_t generation = 0;
  int pid = 0;
};

namespace {
constexpr uint64_t kQuitGraceMs = 1000;
constexpr int kFirstListenFd = 5;
}  // namespace

Supervisor::Supervisor(uv_loop_t* loop, shared::SharedRegion& region, Listeners& listeners,
                       SpawnContext context, shared::SupervisorConfig config)
    : loop_(loop),
      region_(region),
      listeners_(listeners),
      context_(std::move(context)),
      config_(config) {
  uv_timer_init(loop_, &stop_timer_);
  stop_timer_.data = this;
}

Supervisor::~Supervisor() = default;

void Supervisor::start(uint32_t workers) {
  while (slots_.size() < workers) {
    auto slot = std::make_unique<Slot>();
    slot->owner = this;
    slot->index = static_cast<uint32_t>(slots_.size());
    uv_timer_init(loop_, &slot->restart_timer);
    slot->restart_timer.data = slot.get();
    slots_.push_back(std::move(slot));
  }
  for (auto& slot : slots_) spawn(*slot);
}

void Supervisor::spawn(Slot& slot) {
  const std::vector<int>& fds = listeners_.slotFds(slot.index);
  std::string slot_arg = std::to_string(slot.index);
  std::string cell_arg = std::to_string(slot.index);
  std::string gen_arg = std::to_string(generation_);
  std::string pid_arg = std::to_string(getpid());
  std::string count_arg = std::to_string(fds.size());
  std::vector<char*> args = {context_.exe_path.data(),
                             const_cast<char*>("--worker"),
                             const_cast<char*>("--slot"),
                             slot_arg.data(),
                             const_cast<char*>("--cell"),
                             cell_arg.data(),
                             const_cast<char*>("--generation"),
                             gen_arg.data(),
                             const_cast<char*>("--master-pid"),
                             pid_arg.data(),
                             const_cast<char*>("--listen-fds"),
                             count_arg.data(),
                             nullptr};
  std::vector<uv_stdio_container_t> stdio(kFirstListenFd + fds.size());
  for (int i = 0; i < 3; ++i) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  stdio[3] = {.flags = UV_INHERIT_FD, .data = {.fd = context_.shm_fd}};
  stdio[4] = {.flags = UV_INHERIT_FD, .data = {.fd = context_.config_fd}};
  for (size_t i = 0; i < fds.size(); ++i) {
    stdio[kFirstListenFd + i] = {.flags = UV_INHERIT_FD, .data = {.fd = fds[i]}};
  }

  auto process = std::make_unique<Process>();
  process->supervisor = this;
  process->slot = slot.index;
  process->generation = generation_;
  process->handle.data = process.get();
  uv_process_options_t options{};
  options.file = context_.exe_path.c_str();
  options.args = args.data();
  options.stdio = stdio.data();
  options.stdio_count = static_cast<int>(stdio.size());
  options.exit_cb = [](uv_process_t* handle, int64_t exit_status, int term_signal) {
    auto* p = static_cast<Process*>(handle->data);
    p->supervisor->onExit(*p, exit_status, term_signal);
  };

  shared::WorkerCell& shm = region_.cell(slot.index);
  shm.state.store(static_cast<uint32_t>(shared::WorkerState::Starting), std::memory_order_release);
  if (int rc = uv_spawn(loop_, &process->handle, &options); rc != 0) {
    spdlog::error("worker {}: spawn {}: {}", slot.index, context_.exe_path, uv_strerror(rc));
    retire(std::move(process));  // libuv wants a failed spawn's handle closed too
    scheduleRestart(slot);
    return;
  }
  process->pid = process->handle.pid;
  shm.pid.store(process->pid, std::memory_order_relaxed);
  shm.generation.store(generation_, std::memory_order_relaxed);
  spdlog::info("worker {}: started pid {} gen {}", slot.index, process->pid, generation_);
  slot.process = std::move(process);
  slot.state = SlotState::Running;
}

void Supervisor::onExit(Process& process, int64_t exit_status, int term_signal) {
  Slot& slot = *slots_.at(process.slot);
  std::string how = term_signal ? std::string("signal ") + strsignal(term_signal)
                                : "code " + std::to_string(exit_status);
  retire(std::move(slot.process));
  region_.cell(slot.index)
      .state.store(static_cast<uint32_t>(shared::WorkerState::Stopped), std::memory_order_release);

  if (stopping_) {
    spdlog::info("worker {}: pid {} exited ({})", slot.index, process.pid, how);
    slot.state = SlotState::Stopped;
    maybeDone();
    return;
  }
  if (!term_signal && exit_status == shared::kExitFatal) {
    spdlog::error("worker {}: pid {} cannot start ({}); not respawning", slot.index, process.pid,
                  how);
    slot.state = SlotState::Fatal;
    // With SO_REUSEPORT the kernel would keep queueing a share of new
    // connections on this slot's socket, where nobody accepts them.
    listeners_.closeSlot(slot.index);
    bool all_fatal = std::all_of(slots_.begin(), slots_.end(),
                                 [](const auto& s) { return s->state == SlotState::Fatal; });
    if (all_fatal && on_all_fatal) on_all_fatal();
    return;
  }
  spdlog::warn("worker {}: pid {} died ({}); respawning in {} ms", slot.index, process.pid, how,
               config_.restart_base_ms);
  scheduleRestart(slot);
}

// Closes a process handle; the Process is freed once libuv is done with it.
void Supervisor::retire(std::unique_ptr<Process> process) {
  uv_close(reinterpret_cast<uv_handle_t*>(&process->handle), [](uv_handle_t* h) {
    auto* p = static_cast<Process*>(h->data);
    auto& list = p->supervisor->exited_;
    list.erase(std::remove_if(list.begin(), list.end(),
                              [p](const std::unique_ptr<Process>& q) { return q.get() == p; }),
               list.end());
  });
  exited_.push_back(std::move(process));
}

void Supervisor::scheduleRestart(Slot& slot) {
  slot.state = SlotState::WaitingRestart;
  uv_timer_start(
      &slot.restart_timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<Slot*>(t->data);
        if (!s->owner->stopping_) s->owner->spawn(*s);
      },
      config_.restart_base_ms, 0);
}

bool Supervisor::allReady() const {
  return std::all_of(slots_.begin(), slots_.end(), [this](const auto& s) {
    return s->process && region_.cell(s->index).state.load(std::memory_order_acquire) ==
                             static_cast<uint32_t>(shared::WorkerState::Ready);
  });
}

uint32_t Supervisor::runningCount() const {
  return static_cast<uint32_t>(std::count_if(slots_.begin(), slots_.end(),
                                             [](const auto& s) { return s->process != nullptr; }));
}

void Supervisor::killAll(int signal) {
  for (auto& slot : slots_) {
    if (slot->process) uv_process_kill(&slot->process->handle, signal);
  }
}

void Supervisor::stop(bool graceful, std::function<void()> done) {
  stopping_ = true;
  on_stopped_ = std::move(done);
  for (auto& slot : slots_) {
    uv_timer_stop(&slot->restart_timer);
    if (!slot->process) slot->state = SlotState::Stopped;
  }
  killAll(graceful ? SIGTERM : SIGQUIT);
  uint64_t grace = graceful ? config_.shutdown_timeout_ms : kQuitGraceMs;
  uv_timer_start(
      &stop_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Supervisor*>(t->data);
        spdlog::warn("shutdown timeout: killing {} workers", self->runningCount());
        self->killAll(SIGKILL);
      },
      grace, 0);
  maybeDone();
}

void Supervisor::maybeDone() {
  if (!stopping_ || runningCount() != 0) return;
  uv_timer_stop(&stop_timer_);
  if (on_stopped_) {
    auto done = std::move(on_stopped_);
    on_stopped_ = nullptr;
    done();
  }
}

}  // namespace phalanx::master

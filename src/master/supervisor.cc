#include "master/supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "master/process_stats.h"
#include "master/spawn.h"
#include "shared/exit_codes.h"
#include "shared/route_records.h"

namespace phalanx::master {

using shared::ExitReason;
using shared::SlotState;
using shared::WorkerState;

namespace {

constexpr uint64_t kCheckMs = 100;
constexpr uint64_t kStartingCheckMs = 2;     // while a process is starting
constexpr uint64_t kSampleEvery = 5;         // checks: RSS and CPU every 500 ms
constexpr uint64_t kQuitGraceMs = 1000;      // SIGQUIT → SIGKILL
constexpr uint64_t kAbortGraceMs = 1000;     // SIGABRT (hung loop) → SIGKILL
constexpr uint64_t kDrainBackstopMs = 2000;  // past drain_timeout_ms → SIGKILL
// A committed reload is answered once the old workers closed their listening
// sockets, looked for this often and for at most this long (a worker whose
// loop is stuck accepts nothing anyway).
constexpr uint64_t kClosedCheckMs = 2;
constexpr uint64_t kClosedWaitMs = 1000;
// A slot waiting longer than this closes its sockets: connections queued there
// would otherwise wait out the whole delay. Short waits keep them (a restart
// after a crash then loses nothing queued).
constexpr uint64_t kKeepSocketsMaxDelayMs = 500;

// Time since `since`, 0 if `since` is later than `now` (a check computes `now`
// once, then may signal a process, stamping a later time on it).
uint64_t elapsed(uint64_t now, uint64_t since) {
  return now > since ? now - since : 0;
}

void store(std::atomic<uint32_t>& field, uint32_t value) {
  field.store(value, std::memory_order_release);
}

}  // namespace

Generation::~Generation() {
  if (config_fd >= 0) close(config_fd);
}

struct Supervisor::Process {
  Supervisor* owner = nullptr;
  std::shared_ptr<const Generation> generation;
  uint32_t slot = 0;
  uint32_t cell = 0;
  int pid = 0;
  Role role = Role::Serving;
  uint64_t spawned_ms = 0;                // monotonic
  ExitReason planned = ExitReason::None;  // why phalanx asked it to leave
  uint64_t signaled_ms = 0;               // when SIGTERM (drain) or SIGABRT (hung) was sent
  uint64_t max_requests = 0;              // with its jitter; 0 = no limit
  bool killed = false;                    // SIGKILL sent
  bool stable = false;                    // has been up min_uptime_ms
  bool in_reload = false;                 // pending worker of the reload in progress
  bool ready_seen = false;                // its ready was logged
};

struct Supervisor::Slot {
  explicit Slot(const shared::SupervisorConfig& config) : policy(config) {}
  Supervisor* owner = nullptr;
  uint32_t index = 0;
  bool wanted = false;  // index < target
  bool fatal = false;   // its worker exited 2: not respawned
  Process* serving = nullptr;
  Process* pending = nullptr;
  RestartPolicy policy;
  uv_timer_t restart_timer{};
  bool waiting = false;                     // restart_timer runs
  uint64_t restart_at_ms = 0;               // wall clock
  ExitReason recycling = ExitReason::None;  // a replacement is under way for this reason
  uint32_t restarts = 0;
};

struct Supervisor::ReloadTxn {
  std::shared_ptr<const Generation> generation;
  uint32_t workers = 0;
  ReloadDone done;
  uint64_t deadline_ms = 0;  // monotonic
};

// A committed reload not answered yet: the old workers it drains share their
// slot's socket with the new ones until they close their copies.
struct Supervisor::ClosingOld {
  ReloadDone done;
  std::vector<int> pids;
  uint64_t deadline_ms = 0;  // monotonic
};

Supervisor::Supervisor(uv_loop_t* loop, shared::SharedRegion& region, Listeners& listeners,
                       std::string exe_path)
    : loop_(loop),
      region_(region),
      listeners_(listeners),
      exe_path_(std::move(exe_path)),
      random_(std::random_device{}()) {
  uv_timer_init(loop_, &stop_timer_);
  stop_timer_.data = this;
  uv_timer_init(loop_, &check_timer_);
  check_timer_.data = this;
  uv_timer_init(loop_, &starting_timer_);
  starting_timer_.data = this;
  uv_timer_init(loop_, &closing_timer_);
  closing_timer_.data = this;
  uv_signal_init(loop_, &sigchld_);
  sigchld_.data = this;
  uv_signal_start(
      &sigchld_, [](uv_signal_t* h, int) { static_cast<Supervisor*>(h->data)->reap(); }, SIGCHLD);
}

Supervisor::~Supervisor() = default;

void Supervisor::start(std::shared_ptr<const Generation> generation, uint32_t workers) {
  current_ = std::move(generation);
  target_ = workers;
  region_.master().max_memory_bytes.store(current_->config.supervisor.max_memory_bytes,
                                          std::memory_order_relaxed);
  store(region_.master().workers, workers);
  store(region_.master().generation, current_->number);
  initSlots(workers);
  for (uint32_t i = 0; i < workers; ++i) {
    Slot& slot = *slots_[i];
    slot.wanted = true;
    if (!spawn(slot, current_, Role::Serving)) {
      scheduleRestart(slot, slot.policy.onExit(0, false).delay_ms);
    }
  }
  uv_timer_start(
      &check_timer_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->check(); }, kCheckMs,
      kCheckMs);
}

void Supervisor::initSlots(uint32_t count) {
  while (slots_.size() < count) {
    auto slot = std::make_unique<Slot>(current_->config.supervisor);
    slot->owner = this;
    slot->index = static_cast<uint32_t>(slots_.size());
    // Kept across a binary upgrade: the region is the old master's.
    slot->restarts = region_.slot(slot->index).restarts.load(std::memory_order_relaxed);
    uv_timer_init(loop_, &slot->restart_timer);
    slot->restart_timer.data = slot.get();
    slots_.push_back(std::move(slot));
  }
}

Supervisor::Process* Supervisor::spawn(Slot& slot, std::shared_ptr<const Generation> generation,
                                       Role role) {
  std::string error;
  if (!listeners_.isOpen(slot.index) && !listeners_.openSlot(slot.index, &error)) {
    spdlog::error("worker {}: cannot reopen its sockets: {}", slot.index, error);
    return nullptr;
  }
  uint32_t cell_index = 0;
  if (!shared::claimCell(region_, &cell_index)) {
    spdlog::error("worker {}: all {} shm cells are in use", slot.index, region_.cellCapacity());
    return nullptr;
  }

  std::vector<int> fds = listeners_.slotFds(slot.index, generation->config.listen);
  std::vector<std::string> args = {exe_path_,      "--worker",
                                   "--slot",       std::to_string(slot.index),
                                   "--cell",       std::to_string(cell_index),
                                   "--generation", std::to_string(generation->number),
                                   "--master-pid", std::to_string(getpid()),
                                   "--listen-fds", std::to_string(fds.size())};
  // In the worker: 3 = shm region, 4 = config, 5.. = this slot's sockets.
  fds.insert(fds.begin(), {region_.fd(), generation->config_fd});

  auto process = std::make_unique<Process>();
  process->owner = this;
  process->generation = generation;
  process->slot = slot.index;
  process->cell = cell_index;
  process->role = role;
  process->spawned_ms = shared::monotonicMs();
  const shared::SupervisorConfig& sc = generation->config.supervisor;
  if (sc.max_requests > 0) {
    process->max_requests =
        sc.max_requests +
        (sc.max_requests_jitter > 0 ? random_() % (sc.max_requests_jitter + 1) : 0);
  }

  shared::WorkerCell& cell = region_.cell(cell_index);
  cell.slot.store(slot.index, std::memory_order_relaxed);
  cell.generation.store(generation->number, std::memory_order_relaxed);
  cell.started_at_ms.store(shared::wallMs(), std::memory_order_relaxed);
  store(cell.state, static_cast<uint32_t>(WorkerState::Starting));
  shared::noteSlotUsed(region_, slot.index);

  pid_t pid = spawnProcess(exe_path_, args, fds);
  if (pid < 0) {
    spdlog::error("worker {}: spawn {}: {}", slot.index, exe_path_, std::strerror(-pid));
    std::memset(static_cast<void*>(&cell), 0, sizeof cell);
    return nullptr;
  }
  process->pid = pid;
  cell.pid.store(process->pid, std::memory_order_release);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&starting_timer_))) {
    uv_timer_start(
        &starting_timer_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->checkStarting(); },
        kStartingCheckMs, kStartingCheckMs);
  }
  spdlog::info("worker {}: started pid {} gen {}{}", slot.index, process->pid, generation->number,
               role == Role::Pending ? " (replacement)" : "");
  Process* raw = process.get();
  processes_.push_back(std::move(process));
  if (role == Role::Serving) slot.serving = raw;
  if (role == Role::Pending) slot.pending = raw;
  publish(slot);
  return raw;
}

// Collects the exits of this master's workers (SIGCHLD, and every check as a
// backstop): waitpid on its own pids only, as libuv reaps the children it
// started itself (an upgrade's new master).
void Supervisor::reap() {
  exited_.clear();  // those of the last round: no callback refers to them now
  std::vector<Process*> live;
  for (auto& p : processes_) live.push_back(p.get());
  for (Process* p : live) {
    int status = 0;
    if (waitpid(p->pid, &status, WNOHANG) != p->pid) continue;
    int64_t code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    int signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    onExit(*p, code, signal);  // moves it to exited_
  }
}

void Supervisor::onExit(Process& process, int64_t exit_status, int term_signal) {
  Slot& slot = *slots_.at(process.slot);
  uint64_t uptime_ms = shared::monotonicMs() - process.spawned_ms;
  ExitReason reason = process.planned != ExitReason::None ? process.planned
                      : term_signal                       ? ExitReason::Signaled
                                                          : ExitReason::Exited;
  int32_t detail = term_signal ? term_signal : static_cast<int32_t>(exit_status);
  std::string how = term_signal ? std::string("signal ") + strsignal(term_signal)
                                : "code " + std::to_string(exit_status);
  Role role = process.role;
  bool in_reload = process.in_reload;
  // A worker says ready in its cell and draining after that: either means it
  // got ready (even if the master's check never saw it).
  auto last_state =
      static_cast<WorkerState>(region_.cell(process.cell).state.load(std::memory_order_acquire));
  bool was_ready = last_state == WorkerState::Ready || last_state == WorkerState::Draining;
  int pid = process.pid;
  uint32_t generation = process.generation->number;

  if (slot.serving == &process) slot.serving = nullptr;
  if (slot.pending == &process) slot.pending = nullptr;
  shared::retireCell(region_, process.cell);
  auto it = std::find_if(processes_.begin(), processes_.end(),
                         [&](const auto& p) { return p.get() == &process; });
  exited_.push_back(std::move(*it));  // freed on the next reap: `process` is used below
  processes_.erase(it);

  shared::SlotRecord& record = region_.slot(slot.index);
  // (A worker of an aborted reload was never the slot's; after a hand-over the
  // slot records are the new master's.)
  if (!in_reload && !handed_over_) {
    store(record.last_exit_reason, static_cast<uint32_t>(reason));
    record.last_exit_detail.store(detail, std::memory_order_relaxed);
    record.last_exit_ms.store(shared::wallMs(), std::memory_order_relaxed);
  }

  if (stopping_) {
    spdlog::info("worker {}: pid {} exited ({})", slot.index, pid, how);
    if (!in_reload) countReplacement(reason);
  } else if (role == Role::Draining) {
    spdlog::info("worker {}: pid {} gen {} drained ({}, {})", slot.index, pid, generation,
                 shared::exitReasonName(reason), how);
    if (reason == ExitReason::Memory || reason == ExitReason::MaxRequests ||
        reason == ExitReason::Heartbeat) {
      countRestart(slot, reason);
    } else if (!in_reload) {
      countReplacement(reason);  // reload, scale: planned, not the slot's restarts
    }
  } else if (role == Role::Pending) {
    if (in_reload) {
      finishReload("worker " + std::to_string(slot.index) + " (pid " + std::to_string(pid) +
                   ", generation " + std::to_string(generation) + ") exited with " + how +
                   " before it was ready");
    } else {
      spdlog::warn("worker {}: replacement pid {} died ({}) before taking over", slot.index, pid,
                   how);
      countRestart(slot, reason);
      // Still to be replaced: check() starts another one after the backoff.
      slot.restart_at_ms = shared::wallMs() + slot.policy.onExit(uptime_ms, was_ready).delay_ms;
    }
  } else {
    bool fatal = !term_signal && exit_status == shared::kExitFatal;
    if (fatal) {
      spdlog::error("worker {}: pid {} cannot start ({}); not respawning", slot.index, pid, how);
      slot.fatal = true;
      // With SO_REUSEPORT the kernel would keep queueing a share of new
      // connections on this slot's socket, where nobody accepts them.
      listeners_.closeSlot(slot.index);
      bool all_fatal = std::all_of(slots_.begin(), slots_.end(),
                                   [](const auto& s) { return !s->wanted || s->fatal; });
      if (all_fatal && on_all_fatal) on_all_fatal();
    } else {
      onServingExit(slot, uptime_ms, was_ready);
      countRestart(slot, reason);
    }
  }
  publish(slot);
  maybeDone();
}

// The serving worker of a wanted slot is gone (crash, hung loop): its
// replacement takes over if one is under way, else a respawn after the backoff.
void Supervisor::onServingExit(Slot& slot, uint64_t uptime_ms, bool was_ready) {
  if (slot.pending && !slot.pending->in_reload) {
    spdlog::warn("worker {}: died; its replacement takes over", slot.index);
    slot.pending->role = Role::Serving;
    slot.serving = slot.pending;
    slot.pending = nullptr;
    slot.recycling = ExitReason::None;
    return;
  }
  slot.recycling = ExitReason::None;  // the respawn is the replacement
  RestartDecision d = slot.policy.onExit(uptime_ms, was_ready);
  spdlog::warn("worker {}: died after {} ms{}; respawning in {} ms{}", slot.index, uptime_ms,
               was_ready ? "" : ", before it was ready", d.delay_ms,
               d.errored ? " (errored: restarting too often)" : "");
  scheduleRestart(slot, d.delay_ms);
}

void Supervisor::countRestart(Slot& slot, ExitReason reason) {
  ++slot.restarts;
  countReplacement(reason);
}

// In the restarts metric by reason, but not a restart of the slot's (status):
// a process phalanx chose to end (reload, scale, stop, upgrade).
void Supervisor::countReplacement(ExitReason reason) {
  // fetch_add: during an upgrade the other master counts here too.
  region_.master().restarts_by_reason[static_cast<uint32_t>(reason)].fetch_add(
      1, std::memory_order_relaxed);
}

void Supervisor::scheduleRestart(Slot& slot, uint64_t delay_ms) {
  slot.waiting = true;
  startRestartTimer(slot, delay_ms);
  rescueIfNoneReady();
  // Closed only now: the rescue may have made the wait short.
  if (slot.waiting && slot.restart_at_ms > shared::wallMs() + kKeepSocketsMaxDelayMs &&
      listeners_.isOpen(slot.index)) {
    spdlog::info("worker {}: closing its sockets while it waits; new connections go to the others",
                 slot.index);
    listeners_.closeSlot(slot.index);
  }
  publish(slot);
}

void Supervisor::startRestartTimer(Slot& slot, uint64_t delay_ms) {
  slot.restart_at_ms = shared::wallMs() + delay_ms;
  uv_timer_start(
      &slot.restart_timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<Slot*>(t->data);
        s->owner->onRestartTimer(*s);
      },
      delay_ms, 0);
}

bool Supervisor::anyReady() const {
  return std::any_of(processes_.begin(), processes_.end(),
                     [this](const auto& p) { return p->role != Role::Draining && cellReady(*p); });
}

// Backoff must not leave the host without a worker when healthy ones are
// being killed: see slotToRescue.
void Supervisor::rescueIfNoneReady() {
  if (stopping_ || anyReady()) return;
  std::vector<WaitingSlot> waiting;
  for (const auto& s : slots_) {
    if (s->waiting && s->wanted && !s->fatal && !s->serving) {
      waiting.push_back({.slot = s->index,
                         .restart_at_ms = s->restart_at_ms,
                         .crash_looping = s->policy.crashLooping()});
    }
  }
  uint64_t now = shared::wallMs();
  uint64_t base = current_->config.supervisor.restart_base_ms;
  std::optional<uint32_t> rescued = slotToRescue(waiting, now, base);
  if (!rescued) return;
  Slot& slot = *slots_[*rescued];
  spdlog::warn("no worker is ready: worker {} restarts in {} ms instead of {} ms", slot.index, base,
               slot.restart_at_ms - now);
  startRestartTimer(slot, base);
  std::string error;
  // Connections queue there for the base delay instead of being refused.
  if (!listeners_.isOpen(slot.index) && !listeners_.openSlot(slot.index, &error)) {
    spdlog::error("worker {}: cannot reopen its sockets: {}", slot.index, error);
  }
  publish(slot);
}

void Supervisor::onRestartTimer(Slot& slot) {
  slot.waiting = false;
  if (stopping_ || !slot.wanted || slot.serving) return;
  if (!spawn(slot, current_, Role::Serving)) {
    scheduleRestart(slot, slot.policy.onExit(0, false).delay_ms);
  }
}

// Graceful replacement: a new worker first, the old one drains once it is ready.
void Supervisor::recycle(Slot& slot, ExitReason reason) {
  Process& old = *slot.serving;
  uint64_t uptime_ms = shared::monotonicMs() - old.spawned_ms;
  RestartDecision d = slot.policy.onExit(uptime_ms, true);
  slot.recycling = reason;
  if (!slot.policy.isStable(uptime_ms) && d.delay_ms > 0) {
    // Replaced again soon after the last time: back off like a crash loop
    // would (the old worker keeps serving meanwhile).
    slot.restart_at_ms = shared::wallMs() + d.delay_ms;
    spdlog::warn("worker {}: pid {} {}; replacing it in {} ms", slot.index, old.pid,
                 reason == ExitReason::Memory ? "is over max_memory" : "reached max_requests",
                 d.delay_ms);
  } else {
    slot.restart_at_ms = 0;
    spdlog::info("worker {}: pid {} {}; replacing it", slot.index, old.pid,
                 reason == ExitReason::Memory ? "is over max_memory" : "reached max_requests");
  }
  publish(slot);
}

// A ready pending worker becomes the slot's worker; the old one drains.
void Supervisor::takeOver(Slot& slot) {
  Process* next = slot.pending;
  Process* old = slot.serving;
  next->role = Role::Serving;
  next->in_reload = false;
  slot.serving = next;
  slot.pending = nullptr;
  ExitReason reason = slot.recycling != ExitReason::None ? slot.recycling : ExitReason::Reload;
  slot.recycling = ExitReason::None;
  if (old) drain(*old, reason);
  publish(slot);
}

void Supervisor::drain(Process& process, ExitReason reason) {
  process.role = Role::Draining;
  if (process.planned == ExitReason::Heartbeat || process.killed) return;  // already on its way out
  process.planned = reason;
  process.signaled_ms = shared::monotonicMs();
  kill(process.pid, SIGTERM);
}

void Supervisor::reload(std::shared_ptr<const Generation> next, uint32_t workers, ReloadDone done) {
  std::string error;
  if (reload_ || stopping_) {
    done(stopping_ ? "phalanx is stopping" : "a reload is already in progress");
    return;
  }
  if (!listeners_.ensureSlots(workers, &error)) {
    done("listen: " + error);
    return;
  }
  reload_ = std::make_unique<ReloadTxn>();
  reload_->generation = next;
  reload_->workers = workers;
  reload_->done = std::move(done);
  reload_->deadline_ms = shared::monotonicMs() + next->config.supervisor.ready_timeout_ms;
  initSlots(workers);
  for (uint32_t i = 0; i < workers; ++i) {
    Slot& slot = *slots_[i];
    if (slot.pending) {  // a memory or max_requests replacement: the reload replaces it
      slot.pending->in_reload = false;
      drain(*slot.pending, ExitReason::Reload);
      slot.pending = nullptr;
    }
    slot.recycling = ExitReason::None;
    Process* p = spawn(slot, next, Role::Pending);
    if (!p) {
      finishReload("worker " + std::to_string(i) + ": cannot start a process (see the log)");
      return;
    }
    p->in_reload = true;
  }
  spdlog::info("reload: generation {} starting {} workers", next->number, workers);
}

void Supervisor::checkReload(uint64_t now_ms) {
  bool all_ready = true;
  for (uint32_t i = 0; i < reload_->workers; ++i) {
    const Process* p = slots_[i]->pending;
    if (!p || !cellReady(*p)) all_ready = false;
  }
  if (all_ready) {
    finishReload("");
  } else if (now_ms > reload_->deadline_ms) {
    std::string late;
    for (uint32_t i = 0; i < reload_->workers; ++i) {
      const Process* p = slots_[i]->pending;
      if (p && !cellReady(*p)) late += (late.empty() ? "" : ", ") + std::to_string(i);
    }
    finishReload("worker " + late + " did not report ready within " +
                 std::to_string(reload_->generation->config.supervisor.ready_timeout_ms) +
                 " ms (ready_timeout_ms)");
  }
}

// Commits (error empty) or rolls back the reload in progress.
void Supervisor::finishReload(const std::string& error) {
  auto txn = std::move(reload_);
  if (!txn) return;
  if (!error.empty()) {
    spdlog::error("reload: generation {} failed: {}; generation {} keeps serving",
                  txn->generation->number, error, current_->number);
    for (auto& slot : slots_) {
      if (slot->pending && slot->pending->in_reload) {
        Process& p = *slot->pending;
        slot->pending = nullptr;  // its exit is then no news: not the slot's, not a restart
        if (cellReady(p)) {
          drain(p, ExitReason::Reload);  // ready means accepting: it may hold requests
        } else {
          p.planned = ExitReason::Reload;
          kill(p.pid, SIGKILL);
          p.killed = true;
        }
      }
    }
    // Sockets opened for slots the reload would have added: nobody accepts there.
    for (uint32_t i = target_; i < slots_.size(); ++i) {
      if (!slots_[i]->wanted) listeners_.closeSlot(i);
    }
    txn->done(error);
    return;
  }
  current_ = txn->generation;
  region_.master().max_memory_bytes.store(current_->config.supervisor.max_memory_bytes,
                                          std::memory_order_relaxed);
  for (auto& slot : slots_) slot->policy.configure(current_->config.supervisor);
  for (uint32_t i = 0; i < txn->workers; ++i) {
    Slot& slot = *slots_[i];
    uv_timer_stop(&slot.restart_timer);
    slot.waiting = false;
    slot.wanted = true;
    slot.fatal = false;
    takeOver(slot);
  }
  for (uint32_t i = txn->workers; i < slots_.size(); ++i) unwant(*slots_[i]);
  target_ = txn->workers;
  store(region_.master().workers, target_);
  store(region_.master().generation, current_->number);
  spdlog::info("reload: generation {} serving with {} workers; the old ones drain",
               current_->number, target_);
  // Answered only when no old worker accepts any more: a client that connects
  // after `phalanxctl reload` returned must meet the new generation.
  closing_ = std::make_unique<ClosingOld>();
  closing_->done = std::move(txn->done);
  closing_->deadline_ms = shared::monotonicMs() + kClosedWaitMs;
  for (const auto& p : processes_) {
    if (p->role == Role::Draining) closing_->pids.push_back(p->pid);
  }
  uv_timer_start(
      &closing_timer_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->checkClosing(); }, 0,
      kClosedCheckMs);
}

// Answers the committed reload once each old worker said it is draining
// (which it says after closing its listening sockets), has exited, or is
// being killed; or once kClosedWaitMs passed.
void Supervisor::checkClosing() {
  if (!closing_) return;
  std::erase_if(closing_->pids, [this](int pid) {
    auto it = std::find_if(processes_.begin(), processes_.end(),
                           [pid](const auto& p) { return p->pid == pid; });
    if (it == processes_.end()) return true;
    const Process& p = **it;
    if (p.killed || p.planned == ExitReason::Heartbeat) return true;
    auto state =
        static_cast<WorkerState>(region_.cell(p.cell).state.load(std::memory_order_acquire));
    return state == WorkerState::Draining || state == WorkerState::Stopped;
  });
  bool late = shared::monotonicMs() > closing_->deadline_ms;
  if (!closing_->pids.empty() && !late && !stopping_) return;
  if (!closing_->pids.empty() && late) {
    spdlog::warn("reload: {} old workers still accept after {} ms; answering anyway",
                 closing_->pids.size(), kClosedWaitMs);
  }
  uv_timer_stop(&closing_timer_);
  auto closing = std::move(closing_);
  closing->done("");
}

bool Supervisor::scale(uint32_t workers, std::string* error) {
  if (stopping_) {
    *error = "phalanx is stopping";
    return false;
  }
  if (reload_) {
    *error = "a reload is in progress; try again when it is done";
    return false;
  }
  if (workers == 0 || workers > region_.slotCapacity()) {
    *error = "workers must be 1.." + std::to_string(region_.slotCapacity());
    return false;
  }
  if (!listeners_.ensureSlots(workers, error)) return false;
  initSlots(workers);
  for (uint32_t i = target_; i < workers; ++i) {
    Slot& slot = *slots_[i];
    slot.wanted = true;
    slot.fatal = false;
    if (!slot.serving && !spawn(slot, current_, Role::Serving)) {
      scheduleRestart(slot, slot.policy.onExit(0, false).delay_ms);
    }
  }
  for (uint32_t i = workers; i < target_; ++i) unwant(*slots_[i]);
  spdlog::info("scale: {} → {} workers", target_, workers);
  target_ = workers;
  store(region_.master().workers, target_);
  return true;
}

// The slot leaves: its worker drains, its sockets close.
void Supervisor::unwant(Slot& slot) {
  slot.wanted = false;
  uv_timer_stop(&slot.restart_timer);
  slot.waiting = false;
  slot.recycling = ExitReason::None;
  if (slot.serving) drain(*slot.serving, ExitReason::Scale);
  if (slot.pending) drain(*slot.pending, ExitReason::Scale);
  slot.serving = slot.pending = nullptr;
  listeners_.closeSlot(slot.index);
  publish(slot);
}

bool Supervisor::cellReady(const Process& process) const {
  return region_.cell(process.cell).state.load(std::memory_order_acquire) ==
         static_cast<uint32_t>(WorkerState::Ready);
}

// Every 100 ms: reload progress, replacements that became ready, heartbeats,
// memory and max_requests, stragglers.
void Supervisor::check() {
  reap();
  if (stopping_) return;
  uint64_t now = shared::monotonicMs();
  bool sample = ++check_count_ % kSampleEvery == 0;
  advanceStarted(now);
  for (auto it = processes_.begin(); it != processes_.end();) {
    Process& p = **it++;  // checkProcess never frees a process: exits come from reap()
    checkProcess(p, now, sample);
  }
  uint64_t wall = shared::wallMs();
  bool max_requests_busy = std::any_of(slots_.begin(), slots_.end(), [](const auto& s) {
    return s->recycling == ExitReason::MaxRequests;
  });
  // One max_requests replacement at a time, and the slot furthest past its
  // limit goes first: in slot order, a slot whose fresh workers reach the
  // limit quickly (a busy keep-alive client) would starve the others.
  Slot* most_over = nullptr;
  double most_over_ratio = 0;
  for (auto& s : slots_) {
    Slot& slot = *s;
    // A replacement whose backoff is over gets started.
    if (slot.recycling != ExitReason::None && !slot.pending && slot.serving && !reload_ &&
        wall >= slot.restart_at_ms) {
      spawn(slot, current_, Role::Pending);
    }
    if (!slot.serving || slot.recycling != ExitReason::None || slot.pending || reload_) continue;
    Process& p = *slot.serving;
    if (p.planned != ExitReason::None) continue;  // already being replaced
    const shared::WorkerCell& cell = region_.cell(p.cell);
    uint64_t max_memory = current_->config.supervisor.max_memory_bytes;
    if (max_memory > 0 && cell.rss_bytes.load(std::memory_order_relaxed) > max_memory) {
      recycle(slot, ExitReason::Memory);
    } else if (p.max_requests > 0 && !max_requests_busy) {
      uint64_t requests = cell.traffic.requests.load(std::memory_order_relaxed);
      double ratio = static_cast<double>(requests) / static_cast<double>(p.max_requests);
      if (requests >= p.max_requests && ratio > most_over_ratio) {
        most_over = &slot;
        most_over_ratio = ratio;
      }
    }
  }
  if (most_over != nullptr) recycle(*most_over, ExitReason::MaxRequests);
  rescueIfNoneReady();
}

// While a process is starting, its ready is looked for every kStartingCheckMs
// rather than every kCheckMs: a reload commits, and a replacement takes over,
// as soon as the new workers serve.
void Supervisor::checkStarting() {
  bool starting = false;
  uint64_t now = shared::monotonicMs();
  for (auto& p : processes_) {
    auto state =
        static_cast<WorkerState>(region_.cell(p->cell).state.load(std::memory_order_acquire));
    if (state == WorkerState::Starting) starting = true;
    if (state == WorkerState::Ready && !p->ready_seen) {
      p->ready_seen = true;
      spdlog::debug("worker {}: pid {} ready {} ms after its spawn", p->slot, p->pid,
                    now - p->spawned_ms);
    }
  }
  if (!starting) uv_timer_stop(&starting_timer_);
  if (!stopping_) advanceStarted(now);
}

// New workers that said ready: the reload commits once all of its have, a
// replacement takes its slot over.
void Supervisor::advanceStarted(uint64_t now_ms) {
  if (reload_) checkReload(now_ms);
  for (auto& slot : slots_) {
    if (slot->pending && !slot->pending->in_reload && cellReady(*slot->pending)) takeOver(*slot);
  }
}

void Supervisor::checkProcess(Process& p, uint64_t now, bool sample) {
  shared::WorkerCell& cell = region_.cell(p.cell);
  const shared::SupervisorConfig& sc = p.generation->config.supervisor;
  if (sample) {
    if (auto stats = readProcessStats(p.pid)) {
      cell.rss_bytes.store(stats->rss_bytes, std::memory_order_relaxed);
      cell.cpu_ms.store(stats->cpu_ms, std::memory_order_relaxed);
    }
  }
  if (p.killed) return;
  auto state = static_cast<WorkerState>(cell.state.load(std::memory_order_acquire));
  Slot& slot = *slots_[p.slot];

  if (p.planned == ExitReason::Heartbeat) {
    if (elapsed(now, p.signaled_ms) > kAbortGraceMs) {
      spdlog::error("worker {}: pid {} ignored SIGABRT; SIGKILL", p.slot, p.pid);
      kill(p.pid, SIGKILL);
      p.killed = true;
    }
    return;
  }
  if (p.role == Role::Draining) {
    if (elapsed(now, p.signaled_ms) > uint64_t{sc.drain_timeout_ms} + kDrainBackstopMs) {
      spdlog::error("worker {}: pid {} still draining past drain_timeout_ms; SIGKILL", p.slot,
                    p.pid);
      kill(p.pid, SIGKILL);
      p.killed = true;
    }
    return;
  }
  if (state == WorkerState::Starting) {
    // (A reload's workers have the reload's own deadline.)
    if (!p.in_reload && elapsed(now, p.spawned_ms) > sc.ready_timeout_ms) {
      spdlog::error("worker {}: pid {} not ready after {} ms (ready_timeout_ms); SIGKILL", p.slot,
                    p.pid, sc.ready_timeout_ms);
      if (p.role == Role::Serving) p.planned = ExitReason::Heartbeat;
      p.signaled_ms = now;
      kill(p.pid, SIGKILL);
      p.killed = true;
    }
    return;
  }
  uint64_t beat = cell.heartbeat_ms.load(std::memory_order_relaxed);
  if (state == WorkerState::Ready && beat != 0 && elapsed(now, beat) > sc.heartbeat_timeout_ms) {
    spdlog::error("worker {}: pid {} has not stamped its heartbeat for {} ms; SIGABRT", p.slot,
                  p.pid, now - beat);
    p.planned = ExitReason::Heartbeat;
    p.signaled_ms = now;
    kill(p.pid, SIGABRT);
    // Its replacement starts now, on the same sockets: the connections queued
    // there are served without waiting for the hung process to go.
    if (p.role == Role::Serving && !slot.pending && !reload_) {
      slot.recycling = ExitReason::Heartbeat;
      slot.restart_at_ms = 0;
      spawn(slot, current_, Role::Pending);
    }
    return;
  }
  if (p.role == Role::Serving && !p.stable && slot.policy.isStable(elapsed(now, p.spawned_ms))) {
    p.stable = true;
    slot.policy.stable();
    publish(slot);
  }
}

uint32_t Supervisor::drainingGenerations() const {
  std::set<uint32_t> generations;
  for (const auto& p : processes_) {
    if (p->role == Role::Draining && p->planned == ExitReason::Reload) {
      generations.insert(p->generation->number);
    }
  }
  return static_cast<uint32_t>(generations.size());
}

void Supervisor::publish(const Slot& slot) {
  if (handed_over_) return;
  shared::SlotRecord& r = region_.slot(slot.index);
  SlotState state = !slot.wanted            ? SlotState::Unused
                    : slot.fatal            ? SlotState::Fatal
                    : slot.policy.errored() ? SlotState::Errored
                    : slot.serving          ? SlotState::Running
                                            : SlotState::WaitingRestart;
  r.restarts.store(slot.restarts, std::memory_order_relaxed);
  r.unstable_restarts.store(slot.policy.unstable(), std::memory_order_relaxed);
  r.pid.store(slot.serving ? slot.serving->pid : 0, std::memory_order_relaxed);
  r.restart_at_ms.store(slot.waiting ? slot.restart_at_ms : 0, std::memory_order_relaxed);
  store(r.state, static_cast<uint32_t>(state));
}

bool Supervisor::allReady() const {
  if (target_ == 0) return false;
  for (uint32_t i = 0; i < target_; ++i) {
    const Slot& slot = *slots_[i];
    if (!slot.serving || !cellReady(*slot.serving)) return false;
  }
  return true;
}

void Supervisor::forward(int signal) {
  // A worker still starting may not handle it yet (exec resets handlers): the
  // default action of USR1 would kill it. It opens its logs fresh anyway.
  for (auto& p : processes_) {
    if (region_.cell(p->cell).state.load(std::memory_order_acquire) !=
        static_cast<uint32_t>(WorkerState::Starting)) {
      kill(p->pid, signal);
    }
  }
}

void Supervisor::signalAll(int signal) {
  for (auto& p : processes_) {
    if (!p->killed) kill(p->pid, signal);
  }
}

void Supervisor::republish() {
  store(region_.master().workers, target_);
  store(region_.master().generation, current_->number);
  region_.master().max_memory_bytes.store(current_->config.supervisor.max_memory_bytes,
                                          std::memory_order_relaxed);
  for (const auto& slot : slots_) publish(*slot);
}

void Supervisor::stop(bool graceful, std::function<void()> done, ExitReason reason) {
  stopping_ = true;
  on_stopped_ = std::move(done);
  uv_timer_stop(&check_timer_);
  uv_timer_stop(&starting_timer_);
  for (auto& slot : slots_) {
    uv_timer_stop(&slot->restart_timer);
    slot->waiting = false;
    // New connections are refused at once instead of queueing until the end.
    listeners_.closeSlot(slot->index);
  }
  if (reload_) finishReload("phalanx is stopping");
  checkClosing();  // stopping: a committed reload is answered now
  for (auto& p : processes_) {
    if (p->planned == ExitReason::None) p->planned = reason;
  }
  signalAll(graceful ? SIGTERM : SIGQUIT);
  uint64_t grace = graceful ? current_->config.supervisor.shutdown_timeout_ms : kQuitGraceMs;
  uv_timer_start(
      &stop_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Supervisor*>(t->data);
        spdlog::warn("shutdown timeout: killing {} workers", self->processes_.size());
        self->signalAll(SIGKILL);
      },
      grace, 0);
  maybeDone();
}

void Supervisor::maybeDone() {
  if (!stopping_ || !processes_.empty()) return;
  uv_timer_stop(&stop_timer_);
  if (on_stopped_) {
    auto done = std::move(on_stopped_);
    on_stopped_ = nullptr;
    done();
  }
}

}  // namespace phalanx::master

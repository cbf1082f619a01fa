#include "worker/worker.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shared/logging.h"
#include "worker/connection_balance.h"
#include "worker/privileges.h"

namespace phalanx::worker {

namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr uint64_t kHeartbeatMs = 500;
constexpr uint64_t kAcceptRetryMs = 100;

template <typename T>
Worker& owner(T* handle) {
  return *static_cast<Worker*>(handle->data);
}

// " (37 times in the last 10 s)" for a line that stands for several errors;
// nothing for the first of a run (`always`: a count said later, even of one).
std::string countSince(const shared::LogThrottle::Report& report, bool always = false) {
  if (report.count == 1 && !always) return {};
  std::string times = report.count == 1 ? "once" : std::to_string(report.count) + " times";
  return " (" + times + " in the last " + std::to_string((report.since_ms + 500) / 1000) + " s)";
}

std::string readAll(int fd) {
  std::string text;
  char buf[8192];
  off_t offset = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof buf, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

}  // namespace

Worker::Worker(uv_loop_t* loop, shared::Config config, shared::SharedRegion region,
               const WorkerOptions& options)
    : loop_(loop),
      config_(std::move(config)),
      region_(std::move(region)),
      cell_(region_.cell(options.cell)),
      options_(options),
      handlers_(config_,
                {.slot = options.slot,
                 .generation = options.generation,
                 .pid = getpid(),
                 .started_at_ms = shared::wallMs()},
                region_),
      route_figures_(config_, region_, options.slot),
      read_buffer_(new char[kReadBufferBytes]) {}

bool Worker::dropCapabilities(std::string* error) {
  PrivilegeDrop drop = dropPrivileges();
  for (const std::string& warning : drop.warnings) spdlog::warn("capabilities: {}", warning);
  if (!drop.error.empty()) {
    *error = "cannot drop the capabilities it inherited: " + drop.error;
    return false;
  }
  if (drop.had_permitted != 0) {
    spdlog::debug("dropped every capability (permitted were {:#x})", drop.had_permitted);
  }
  return true;
}

uv_buf_t Worker::readBuffer() {
  return uv_buf_init(read_buffer_.get(), kReadBufferBytes);
}

bool Worker::start(std::string* error) {
  if (!adopter_.start(loop_, error)) return false;
  gateway_ =
      Gateway::create(loop_, sends_, config_, region_, cell_, getpid(), options_.master_pid, error);
  if (!gateway_) return false;
  handlers_.setGateway(gateway_.get());
  gateway_->setHandlers(&handlers_);
  if (config_.log.access != "off") {
    access_log_ = AccessLog::open(config_.log.access, options_.slot, error);
    if (!access_log_) return false;
  }
  // Everything that may need privilege is done (the sockets came as fds, the
  // key files and the access log are open), and nothing has been served yet.
  if (!dropCapabilities(error)) return false;
  if (sends_.usesRing()) {
    spdlog::debug("sends: {}", sends_.method());
  } else {
    spdlog::info("sends: {}", sends_.method());  // works, at a system call per socket
  }
  for (int fd : options_.listen_fds) {
    auto listener = std::make_unique<Listener>();
    listener->worker = this;
    listener->fd = fd;
    listener->index = static_cast<uint32_t>(listeners_.size());
    listener->poll.data = listener.get();
    if (int rc = uv_poll_init_socket(loop_, &listener->poll, fd); rc != 0) {
      *error = "listening fd " + std::to_string(fd) + ": " + uv_strerror(rc);
      return false;
    }
    listeners_.push_back(std::move(listener));
  }
  gateway_->start();
  uv_check_init(loop_, &settle_check_);
  settle_check_.data = this;
  uv_check_start(&settle_check_, [](uv_check_t* h) { owner(h).settle(); });
  uv_prepare_init(loop_, &settle_prepare_);
  settle_prepare_.data = this;
  uv_prepare_start(&settle_prepare_, [](uv_prepare_t* h) { owner(h).settle(); });
  resumeAccepting();

  uv_signal_init(loop_, &sigterm_);
  sigterm_.data = this;
  uv_signal_start(
      &sigterm_, [](uv_signal_t* h, int) { owner(h).beginDrain(); }, SIGTERM);
  uv_signal_init(loop_, &sigquit_);
  sigquit_.data = this;
  uv_signal_start(
      &sigquit_, [](uv_signal_t*, int) { _exit(0); }, SIGQUIT);
  uv_signal_init(loop_, &sigusr1_);
  sigusr1_.data = this;
  uv_signal_start(
      &sigusr1_, [](uv_signal_t* h, int) { owner(h).reopenAccessLog(); }, SIGUSR1);

  uv_timer_init(loop_, &heartbeat_timer_);
  heartbeat_timer_.data = this;
  uv_timer_start(
      &heartbeat_timer_, [](uv_timer_t* t) { owner(t).heartbeat(); }, 0, kHeartbeatMs);
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(loop_, &accept_retry_timer_);
  accept_retry_timer_.data = this;

  cell_.heartbeat_ms.store(shared::monotonicMs(), std::memory_order_relaxed);
  cell_.state.store(static_cast<uint32_t>(shared::WorkerState::Ready), std::memory_order_release);
  return true;
}

// After the loop: the access log's last queued lines are written (or lost)
// here, and counted into the cell before the master folds it into the totals.
Worker::~Worker() {
  if (!access_log_) return;
  access_log_->close();
  publishAccessLogLosses();
}

void Worker::heartbeat() {
  cell_.heartbeat_ms.store(shared::monotonicMs(), std::memory_order_relaxed);
  if (gateway_) {
    cell_.redis_state.store(static_cast<uint32_t>(gateway_->redisState()),
                            std::memory_order_relaxed);
    gateway_->onHeartbeat();
  }
  balanceConnections();
  if (access_log_) publishAccessLogLosses();
  reportAcceptErrors(shared::monotonicMs());
  // The master is gone (PR_SET_PDEATHSIG covers most cases; this covers the
  // race where it died before we set it): drain like on SIGTERM.
  if (getppid() != options_.master_pid && !draining_) beginDrain();
}

void Worker::balanceConnections() {
  std::vector<uint64_t> ready;
  for (uint32_t i = 0; i < region_.cellCapacity(); ++i) {
    const shared::WorkerCell& cell = region_.cell(i);
    if (cell.pid.load(std::memory_order_relaxed) != 0 &&
        cell.state.load(std::memory_order_acquire) ==
            static_cast<uint32_t>(shared::WorkerState::Ready)) {
      ready.push_back(cell.open_connections.load(std::memory_order_relaxed));
    }
  }
  shed_budget_ = draining_ ? 0 : connectionsToShed(open_connections_, ready);
}

// After logrotate renamed the file: lines go to a fresh file at the configured
// path (AccessLog::reopen writes out the old file's queue first).
void Worker::reopenAccessLog() {
  const std::string& target = config_.log.access;
  if (!access_log_ || target == "stderr") {
    spdlog::info("SIGUSR1: no access log file to reopen");
    return;
  }
  std::string error;
  if (!access_log_->reopen(&error)) {
    spdlog::error("SIGUSR1: cannot reopen the access log, keeping the old file: {}", error);
    return;
  }
  spdlog::info("SIGUSR1: reopened access log {}", target);
}

// The access log's lost lines into this worker's cell (the loop thread is the
// one writer of both fields), and its write errors into the error log.
void Worker::publishAccessLogLosses() {
  access_log_->reportWriteErrors(shared::monotonicMs());
  AccessLogLosses lost = access_log_->losses();
  cell_.traffic.access_log_dropped_queue_full.store(lost.queue_full, std::memory_order_relaxed);
  cell_.traffic.access_log_dropped_write_error.store(lost.write_error, std::memory_order_relaxed);
}

void Worker::resumeAccepting() {
  if (draining_) return;
  accepting_paused_ = false;
  for (auto& l : listeners_) {
    if (l->polling || l->closed) continue;
    l->polling = true;
    uv_poll_start(&l->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
      auto* listener = static_cast<Listener*>(h->data);
      if (status == 0) listener->worker->onAcceptable(*listener);
    });
  }
}

// The socket stays open: connections queue in its backlog until we resume.
void Worker::pauseAccepting() {
  accepting_paused_ = true;
  for (auto& l : listeners_) {
    if (l->polling) uv_poll_stop(&l->poll);
    l->polling = false;
  }
}

// This process's copies of the listening sockets. The master keeps its own for
// slots that go on, so their backlogs survive for the replacement; when it
// closed its copy too (scale-down), this releases the socket in the kernel.
void Worker::closeListeners() {
  for (auto& l : listeners_) {
    if (l->closed) continue;
    l->closed = true;
    l->polling = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), [](uv_handle_t* h) {
      auto* listener = static_cast<Listener*>(h->data);
      ::close(listener->fd);
      listener->fd = -1;
    });
  }
}

// One connection per readiness, as nginx without multi_accept: the listener is
// level-triggered, so one still queued comes back in the next epoll_wait along
// with the data of those already accepted. Accepting until EAGAIN cost a failed
// accept4 per connection and, as the loop then blocked before the request had
// arrived, twice the wakeups: 1.38 context switches a request against 0.50, and
// server CPU per request 1.10x nginx's against 1.01x (ab -c32, no keep-alive).
void Worker::onAcceptable(Listener& listener) {
  if (open_connections_ >= config_.limits.max_connections) {
    pauseAccepting();
    return;
  }
  // The peer's address comes with the accept (the access log wants it): no getpeername().
  sockaddr_storage peer{};
  socklen_t peer_length = sizeof peer;
  int fd = accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer), &peer_length,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) onAcceptError(errno);
    return;
  }
  ++open_connections_;
  shared::bump(cell_.traffic.accepted_connections);
  cell_.open_connections.store(open_connections_, std::memory_order_relaxed);
  connections_.emplace_front(*this);
  connections_.front().start(fd, reinterpret_cast<const sockaddr*>(&peer), listener.index,
                             connections_.begin());
}

// Out of descriptors or memory: back off instead of spinning on a readable
// socket. At the fd limit that repeats every kAcceptRetryMs, so the first error
// of a run is said at once and the rest at most once per kAcceptErrorLogMs,
// with a count (and by reportAcceptErrors once they stopped).
void Worker::onAcceptError(int error) {
  shared::bump(cell_.traffic.accept_errors);
  uint64_t now_ms = shared::monotonicMs();
  if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
    accept_pause_errno_ = error;
    if (auto report = accept_pause_log_.note(now_ms)) {
      spdlog::warn("accept: {}{}; pausing accepts for {} ms", std::strerror(error),
                   countSince(report), kAcceptRetryMs);
    }
    pauseAccepting();
    uv_timer_start(
        &accept_retry_timer_, [](uv_timer_t* t) { owner(t).resumeAccepting(); }, kAcceptRetryMs, 0);
    return;
  }
  accept_error_errno_ = error;
  if (auto report = accept_error_log_.note(now_ms)) {
    spdlog::error("accept: {}{}", std::strerror(error), countSince(report));
  }
}

// Accept errors counted since their last line, said once the interval is up
// even if no error came since: a count never waits for the next run.
void Worker::reportAcceptErrors(uint64_t now_ms) {
  if (auto report = accept_pause_log_.due(now_ms)) {
    spdlog::warn("accept: {}{}; accepts were paused for {} ms each time",
                 std::strerror(accept_pause_errno_), countSince(report, true), kAcceptRetryMs);
  }
  if (auto report = accept_error_log_.due(now_ms)) {
    spdlog::error("accept: {}{}", std::strerror(accept_error_errno_), countSince(report, true));
  }
}

// Completing an exchange writes its answer and may start the next request on
// its connection, whose upstream request joins the batch in turn; a send's
// outcome may answer (and defer) or send again. So it runs until both are empty.
void Worker::settle() {
  do {
    runDeferred();
    sends_.submit();
  } while (!deferred_.empty() || !sends_.empty());
}

// Until none is left: completing an exchange parses the connection's held
// input, whose next request may finish at once (a guarded static route, a
// refusal) and defer again; left for the next iteration, it would wait for
// some unrelated event to wake the loop.
void Worker::runDeferred() {
  // Two members swapped back and forth keep their storage: a local here handed
  // deferred_ an empty vector each time, one allocation per iteration or more.
  while (!deferred_.empty()) {
    deferred_running_.clear();
    deferred_running_.swap(deferred_);
    for (Connection* connection : deferred_running_) connection->onDeferred();
  }
}

void Worker::onConnectionClosed(std::list<Connection>::iterator connection) {
  // Closed before its deferred call ran (rare): it must not run on freed memory.
  std::erase(deferred_, &*connection);
  connections_.erase(connection);
  --open_connections_;
  cell_.open_connections.store(open_connections_, std::memory_order_relaxed);
  if (draining_) {
    if (connections_.empty()) stopLoop();
  } else if (accepting_paused_ && open_connections_ < config_.limits.max_connections &&
             !uv_is_active(reinterpret_cast<uv_handle_t*>(&accept_retry_timer_))) {
    resumeAccepting();
  }
}

void Worker::beginDrain() {
  if (draining_) return;
  spdlog::info("draining: {} open connections", open_connections_);
  pauseAccepting();
  closeListeners();
  draining_ = true;
  handlers_.setDraining();
  if (gateway_) gateway_->beginDrain();
  cell_.state.store(static_cast<uint32_t>(shared::WorkerState::Draining),
                    std::memory_order_release);
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* t) {
        spdlog::warn("drain timeout: closing {} connections", owner(t).open_connections_);
        owner(t).stopLoop();
      },
      config_.supervisor.drain_timeout_ms, 0);
  for (auto& connection : connections_) connection.beginDrain();
  if (connections_.empty()) stopLoop();
}

void Worker::releaseUpstreams() {
  for (auto& connection : connections_) connection.dropExchange();
  if (gateway_) gateway_->closeAll();
}

void Worker::stopLoop() {
  cell_.state.store(static_cast<uint32_t>(shared::WorkerState::Stopped), std::memory_order_release);
  uv_stop(loop_);
}

int runWorker(const WorkerOptions& options) {
  // Ctrl-C in a terminal reaches the whole process group; the master decides.
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // The master forwards USR1 (reopen logs) to every worker; one still starting
  // must not die of it before its handler is installed.
  signal(SIGUSR1, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGTERM);

  std::string text = readAll(options.config_fd);
  close(options.config_fd);
  auto parsed = shared::parseConfig(text);
  if (!parsed.config) {
    shared::setupErrorLog("worker " + std::to_string(options.slot), "info");
    spdlog::critical("config handed down by the master does not parse: {}",
                     parsed.errors.empty() ? "?" : parsed.errors.front());
    return shared::kExitFatal;
  }
  shared::setupErrorLog("worker " + std::to_string(options.slot), parsed.config->log.level);

  std::string error;
  auto region = shared::SharedRegion::attach(options.shm_fd, &error);
  if (!region) {
    spdlog::critical("{}", error);
    return shared::kExitFatal;
  }
  if (options.cell >= region.cellCapacity() || options.slot >= region.slotCapacity()) {
    spdlog::critical("slot {} / cell {} is outside the shm region ({} slots, {} cells)",
                     options.slot, options.cell, region.slotCapacity(), region.cellCapacity());
    return shared::kExitFatal;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Worker worker(&loop, std::move(*parsed.config), std::move(region), options);
    if (!worker.start(&error)) {
      spdlog::critical("cannot start: {}", error);
      return shared::kExitFatal;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    spdlog::debug("stopped");
    worker.releaseUpstreams();
    // Close every handle (signal handles included) while the Worker that owns
    // them is alive, so nothing refers to it once it is destroyed.
    uv_walk(
        &loop,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  // Stopping the signal handles restored the default action, which would kill
  // an exiting worker on a forwarded USR1.
  signal(SIGUSR1, SIG_IGN);
  uv_loop_close(&loop);
  return shared::kExitOk;
}

}  // namespace phalanx::worker

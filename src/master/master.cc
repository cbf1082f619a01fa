#include "master/master.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "master/control_server.h"
#include "master/inheritance.h"
#include "master/listeners.h"
#include "master/sd_notify.h"
#include "master/supervisor.h"
#include "master/upgrade.h"
#include "master/upstream_commands.h"
#include "shared/access_records.h"
#include "shared/access_report.h"
#include "shared/config.h"
#include "shared/logging.h"
#include "shared/route_records.h"
#include "shared/route_report.h"
#include "shared/shm.h"
#include "shared/shm_snapshot.h"
#include "shared/status_report.h"
#include "shared/upstream_records.h"

namespace phalanx::master {

namespace {

// A count argument ("N" of `scale N`, `keys N`): digits only, 1..max. Not
// strtoul, which takes "-1" (as ULONG_MAX), "+4" and " 4".
bool parseCount(const std::string& text, size_t max, size_t* out) {
  if (text.empty() || text.size() > 9) return false;
  size_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  if (n < 1 || n > max) return false;
  *out = n;
  return true;
}

constexpr uint64_t kTickMs = 50;
// How long `cache purge` waits for the workers (they look on their 500 ms
// heartbeat) and for the Redis level's SCAN.
constexpr uint64_t kPurgeWaitMs = 5000;
// Reloads while this many old generations still drain wait for one to finish:
// each generation holds a process per slot.
constexpr uint32_t kMaxDrainingGenerations = 3;

// A copy of the config text for the workers: they parse exactly the bytes the
// master validated, even if the file changes on disk meanwhile.
int configMemfd(const std::string& text) {
  int fd = memfd_create("phalanx-config", MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

// Workers open the access log themselves; trying it here first turns a bad path
// into one clear error before anything is forked.
bool accessLogWritable(const std::string& target, std::string* error) {
  if (target == "off" || target == "stderr") return true;
  int fd = open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "log.access: " + target + ": " + std::strerror(errno);
    return false;
  }
  close(fd);
  return true;
}

std::string selfExe() {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return {};
  return std::string(path, static_cast<size_t>(n));
}

std::string joinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += (text.empty() ? "" : "\n") + l;
  return text;
}

std::string addressList(const std::vector<shared::Address>& addresses) {
  std::string text;
  for (const auto& a : addresses) text += (text.empty() ? "" : ", ") + a.text;
  return text;
}

// How long an upgrade's new master may take to serve: its own start, config
// and workers (each bounded by ready_timeout_ms), plus this margin.
constexpr uint64_t kUpgradeMarginMs = 5000;

class Master {
 public:
  // `inherited`: this master is the new one of a binary upgrade; it hands
  // over (control socket, "ready" to the old master) once its workers serve.
  Master(uv_loop_t* loop, std::string config_path, Listeners& listeners,
         shared::SharedRegion& region, std::string exe, std::optional<Inheritance> inherited)
      : loop_(loop),
        config_path_(std::move(config_path)),
        exe_(exe),
        listeners_(listeners),
        region_(region),
        supervisor_(loop, region, listeners, std::move(exe)),
        control_(loop, commands()),
        upgrade_(loop),
        inherited_(std::move(inherited)) {}

  // An upgrade's new master binds beside the old master's socket, and moves
  // it into place when it takes over.
  bool listenControl(const std::string& path, std::string* error) {
    control_path_ = path;
    return control_.listen(inherited_ ? path + ".upgrade" : path, error);
  }

  void start(std::shared_ptr<const Generation> first) {
    last_generation_ = first->number;  // 1, or the old master's + 1 after an upgrade
    supervisor_.on_all_fatal = [this] {
      spdlog::critical("no worker can start; exiting");
      exit_code_ = 1;
      stop(false);
    };
    for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU}) {
      watchSignal(s);
    }
    uv_timer_init(loop_, &tick_);
    tick_.data = this;
    uv_timer_start(
        &tick_, [](uv_timer_t* t) { static_cast<Master*>(t->data)->tick(); }, kTickMs, kTickMs);
    uv_timer_init(loop_, &watchdog_);
    watchdog_.data = this;
    // An upgrade's new master is not the main process yet: systemd would drop
    // its pings. It starts them when it takes over.
    if (!inherited_) startWatchdog();
    uint32_t workers = shared::effectiveWorkers(first->config);
    supervisor_.start(std::move(first), workers);
  }

  int exitCode() const { return exit_code_; }

 private:
  // `first_ms`: an upgrade's new master waits one interval, so its first ping
  // comes after the old master's MAINPID= (systemd drops it before).
  void startWatchdog(uint64_t first_ms = 0) {
    if (uint64_t interval = notifier_.watchdogIntervalMs()) {
      uv_timer_start(
          &watchdog_, [](uv_timer_t* t) { static_cast<Master*>(t->data)->notifier_.watchdog(); },
          first_ms, interval);
    }
  }

  void watchSignal(int signum) {
    auto& handle = signals_.emplace_back(std::make_unique<uv_signal_t>());
    uv_signal_init(loop_, handle.get());
    handle->data = this;
    uv_signal_start(
        handle.get(), [](uv_signal_t* h, int s) { static_cast<Master*>(h->data)->onSignal(s); },
        signum);
  }

  void onSignal(int signum) {
    std::string error;
    switch (signum) {
      case SIGTERM:
      case SIGINT:
        spdlog::info("{}: graceful stop", strsignal(signum));
        stop(true);
        break;
      case SIGQUIT:
        spdlog::info("{}: immediate stop", strsignal(signum));
        stop(false);
        break;
      case SIGHUP:
        spdlog::info("SIGHUP: reloading {}", config_path_);
        requestReload(nullptr);
        break;
      case SIGUSR1:
        spdlog::info("SIGUSR1: workers reopen their log files");
        supervisor_.forward(SIGUSR1);
        break;
      case SIGUSR2:
        spdlog::info("SIGUSR2: upgrading to the binary {}", exe_);
        requestUpgrade(nullptr);
        break;
      case SIGTTIN:
      case SIGTTOU: {
        uint32_t now = supervisor_.targetWorkers();
        uint32_t next = signum == SIGTTIN ? now + 1 : now - 1;
        if (!scale(next, &error)) {
          spdlog::warn("{}: cannot scale to {} workers: {}", strsignal(signum), next, error);
        }
        break;
      }
      default: break;
    }
  }

  // TTIN/TTOU and `scale N`; not while an upgrade runs (the new master sizes
  // itself from the config).
  bool scale(uint32_t workers, std::string* error) {
    if (upgrade_.running()) {
      *error = "an upgrade is in progress";
      return false;
    }
    return supervisor_.scale(workers, error);
  }

  // --- reload: validate, then a new generation; a bounded number drain at once

  void requestReload(Supervisor::ReloadDone done) {
    if (stopping_ || upgrade_.running()) {
      if (done) done(stopping_ ? "phalanx is stopping" : "an upgrade is in progress");
      return;
    }
    reload_waiters_.push_back(std::move(done));
    maybeStartReload();
  }

  void maybeStartReload() {
    if (reload_running_ || reload_waiters_.empty() || stopping_) return;
    if (supervisor_.drainingGenerations() >= kMaxDrainingGenerations) {
      if (!reload_deferred_) {
        spdlog::warn("reload: waiting until one of {} old generations has drained",
                     supervisor_.drainingGenerations());
      }
      reload_deferred_ = true;  // tick() tries again
      return;
    }
    reload_deferred_ = false;
    reload_running_ = true;
    // Those asking from now on get the next reload: it reads the file again.
    reload_answering_ = std::move(reload_waiters_);
    reload_waiters_.clear();
    notifier_.reloading();
    std::string text;
    auto loaded = shared::loadConfigFile(config_path_, &text);
    if (!loaded.config) {
      finishReload(joinLines(loaded.errors));
      return;
    }
    const shared::Config& current = supervisor_.current().config;
    std::string error;
    accessLogWritable(loaded.config->log.access, &error);
    // New addresses are bound now, before anything changes: a taken port
    // fails the reload here. finishReload closes what is not needed after.
    if (error.empty() && !listeners_.add(loaded.config->listen, &error)) {
      error = "listen: " + error;
    }
    int fd = error.empty() ? configMemfd(text) : -1;
    if (error.empty() && fd < 0) error = std::string("memfd_create: ") + std::strerror(errno);
    // Last, as it writes shm: the new generation's records exist before its
    // workers look for them. A reload that fails later provisions back.
    if (error.empty() && (!shared::provisionLimits(region_, *loaded.config, &error) ||
                          !shared::provisionRoutes(region_, *loaded.config, &error))) {
      close(fd);
    }
    if (error.empty() &&
        !shared::provisionUpstreams(region_, *loaded.config, last_generation_ + 1, &error)) {
      close(fd);
    }
    if (!error.empty()) {
      finishReload(error);
      return;
    }
    upstreams_provisioned_ = true;
    if (loaded.config->rate_limit_entries != region_.rateLimitCapacity()) {
      spdlog::warn("reload: rate_limit_entries stays {} until a restart",
                   region_.rateLimitCapacity());
    }
    if (loaded.config->control_socket != control_path_) {
      spdlog::warn("reload: control_socket stays {} until a restart", control_path_);
    }
    // A count set with scale/TTIN/TTOU survives a reload, unless the reload
    // itself changes `workers`.
    uint32_t workers = shared::effectiveWorkers(*loaded.config) == shared::effectiveWorkers(current)
                           ? supervisor_.targetWorkers()
                           : shared::effectiveWorkers(*loaded.config);
    shared::setupErrorLog("master", loaded.config->log.level);
    auto next =
        std::make_shared<const Generation>(++last_generation_, std::move(*loaded.config), fd);
    supervisor_.reload(next, workers, [this](const std::string& e) { finishReload(e); });
  }

  void finishReload(const std::string& error) {
    reload_running_ = false;
    // The addresses of the generation serving now; the old workers keep
    // their own copies of removed ones until they have drained.
    listeners_.keepOnly(supervisor_.current().config.listen);
    if (!error.empty() && upstreams_provisioned_) restoreUpstreams();
    upstreams_provisioned_ = false;
    // A stop cuts a reload short: nothing to record then, and systemd has been
    // told STOPPING=1 already.
    if (!stopping_) recordReload(error);
    auto answering = std::move(reload_answering_);
    reload_answering_.clear();
    for (auto& done : answering) {
      if (done) done(error);
    }
    maybeStartReload();
  }

  // The old generation keeps serving: its records become Active again (they
  // were only retired, so they are all still there and this cannot run out of
  // room), and those only the failed config had are retired.
  void restoreUpstreams() {
    std::string error;
    const Generation& current = supervisor_.current();
    if (!shared::provisionUpstreams(region_, current.config, current.number, &error)) {
      spdlog::error("reload: restoring the upstream records of generation {}: {}", current.number,
                    error);
    }
  }

  void recordReload(const std::string& error) {
    shared::MasterInfo& info = region_.master();
    last_reload_error_ = error;
    info.last_reload_ms.store(shared::wallMs(), std::memory_order_relaxed);
    shared::bump(error.empty() ? info.reloads_ok : info.reloads_failed);
    info.last_reload.store(error.empty() ? 1 : 2, std::memory_order_release);
    if (error.empty()) {
      notifier_.ready("serving generation " + std::to_string(supervisor_.current().number));
    } else {
      spdlog::error("reload failed, the running workers keep serving:\n{}", error);
      notifier_.ready("reload failed: " + error);
    }
  }

  // --- the control socket's commands

  std::vector<ControlCommand> commands() {
    std::vector<ControlCommand> table;
    table.push_back({{"status"},
                     "",
                     "every worker: pid, generation, state, restarts, memory, traffic",
                     [this](const auto&, auto reply) {
                       auto snapshot = shared::takeSnapshot(region_);
                       reply->ok([&](shared::JsonWriter& w) {
                         shared::writeStatus(w, snapshot, last_reload_error_);
                         writeUpgrade(w);
                       });
                     }});
    table.push_back({{"reload"},
                     "",
                     "reload the config file; answers once it is done",
                     [this](const auto&, std::shared_ptr<ControlReply> reply) {
                       requestReload([this, reply](const std::string& error) {
                         if (!error.empty()) return reply->fail(error);
                         reply->ok([&](shared::JsonWriter& w) {
                           w.field("generation", supervisor_.current().number);
                           w.field("workers", supervisor_.targetWorkers());
                         });
                       });
                     }});
    table.push_back({{"upgrade"},
                     "",
                     "run the binary on disk as a new master (like SIGUSR2); answers once it "
                     "serves or failed",
                     [this](const auto&, std::shared_ptr<ControlReply> reply) {
                       requestUpgrade([reply](const std::string& error, pid_t pid) {
                         if (!error.empty()) return reply->fail(error);
                         reply->ok([&](shared::JsonWriter& w) {
                           w.field("new_master", static_cast<int64_t>(pid));
                           w.field("old_master", static_cast<int64_t>(getpid()));
                         });
                       });
                     }});
    table.push_back({{"scale"}, "N", "run N workers", [this](const auto& args, auto reply) {
                       // The words phalanxctl uses for the same mistakes.
                       std::string range = "from 1 to " + std::to_string(region_.slotCapacity());
                       if (args.size() != 1) {
                         return reply->fail("usage: scale N (a worker count " + range + ")");
                       }
                       size_t n = 0;
                       if (!parseCount(args[0], region_.slotCapacity(), &n)) {
                         return reply->fail("scale: N must be a whole number " + range + ", got " +
                                            quoteRequestBytes(args[0]));
                       }
                       std::string error;
                       if (!scale(static_cast<uint32_t>(n), &error)) {
                         return reply->fail(error);
                       }
                       reply->ok([&](shared::JsonWriter& w) { w.field("workers", uint64_t{n}); });
                     }});
    table.push_back({{"stop"}, "", "graceful stop (like SIGTERM)", [this](const auto&, auto reply) {
                       reply->ok(nullptr);
                       stop(true);
                     }});
    table.push_back({{"show", "info"},
                     "",
                     "master facts, HAProxy style (key: value)",
                     [this](const auto&, auto reply) {
                       std::string text = shared::showInfo(shared::takeSnapshot(region_));
                       reply->ok([&](shared::JsonWriter& w) { w.field("text", text); });
                     }});
    table.push_back({{"show", "stat"},
                     "",
                     "one CSV row per worker, HAProxy style",
                     [this](const auto&, auto reply) {
                       std::string text = shared::showStat(shared::takeSnapshot(region_));
                       reply->ok([&](shared::JsonWriter& w) { w.field("text", text); });
                     }});
    auto served = [this]() -> const shared::Config& { return supervisor_.current().config; };
    for (ControlCommand& command : upstreamCommands(region_, served)) {
      table.push_back(std::move(command));
    }
    table.push_back({{"access"},
                     "",
                     "rate limits, the rate-limit table, auth failures, the cache, Redis",
                     [this](const auto&, auto reply) {
                       shared::AccessView view = shared::takeAccessView(region_);
                       reply->ok([&](shared::JsonWriter& w) {
                         w.key("access");
                         shared::writeAccess(w, view);
                       });
                     }});
    table.push_back({{"cache", "purge"},
                     "[PREFIX]",
                     "empty the response cache (both levels) of paths starting with PREFIX",
                     [this](const std::vector<std::string>& args, auto reply) {
                       std::string prefix = args.empty() ? "" : args[0];
                       if (args.size() > 1 || prefix.size() >= shared::kPurgePrefixBytes ||
                           (!prefix.empty() && prefix[0] != '/')) {
                         reply->fail("usage: cache purge [PREFIX] (a path prefix like /api/)");
                         return;
                       }
                       uint64_t sequence = shared::requestPurge(region_, prefix);
                       purges_.push_back({.sequence = sequence,
                                          .deadline_ms = shared::monotonicMs() + kPurgeWaitMs,
                                          .redis = supervisor_.current().config.cache.redis,
                                          .reply = std::move(reply)});
                     }});
    table.push_back({{"keys"},
                     "[N]",
                     "the N busiest API keys / JWT subjects (default 20): requests, refusals",
                     [this](const std::vector<std::string>& args, auto reply) {
                       size_t top = 20;
                       if (args.size() > 1 ||
                           (args.size() == 1 &&
                            !parseCount(args[0], shared::kKeyUsageRecords, &top))) {
                         reply->fail("usage: keys [N] (N from 1 to 4096)");
                         return;
                       }
                       shared::AccessView view = shared::takeAccessView(region_);
                       reply->ok([&](shared::JsonWriter& w) {
                         w.key("keys");
                         shared::writeKeys(w, view, top);
                       });
                     }});
    table.push_back({{"routes"},
                     "",
                     "every route by traffic: requests by method and status, latency",
                     [this](const auto&, auto reply) {
                       std::vector<shared::RouteView> routes = shared::takeRouteViews(region_);
                       reply->ok([&](shared::JsonWriter& w) { shared::writeRoutes(w, routes); });
                     }});
    table.push_back({{"errors"},
                     "[N]",
                     "the N most recent 5xx responses (default 20, at most 100), newest first",
                     [this](const std::vector<std::string>& args, auto reply) {
                       size_t count = 20;
                       if (args.size() > 1 ||
                           (args.size() == 1 &&
                            !parseCount(args[0], shared::kRecentErrors, &count))) {
                         reply->fail("usage: errors [N] (N from 1 to 100)");
                         return;
                       }
                       std::vector<shared::ErrorView> errors =
                           shared::takeErrors(region_, static_cast<uint32_t>(count));
                       reply->ok([&](shared::JsonWriter& w) { shared::writeErrors(w, errors); });
                     }});
    return table;
  }

  // --- binary upgrade: this master's side (the old one), then the new one's

  using UpgradeDone = std::function<void(const std::string& error, pid_t new_master)>;

  void requestUpgrade(UpgradeDone done) {
    std::string refused;
    if (stopping_) {
      refused = "phalanx is stopping";
    } else if (upgrade_.running()) {
      refused = "an upgrade is already in progress";
    } else if (reload_running_ || supervisor_.reloading()) {
      refused = "a reload is in progress; try again when it is done";
    } else if (inherited_) {
      refused =
          "this master is still taking over from pid " + std::to_string(inherited_->old_master);
    }
    if (!refused.empty()) {
      spdlog::warn("upgrade refused: {}", refused);
      if (done) done(refused, 0);
      return;
    }
    Upgrade::Options options{
        .exe = exe_,
        .config_path = config_path_,
        .shm_fd = region_.fd(),
        .generation = last_generation_,
        .sockets = listeners_.sockets(),
        .timeout_ms = supervisor_.current().config.supervisor.ready_timeout_ms + kUpgradeMarginMs};
    upgrade_done_ = std::move(done);
    upgrade_state_ = "running";
    upgrade_error_.clear();
    upgrade_at_ms_ = shared::wallMs();
    std::string error;
    bool started = upgrade_.start(
        options, [this](const std::string& e, pid_t pid) { finishUpgrade(e, pid); }, &error);
    if (!started) finishUpgrade(error, 0);
  }

  void finishUpgrade(const std::string& error, pid_t new_master) {
    upgrade_at_ms_ = shared::wallMs();
    upgrade_pid_ = new_master;
    auto done = std::move(upgrade_done_);
    upgrade_done_ = nullptr;
    if (!error.empty()) {  // (a stop cancels an upgrade with an error too)
      upgrade_state_ = "failed";
      upgrade_error_ = error;
      if (!stopping_) {
        spdlog::error("upgrade failed, this master (pid {}) keeps serving: {}", getpid(), error);
        // The new master may have written its own view and records meanwhile.
        supervisor_.republish();
        restoreProvisioning();
      }
      if (done) done(error, new_master);
      return;
    }
    upgrade_state_ = "succeeded";
    spdlog::info("upgrade: the new master (pid {}) serves; this one (pid {}) drains and exits",
                 new_master, getpid());
    notifier_.ready("upgraded: master pid " + std::to_string(new_master), new_master);
    if (done) done("", new_master);
    uv_timer_stop(&watchdog_);
    supervisor_.handOver();
    stop(true, shared::ExitReason::Upgrade);
  }

  // The records of the config this master serves, after another wrote its own.
  void restoreProvisioning() {
    std::string error;
    const Generation& current = supervisor_.current();
    if (!shared::provisionUpstreams(region_, current.config, current.number, &error) ||
        !shared::provisionLimits(region_, current.config, &error) ||
        !shared::provisionRoutes(region_, current.config, &error)) {
      spdlog::error("upgrade: restoring the records of generation {}: {}", current.number, error);
    }
  }

  // The new master's side: every worker serves; take the control socket and
  // the master's place in shm, then tell the old master, which drains.
  void takeOverFromOldMaster() {
    std::string error;
    if (!control_.moveTo(control_path_, &error)) {
      spdlog::error("upgrade: the control socket: {}", error);
    }
    shared::MasterInfo& info = region_.master();
    info.pid.store(getpid(), std::memory_order_relaxed);
    info.started_at_ms.store(shared::wallMs(), std::memory_order_relaxed);
    static constexpr char kReady[] = "ready\n";
    if (write(inherited_->ready_fd, kReady, sizeof kReady - 1) != sizeof kReady - 1) {
      spdlog::error("upgrade: telling the old master (pid {}): {}", inherited_->old_master,
                    std::strerror(errno));
    }
    close(inherited_->ready_fd);
    spdlog::info("upgrade: serving; the old master (pid {}) drains its workers",
                 inherited_->old_master);
    upgraded_from_ = inherited_->old_master;
    inherited_.reset();
    startWatchdog(notifier_.watchdogIntervalMs());
  }

  void writeUpgrade(shared::JsonWriter& w) const {
    w.key("upgrade");
    w.beginObject();
    w.field("state", upgrade_state_);
    w.field("at_ms", upgrade_at_ms_);
    w.field("error", upgrade_error_);
    w.field("new_master", static_cast<int64_t>(upgrade_pid_));
    w.field("upgraded_from", static_cast<int64_t>(upgraded_from_));
    w.endObject();
  }

  // --- periodic

  void tick() {
    if (!announced_ready_ && supervisor_.allReady()) {
      announced_ready_ = true;
      spdlog::info("ready: {} workers on {}", supervisor_.targetWorkers(),
                   addressList(supervisor_.current().config.listen));
      if (inherited_) {
        takeOverFromOldMaster();
      } else {
        notifier_.ready("serving generation " + std::to_string(supervisor_.current().number));
      }
    }
    if (reload_deferred_) maybeStartReload();
    answerPurges();
  }

  // A purge is done when every live worker has emptied its level 1 and, with
  // a Redis level, a worker reported the SCAN's result; after kPurgeWaitMs
  // the answer says what is still pending.
  void answerPurges() {
    const shared::AccessInfo& info = region_.access();
    uint64_t now = shared::monotonicMs();
    std::erase_if(purges_, [&](const PendingPurge& p) {
      uint32_t done = 0, live = 0;
      for (uint32_t i = 0; i < region_.cellCapacity(); ++i) {
        const shared::WorkerCell& cell = region_.cell(i);
        if (cell.pid.load(std::memory_order_relaxed) == 0 ||
            cell.state.load(std::memory_order_acquire) !=
                static_cast<uint32_t>(shared::WorkerState::Ready)) {
          continue;
        }
        ++live;
        if (cell.purge_seen.load(std::memory_order_acquire) >= p.sequence) ++done;
      }
      bool redis_done =
          !p.redis || info.purge_l2_done.load(std::memory_order_acquire) >= p.sequence;
      if ((done < live || !redis_done) && now < p.deadline_ms) return false;
      int64_t removed = info.purge_l2_removed.load(std::memory_order_relaxed);
      p.reply->ok([&](shared::JsonWriter& w) {
        w.field("sequence", p.sequence);
        w.field("workers", live);
        w.field("workers_done", done);
        if (p.redis) {
          w.key("redis_removed");
          if (redis_done && removed >= 0) {
            w.value(static_cast<uint64_t>(removed));
          } else {
            w.null();
          }
        }
      });
      return true;
    });
  }

  void stop(bool graceful, shared::ExitReason reason = shared::ExitReason::Stop) {
    if (stopping_) {
      if (!graceful) supervisor_.stop(false, [this] { closeAll(); });
      return;
    }
    stopping_ = true;
    // Not to leave a new master behind, serving on its own.
    upgrade_.cancel("phalanx is stopping");
    // After an upgrade the service goes on: systemd hears from the new master.
    // A new master that never took over was never the service either.
    if (reason != shared::ExitReason::Upgrade && !inherited_) notifier_.stopping();
    auto waiters = std::move(reload_waiters_);
    reload_waiters_.clear();
    for (auto& done : waiters) {
      if (done) done("phalanx is stopping");
    }
    supervisor_.stop(
        graceful, [this] { closeAll(); }, reason);
  }

  void closeAll() {
    spdlog::info("stopped");
    control_.close();
    uv_walk(
        loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
  }

  uv_loop_t* loop_;
  std::string config_path_;
  std::string exe_;
  Listeners& listeners_;
  shared::SharedRegion& region_;
  Supervisor supervisor_;
  ControlServer control_;
  Upgrade upgrade_;
  std::optional<Inheritance> inherited_;  // until this (new) master took over
  UpgradeDone upgrade_done_;
  std::string upgrade_state_ = "none";  // running, failed, succeeded
  std::string upgrade_error_;
  uint64_t upgrade_at_ms_ = 0;
  pid_t upgrade_pid_ = 0;
  pid_t upgraded_from_ = 0;
  SdNotifier notifier_;
  std::string control_path_;
  std::vector<std::unique_ptr<uv_signal_t>> signals_;
  uv_timer_t tick_{};
  uv_timer_t watchdog_{};
  std::vector<Supervisor::ReloadDone> reload_waiters_;    // asked; the next reload answers
  std::vector<Supervisor::ReloadDone> reload_answering_;  // the running reload answers
  std::string last_reload_error_;
  uint32_t last_generation_ = 1;
  bool reload_running_ = false;
  bool upstreams_provisioned_ = false;  // the running reload wrote the upstream records
  bool reload_deferred_ = false;
  // `cache purge` requests waiting for every worker (and the Redis level) to be done.
  struct PendingPurge {
    uint64_t sequence;
    uint64_t deadline_ms;
    bool redis;
    std::shared_ptr<ControlReply> reply;
  };
  std::vector<PendingPurge> purges_;
  bool stopping_ = false;
  bool announced_ready_ = false;
  int exit_code_ = 0;
};

}  // namespace

// The new master of an upgrade: what the old one handed over, from the
// environment. Its fds are made CLOEXEC: workers get only what spawn maps.
std::optional<Inheritance> takeInheritance(std::string* error) {
  const char* text = getenv(kInheritVariable);
  if (text == nullptr) return std::nullopt;
  auto inherited = parseInheritance(text, error);
  unsetenv(kInheritVariable);
  if (!inherited) return std::nullopt;
  fcntl(inherited->shm_fd, F_SETFD, FD_CLOEXEC);
  fcntl(inherited->ready_fd, F_SETFD, FD_CLOEXEC);
  for (const auto& socket : inherited->sockets) fcntl(socket.fd, F_SETFD, FD_CLOEXEC);
  return inherited;
}

// The listening sockets: the old master's where the config still lists their
// address (the upgrade loses no queued connection), new ones for the rest.
bool openListeners(Listeners& listeners, const shared::Config& config, uint32_t workers,
                   const std::optional<Inheritance>& inherited, std::string* error) {
  if (inherited) {
    for (const auto& socket : inherited->sockets) {
      std::string parse_error;
      auto address = shared::parseAddress(socket.address, &parse_error);
      bool wanted =
          address && socket.slot < workers &&
          std::find(config.listen.begin(), config.listen.end(), *address) != config.listen.end();
      if (!wanted) {
        close(socket.fd);  // the old master's workers keep theirs until they drain
      } else if (!listeners.adopt(*address, socket.slot, socket.fd, error)) {
        return false;
      }
    }
  }
  return listeners.add(config.listen, error) && listeners.ensureSlots(workers, error);
}

// The region: the old master's when its layout is this build's (limits,
// breakers and counters carry on), else a fresh one.
shared::SharedRegion openRegion(const shared::Config& config,
                                const std::optional<Inheritance>& inherited) {
  if (inherited) {
    std::string error;
    auto region = shared::SharedRegion::attach(inherited->shm_fd, &error);
    if (region) return region;
    spdlog::warn(
        "upgrade: not sharing the old master's region ({}); counters, limits and "
        "breakers start over",
        error);
    close(inherited->shm_fd);
  }
  // Upstream record capacity is fixed here, with headroom for reloads to grow
  // into; a reload past it is refused (provisionUpstreams says so).
  return shared::SharedRegion::create(shared::kMaxWorkers, shared::kMaxWorkers * 4,
                                      shared::upstreamCapacityFor(config));
}

int runMaster(const std::string& config_path) {
  std::string text;
  auto loaded = shared::loadConfigFile(config_path, &text);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "phalanx: %s\n", e.c_str());
    return 1;
  }
  shared::Config config = std::move(*loaded.config);
  shared::setupErrorLog("master", config.log.level);
  signal(SIGPIPE, SIG_IGN);
  clearNotifyEnvironmentForChildren();

  std::string error;
  std::optional<Inheritance> inherited = takeInheritance(&error);
  if (!error.empty()) {
    spdlog::critical("upgrade: {}: {}", kInheritVariable, error);
    return 1;
  }
  if (!accessLogWritable(config.log.access, &error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  Listeners listeners;
  uint32_t workers = shared::effectiveWorkers(config);
  if (!openListeners(listeners, config, workers, inherited, &error)) {
    spdlog::critical("listen: {}", error);
    return 1;
  }
  spdlog::info("listen: {}", enableRequestMigration());
  auto region = openRegion(config, inherited);
  uint32_t first_generation = inherited ? inherited->generation + 1 : 1;
  if (!shared::provisionUpstreams(region, config, first_generation, &error) ||
      !shared::provisionLimits(region, config, &error) ||
      !shared::provisionRoutes(region, config, &error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  int config_fd = configMemfd(text);
  std::string exe = selfExe();
  if (config_fd < 0 || exe.empty()) {
    spdlog::critical("start: {}", config_fd < 0 ? "memfd_create(config) failed"
                                                : "cannot resolve /proc/self/exe");
    return 1;
  }
  uv_set_process_title("phalanx: master");
  if (!inherited) {  // a new master of an upgrade takes these once it serves
    shared::MasterInfo& info = region.master();
    info.pid.store(getpid(), std::memory_order_relaxed);
    info.started_at_ms.store(shared::wallMs(), std::memory_order_relaxed);
  }

  uv_loop_t* loop = uv_default_loop();
  int code = 0;
  {
    if (inherited) {
      spdlog::info("upgrade: taking over from the master pid {} (generation {})",
                   inherited->old_master, inherited->generation);
    }
    Master master(loop, config_path, listeners, region, exe, std::move(inherited));
    if (!master.listenControl(config.control_socket, &error)) {
      spdlog::critical("control_socket: {}", error);
      close(config_fd);
      return 1;
    }
    spdlog::info("phalanx {} master pid {}: config {}, {} workers, control socket {}",
                 PHALANX_VERSION, getpid(), config_path, workers, config.control_socket);
    master.start(
        std::make_shared<const Generation>(first_generation, std::move(config), config_fd));
    uv_run(loop, UV_RUN_DEFAULT);
    code = master.exitCode();
  }
  uv_loop_close(loop);
  return code;
}

}  // namespace phalanx::master

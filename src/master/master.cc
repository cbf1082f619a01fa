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

#include "master/listeners.h"
#include "master/supervisor.h"
#include "shared/config.h"
#include "shared/logging.h"
#include "shared/shm.h"

namespace phalanx::master {

namespace {

constexpr uint64_t kTickMs = 50;

// A sealed-size copy of the config text for the workers: they parse exactly the
// bytes the master validated, even if the file changes on disk meanwhile.
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
    *error = target + ": " + std::strerror(errno);
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

class Master {
 public:
  Master(uv_loop_t* loop, shared::Config config, Listeners& listeners, shared::SharedRegion& region,
         SpawnContext context)
      : loop_(loop),
        config_(std::move(config)),
        supervisor_(loop, region, listeners, std::move(context), config_.supervisor) {}

  void start() {
    supervisor_.on_all_fatal = [this] {
      spdlog::critical("no worker can start; exiting");
      exit_code_ = 1;
      stop(false);
    };
    watchSignal(sigterm_, SIGTERM);
    watchSignal(sigint_, SIGINT);
    watchSignal(sigquit_, SIGQUIT);
    watchSignal(sighup_, SIGHUP);
    uv_timer_init(loop_, &tick_);
    tick_.data = this;
    uv_timer_start(
        &tick_, [](uv_timer_t* t) { static_cast<Master*>(t->data)->tick(); }, kTickMs, kTickMs);
    supervisor_.start(shared::effectiveWorkers(config_));
  }

  int exitCode() const { return exit_code_; }

 private:
  void watchSignal(uv_signal_t& handle, int signum) {
    uv_signal_init(loop_, &handle);
    handle.data = this;
    uv_signal_start(
        &handle, [](uv_signal_t* h, int s) { static_cast<Master*>(h->data)->onSignal(s); }, signum);
  }

  void onSignal(int signum) {
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
        // Without a handler SIGHUP would kill the master and orphan its workers.
        spdlog::warn("SIGHUP: configuration reload is not available in this version; ignored");
        break;
      default: break;
    }
  }

  void tick() {
    if (!announced_ready_ && supervisor_.allReady()) {
      announced_ready_ = true;
      std::string addresses;
      for (const auto& a : config_.listen) addresses += (addresses.empty() ? "" : ", ") + a.text;
      spdlog::info("ready: {} workers on {}", shared::effectiveWorkers(config_), addresses);
    }
  }

  void stop(bool graceful) {
    if (stopping_) {
      if (!graceful) supervisor_.stop(false, [this] { closeAll(); });
      return;
    }
    stopping_ = true;
    supervisor_.stop(graceful, [this] { closeAll(); });
  }

  void closeAll() {
    spdlog::info("stopped");
    uv_walk(
        loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
  }

  uv_loop_t* loop_;
  shared::Config config_;
  Supervisor supervisor_;
  uv_signal_t sigterm_{}, sigint_{}, sigquit_{}, sighup_{};
  uv_timer_t tick_{};
  bool stopping_ = false;
  bool announced_ready_ = false;
  int exit_code_ = 0;
};

}  // namespace

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

  std::string error;
  if (!accessLogWritable(config.log.access, &error)) {
    spdlog::critical("log.access: {}", error);
    return 1;
  }
  Listeners listeners(config.listen);
  uint32_t workers = shared::effectiveWorkers(config);
  if (!listeners.checkAvailable(&error) || !listeners.ensureSlots(workers, &error)) {
    spdlog::critical("listen: {}", error);
    return 1;
  }
  auto region = shared::SharedRegion::create(shared::kMaxWorkers, shared::kMaxWorkers * 4);
  int config_fd = configMemfd(text);
  std::string exe = selfExe();
  if (config_fd < 0 || exe.empty()) {
    spdlog::critical("start: {}", config_fd < 0 ? "memfd_create(config) failed"
                                                : "cannot resolve /proc/self/exe");
    return 1;
  }
  uv_set_process_title("phalanx: master");
  spdlog::info("phalanx {} master pid {}: config {}, {} workers", PHALANX_VERSION, getpid(),
               config_path, workers);

  uv_loop_t* loop = uv_default_loop();
  int code = 0;
  {
    Master master(loop, std::move(config), listeners, region,
                  {.exe_path = exe, .shm_fd = region.fd(), .config_fd = config_fd});
    master.start();
    uv_run(loop, UV_RUN_DEFAULT);
    code = master.exitCode();
  }
  uv_loop_close(loop);
  close(config_fd);
  return code;
}

}  // namespace phalanx::master

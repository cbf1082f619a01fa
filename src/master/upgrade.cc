#include "master/upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "master/sd_notify.h"

extern char** environ;

namespace phalanx::master {

namespace {

constexpr uint64_t kKillGraceMs = 1000;  // SIGQUIT → SIGKILL for a late new master
constexpr int kFirstSocketFd = 5;        // 3 = shm, 4 = the ready pipe

// This environment for the new master, plus what it inherits and what the old
// master took out of its own (the notify socket: the new master talks to
// systemd once it is the main process).
std::vector<std::string> childEnvironment(const std::string& inherit) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view var = *e;
    if (var.starts_with(std::string(kInheritVariable) + "=")) continue;
    env.emplace_back(var);
  }
  env.push_back(std::string(kInheritVariable) + "=" + inherit);
  const NotifyEnvironment& notify = processNotifyEnvironment();
  if (!notify.socket.empty()) env.push_back("NOTIFY_SOCKET=" + notify.socket);
  if (notify.watchdog_usec > 0)
    env.push_back("WATCHDOG_USEC=" + std::to_string(notify.watchdog_usec));
  return env;
}

}  // namespace

struct Upgrade::State {
  uv_process_t process{};
  uv_pipe_t ready_pipe{};
  uv_timer_t timer{};
  Done done;
  pid_t pid = 0;
  uint64_t timeout_ms = 0;
  std::string received;
  bool finished = false;  // done has run
  bool exited = false;
  int open_handles = 0;
  std::shared_ptr<State> self;  // kept alive until every handle is closed

  void finish(const std::string& error) {
    if (finished) return;
    finished = true;
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&ready_pipe))) {
      uv_close(reinterpret_cast<uv_handle_t*>(&ready_pipe), onClose);
    }
    // Ready: the new master lives on, and nothing of it concerns this one any
    // more. Its handles close now, so the state is freed while the loop still
    // runs (a handle closed only at exit never calls back, and leaks it).
    if (error.empty()) closeAll();
    auto callback = std::move(done);
    callback(error, pid);
  }

  void closeAll() {
    for (uv_handle_t* h :
         {reinterpret_cast<uv_handle_t*>(&process), reinterpret_cast<uv_handle_t*>(&ready_pipe),
          reinterpret_cast<uv_handle_t*>(&timer)}) {
      if (!uv_is_closing(h)) uv_close(h, onClose);
    }
  }

  static void onClose(uv_handle_t* h) {
    auto* s = static_cast<State*>(h->data);
    if (--s->open_handles == 0) s->self.reset();
  }
};

Upgrade::Upgrade(uv_loop_t* loop) : loop_(loop) {}

bool Upgrade::running() const {
  return state_ != nullptr && !state_->finished;
}

void Upgrade::cancel(const std::string& why) {
  if (!running()) return;
  if (!state_->exited) uv_process_kill(&state_->process, SIGTERM);
  state_->finish(why);
}

Upgrade::~Upgrade() {
  if (state_) {
    state_->finished = true;
    state_->closeAll();
  }
}

bool Upgrade::start(const Options& options, Done done, std::string* error) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  Inheritance inheritance{.old_master = getpid(),
                          .generation = options.generation,
                          .shm_fd = 3,
                          .ready_fd = 4,
                          .sockets = {}};
  std::vector<uv_stdio_container_t> stdio(kFirstSocketFd + options.sockets.size());
  for (int i = 0; i < 3; ++i) stdio[i] = {.flags = UV_INHERIT_FD, .data = {.fd = i}};
  stdio[3] = {.flags = UV_INHERIT_FD, .data = {.fd = options.shm_fd}};
  stdio[4] = {.flags = UV_INHERIT_FD, .data = {.fd = fds[1]}};
  for (size_t i = 0; i < options.sockets.size(); ++i) {
    const auto& s = options.sockets[i];
    int child_fd = kFirstSocketFd + static_cast<int>(i);
    stdio[child_fd] = {.flags = UV_INHERIT_FD, .data = {.fd = s.fd}};
    inheritance.sockets.push_back({.slot = s.slot, .fd = child_fd, .address = s.address});
  }
  std::vector<std::string> env = childEnvironment(formatInheritance(inheritance));
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = options.exe, config_flag = "-c", config = options.config_path;
  std::vector<char*> args = {exe.data(), config_flag.data(), config.data(), nullptr};

  auto state = std::make_shared<State>();
  state->self = state;
  state->done = std::move(done);
  state->timeout_ms = options.timeout_ms;
  state->process.data = state->ready_pipe.data = state->timer.data = state.get();
  uv_timer_init(loop_, &state->timer);
  uv_pipe_init(loop_, &state->ready_pipe, 0);
  state->open_handles = 3;  // the process handle too: libuv wants it closed even if uv_spawn fails

  uv_process_options_t po{};
  po.file = exe.c_str();
  po.args = args.data();
  po.env = envp.data();
  po.stdio = stdio.data();
  po.stdio_count = static_cast<int>(stdio.size());
  po.exit_cb = [](uv_process_t* h, int64_t status, int signal) {
    auto* s = static_cast<State*>(h->data);
    s->exited = true;
    std::string how =
        signal ? std::string("signal ") + strsignal(signal) : "code " + std::to_string(status);
    s->finish("the new master (pid " + std::to_string(s->pid) + ") exited with " + how +
              " before it was ready");
    uv_close(reinterpret_cast<uv_handle_t*>(h), State::onClose);
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&s->timer))) {
      uv_close(reinterpret_cast<uv_handle_t*>(&s->timer), State::onClose);
    }
  };
  int rc = uv_spawn(loop_, &state->process, &po);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    *error = "spawn " + options.exe + ": " + uv_strerror(rc);
    state->finished = true;
    state->closeAll();
    return false;
  }
  state->pid = state->process.pid;
  uv_pipe_open(&state->ready_pipe, fds[0]);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&state->ready_pipe),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char scratch[64];
        *buf = uv_buf_init(scratch, sizeof scratch);
      },
      [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* s = static_cast<State*>(stream->data);
        if (n > 0) s->received.append(buf->base, static_cast<size_t>(n));
        if (s->received.find("ready\n") != std::string::npos) {
          s->finish("");
        } else if (n < 0) {
          // EOF without "ready": the exit callback says how it ended.
          uv_read_stop(stream);
        }
      });
  uv_timer_start(
      &state->timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<State*>(t->data);
        if (s->finished || s->exited) return;
        spdlog::error("upgrade: the new master (pid {}) is not ready after {} ms; stopping it",
                      s->pid, s->timeout_ms);
        uv_process_kill(&s->process, SIGQUIT);
        // A master stuck before its loop runs does not act on SIGQUIT.
        uv_timer_start(
            t,
            [](uv_timer_t* t2) {
              auto* s2 = static_cast<State*>(t2->data);
              if (!s2->exited) uv_process_kill(&s2->process, SIGKILL);
            },
            kKillGraceMs, 0);
        s->finish("the new master (pid " + std::to_string(s->pid) + ") was not ready within " +
                  std::to_string(s->timeout_ms) + " ms");
      },
      options.timeout_ms, 0);
  state_ = std::move(state);
  return true;
}

}  // namespace phalanx::master

// For tests that need a real Redis: a redis-server child on a free loopback
// port (killed and reaped by the destructor, and by the kernel if the test
// process dies first), and a libuv loop that can only run for bounded times,
// so a test that waits for something that never comes fails instead of hanging.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "shared/address.h"

// A loopback port nobody listens on right now.
inline uint16_t freeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

inline phalanx::shared::Address loopbackAddress(uint16_t port) {
  std::string error;
  auto address = phalanx::shared::parseAddress("127.0.0.1:" + std::to_string(port), &error);
  REQUIRE_MESSAGE(address, error);
  return *address;
}

class RedisServer {
 public:
  explicit RedisServer(uint16_t port = 0) : port_(port != 0 ? port : freeLoopbackPort()) {
    signal(SIGPIPE, SIG_IGN);  // as in the worker: hiredis writes with write(2)
    start();
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() { stop(); }

  uint16_t port() const { return port_; }
  phalanx::shared::Address address() const { return loopbackAddress(port_); }

  // Starts redis-server and returns once it accepts connections (2 s at most).
  void start() {
    REQUIRE(pid_ == -1);
    std::string port = std::to_string(port_);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int null = open("/dev/null", O_RDWR);
      dup2(null, 1);
      dup2(null, 2);
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--save", "", "--appendonly",
             "no", "--bind", "127.0.0.1", "--daemonize", "no", static_cast<char*>(nullptr));
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!accepting()) {
      int status = 0;
      REQUIRE_MESSAGE(waitpid(pid_, &status, WNOHANG) == 0, "redis-server exited at start");
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "redis-server did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // SIGKILL: clients see their connections reset, as when a host dies.
  void stop() {
    if (pid_ == -1) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // A hung server: connections stay up, nothing answers.
  void pause() { kill(pid_, SIGSTOP); }
  void resume() { kill(pid_, SIGCONT); }

 private:
  bool accepting() const {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto address = loopbackAddress(port_);
    bool ok = connect(fd, address.sockaddrPtr(), address.length) == 0;
    close(fd);
    return ok;
  }

  uint16_t port_;
  pid_t pid_ = -1;
};

// A libuv loop for one test. It runs only through runUntil()/runFor(), which
// stop at their deadline whatever happens; the destructor checks that nothing
// was left open (every handle closed: no leak, the loop could end).
class TestLoop {
 public:
  TestLoop() { uv_loop_init(&loop_); }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;
  ~TestLoop() {
    for (int i = 0; i < 10 && uv_loop_alive(&loop_); ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    int open_handles = 0;
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void* count) {
          ++*static_cast<int*>(count);
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        &open_handles);
    CHECK_MESSAGE(open_handles == 0, "handles left open on the loop");
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  uv_loop_t* get() { return &loop_; }

  // Runs the loop until `done()` or `ms` have passed; returns done().
  bool runUntil(const std::function<bool()>& done, uint64_t ms) {
    // A ticking timer so that each uv_run(ONCE) returns within a millisecond.
    uv_timer_t tick;
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 1, 1);
    uint64_t deadline = nowMs() + ms;
    while (!done() && nowMs() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // finishes closing `tick` before it goes out of scope
    return done();
  }
  void runFor(uint64_t ms) {
    runUntil([] { return false; }, ms);
  }
  static uint64_t nowMs() { return uv_hrtime() / 1'000'000; }

 private:
  uv_loop_t loop_;
};

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "temp_dir.h"
#include "ctl/control_client.h"

using namespace std::chrono_literals;
using phalanx::ctl::ClientError;
using phalanx::ctl::ClientResult;
using phalanx::ctl::describeClientError;
using phalanx::ctl::formatSeconds;
using phalanx::ctl::request;
using phalanx::ctl::RequestOptions;

namespace {


int listenAt(const std::string& path, int backlog = 8) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, backlog) == 0);
  return fd;
}

// Reads up to and including '\n', or what came before EOF or 5 s.
std::string readLine(int fd) {
  std::string line;
  char c;
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  while (poll(&p, 1, 5000) == 1 && read(fd, &c, 1) == 1) {
    line += c;
    if (c == '\n') break;
  }
  return line;
}

void writeAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

// A control socket in a temp dir whose one connection `serve` handles on a
// thread. The thread gives up after 5 s without a client, so a failing test
// never hangs.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int)> serve) : listen_fd_(listenAt(path())) {
    thread_ = std::thread([this, serve = std::move(serve)] {
      pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, 5000) != 1) return;
      int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      serve(client);
      close(client);
    });
  }
  ~FakeServer() {
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
  }
  std::string path() const { return dir_.file("ctl.sock"); }
  // Waits until the connection was handled.
  void join() { thread_.join(); }

 private:
  TempDir dir_;
  int listen_fd_;
  std::thread thread_;
};

RequestOptions within(std::chrono::milliseconds timeout) {
  return RequestOptions{.timeout = timeout};
}

}  // namespace

TEST_CASE("sends the line and returns the answer without its newline") {
  std::string received;
  FakeServer server([&](int fd) {
    received = readLine(fd);
    writeAll(fd, "{\"version\":1,\"ok\":true}\n{\"ignored\":1}\n");
  });
  ClientResult result = request(server.path(), "status\n", within(2s));
  server.join();
  CHECK(result.error == ClientError::None);
  CHECK(result.answer == "{\"version\":1,\"ok\":true}");
  CHECK(received == "status\n");
}

TEST_CASE("an answer in pieces and without a trailing newline is complete at EOF") {
  FakeServer server([](int fd) {
    readLine(fd);
    for (std::string_view piece : {"{\"version\":", "1,\"ok\"", ":true}"}) {
      writeAll(fd, piece);
      std::this_thread::sleep_for(30ms);
    }
  });
  ClientResult result = request(server.path(), "show stat\n", within(2s));
  CHECK(result.error == ClientError::None);
  CHECK(result.answer == "{\"version\":1,\"ok\":true}");
}

TEST_CASE("a master that closes without answering gives Closed") {
  FakeServer server([](int fd) { readLine(fd); });
  ClientResult result = request(server.path(), "status\n", within(2s));
  CHECK(result.error == ClientError::Closed);
  CHECK(describeClientError(result, server.path(), 2s) ==
        "connection closed without an answer (" + server.path() + ")");
}

TEST_CASE("an answer written before our line was read still arrives (a refused peer)") {
  FakeServer server([](int fd) {
    writeAll(fd, "{\"version\":1,\"ok\":false,\"error\":\"permission denied\"}\n");
  });
  std::string long_line(4 << 20, 'x');  // more than the socket buffers: the write fails
  long_line += "\n";
  ClientResult result = request(server.path(), long_line, within(2s));
  CHECK(result.error == ClientError::None);
  CHECK(result.answer == "{\"version\":1,\"ok\":false,\"error\":\"permission denied\"}");
}

TEST_CASE("a master that never answers times out at the deadline") {
  TempDir dir;
  int fd = listenAt(dir.file("ctl.sock"));  // never accepts
  auto start = std::chrono::steady_clock::now();
  ClientResult result = request(dir.file("ctl.sock"), "status\n", within(200ms));
  auto took = std::chrono::steady_clock::now() - start;
  close(fd);
  CHECK(result.error == ClientError::Timeout);
  CHECK(took >= 190ms);
  CHECK(took < 2s);
  CHECK(describeClientError(result, "x.sock", 1500ms) == "no answer from x.sock within 1.5 s");
}

TEST_CASE("a full backlog (connect says EAGAIN) waits until the deadline") {
  TempDir dir;
  std::string path = dir.file("ctl.sock");
  int listen_fd = listenAt(path, 0);
  std::vector<int> queued;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  for (int i = 0; i < 16; ++i) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      REQUIRE(errno == EAGAIN);
      close(fd);
      break;
    }
    queued.push_back(fd);
  }
  ClientResult result = request(path, "status\n", within(150ms));
  CHECK(result.error == ClientError::Timeout);
  for (int fd : queued) close(fd);
  close(listen_fd);
}

TEST_CASE("an answer longer than the limit without a newline is refused") {
  FakeServer server([](int fd) {
    readLine(fd);
    writeAll(fd, std::string(5000, 'x'));
    readLine(fd);  // holds the connection open until the client leaves
  });
  ClientResult result =
      request(server.path(), "status\n", RequestOptions{.timeout = 2s, .max_answer_bytes = 1000});
  CHECK(result.error == ClientError::TooLarge);
}

TEST_CASE("signals while waiting do not end the wait (EINTR)") {
  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: poll and recv see EINTR
  struct sigaction previous {};
  REQUIRE(sigaction(SIGUSR1, &action, &previous) == 0);
  pthread_t client = pthread_self();
  FakeServer server([client](int fd) {
    readLine(fd);
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(20ms);
      pthread_kill(client, SIGUSR1);
    }
    writeAll(fd, "{\"version\":1,\"ok\":true}\n");
  });
  ClientResult result = request(server.path(), "status\n", within(3s));
  server.join();
  sigaction(SIGUSR1, &previous, nullptr);
  CHECK(result.error == ClientError::None);
  CHECK(result.answer == "{\"version\":1,\"ok\":true}");
}

TEST_CASE("a missing socket file, or a path through a file, gives NoSocket") {
  TempDir dir;
  ClientResult missing = request(dir.file("none.sock"), "status\n", within(1s));
  CHECK(missing.error == ClientError::NoSocket);
  CHECK(describeClientError(missing, "run/phalanx.sock", 1s) ==
        "no control socket at run/phalanx.sock (is phalanx running? check control_socket in "
        "its config)");
  close(open(dir.file("file").c_str(), O_CREAT | O_WRONLY, 0600));
  CHECK(request(dir.file("file") + "/x.sock", "status\n", within(1s)).error ==
        ClientError::NoSocket);
}

TEST_CASE("a socket file nobody listens on is stale; a regular file is not a socket") {
  TempDir dir;
  std::string path = dir.file("ctl.sock");
  close(listenAt(path));  // a master that died: the file stays
  ClientResult stale = request(path, "status\n", within(1s));
  CHECK(stale.error == ClientError::Stale);
  CHECK(describeClientError(stale, "p.sock", 1s) ==
        "stale control socket p.sock: nothing is listening (phalanx is not running)");

  close(open(dir.file("plain").c_str(), O_CREAT | O_WRONLY, 0600));
  ClientResult plain = request(dir.file("plain"), "status\n", within(1s));
  CHECK(plain.error == ClientError::NotASocket);
  CHECK(describeClientError(plain, "p", 1s) ==
        "p is not a socket (check control_socket in phalanx's config)");
}

TEST_CASE("a socket we may not write to gives PermissionDenied") {
  TempDir dir;
  std::string path = dir.file("ctl.sock");
  int fd = listenAt(path);
  int code = -1;
  if (geteuid() == 0) {
    // Root passes every permission check: ask as nobody, in a child.
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
      _exit(static_cast<int>(request(path, "status\n", within(1s)).error));
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    code = WEXITSTATUS(status);
  } else {
    REQUIRE(chmod(path.c_str(), 0) == 0);
    code = static_cast<int>(request(path, "status\n", within(1s)).error);
  }
  close(fd);
  CHECK(code == static_cast<int>(ClientError::PermissionDenied));
  ClientResult denied{.error = ClientError::PermissionDenied};
  CHECK(describeClientError(denied, "/run/phalanx/phalanx.sock", 1s) ==
        "permission denied on /run/phalanx/phalanx.sock (run as the user phalanx runs as, or "
        "root)");
}

TEST_CASE("a path longer than sockaddr_un allows is refused before connecting") {
  std::string path = "/tmp/" + std::string(120, 'p');
  ClientResult result = request(path, "status\n", within(1s));
  CHECK(result.error == ClientError::PathTooLong);
  CHECK(describeClientError(result, path, 1s)
            .starts_with("control socket path is too long (125 bytes, at most 107)"));
}

TEST_CASE("seconds print as a person writes them") {
  CHECK(formatSeconds(5000ms) == "5");
  CHECK(formatSeconds(120000ms) == "120");
  CHECK(formatSeconds(500ms) == "0.5");
  CHECK(formatSeconds(1250ms) == "1.25");
  CHECK(formatSeconds(1ms) == "0.001");
}

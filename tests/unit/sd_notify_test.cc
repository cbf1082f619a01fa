#include "master/sd_notify.h"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

using namespace phalanx::master;

namespace {

// A datagram socket standing in for systemd's notify socket.
class Receiver {
 public:
  // `name` is a path, or "@name" for the abstract namespace (as in $NOTIFY_SOCKET).
  explicit Receiver(const std::string& name) : name_(name) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    socklen_t len = 0;
    REQUIRE(notifySocketAddress(name, &addr, &len));
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  }
  ~Receiver() {
    close(fd_);
    if (name_[0] == '/') unlink(name_.c_str());
  }

  // The next datagram, or "<none>" when nothing arrives within a second.
  std::string next() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1) return "<none>";
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? "<error>" : std::string(buf, static_cast<size_t>(n));
  }

 private:
  std::string name_;
  int fd_ = -1;
};

std::string tempDir() {
  char tmpl[] = "/tmp/phalanx-sd-notify-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  return tmpl;
}

}  // namespace

TEST_CASE("sd_notify: message texts") {
  CHECK(readyMessage() == "READY=1");
  CHECK(readyMessage("serving generation 2") == "READY=1\nSTATUS=serving generation 2");
  CHECK(readyMessage("up", 4242) == "READY=1\nSTATUS=up\nMAINPID=4242");
  CHECK(readyMessage({}, 77) == "READY=1\nMAINPID=77");
  CHECK(reloadingMessage(123456789) ==
        "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading the configuration");
  CHECK(stoppingMessage().rfind("STOPPING=1\n", 0) == 0);
  CHECK(statusMessage("3 workers") == "STATUS=3 workers");
  CHECK(watchdogMessage() == "WATCHDOG=1");
  CHECK(mainPidMessage(99) == "MAINPID=99");
}

TEST_CASE("sd_notify: free text cannot inject an assignment") {
  // A multi-line reload error must not become a second READY=1 or a MAINPID=.
  CHECK(statusMessage("reload failed: a\nMAINPID=1\r\tb") ==
        "STATUS=reload failed: a MAINPID=1  b");
  CHECK(readyMessage("x\nREADY=0") == "READY=1\nSTATUS=x READY=0");
}

TEST_CASE("sd_notify: monotonic clock in microseconds") {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t before = static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
  uint64_t now = monotonicUsec();
  CHECK(now >= before);
  CHECK(now - before < 1'000'000);
}

TEST_CASE("sd_notify: environment parsing") {
  auto env = parseNotifyEnvironment("/run/systemd/notify", "30000000", "4242");
  CHECK(env.socket == "/run/systemd/notify");
  CHECK(env.watchdog_usec == 30'000'000);
  CHECK(env.watchdog_pid == 4242);

  auto none = parseNotifyEnvironment(nullptr, nullptr, nullptr);
  CHECK(none.socket.empty());
  CHECK(none.watchdog_usec == 0);
  CHECK(none.watchdog_pid == 0);

  // Garbage reads as unset: a typo in an Environment= line must not stop start-up.
  CHECK(parseNotifyEnvironment(nullptr, "30s", nullptr).watchdog_usec == 0);
  CHECK(parseNotifyEnvironment(nullptr, "-5", nullptr).watchdog_usec == 0);
  CHECK(parseNotifyEnvironment(nullptr, "", nullptr).watchdog_usec == 0);
  CHECK(parseNotifyEnvironment(nullptr, "99999999999999999999999", nullptr).watchdog_usec == 0);
  // A pid that cannot be a pid_t cannot be ours.
  CHECK(parseNotifyEnvironment(nullptr, "1000000", "99999999999").watchdog_usec == 0);
}

TEST_CASE("sd_notify: watchdog interval is half of WATCHDOG_USEC, for the named pid only") {
  CHECK(watchdogIntervalMs(parseNotifyEnvironment("@x", "30000000", nullptr), 10) == 15'000);
  CHECK(watchdogIntervalMs(parseNotifyEnvironment("@x", "30000000", "10"), 10) == 15'000);
  CHECK(watchdogIntervalMs(parseNotifyEnvironment("@x", "30000000", "11"), 10) == 0);
  CHECK(watchdogIntervalMs(parseNotifyEnvironment("@x", nullptr, "10"), 10) == 0);
  // Never 0 (that would mean "off") for a tiny but set timeout.
  CHECK(watchdogIntervalMs(parseNotifyEnvironment("@x", "1000", nullptr), 10) == 1);
  CHECK(SdNotifier(parseNotifyEnvironment(nullptr, "4000000", nullptr)).watchdogIntervalMs() ==
        2000);
  CHECK(SdNotifier(parseNotifyEnvironment(nullptr, "4000000", "1")).watchdogIntervalMs() == 0);
}

TEST_CASE("sd_notify: socket addresses") {
  sockaddr_un addr{};
  socklen_t len = 0;
  REQUIRE(notifySocketAddress("/run/systemd/notify", &addr, &len));
  CHECK(std::string(addr.sun_path) == "/run/systemd/notify");
  CHECK(len == offsetof(sockaddr_un, sun_path) + std::strlen("/run/systemd/notify") + 1);

  REQUIRE(notifySocketAddress("@sd/notify", &addr, &len));
  CHECK(addr.sun_path[0] == '\0');
  CHECK(std::string(addr.sun_path + 1, 9) == "sd/notify");
  CHECK(len == offsetof(sockaddr_un, sun_path) + 10);  // NUL + name, no terminator

  CHECK_FALSE(notifySocketAddress("", &addr, &len));
  CHECK_FALSE(notifySocketAddress("@", &addr, &len));
  CHECK_FALSE(notifySocketAddress("relative/notify", &addr, &len));
  CHECK_FALSE(notifySocketAddress("vsock:2:1234", &addr, &len));
  CHECK_FALSE(notifySocketAddress("/" + std::string(sizeof(addr.sun_path), 'x'), &addr, &len));
  CHECK_FALSE(notifySocketAddress("@" + std::string(sizeof(addr.sun_path), 'x'), &addr, &len));
  CHECK(notifySocketAddress("@" + std::string(sizeof(addr.sun_path) - 1, 'x'), &addr, &len));
}

TEST_CASE("sd_notify: sends to a socket at a path") {
  std::string dir = tempDir();
  std::string path = dir + "/notify";
  {
    Receiver systemd(path);
    SdNotifier notifier(NotifyEnvironment{.socket = path});
    REQUIRE(notifier.enabled());
    CHECK(notifier.ready("serving generation 1"));
    CHECK(systemd.next() == "READY=1\nSTATUS=serving generation 1");
    CHECK(notifier.reloading());
    std::string reloading = systemd.next();
    CHECK(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
    CHECK(notifier.stopping());
    CHECK(systemd.next().rfind("STOPPING=1", 0) == 0);
    CHECK(notifier.status("3 workers"));
    CHECK(systemd.next() == "STATUS=3 workers");
    CHECK(notifier.watchdog());
    CHECK(systemd.next() == "WATCHDOG=1");
    CHECK(notifier.mainPid(1234));
    CHECK(systemd.next() == "MAINPID=1234");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("sd_notify: sends to an abstract socket") {
  std::string name = "@phalanx-sd-notify-test-" + std::to_string(getpid());
  Receiver systemd(name);
  SdNotifier notifier(NotifyEnvironment{.socket = name});
  REQUIRE(notifier.enabled());
  CHECK(notifier.ready());
  CHECK(systemd.next() == "READY=1");
}

TEST_CASE("sd_notify: without NOTIFY_SOCKET every call is a no-op") {
  SdNotifier notifier(NotifyEnvironment{});
  CHECK_FALSE(notifier.enabled());
  CHECK_FALSE(notifier.ready("x"));
  CHECK_FALSE(notifier.watchdog());
  CHECK(notifier.watchdogIntervalMs() == 0);
}

TEST_CASE("sd_notify: a bad NOTIFY_SOCKET disables notifying, watchdog included") {
  SdNotifier notifier(parseNotifyEnvironment("relative", "2000000", nullptr));
  CHECK_FALSE(notifier.enabled());
  CHECK_FALSE(notifier.ready());
  CHECK(notifier.watchdogIntervalMs() == 0);
}

TEST_CASE("sd_notify: a missing receiver fails the send without throwing") {
  std::string dir = tempDir();
  SdNotifier notifier(NotifyEnvironment{.socket = dir + "/nobody"});
  CHECK(notifier.enabled());
  CHECK_FALSE(notifier.ready());
  CHECK_FALSE(notifier.watchdog());  // logged once only; still no exception
  std::filesystem::remove_all(dir);
}

TEST_CASE("sd_notify: never blocks on a receiver that does not read") {
  // A Unix datagram receiver queues only a few messages (net.unix.max_dgram_qlen);
  // past that a blocking sendto would wait for systemd to read.
  std::string name = "@phalanx-sd-notify-full-" + std::to_string(getpid());
  Receiver systemd(name);
  SdNotifier notifier(NotifyEnvironment{.socket = name});
  auto start = std::chrono::steady_clock::now();
  int refused = 0;
  for (int i = 0; i < 2000; ++i) refused += notifier.watchdog() ? 0 : 1;
  CHECK(refused > 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  CHECK(systemd.next() == "WATCHDOG=1");  // the queued ones are intact
}

TEST_CASE("sd_notify: the environment is remembered, then removed for children") {
  // Runs before anything else in this binary reads processNotifyEnvironment()
  // (only the master does), so this sets what it remembers.
  setenv("NOTIFY_SOCKET", "@phalanx-remembered", 1);
  setenv("WATCHDOG_USEC", "6000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  clearNotifyEnvironmentForChildren();
  CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
  CHECK(std::getenv("WATCHDOG_USEC") == nullptr);
  CHECK(std::getenv("WATCHDOG_PID") == nullptr);
  CHECK(processNotifyEnvironment().socket == "@phalanx-remembered");
  SdNotifier notifier;  // built after the clear, as the master's member is
  CHECK(notifier.enabled());
  CHECK(notifier.watchdogIntervalMs() == 3000);
}

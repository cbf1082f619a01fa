#include "worker/gateway/health_checker.h"

#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "log_capture.h"
#include "shared/shm.h"

using namespace phalanx::worker;
namespace policy = phalanx::shared::policy;
using phalanx::shared::monotonicMs;

namespace {

// An upstream on a free loopback port, in the test's own loop. It answers
// each request per `mode`, and counts connections.
class TestServer {
 public:
  enum class Mode { Ok, Unavailable, CloseSilently, Hang, Garbage };

  explicit TestServer(uv_loop_t* loop) : loop_(loop) {
    uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, [](uv_stream_t* s, int st) {
              if (st == 0) static_cast<TestServer*>(s->data)->accept();
            }) == 0);
    int length = sizeof address_;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&address_), &length);
  }
  // close() and a run of the loop must come first: handles point here.
  ~TestServer() = default;

  // Closes the listener and every connection; the loop frees them.
  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    for (Client* client : std::set<Client*>(clients_)) closeClient(client);
  }

  sockaddr_storage address() const { return address_; }
  Mode mode = Mode::Ok;
  int accepted = 0;

 private:
  struct Client {
    uv_tcp_t tcp{};
    uv_write_t write_req{};
    TestServer* server = nullptr;
    std::string received;
    std::string answer;
    bool closing = false;
  };

  void accept() {
    auto owned = std::make_unique<Client>();
    Client* client = owned.get();
    client->server = this;
    uv_tcp_init(loop_, &client->tcp);
    client->tcp.data = client;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                  reinterpret_cast<uv_stream_t*>(&client->tcp)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&client->tcp),
               [](uv_handle_t* h) { std::unique_ptr<Client> gone(static_cast<Client*>(h->data)); });
      owned.release();
      return;
    }
    clients_.insert(owned.release());
    ++accepted;
    if (mode == Mode::CloseSilently) {
      closeClient(client);
      return;
    }
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&client->tcp),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char storage[4096];
          *buf = uv_buf_init(storage, sizeof storage);
        },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
          auto* c = static_cast<Client*>(s->data);
          if (nread < 0) return c->server->closeClient(c);
          c->received.append(buf->base, static_cast<size_t>(nread));
          if (c->received.find("\r\n\r\n") != std::string::npos) c->server->answer(c);
        });
  }

  void answer(Client* client) {
    if (!client->answer.empty() || mode == Mode::Hang) return;
    switch (mode) {
      case Mode::Ok:
        client->answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        break;
      case Mode::Unavailable:
        client->answer = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\ndown";
        break;
      default: client->answer = "NOT HTTP AT ALL\r\n\r\n"; break;
    }
    client->write_req.data = client;
    uv_buf_t buf = uv_buf_init(client->answer.data(), static_cast<unsigned>(client->answer.size()));
    uv_write(&client->write_req, reinterpret_cast<uv_stream_t*>(&client->tcp), &buf, 1,
             [](uv_write_t* req, int) {
               auto* c = static_cast<Client*>(req->data);
               c->server->closeClient(c);  // close-delimited or Connection: close
             });
  }

  void closeClient(Client* client) {
    if (client->closing) return;
    client->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&client->tcp), [](uv_handle_t* h) {
      auto* c = static_cast<Client*>(h->data);
      c->server->clients_.erase(c);
      std::unique_ptr<Client> gone(c);
    });
  }

  uv_loop_t* loop_;
  uv_tcp_t listener_{};
  sockaddr_storage address_{};
  std::set<Client*> clients_;
};

// Runs the loop until `done` holds or `max_ms` passed, whichever first: a
// timer polls `done` and stops the loop, so no test can hang.
bool runUntil(uv_loop_t* loop, const std::function<bool()>& done, uint64_t max_ms) {
  if (done()) return true;
  struct Guard {
    uv_timer_t timer{};
    const std::function<bool()>* done;
    uint64_t deadline;
    bool met = false;
  } guard{{}, &done, monotonicMs() + max_ms};
  uv_timer_init(loop, &guard.timer);
  guard.timer.data = &guard;
  uv_timer_start(
      &guard.timer,
      [](uv_timer_t* t) {
        auto* g = static_cast<Guard*>(t->data);
        g->met = (*g->done)();
        if (g->met || monotonicMs() >= g->deadline) uv_stop(t->loop);
      },
      1, 1);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&guard.timer), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // completes the close before `guard` goes
  return guard.met || done();
}

void runFor(uv_loop_t* loop, uint64_t ms) {
  runUntil(
      loop, [] { return false; }, ms);
}

// A free loopback port with no listener: connecting there is refused.
sockaddr_storage refusingAddress(uv_loop_t* loop) {
  uv_tcp_t probe{};
  uv_tcp_init(loop, &probe);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&probe, reinterpret_cast<const sockaddr*>(&addr), 0);
  sockaddr_storage bound{};
  int length = sizeof bound;
  uv_tcp_getsockname(&probe, reinterpret_cast<sockaddr*>(&bound), &length);
  uv_close(reinterpret_cast<uv_handle_t*>(&probe), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return bound;
}

struct Fixture {
  LogCapture log;  // first in, last out: it sees what the drain logs
  uv_loop_t loop{};
  std::unique_ptr<TestServer> server;
  policy::LeaseCell lease{};
  policy::HealthCell cell{};

  Fixture() {
    uv_loop_init(&loop);
    server = std::make_unique<TestServer>(&loop);
  }
  // Checkers are gone by now (test-body locals): what they left closing must
  // finish within the loop's next runs, with nothing left open.
  ~Fixture() {
    server->close();
    uv_timer_t guard{};
    uv_timer_init(&loop, &guard);
    uv_timer_start(
        &guard, [](uv_timer_t* t) { uv_stop(t->loop); }, 2000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&guard));  // the run ends when all else is closed
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    server.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }

  HealthTarget target(phalanx::shared::HealthCheckConfig check) {
    return target(check, server->address());
  }
  HealthTarget target(phalanx::shared::HealthCheckConfig check, sockaddr_storage where) {
    HealthTarget t;
    t.upstream = "api";
    t.address = "127.0.0.1:test";
    t.sockaddr = where;
    t.check = std::move(check);
    t.cell = &cell;
    return t;
  }
  std::unique_ptr<HealthChecker> checker(HealthTarget t, int32_t pid) {
    std::vector<HealthTarget> targets;
    targets.push_back(std::move(t));
    return std::make_unique<HealthChecker>(&loop, std::move(targets), lease, pid);
  }
  bool down() const { return cell.down.load() != 0; }
};

phalanx::shared::HealthCheckConfig quick(uint32_t interval_ms = 40, uint32_t timeout_ms = 30) {
  phalanx::shared::HealthCheckConfig check;
  check.interval_ms = interval_ms;
  check.timeout_ms = timeout_ms;
  check.healthy_threshold = 2;
  check.unhealthy_threshold = 3;
  return check;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture,
                  "health checker: down after unhealthy_threshold fails, up after "
                  "healthy_threshold passes, each transition logged once") {
  auto a = checker(target(quick()), 1001);
  a->start();
  CHECK(a->holdsLease());
  CHECK(policy::holder(lease, monotonicMs()) == 1001);
  REQUIRE(runUntil(
      &loop, [&] { return cell.passes.load() >= 2; }, 1000));
  CHECK_FALSE(down());
  CHECK(cell.last_detail.load() == 200);

  server->mode = TestServer::Mode::Unavailable;
  REQUIRE(runUntil(
      &loop, [&] { return down(); }, 1000));
  CHECK(cell.fails.load() == 3);
  CHECK(cell.last_detail.load() == 503);
  CHECK(cell.transitions.load() == 1);

  server->mode = TestServer::Mode::Ok;
  REQUIRE(runUntil(
      &loop, [&] { return !down(); }, 1000));
  CHECK(cell.passes.load() == 2);
  CHECK(cell.transitions.load() == 2);
  CHECK(a->checksRun() == cell.checks.load());

  runFor(&loop, 100);  // more passes: no more lines
  CHECK(log.count("health: upstream api target 127.0.0.1:test: down after 3 failed checks "
                  "(last: status 503)") == 1);
  CHECK(log.count("health: upstream api target 127.0.0.1:test: up after 2 passed checks") == 1);
  CHECK(log.count("health: upstream") == 2);
}

TEST_CASE_FIXTURE(Fixture, "health checker: a status other than expect_status fails") {
  auto check = quick();
  check.expect_status = 204;
  check.unhealthy_threshold = 1;
  auto a = checker(target(check), 1001);
  a->start();
  REQUIRE(runUntil(
      &loop, [&] { return down(); }, 1000));
  CHECK(cell.last_detail.load() == 200);
}

TEST_CASE_FIXTURE(Fixture, "health checker: no answer within timeout_ms is a failed check") {
  server->mode = TestServer::Mode::Hang;
  auto check = quick(60, 20);
  check.unhealthy_threshold = 2;
  auto a = checker(target(check), 1001);
  a->start();
  uint64_t started = monotonicMs();
  REQUIRE(runUntil(
      &loop, [&] { return down(); }, 1000));
  CHECK(cell.last_detail.load() == UV_ETIMEDOUT);
  CHECK(cell.fails.load() == 2);
  CHECK(monotonicMs() - started < 60 + 20 + 200);  // the 2nd check ends at ~80 ms
}

TEST_CASE_FIXTURE(Fixture,
                  "health checker: checks of one target never overlap, even when "
                  "timeout_ms exceeds interval_ms") {
  server->mode = TestServer::Mode::Hang;
  auto a = checker(target(quick(20, 100)), 1001);
  a->start();
  runFor(&loop, 250);
  // Overlapping rounds would have opened ~12 connections; each check holds
  // its connection for the whole 100 ms timeout.
  CHECK(server->accepted >= 2);
  CHECK(server->accepted <= 3);
  CHECK(cell.last_detail.load() == UV_ETIMEDOUT);
}

TEST_CASE_FIXTURE(Fixture, "health checker: a refused connect is a failed check") {
  auto a = checker(target(quick(), refusingAddress(&loop)), 1001);
  a->start();
  REQUIRE(runUntil(
      &loop, [&] { return down(); }, 1000));
  CHECK(cell.last_detail.load() == UV_ECONNREFUSED);
}

TEST_CASE_FIXTURE(Fixture, "health checker: a close without an answer, or garbage, fails") {
  SUBCASE("closed") {
    server->mode = TestServer::Mode::CloseSilently;
    auto a = checker(target(quick()), 1001);
    a->start();
    REQUIRE(runUntil(
        &loop, [&] { return down(); }, 1000));
    int32_t detail = cell.last_detail.load();
    CHECK((detail == UV_EOF || detail == UV_ECONNRESET));
  }
  SUBCASE("garbage") {
    server->mode = TestServer::Mode::Garbage;
    auto a = checker(target(quick()), 1001);
    a->start();
    REQUIRE(runUntil(
        &loop, [&] { return down(); }, 1000));
    CHECK(cell.last_detail.load() == UV_EPROTO);
  }
}

TEST_CASE_FIXTURE(Fixture, "health checker: destroyed with a check in flight, it leaks nothing") {
  server->mode = TestServer::Mode::Hang;
  auto a = checker(target(quick(40, 1000)), 1001);
  a->start();
  REQUIRE(runUntil(
      &loop, [&] { return server->accepted >= 1; }, 1000));
  a.reset();  // the fixture checks the loop closes clean; ASan checks the memory
  CHECK(policy::holder(lease, monotonicMs()) == 0);
  CHECK(cell.checks.load() == 0);
}

TEST_CASE_FIXTURE(Fixture,
                  "health checker: of two workers on one lease only the holder checks; "
                  "another takes over within one interval when it stops or goes") {
  const uint32_t interval = 300;
  auto a = checker(target(quick(interval, 100)), 1001);
  auto b = checker(target(quick(interval, 100)), 1002);
  CHECK(a->leaseTtlMs() == HealthChecker::kMinLeaseTtlMs);
  a->start();
  b->start();
  // Longer than the ttl: the holder must be renewing.
  runFor(&loop, HealthChecker::kMinLeaseTtlMs + 50);
  CHECK(a->holdsLease());
  CHECK_FALSE(b->holdsLease());
  CHECK(a->checksRun() >= 2);
  CHECK(b->checksRun() == 0);
  CHECK(server->accepted == static_cast<int>(a->checksRun()));

  // The holder drains: b takes over, a checks no more.
  uint64_t before = a->checksRun();
  a->stop();
  uint64_t gone = monotonicMs();
  REQUIRE(runUntil(
      &loop, [&] { return b->checksRun() >= 1; }, 1000));
  CHECK(monotonicMs() - gone <= interval);
  CHECK(b->holdsLease());
  CHECK_FALSE(a->holdsLease());
  CHECK(a->checksRun() == before);

  // A third contends; the holder is destroyed: the third takes over.
  auto c = checker(target(quick(interval, 100)), 1003);
  c->start();
  CHECK_FALSE(c->holdsLease());
  uint64_t by_b = b->checksRun();
  b.reset();
  gone = monotonicMs();
  REQUIRE(runUntil(
      &loop, [&] { return c->checksRun() >= 1; }, 1000));
  CHECK(monotonicMs() - gone <= interval);
  CHECK(policy::holder(lease, monotonicMs()) == 1003);
  CHECK(a->checksRun() == before);
  CHECK(cell.checks.load() == before + by_b + c->checksRun());  // every result from the holder
}

TEST_CASE_FIXTURE(Fixture,
                  "health checker: a holder that dies without releasing is replaced "
                  "once its lease expires") {
  const uint64_t ttl = HealthChecker::kMinLeaseTtlMs;
  uint64_t died = monotonicMs();
  REQUIRE(policy::tryAcquire(lease, 4242, died, ttl));  // it renewed, then died
  auto b = checker(target(quick(300, 100)), 1002);
  b->start();
  CHECK_FALSE(b->holdsLease());
  REQUIRE(runUntil(
      &loop, [&] { return b->checksRun() >= 1; }, 2 * ttl));
  uint64_t took = monotonicMs() - died;
  CHECK(took >= ttl);
  CHECK(took <= ttl + ttl / 3 + 100);
  CHECK(b->holdsLease());
}

TEST_CASE_FIXTURE(Fixture, "health checker: a holder that finds its lease taken stops checking") {
  auto a = checker(target(quick(40, 30)), 1001);
  a->start();
  REQUIRE(runUntil(
      &loop, [&] { return a->checksRun() >= 1; }, 1000));
  // It hung past its expiry and another process took over meanwhile.
  lease.word.store(0);
  REQUIRE(policy::tryAcquire(lease, 4242, monotonicMs(), 60'000));
  REQUIRE(runUntil(
      &loop, [&] { return !a->holdsLease(); }, 1000));
  uint64_t checks = cell.checks.load();
  runFor(&loop, 150);
  CHECK(cell.checks.load() == checks);
  CHECK(policy::holder(lease, monotonicMs()) == 4242);
}

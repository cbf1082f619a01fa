#include "worker/gateway/health_checker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <limits>

#include "shared/shm.h"
#include "worker/gateway/upstream_response_parser.h"

namespace phalanx::worker {

namespace policy = shared::policy;

namespace {

// A health response is read and discarded; the head is bounded by the
// parser's own limit, so this only sets the size of one read.
constexpr size_t kReadBytes = 16 * 1024;

bool statusPasses(int status, int expect_status) {
  return expect_status != 0 ? status == expect_status : status >= 200 && status <= 399;
}

std::string buildRequest(const HealthTarget& target) {
  std::string request = "GET ";
  request += target.check.path.empty() ? "/" : target.check.path;
  request += " HTTP/1.1\r\nHost: ";
  request += target.address;
  request += "\r\nUser-Agent: phalanx-health-check\r\nConnection: close\r\n\r\n";
  return request;
}

uint64_t leaseTtl(const std::vector<HealthTarget>& targets) {
  uint64_t smallest = std::numeric_limits<uint64_t>::max();
  for (const HealthTarget& target : targets) {
    smallest = std::min<uint64_t>(smallest, target.check.interval_ms);
  }
  // Three quarters: a holder that dies or hangs is replaced within ttl + ttl / 3,
  // that is within one interval.
  return std::max(smallest * 3 / 4, HealthChecker::kMinLeaseTtlMs);
}

}  // namespace

// One check in flight: a TCP connection, its timeout and its parser. It lives
// on the heap and frees itself when libuv has closed both handles, so the
// checker can let go of it at any moment (abandon()) without waiting.
struct HealthChecker::Probe final : UpstreamResponseParser::Listener {
  HealthChecker* owner;  // null once abandoned: the verdict goes nowhere
  size_t index;
  int expect_status;
  uint32_t timeout_ms;
  std::string request;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_connect_t connect_req{};
  uv_write_t write_req{};
  UpstreamResponseParser parser{this};
  int final_status = 0;
  int handles_open = 0;
  bool done = false;  // the verdict is given (or abandoned): later events are noise
  bool closing = false;
  std::array<char, kReadBytes> buffer{};

  Probe(HealthChecker& checker, size_t i, const TargetState& state)
      : owner(&checker),
        index(i),
        expect_status(state.target.check.expect_status),
        timeout_ms(state.target.check.timeout_ms),
        request(state.request) {
    parser.reset(false);
  }

  void onResponseHead(const ResponseHead& head) override {
    if (!head.interim()) final_status = head.status;
  }
  void onResponseBody(const char*, size_t) override {}  // read and discarded

  void begin(uv_loop_t* loop, const sockaddr_storage& address);
  void onConnected(int status);
  void onRead(ssize_t nread);
  void verdict();
  void finish(bool passed, int32_t detail, const std::string& why);
  void abandon();
  void close();
};

void HealthChecker::Probe::begin(uv_loop_t* loop, const sockaddr_storage& address) {
  uv_tcp_init(loop, &tcp);
  uv_timer_init(loop, &timer);
  tcp.data = this;
  timer.data = this;
  handles_open = 2;
  uv_timer_start(
      &timer,
      [](uv_timer_t* t) {
        auto* self = static_cast<Probe*>(t->data);
        self->finish(false, UV_ETIMEDOUT,
                     "no complete response within " + std::to_string(self->timeout_ms) + " ms");
      },
      timeout_ms, 0);
  connect_req.data = this;
  int rc = uv_tcp_connect(
      &connect_req, &tcp, reinterpret_cast<const sockaddr*>(&address),
      [](uv_connect_t* req, int status) { static_cast<Probe*>(req->data)->onConnected(status); });
  if (rc != 0) finish(false, rc, uv_strerror(rc));
}

void HealthChecker::Probe::onConnected(int status) {
  if (done) return;  // includes UV_ECANCELED from close()
  if (status != 0) {
    finish(false, status, uv_strerror(status));
    return;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp);
  write_req.data = this;
  uv_buf_t buf = uv_buf_init(request.data(), static_cast<unsigned>(request.size()));
  int rc = uv_write(&write_req, stream, &buf, 1, [](uv_write_t* req, int write_status) {
    auto* self = static_cast<Probe*>(req->data);
    if (write_status != 0 && !self->done) {
      self->finish(false, write_status, uv_strerror(write_status));
    }
  });
  if (rc != 0) {
    finish(false, rc, uv_strerror(rc));
    return;
  }
  uv_read_start(
      stream,
      [](uv_handle_t* h, size_t, uv_buf_t* into) {
        auto* self = static_cast<Probe*>(h->data);
        *into = uv_buf_init(self->buffer.data(), static_cast<unsigned>(self->buffer.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
        static_cast<Probe*>(s->data)->onRead(nread);
      });
}

void HealthChecker::Probe::onRead(ssize_t nread) {
  if (done || nread == 0) return;
  if (nread == UV_EOF) {
    if (parser.finishEof() == UpstreamResponseParser::Outcome::Complete) {
      verdict();
    } else {
      finish(false, parser.started() ? UV_EPROTO : UV_EOF, parser.reason());
    }
    return;
  }
  if (nread < 0) {
    finish(false, static_cast<int32_t>(nread), uv_strerror(static_cast<int>(nread)));
    return;
  }
  switch (parser.feed(buffer.data(), static_cast<size_t>(nread))) {
    case UpstreamResponseParser::Outcome::Consumed: return;
    case UpstreamResponseParser::Outcome::Complete: verdict(); return;
    case UpstreamResponseParser::Outcome::Error:
      finish(false, UV_EPROTO, std::string("bad response: ") + parser.reason());
      return;
  }
}

void HealthChecker::Probe::verdict() {
  finish(statusPasses(final_status, expect_status), final_status,
         "status " + std::to_string(final_status));
}

void HealthChecker::Probe::finish(bool passed, int32_t detail, const std::string& why) {
  if (done) return;
  done = true;
  if (owner != nullptr) owner->onProbeDone(index, passed, detail, why);
  close();
}

void HealthChecker::Probe::abandon() {
  owner = nullptr;
  done = true;
  close();
}

// Closing the socket cancels a pending connect or write: their callbacks run
// (UV_ECANCELED, ignored as `done`) before the close callbacks free the probe.
void HealthChecker::Probe::close() {
  if (closing) return;
  closing = true;
  uv_timer_stop(&timer);
  auto on_closed = [](uv_handle_t* h) {
    auto* self = static_cast<Probe*>(h->data);
    if (--self->handles_open == 0) std::unique_ptr<Probe> owned(self);
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_closed);
}

HealthChecker::HealthChecker(uv_loop_t* loop, std::vector<HealthTarget> targets,
                             policy::LeaseCell& lease, int32_t pid)
    : loop_(loop), lease_(lease), pid_(pid), ttl_ms_(leaseTtl(targets)) {
  targets_.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    TargetState state;
    state.request = buildRequest(targets[i]);
    state.target = std::move(targets[i]);
    state.timer = std::make_unique<UvTimer>(loop_);
    targets_.push_back(std::move(state));
  }
  lease_timer_ = std::make_unique<UvTimer>(loop_);
}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::start() {
  if (started_ || targets_.empty()) return;
  started_ = true;
  renewLease();
}

void HealthChecker::stop() {
  if (!started_) return;
  started_ = false;
  lease_timer_->stop();
  bool was_holding = holding_;
  endChecking();
  policy::release(lease_, pid_);
  if (was_holding) spdlog::info("health: pid {} released the health-check lease", pid_);
}

// Holder and contenders alike, every ttl / 3: a holder renews, a contender
// takes a lease that is free or expired.
void HealthChecker::renewLease() {
  uint64_t now = shared::monotonicMs();
  bool held = policy::tryAcquire(lease_, pid_, now, ttl_ms_);
  if (held && !holding_) {
    beginChecking();
  } else if (!held && holding_) {
    spdlog::warn("health: pid {} lost the health-check lease to pid {}; stops checking", pid_,
                 policy::holder(lease_, now));
    endChecking();
  }
  lease_timer_->start(std::max<uint64_t>(1, ttl_ms_ / 3), [this] { renewLease(); });
}

void HealthChecker::beginChecking() {
  holding_ = true;
  spdlog::info("health: pid {} holds the health-check lease; checks {} targets", pid_,
               targets_.size());
  // Spread over each target's own interval, so N targets do not fire together.
  for (size_t i = 0; i < targets_.size(); ++i) {
    uint64_t interval = targets_[i].target.check.interval_ms;
    targets_[i].timer->start(interval * i / targets_.size(), [this, i] { runRound(i); });
  }
}

void HealthChecker::endChecking() {
  holding_ = false;
  for (TargetState& state : targets_) {
    state.timer->stop();
    if (state.probe != nullptr) {
      Probe* probe = state.probe;
      state.probe = nullptr;
      probe->abandon();
    }
  }
}

void HealthChecker::runRound(size_t index) {
  TargetState& state = targets_[index];
  state.timer->start(std::max<uint32_t>(1, state.target.check.interval_ms),
                    [this, index] { runRound(index); });
  if (state.probe != nullptr) return;  // the previous check still runs: never overlap
  startProbe(index);
}

void HealthChecker::startProbe(size_t index) {
  TargetState& state = targets_[index];
  // Owned by its close callbacks from here on (see Probe::close).
  Probe* probe = std::make_unique<Probe>(*this, index, state).release();
  state.probe = probe;  // before begin(): it may give its verdict at once
  probe->begin(loop_, state.target.sockaddr);
}

void HealthChecker::onProbeDone(size_t index, bool passed, int32_t detail, const std::string& why) {
  TargetState& state = targets_[index];
  state.probe = nullptr;
  uint64_t now = shared::monotonicMs();
  // A process that hung past its lease's expiry may resume with results in
  // flight: the cell has a single writer, so only the holder records.
  if (!policy::tryAcquire(lease_, pid_, now, ttl_ms_)) {
    spdlog::warn("health: pid {} lost the health-check lease to pid {}; stops checking", pid_,
                 policy::holder(lease_, now));
    endChecking();
    return;
  }
  ++checks_run_;
  policy::HealthOptions options{.healthy_threshold = state.target.check.healthy_threshold,
                                .unhealthy_threshold = state.target.check.unhealthy_threshold};
  if (policy::recordCheck(*state.target.cell, options, passed, now, detail)) {
    logTransition(state, why);
  }
}

void HealthChecker::logTransition(const TargetState& state, const std::string& why) const {
  policy::HealthStatus status = policy::load(*state.target.cell);
  if (!status.healthy) {
    spdlog::warn("health: upstream {} target {}: down after {} failed checks (last: {})",
                 state.target.upstream, state.target.address, status.fails, why);
  } else {
    spdlog::info("health: upstream {} target {}: up after {} passed checks", state.target.upstream,
                 state.target.address, status.passes);
  }
}

}  // namespace phalanx::worker

// Active health checks of upstream targets, run once per host.
//
// Every worker runs a HealthChecker over the same targets, but only the one
// holding the host's health-check lease (policy/lease.h, in shared memory)
// checks; the others only keep trying to take the lease, so a holder that
// dies or hangs is replaced at its expiry. Results go to each target's
// HealthCell (policy/health_state.h, shared memory), read by every worker.
//
// Contract:
// - Lease ttl = 3/4 of the smallest interval_ms of the targets, at least
//   kMinLeaseTtlMs, so ttl + ttl / 3 is within one interval.
//   Every process renews or tries to take it every ttl / 3 from the loop. A
//   holder that stops or is destroyed releases it, so another takes over
//   within ttl / 3; one that dies or hangs is replaced within ttl + ttl / 3 of
//   its last renewal. A holder that finds on renewal (or before recording a
//   result) that it lost the lease stops checking and drops results in flight.
// - A check: a fresh TCP connection, `GET <path>` with `Host: <address>` and
//   `Connection: close`, the response parsed by UpstreamResponseParser and its
//   body read and discarded. It passes iff the final status equals
//   expect_status (or is 200..399 when expect_status is 0) and the response is
//   complete within timeout_ms of the connect start. Refused, reset, closed
//   before a complete response, a malformed response or a head over the
//   parser's limit, and timeouts all fail.
// - Each target is checked every interval_ms of its own; checks of one target
//   never overlap (a round whose previous check is still running is skipped).
//   On taking the lease, target i of N starts at interval * i / N, so targets
//   do not all fire together.
// - Each result goes to policy::recordCheck with detail = the status, or a
//   negative libuv error (UV_ETIMEDOUT, UV_ECONNREFUSED, UV_EPROTO for a bad
//   response, UV_EOF for a close before a complete response). Transitions are
//   logged once (warn when down, info when up); single checks are not.
// - Nothing blocks; memory per check is bounded (a fixed read buffer, the
//   parser's head limit). The checker may be destroyed with checks in flight:
//   their state lives on the heap and is freed by libuv close callbacks, so
//   the loop must run on after the destructor for that memory to be freed.
// - Not thread-safe: every call from the loop's thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shared/config.h"
#include "shared/policy/health_state.h"
#include "shared/policy/lease.h"
#include "worker/uv_timer.h"

namespace phalanx::worker {

struct HealthTarget {
  std::string upstream;         // for logs
  std::string address;          // "127.0.0.1:9001", for logs and the Host header
  sockaddr_storage sockaddr{};  // where to connect
  shared::HealthCheckConfig check;
  shared::policy::HealthCell* cell;  // results go here (shm), read by every worker
};

class HealthChecker {
 public:
  static constexpr uint64_t kMinLeaseTtlMs = 500;

  // `lease` and every target's cell outlive the checker. `pid` is this
  // process's (1 .. policy::kLeaseMaxPid); it names the lease holder.
  HealthChecker(uv_loop_t* loop, std::vector<HealthTarget> targets,
                shared::policy::LeaseCell& lease, int32_t pid);
  // Releases the lease; in-flight checks are closed and freed by libuv
  // callbacks once the loop runs again.
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts contending for the lease (at once, then every ttl / 3). Does
  // nothing without targets. Calling it again while started does nothing.
  void start();
  // Drain: releases the lease, stops checking and closes checks in flight
  // without recording them. start() may resume afterwards.
  void stop();

  bool holdsLease() const { return holding_; }
  // Results recorded by this process.
  uint64_t checksRun() const { return checks_run_; }
  uint64_t leaseTtlMs() const { return ttl_ms_; }

 private:
  struct Probe;
  struct TargetState {
    HealthTarget target;
    std::unique_ptr<UvTimer> timer;  // next round
    Probe* probe = nullptr;            // in flight; freed by its close callbacks
    std::string request;               // the check's request bytes, built once
  };

  void renewLease();
  void beginChecking();
  void endChecking();
  void runRound(size_t index);
  void startProbe(size_t index);
  // A probe's verdict; the probe closes itself after this returns.
  void onProbeDone(size_t index, bool passed, int32_t detail, const std::string& why);
  void logTransition(const TargetState& state, const std::string& why) const;

  uv_loop_t* loop_;
  shared::policy::LeaseCell& lease_;
  int32_t pid_;
  uint64_t ttl_ms_;
  std::vector<TargetState> targets_;
  std::unique_ptr<UvTimer> lease_timer_;
  bool started_ = false;
  bool holding_ = false;
  uint64_t checks_run_ = 0;
};

}  // namespace phalanx::worker

// A worker process: adopts the sockets and the shm region the master passed
// down, drops every capability, serves HTTP on a libuv loop, stamps its
// heartbeat, and drains on SIGTERM.
//
// Signals: TERM drains (stop accepting, close its copies of the listening
// sockets, finish in-flight requests, exit); QUIT exits at once; USR1 reopens
// the access log file (after logrotate moved it).
#pragma once

#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "shared/config.h"
#include "shared/exit_codes.h"
#include "shared/log_throttle.h"
#include "shared/shm.h"
#include "worker/access_log.h"
#include "worker/gateway/gateway.h"
#include "worker/handlers.h"
#include "worker/http/connection.h"
#include "worker/http/socket_adopter.h"
#include "worker/route_figures.h"
#include "worker/send_batch.h"

namespace phalanx::worker {

// What the master hands a worker on its command line (`phalanx --worker ...`).
struct WorkerOptions {
  uint32_t slot = 0;
  uint32_t cell = 0;  // this process's record in shm
  uint32_t generation = 1;
  int master_pid = 0;
  int shm_fd = -1;
  int config_fd = -1;           // a memfd holding the exact config text the master validated
  std::vector<int> listen_fds;  // this slot's listening sockets, one per listen address
};

// Returns the exit code: kExitOk after a clean drain, kExitFatal when it cannot start.
int runWorker(const WorkerOptions& options);

class Worker {
 public:
  Worker(uv_loop_t* loop, shared::Config config, shared::SharedRegion region,
         const WorkerOptions& options);
  // Closes the access log and counts its last lines (see ~Worker in worker.cc).
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts accepting and serving; returns false with `error` set if a socket
  // cannot be adopted.
  bool start(std::string* error);

  // For connections.
  uv_loop_t* loop() const { return loop_; }
  const shared::Limits& limits() const { return config_.limits; }
  const shared::HttpConfig& http() const { return config_.http; }
  Handlers& handlers() { return handlers_; }
  // The exchange for a request on a proxied route (gateway/gateway.h).
  std::unique_ptr<Exchange> startExchange(const Route& route, const Request& request,
                                          ExchangeSink& sink) {
    return gateway_->startExchange(route, request, sink);
  }
  AccessLog* accessLog() const { return access_log_.get(); }
  shared::WorkerCell& cell() { return cell_; }
  RouteFigures& routeFigures() { return route_figures_; }
  bool draining() const { return draining_; }
  // True for as many keep-alive responses as this worker should close to even
  // out connections with its siblings (see connection_balance.h).
  bool takeShed() {
    if (shed_budget_ == 0) return false;
    --shed_budget_;
    return true;
  }
  uv_buf_t readBuffer();
  // Makes an initialized uv_tcp_t own an accepted socket (socket_adopter.h).
  int adoptSocket(uv_tcp_t* tcp, int fd) { return adopter_.adopt(tcp, fd); }
  void onConnectionClosed(std::list<Connection>::iterator connection);
  // Calls connection.onDeferred() outside whatever is running now, once the
  // loop has run this wakeup's I/O callbacks (see settle()).
  void defer(Connection& connection) { deferred_.push_back(&connection); }
  // What connections and upstream connections send goes through this batch,
  // submitted by settle().
  SendBatch& sends() { return sends_; }
  // Before the loop's last run: exchanges and upstream connections close
  // through their own callbacks, which free them.
  void releaseUpstreams();

 private:
  // A listening socket, accepted from by the worker itself (a uv_poll_t and
  // accept4) rather than by libuv's server (uv_listen + uv_accept): at
  // max_connections it stops polling and new connections wait in the kernel
  // backlog, and on EMFILE it backs off for kAcceptRetryMs. libuv's server can
  // only stop by holding one accepted connection in limbo (reset if the worker
  // then drains), and on EMFILE it accepts and closes every queued connection
  // (uv__emfile_trick) without telling its callback. Accepted sockets reach
  // their uv_tcp_t through the SocketAdopter, which spares the ioctl(FIONBIO)
  // uv_tcp_open would spend on each.
  struct Listener {
    Worker* worker = nullptr;
    int fd = -1;
    uint32_t index = 0;  // in config.listen
    uv_poll_t poll{};
    bool polling = false;
    bool closed = false;  // poll handle closing or closed; fd closed in its close callback
  };

  void onAcceptable(Listener& listener);
  void pauseAccepting();
  void resumeAccepting();
  void beginDrain();
  void closeListeners();
  void stopLoop();
  void heartbeat();
  // Runs the deferred calls and submits the send batch (answers and upstream
  // requests): after the I/O callbacks of a wakeup (a check handle), so what
  // they produced leaves together, and again before the loop waits (a prepare
  // handle) for what timers and closing handles produced. Nothing waits for a
  // later wakeup.
  void settle();
  void runDeferred();
  void balanceConnections();
  void reopenAccessLog();
  // Workers keep no capability (privileges.h); false if some remain.
  bool dropCapabilities(std::string* error);
  void publishAccessLogLosses();
  void onAcceptError(int error);
  void reportAcceptErrors(uint64_t now_ms);

  uv_loop_t* loop_;
  shared::Config config_;
  shared::SharedRegion region_;
  shared::WorkerCell& cell_;
  WorkerOptions options_;
  Handlers handlers_;
  RouteFigures route_figures_;
  SendBatch sends_;  // before what sends through it: destroyed after them
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<AccessLog> access_log_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::list<Connection> connections_;
  uint64_t open_connections_ = 0;
  bool draining_ = false;
  uint64_t shed_budget_ = 0;
  bool accepting_paused_ = false;
  // Accept errors that pause accepting (out of descriptors or memory), and the
  // others: each said at most once per kAcceptErrorLogMs, with a count.
  static constexpr uint64_t kAcceptErrorLogMs = 10'000;
  shared::LogThrottle accept_pause_log_{kAcceptErrorLogMs};
  shared::LogThrottle accept_error_log_{kAcceptErrorLogMs};
  int accept_pause_errno_ = 0;  // the latest of each kind, for a line said later
  int accept_error_errno_ = 0;
  std::vector<Connection*> deferred_;  // see defer()
  std::vector<Connection*> deferred_running_;  // the batch runDeferred() is running
  uv_check_t settle_check_{};
  uv_prepare_t settle_prepare_{};
  uv_signal_t sigterm_{}, sigquit_{}, sigusr1_{};
  uv_timer_t heartbeat_timer_{}, drain_timer_{}, accept_retry_timer_{};
  std::unique_ptr<char[]> read_buffer_;
  SocketAdopter adopter_;
};

}  // namespace phalanx::worker

// One client connection: reads, parses, answers in order, writes, times out.
//
// Life: start() → reading requests → (close wanted) → flush → shutdown(FIN) →
// linger until the client closes or kLingerMs → close → Worker::onConnectionClosed.
// Every orderly close (Connection: close, an error answer, idle timeout, drain)
// goes through FIN + linger, never a bare close(): unread request bytes would
// turn it into a reset that destroys the response in flight. Only a failed
// socket, or a client that stopped reading our answer, is closed at once.
//
// Writes: responses to everything parsed from one read are appended to one
// buffer and sent with one uv_try_write; only what the socket does not take goes
// through a queued uv_write. Output is bounded: once kMaxPendingOutput is
// waiting, parsing pauses mid-buffer (the rest of the input is kept) and
// reading stops, until the client has read what it asked for.
//
// Timeouts: one uv timer per connection, re-armed lazily: a new deadline later
// than the armed one is only recorded, so a keep-alive request costs no timer
// operation. Deadlines: header_timeout from a request's first byte (and from
// accept) to the end of its headers, then between body reads → 408 and close;
// idle_timeout between requests → close without a response.
//
// Delayed answers (a static route's delay_ms): the same timer holds the moment
// the answer is due instead of a timeout, so no timeout fires on a request
// that waits for its answer. Parsing holds until it is answered (pipelined
// answers stay in order); input keeps being read, up to kMaxHeldInput, so a
// reset is noticed and closes the connection, timer and all. The answer's
// Connection header is decided when it is written: a drain that began
// meanwhile makes it Connection: close. Like any owed answer it is still
// written after the client half-closes.
//
// Every response is counted in the worker's shm cell: status class, bytes, and
// the latency from the request's first byte to the response being queued.
#pragma once

#include <uv.h>

#include <cstdint>
#include <list>
#include <string>

#include "worker/http/http_parser.h"
#include "worker/http/response.h"
#include "worker/router.h"

namespace phalanx::worker {

class Worker;

class Connection final : public RequestParser::Listener {
 public:
  static constexpr size_t kMaxPendingOutput = 1 << 20;
  static constexpr uint64_t kLingerMs = 2000;
  // On graceful stop an idle keep-alive connection stays this long, so a request
  // already on its way is answered (with Connection: close) instead of lost.
  static constexpr uint64_t kDrainGraceMs = 500;
  // While an answer is delayed, at most this much later input is read and held.
  static constexpr size_t kMaxHeldInput = 64 * 1024;

  explicit Connection(Worker& worker);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes ownership of an accepted, non-blocking socket. On failure the socket is
  // closed and the connection closes itself.
  void start(int fd, std::list<Connection>::iterator self);

  // Graceful stop: an idle connection closes after kDrainGraceMs; a busy one
  // answers its current request with Connection: close and then closes.
  void beginDrain();

 private:
  enum class Phase { Open, Closing, Closed };

  // RequestParser::Listener
  void onRequestBegin(Request& request) override;
  void onHeadersComplete(Request& request) override;
  void onRequest(Request& request) override;

  // Writes the answer to `request` (route from Handlers::match) into out_.
  void answer(const Route* route, const Request& request);
  void answerDelayed();

  void startReading();
  void stopReading();
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void parse(const char* data, size_t length);
  void pump();
  bool writeOut();
  void onWriteDone(int status);
  void failRequest(int status, const char* reason);
  void startClosing();
  void closeNow();
  void onHandleClosed();
  void onTimer();
  void setDeadline(uint64_t deadline_ms);
  // `request` is nullptr for a refusal before a request was complete.
  void countResponse(int status, uint64_t bytes, const Request* request);
  bool idle() const;
  void startDrainGrace();

  Worker& worker_;
  std::list<Connection>::iterator self_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_write_t write_req_{};
  uv_shutdown_t shutdown_req_{};
  RequestParser parser_;
  std::string out_;            // responses not yet handed to the socket
  std::string writing_;        // bytes owned by the in-flight uv_write
  std::string pending_input_;  // read but not parsed: parsing paused on output or a delay
  // The request waiting for its delayed answer, or nullptr. The parser is
  // paused meanwhile, so the Request it owns stays as it was.
  const Request* delayed_request_ = nullptr;
  const Route* delayed_route_ = nullptr;
  Phase phase_ = Phase::Open;
  bool write_in_flight_ = false;
  bool close_after_write_ = false;
  bool drain_grace_started_ = false;
  bool reading_ = false;
  bool eof_ = false;
  bool timer_armed_ = false;
  uint64_t requests_ = 0;
  uint64_t deadline_ms_ = 0;
  uint64_t timer_due_ms_ = 0;
  uint64_t started_ns_ = 0;  // the current request's first byte, or accept (uv_hrtime)
  int handles_open_ = 0;
  std::string client_;  // "ip:port", filled only when the access log is on
};

}  // namespace phalanx::worker

// One client connection: reads, parses, answers in order, writes, times out.
//
// Life: start() → reading requests → (close wanted) → flush → close, or, when
// unread input may follow, shutdown(FIN) → linger until the client closes or
// kLingerMs → close → Worker::onConnectionClosed.
//
// Closing: input that is unread when we close(), or that arrives after it,
// makes the kernel send a reset, and a reset discards whatever of our answer is
// still unsent in our socket. So an orderly close lingers (FIN first, then read
// and discard until the client's FIN or kLingerMs) whenever input may follow:
//   - an error answered before its request was fully read (an unread body is
//     always this case: a request is answered only once its body was read);
//   - bytes read beyond the last answered request, before or while its answer
//     is written (pipelined: more of the pipeline may be on its way);
//   - a keep-alive client we close on (drain, connection balancing, idle
//     timeout): its next request may be on its way.
// When the client asked to close (HTTP/1.0 without keep-alive, Connection:
// close) and nothing more was read, or it half-closed, the answer is written and
// the socket closed at once (once a queued write has completed): the kernel
// sends the rest of the answer and then our FIN, and the client's own FIN costs
// no wakeup. Input sent after its last request and before our close() would
// still draw a reset; like nginx's `lingering_close on`, that window is accepted
// (a client that asked to close sends nothing more). A failed socket, or a
// client that stopped reading our answer, is closed at once.
//
// Nagle: a connection gets TCP_NODELAY with its first answer that keeps it open,
// so an answer written while an earlier one is still unacknowledged (pipelined,
// or behind a delayed answer) never waits for the client's delayed ACK; an
// answer followed by a close is pushed out by the FIN, so a one-request
// connection never pays for the setsockopt.
//
// Writes: responses to everything parsed from one read are appended to one
// buffer, which joins the worker's send batch (send_batch.h): it is sent, with
// the other connections' answers, once the loop has run the wakeup's I/O
// callbacks; only what the socket does not take goes through a queued uv_write.
// Output is bounded: once kMaxPendingOutput is waiting, parsing pauses
// mid-buffer (the rest of the input is kept) and reading stops, until the
// client has read what it asked for.
//
// Memory: an idle keep-alive connection holds this object and the parser's
// reused header strings; output buffers and libuv's write and shutdown requests
// exist only while they are in use.
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
// Exchanges (proxied and guarded routes, see exchange.h): the route is matched when the
// headers are complete; the connection starts the exchange then, hands it the
// body as it is parsed (reading pauses while the exchange says so), and pauses
// parsing at the request's end until the exchange has finished its response,
// so pipelined requests keep their order. Response bytes go through the same
// output buffer as any answer; while the client is not reading, the exchange
// stops reading its upstream (onOutputDrained resumes it). The exchange is
// destroyed after its finish() has returned, never inside one of its own
// calls: Worker::defer() brings the connection back later in the same loop
// iteration to complete it. A connection that closes destroys it,
// which releases its upstream connection. Timeouts while an exchange runs:
// header_timeout between body reads (→ 408 if no response began), and
// idle_timeout for a client that stops reading the response; waiting for the
// upstream is the exchange's own timeout.
//
// Every response is counted in the worker's shm cell: status class, bytes, and
// the latency from the request's first byte to the response being queued.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "worker/http/exchange.h"
#include "worker/http/http_parser.h"
#include "worker/http/response.h"
#include "worker/router.h"
#include "worker/send_batch.h"

namespace phalanx::worker {

class Worker;

class Connection final : public RequestParser::Listener,
                         private ExchangeSink,
                         private BatchedSender {
 public:
  static constexpr size_t kMaxPendingOutput = 1 << 20;
  static constexpr uint64_t kLingerMs = 2000;
  // On graceful stop an idle keep-alive connection stays this long, so a request
  // already on its way is answered (with Connection: close) instead of lost.
  static constexpr uint64_t kDrainGraceMs = 500;
  // While an answer is delayed, at most this much later input is read and held.
  static constexpr size_t kMaxHeldInput = 64 * 1024;

  explicit Connection(Worker& worker);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes ownership of an accepted, non-blocking socket; `peer` is its address
  // as accept4() returned it, `listener` the index of the listen address it
  // came in on. On failure the socket is closed and the connection closes itself.
  void start(int fd, const sockaddr* peer, uint32_t listener,
             std::list<Connection>::iterator self);

  // Graceful stop: an idle connection closes after kDrainGraceMs; a busy one
  // answers its current request with Connection: close and then closes.
  void beginDrain();

  // The worker is stopping: an exchange still running is dropped now, while
  // the loop can still run its handles' close callbacks.
  void dropExchange() { abortExchange(); }

  // From Worker::defer(): an exchange that finished is completed here.
  void onDeferred();

 private:
  // Open → Closed directly, or through Lingering when unread input may follow.
  enum class Phase { Open, Lingering, Closed };
  // A uv_write in flight and the bytes it sends: allocated only when the socket
  // did not take a whole answer at once.
  struct QueuedWrite {
    uv_write_t req{};
    std::string bytes;
  };

  // RequestParser::Listener
  void onRequestBegin(Request& request) override;
  void onHeadersComplete(Request& request) override;
  void onBody(Request& request, const char* data, size_t length) override;
  void onRequest(Request& request) override;

  // ExchangeSink
  ConnectionHeader beginResponse(bool must_close) override;
  void write(std::string_view bytes) override;
  void flush() override;
  void finish(int status, bool reusable) override;
  size_t pendingOutput() const override;
  void pauseInput() override;
  void resumeInput() override;
  const ClientInfo& client() const override;

  void completeExchange();
  void abortExchange();
  // The request is read and its answer is still to come (delayed, or an exchange
  // still running): parsing holds, input is read and held.
  bool holding() const { return delayed_request_ != nullptr || (exchange_ && exchange_body_done_); }

  // Writes the answer to `request` (route from Handlers::match) into out_.
  void answer(const Route* route, const Request& request);
  void answerDelayed();

  void startReading();
  void stopReading();
  void onRead(ssize_t nread, const uv_buf_t* buf);
  void parse(const char* data, size_t length);
  void pump();
  // BatchedSender: out_ goes with the worker's next send batch.
  int sendFd() const override { return fd_; }
  std::string_view unsent() const override { return out_; }
  void onSent(int result) override;
  void queueRest(size_t taken);
  void onWriteDone(int status);
  void onOutputTaken();
  void failRequest(int status, const char* reason);
  void closeAfterAnswer(const Request& request);
  void setNoDelay();
  void startClosing();
  void startLingering();
  void closeNow();
  void onHandleClosed();
  void onTimer();
  void setDeadline(uint64_t deadline_ms);
  // `request` is nullptr for a refusal before a request was complete, `route`
  // for one no route took (counted under the unmatched route).
  void countResponse(int status, uint64_t bytes, const Request* request, const Route* route,
                     const Exchange::Report* report = nullptr);
  bool idle() const;
  // Output is on its way: in the send batch, or a queued uv_write.
  bool writing() const { return listed() || queued_write_ != nullptr; }
  void startDrainGrace();

  Worker& worker_;
  std::list<Connection>::iterator self_;
  uv_tcp_t tcp_{};
  int fd_ = -1;  // tcp_'s socket
  uv_timer_t timer_{};
  std::unique_ptr<QueuedWrite> queued_write_;    // non-null while a write is in flight
  std::unique_ptr<uv_shutdown_t> shutdown_req_;  // non-null while lingering's FIN is queued
  RequestParser parser_;
  std::string out_;            // responses not yet handed to the socket
  std::string pending_input_;  // read but not parsed: parsing paused on output or a delay
  // The request waiting for its delayed answer, or nullptr. The parser is
  // paused meanwhile, so the Request it owns stays as it was.
  const Request* delayed_request_ = nullptr;
  const Route* delayed_route_ = nullptr;
  const Route* route_ = nullptr;  // the current request's, matched once its headers are complete
  std::unique_ptr<Exchange> exchange_;
  const Request* exchange_request_ = nullptr;
  int exchange_status_ = 0;
  uint64_t exchange_out_bytes_ = 0;  // response bytes written for the exchange
  bool exchange_body_done_ = false;  // its request was read to the end
  bool exchange_done_ = false;       // it called finish()
  bool exchange_began_ = false;      // it called beginResponse()
  bool answered_early_ = false;      // an exchange answered before its request's body ended
  bool input_paused_ = false;        // the exchange cannot take more body for now
  Phase phase_ = Phase::Open;
  bool close_after_write_ = false;
  // Unread input may follow the last answer: close through FIN + linger.
  bool linger_ = false;
  bool nodelay_ = false;  // TCP_NODELAY is set
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
  uint32_t listener_ = 0;
  sockaddr_in6 peer_{};              // as accept4() gave it (an IPv4 one fits)
  mutable ClientInfo client_info_;   // filled when an exchange first asks
  mutable std::string client_ip_;
};

}  // namespace phalanx::worker

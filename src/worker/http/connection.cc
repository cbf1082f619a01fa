#include "worker/http/connection.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include "shared/histogram.h"
#include "worker/router.h"
#include "worker/worker.h"

namespace phalanx::worker {

namespace {

// What an answer usually takes: rendering it then costs one allocation.
constexpr size_t kOutputReserve = 512;

Connection& owner(uv_handle_t* handle) {
  return *static_cast<Connection*>(handle->data);
}

// The peer's IP as text, and its port; empty and 0 for another family.
std::string peerIp(const sockaddr* peer) {
  char host[INET6_ADDRSTRLEN] = {};
  if (peer->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(peer)->sin_addr, host, sizeof host);
  } else if (peer->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, host, sizeof host);
  }
  return host;
}

uint16_t peerPort(const sockaddr* peer) {
  if (peer->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(peer)->sin_port);
  if (peer->sa_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(peer)->sin6_port);
  }
  return 0;
}

std::string peerName(const sockaddr* peer) {
  return peerIp(peer) + ":" + std::to_string(peerPort(peer));
}

// Empties `buffer` and gives its memory back: an idle connection keeps none.
void discard(std::string& buffer) {
  std::string().swap(buffer);
}

}  // namespace

Connection::Connection(Worker& worker)
    : worker_(worker),
      parser_(*this, {.max_header_bytes = worker.limits().max_header_bytes,
                      .max_body_bytes = worker.limits().max_body_bytes,
                      .max_headers = worker.limits().max_headers,
                      .path = {.merge_slashes = worker.http().merge_slashes}}) {}

// A connection still open when the worker stops must not stay in its send batch.
Connection::~Connection() {
  worker_.sends().remove(this);
}

void Connection::start(int fd, const sockaddr* peer, uint32_t listener,
                       std::list<Connection>::iterator self) {
  self_ = self;
  listener_ = listener;
  if (peer->sa_family == AF_INET) {
    std::memcpy(&peer_, peer, sizeof(sockaddr_in));
  } else if (peer->sa_family == AF_INET6) {
    std::memcpy(&peer_, peer, sizeof(sockaddr_in6));
  }
  uv_tcp_init(worker_.loop(), &tcp_);
  uv_timer_init(worker_.loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
  handles_open_ = 2;
  fd_ = fd;
  // TCP_NODELAY waits for an answer that keeps the connection open (setNoDelay).
  if (int rc = worker_.adoptSocket(&tcp_, fd); rc != 0) {
    spdlog::warn("connection: cannot adopt fd {}: {}", fd, uv_strerror(rc));  // fd is closed
    closeNow();
    return;
  }
  if (worker_.accessLog() != nullptr) client_ = peerName(peer);
  started_ns_ = uv_hrtime();
  setDeadline(uv_now(worker_.loop()) + worker_.limits().header_timeout_ms);
  startReading();
}

bool Connection::idle() const {
  return !parser_.inRequest() && out_.empty() && !writing() && pending_input_.empty() &&
         delayed_request_ == nullptr && !exchange_;
}

void Connection::beginDrain() {
  if (phase_ == Phase::Open && idle()) startDrainGrace();
  // A busy connection: onRequest() sees worker_.draining() and answers with
  // Connection: close; one that was writing a keep-alive answer gets its grace
  // in pump() once it is idle.
}

// A request may be on its way: give it a moment, then close.
void Connection::startDrainGrace() {
  if (drain_grace_started_) return;
  drain_grace_started_ = true;
  setDeadline(uv_now(worker_.loop()) + kDrainGraceMs);
}

void Connection::startReading() {
  if (reading_ || eof_ || phase_ == Phase::Closed || input_paused_) return;
  reading_ = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) { *buf = owner(h).worker_.readBuffer(); },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        owner(reinterpret_cast<uv_handle_t*>(s)).onRead(nread, buf);
      });
}

void Connection::stopReading() {
  if (!reading_) return;
  reading_ = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void Connection::onRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread == 0) return;
  if (nread < 0) {
    eof_ = true;
    stopReading();
    // A client may half-close after sending its requests: answer what was
    // already read, then close.
    bool owed = writing() || !out_.empty() || !pending_input_.empty() || holding();
    if (phase_ == Phase::Open && nread == UV_EOF && owed) {
      close_after_write_ = true;
      pump();
      return;
    }
    closeNow();
    return;
  }
  if (phase_ != Phase::Open) return;  // lingering: discard what the client still sends
  if (close_after_write_) {
    // Input beyond the answer that closes the connection: never parsed, but it
    // makes the close linger, or close() would reset that answer.
    linger_ = true;
    return;
  }
  if (holding()) {
    // Parsing waits for the answer; pump() stops reading past kMaxHeldInput.
    pending_input_.append(buf->base, static_cast<size_t>(nread));
    pump();
    return;
  }
  if (parser_.inBody()) setDeadline(uv_now(worker_.loop()) + worker_.limits().header_timeout_ms);
  parse(buf->base, static_cast<size_t>(nread));
  pump();
}

void Connection::parse(const char* data, size_t length) {
  switch (parser_.feed(data, length)) {
    case RequestParser::Outcome::Error:
      failRequest(parser_.errorStatus(), parser_.errorReason());
      break;
    case RequestParser::Outcome::Paused: {
      size_t rest = length - parser_.consumed();
      if (close_after_write_) {
        // The answer closes the connection (closeAfterAnswer): the rest is
        // never parsed. Pipelined bytes after it: linger, or close() resets.
        if (rest > 0) linger_ = true;
        break;
      }
      pending_input_.append(data + parser_.consumed(), rest);
      // Held for an answer still to come, reading goes on (pump() bounds it);
      // a stop and restart would cost two epoll_ctl calls a request.
      if (!holding()) stopReading();
      break;
    }
    case RequestParser::Outcome::Stopped:  // after an error answer, which lingers
    case RequestParser::Outcome::Consumed: break;
  }
}

// Moves the connection forward after any event, in a loop rather than by
// recursion: write what is queued; once the socket took it, parse input that
// was held back; then close if a response said so, or read again. Nothing it
// calls re-enters it: libuv runs read and shutdown callbacks on later turns.
void Connection::pump() {
  while (phase_ == Phase::Open && !writing()) {
    if (!out_.empty()) {
      worker_.sends().add(this);  // onSent() pumps on
      break;
    } else if (holding()) {
      // Read on while the answer waits, so a reset is noticed; hold a bounded amount.
      if (pending_input_.size() < kMaxHeldInput) {
        startReading();
      } else {
        stopReading();
      }
      break;
    } else if (!pending_input_.empty()) {
      std::string input = std::move(pending_input_);
      pending_input_.clear();
      parse(input.data(), input.size());
    } else if (close_after_write_) {
      if (exchange_ && !exchange_done_) break;  // its response is still coming
      startClosing();
    } else {
      if (worker_.draining() && idle()) startDrainGrace();
      startReading();
      break;
    }
  }
}

void Connection::onRequestBegin(Request& request) {
  started_ns_ = uv_hrtime();
  request.started_ns = started_ns_;
  if (requests_ > 0) {
    // The header timeout runs from a request's first byte; the first request's
    // from accept (set in start()).
    setDeadline(uv_now(worker_.loop()) + worker_.limits().header_timeout_ms);
  }
}

void Connection::onHeadersComplete(Request& request) {
  setDeadline(uv_now(worker_.loop()) + worker_.limits().header_timeout_ms);
  if (request.expect_continue) {
    // The client waits for the 100 before it sends the body: send it now.
    out_ += Handlers::kContinue;
    if (!writing()) worker_.sends().add(this);
  }
  route_ = worker_.handlers().match(request, listener_);
  // Proxied and guarded routes are answered by the gateway; a method the
  // route does not take gets its 405 like any other.
  if (route_ != nullptr && (route_->kind == shared::RouteKind::Upstream || route_->guarded) &&
      route_->allows(request.method)) {
    exchange_request_ = &request;
    exchange_status_ = 0;
    exchange_out_bytes_ = 0;
    exchange_body_done_ = exchange_done_ = exchange_began_ = answered_early_ = false;
    exchange_ = worker_.startExchange(*route_, request, *this);
  }
}

void Connection::onBody(Request&, const char* data, size_t length) {
  if (exchange_ && !exchange_done_) exchange_->onBody(data, length);
}

void Connection::onRequest(Request& request) {
  ++requests_;
  if (answered_early_) {
    // Its exchange answered before the body ended; the rest was read and dropped.
    answered_early_ = false;
    return;
  }
  if (exchange_) {
    exchange_body_done_ = true;
    if (!exchange_done_) exchange_->onBodyEnd();
    // Later requests wait until its response is complete (completeExchange).
    parser_.pause();
    return;
  }
  const Route* route = route_;
  if (route != nullptr && route->delay_ms > 0 && route->allows(request.method)) {
    delayed_request_ = &request;
    delayed_route_ = route;
    parser_.pause();  // later requests wait: their answers must follow this one
    // +1: loop time is in whole milliseconds, truncated; never answer early.
    setDeadline(uv_now(worker_.loop()) + route->delay_ms + 1);
    return;
  }
  answer(route, request);
  // A client that pipelines without reading: hold the rest of its input until
  // it has read this.
  if (out_.size() > kMaxPendingOutput) parser_.pause();
}

void Connection::answer(const Route* route, const Request& request) {
  // takeShed() last: it spends the budget only on a response that would
  // otherwise keep the connection.
  bool keep_alive = request.keep_alive && !worker_.draining() && !worker_.takeShed();
  ConnectionHeader header = ConnectionHeader::None;
  if (!keep_alive) {
    header = ConnectionHeader::Close;
    closeAfterAnswer(request);
  } else {
    setNoDelay();
    if (request.http_major == 1 && request.http_minor == 0) header = ConnectionHeader::KeepAlive;
  }
  if (out_.empty()) out_.reserve(kOutputReserve);
  size_t before = out_.size();
  int status = worker_.handlers().respond(route, request, header, out_);
  countResponse(status, out_.size() - before, &request, route);
  setDeadline(uv_now(worker_.loop()) + worker_.limits().idle_timeout_ms);
}

// After the answer to `request`: nothing more is parsed, and the close lingers
// when more input may follow (see the header).
void Connection::closeAfterAnswer(const Request& request) {
  close_after_write_ = true;
  // The client meant to keep the connection (we close on drain or to shed it):
  // its next request may be on its way. Input held while a delayed answer
  // waited is input beyond this request.
  if (request.keep_alive || !pending_input_.empty()) linger_ = true;
  discard(pending_input_);
  // feed() returns after this request; parse() sees whether bytes follow it.
  // From a delayed answer (outside feed()) this only marks a parser that is
  // never fed again.
  parser_.pause();
}

// Once per connection, with its first answer that keeps it open (see the header).
void Connection::setNoDelay() {
  if (nodelay_) return;
  nodelay_ = true;
  uv_tcp_nodelay(&tcp_, 1);
}

void Connection::answerDelayed() {
  const Request& request = *delayed_request_;
  const Route* route = delayed_route_;
  delayed_request_ = nullptr;
  delayed_route_ = nullptr;
  answer(route, request);
  pump();  // writes it, then parses what was held back
}

void Connection::failRequest(int status, const char* reason) {
  bool began = exchange_ && exchange_began_;
  // route_ is this request's only while its exchange runs; before that it may
  // be the previous request's.
  const Route* route = exchange_ ? route_ : nullptr;
  abortExchange();
  if (began) {
    // Part of an upstream's response went out already: no answer fits after
    // it; the client sees the connection close.
    parser_.stop();
    discard(pending_input_);
    close_after_write_ = true;
    linger_ = true;
    return;
  }
  if (out_.empty()) out_.reserve(kOutputReserve);
  size_t before = out_.size();
  worker_.handlers().respondError(status, reason, out_);
  countResponse(status, out_.size() - before, nullptr, route);
  spdlog::debug("connection {}: {} {}", client_, status, reason);
  parser_.stop();
  discard(pending_input_);
  close_after_write_ = true;
  linger_ = true;  // the rest of the refused request may still be on its way
}

void Connection::countResponse(int status, uint64_t bytes, const Request* request,
                               const Route* route, const Exchange::Report* report) {
  uint64_t now_ns = uv_hrtime();
  // A refusal before a complete request counts from that request's first byte,
  // or from accept when none came (a 408 on a silent connection).
  uint64_t elapsed_ns = now_ns - (request != nullptr ? request->started_ns : started_ns_);
  uint64_t elapsed_us = elapsed_ns / 1000;
  shared::TrafficCounters& traffic = worker_.cell().traffic;
  shared::bump(traffic.requests);
  shared::bump(traffic.bytes_out, bytes);
  shared::bump(traffic.responses_by_class[status / 100 < 6 ? status / 100 : 5]);
  shared::bump(traffic.latency_buckets[shared::latencyBucket(elapsed_us)]);
  shared::bump(traffic.latency_sum_us, elapsed_us);
  RouteFigures::Response figures{
      .route_index = route != nullptr ? static_cast<int>(route->index) : -1,
      .has_request = request != nullptr,
      .method = request != nullptr ? request->method : uint8_t{0},
      .status = status,
      .elapsed_us = elapsed_us};
  worker_.routeFigures().count(figures);
  if (RouteFigures::isError(status)) {
    worker_.routeFigures().recordError(
        figures, {.method = request != nullptr ? request->methodName() : std::string_view(),
                  .path = request != nullptr ? request->path() : std::string_view(),
                  .client = client().address,
                  .request_id = report != nullptr ? report->request_id : std::string_view(),
                  .upstream = report != nullptr ? report->target : std::string_view()});
  }
  if (AccessLog* log = worker_.accessLog()) {
    AccessEntry entry;
    entry.status = status;
    entry.bytes = bytes;
    entry.client = client_;
    if (request != nullptr) {
      entry.method = request->methodName();
      entry.path = request->path();
      entry.duration_ms = static_cast<double>(elapsed_ns) / 1e6;
    }
    if (report != nullptr) {
      entry.request_id = report->request_id;
      entry.upstream = report->target;
      entry.upstream_status = report->upstream_status;
      entry.upstream_ms = report->upstream_ms;
      entry.key_id = report->key_id;
      entry.cache = report->cache;
    }
    log->write(entry);
  }
}

// The send batch sent out_ (see send_batch.h for `result`).
void Connection::onSent(int result) {
  if (phase_ != Phase::Open) return;
  if (result < 0) {
    closeNow();
    return;
  }
  auto taken = static_cast<size_t>(result);
  if (taken < out_.size()) {
    queueRest(taken);
    return;
  }
  discard(out_);
  onOutputTaken();
}

// The socket took `taken` bytes of out_: the rest goes by a queued uv_write,
// and out_ is left empty for responses parsed meanwhile.
void Connection::queueRest(size_t taken) {
  queued_write_ = std::make_unique<QueuedWrite>();
  queued_write_->bytes.swap(out_);
  std::string& bytes = queued_write_->bytes;
  uv_buf_t buf = uv_buf_init(bytes.data() + taken, static_cast<unsigned>(bytes.size() - taken));
  queued_write_->req.data = this;
  int rc = uv_write(&queued_write_->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
                    [](uv_write_t* req, int status) {
                      static_cast<Connection*>(req->data)->onWriteDone(status);
                    });
  if (rc != 0) {  // no callback will come
    queued_write_.reset();
    closeNow();
  }
}

// libuv is done with the request when it calls back (also with UV_ECANCELED
// from uv_close), so it is freed here.
void Connection::onWriteDone(int status) {
  queued_write_.reset();
  if (status < 0 || phase_ == Phase::Closed) {
    closeNow();
    return;
  }
  if (exchange_ && phase_ == Phase::Open && exchange_body_done_) {
    // A streamed response moves on: the client has idle_timeout for the next part.
    setDeadline(uv_now(worker_.loop()) + worker_.limits().idle_timeout_ms);
  }
  onOutputTaken();
}

// The socket took all that was on its way (a batch's send, or a queued write).
void Connection::onOutputTaken() {
  pump();
  // An exchange held back by the client's backlog may go on (it checks how much is left).
  if (exchange_ && !exchange_done_ && phase_ == Phase::Open) exchange_->onOutputDrained();
}

// Called once everything owed is written. See the header for when a close lingers.
void Connection::startClosing() {
  if (phase_ != Phase::Open) return;
  if (linger_ && !eof_) {
    startLingering();
  } else {
    closeNow();
  }
}

// FIN first, then read and discard until the client closes (or kLingerMs), so
// unread request bytes cannot turn our close into a reset that destroys the
// response before the client reads it.
void Connection::startLingering() {
  phase_ = Phase::Lingering;
  shutdown_req_ = std::make_unique<uv_shutdown_t>();
  shutdown_req_->data = this;
  int rc = uv_shutdown(shutdown_req_.get(), reinterpret_cast<uv_stream_t*>(&tcp_),
                       [](uv_shutdown_t* req, int) {
                         auto* self = static_cast<Connection*>(req->data);
                         self->shutdown_req_.reset();  // libuv is done with it
                         if (self->phase_ == Phase::Lingering && self->eof_) self->closeNow();
                       });
  if (rc != 0) {
    shutdown_req_.reset();
    closeNow();
    return;
  }
  setDeadline(uv_now(worker_.loop()) + kLingerMs);
  startReading();  // reading may have been paused for backpressure
}

void Connection::setDeadline(uint64_t deadline_ms) {
  deadline_ms_ = deadline_ms;
  if (timer_armed_ && timer_due_ms_ <= deadline_ms) return;  // fires early, re-arms then
  uint64_t now = uv_now(worker_.loop());
  timer_due_ms_ = deadline_ms;
  timer_armed_ = true;
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { owner(reinterpret_cast<uv_handle_t*>(t)).onTimer(); },
      deadline_ms > now ? deadline_ms - now : 0, 0);
}

void Connection::onTimer() {
  timer_armed_ = false;
  uint64_t now = uv_now(worker_.loop());
  if (now < deadline_ms_) {
    setDeadline(deadline_ms_);
    return;
  }
  if (exchange_ && phase_ == Phase::Open && !writing() && exchange_body_done_) {
    // Waiting for the upstream: its own timeout governs.
    setDeadline(now + worker_.limits().idle_timeout_ms);
    return;
  }
  if (delayed_request_ != nullptr && phase_ == Phase::Open) {
    answerDelayed();  // its due time, not a timeout
    return;
  }
  if (phase_ != Phase::Open || writing()) {
    closeNow();  // lingering over, or a client that stopped reading our response
  } else if (parser_.inRequest() || (requests_ == 0 && !worker_.draining())) {
    failRequest(408, "request timeout");
    pump();
  } else {
    // Idle keep-alive, or the drain grace is over: a request may be on its way.
    linger_ = true;
    startClosing();
  }
}

void Connection::onDeferred() {
  if (exchange_ && exchange_done_ && phase_ != Phase::Closed) completeExchange();
}

// --- ExchangeSink: an exchange's response goes through out_ like any answer.

ConnectionHeader Connection::beginResponse(bool must_close) {
  exchange_began_ = true;
  const Request& request = *exchange_request_;
  bool keep_alive =
      request.keep_alive && !must_close && !worker_.draining() && !worker_.takeShed();
  if (!keep_alive) {
    close_after_write_ = true;
    // Input may follow: the client meant to keep the connection, or its body
    // (or pipelined requests) are still coming.
    if (request.keep_alive || !exchange_body_done_ || !pending_input_.empty()) linger_ = true;
    discard(pending_input_);
    return ConnectionHeader::Close;
  }
  setNoDelay();
  return request.http_minor == 0 ? ConnectionHeader::KeepAlive : ConnectionHeader::None;
}

void Connection::write(std::string_view bytes) {
  if (phase_ != Phase::Open) return;
  exchange_out_bytes_ += bytes.size();
  if (out_.empty()) out_.reserve(kOutputReserve);
  out_.append(bytes);
}

void Connection::flush() {
  if (phase_ == Phase::Open && !writing() && !out_.empty()) worker_.sends().add(this);
}

void Connection::finish(int status, bool reusable) {
  if (phase_ == Phase::Closed) return;
  exchange_done_ = true;
  exchange_status_ = status;
  if (!reusable) {
    close_after_write_ = true;
    linger_ = linger_ || !exchange_body_done_;
  }
  // Completed, and the response's last bytes written, once the loop has run
  // this wakeup's callbacks: the answers to several clients leave together.
  worker_.defer(*this);
}

size_t Connection::pendingOutput() const {
  return out_.size() + (queued_write_ ? queued_write_->bytes.size() : 0);
}

void Connection::pauseInput() {
  input_paused_ = true;
  stopReading();
}

void Connection::resumeInput() {
  input_paused_ = false;
  if (phase_ == Phase::Open && !close_after_write_ && !holding()) startReading();
}

const ClientInfo& Connection::client() const {
  if (client_ip_.empty()) {
    client_ip_ = peerIp(reinterpret_cast<const sockaddr*>(&peer_));
    client_info_.address = client_ip_;
    client_info_.peer = reinterpret_cast<const sockaddr*>(&peer_);
  }
  return client_info_;
}

// The exchange's response is complete (finish() was called): count it, drop
// the exchange, and carry on with the next request, or with the rest of this
// one's body when the answer came early.
void Connection::completeExchange() {
  Exchange::Report report = exchange_->report();
  countResponse(exchange_status_, exchange_out_bytes_, exchange_request_, route_, &report);
  exchange_.reset();
  exchange_request_ = nullptr;
  input_paused_ = false;
  if (!exchange_body_done_) {
    answered_early_ = true;  // onRequest() will know the request was answered
    setDeadline(uv_now(worker_.loop()) + worker_.limits().header_timeout_ms);
  } else {
    setDeadline(uv_now(worker_.loop()) + worker_.limits().idle_timeout_ms);
  }
  pump();  // writes what is queued, then parses what was held back
}

// The connection gives up on the exchange (a parse error in the body, a
// timeout): destroying it releases its upstream connection unreused.
void Connection::abortExchange() {
  if (!exchange_) return;
  exchange_.reset();
  exchange_request_ = nullptr;
  input_paused_ = false;
}

void Connection::closeNow() {
  if (phase_ == Phase::Closed) return;
  phase_ = Phase::Closed;
  worker_.sends().remove(this);
  auto on_closed = [](uv_handle_t* h) { owner(h).onHandleClosed(); };
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void Connection::onHandleClosed() {
  if (--handles_open_ == 0) worker_.onConnectionClosed(self_);  // destroys *this
}

}  // namespace phalanx::worker

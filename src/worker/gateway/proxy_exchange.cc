#include "worker/gateway/proxy_exchange.h"

#include <spdlog/spdlog.h>

#include "shared/shm.h"
#include "worker/gateway/gateway.h"
#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

// RFC 9110 9.2.2: a request the upstream may see twice without harm.
bool isIdempotent(uint8_t method) {
  switch (method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE: return true;
    default: return false;
  }
}

bool retriesOn(const Route& route, int status) {
  switch (status) {
    case 502: return (route.retry_on & kRetryOn502) != 0;
    case 503: return (route.retry_on & kRetryOn503) != 0;
    case 504: return (route.retry_on & kRetryOn504) != 0;
    default: return false;
  }
}

}  // namespace

ProxyExchange::ProxyExchange(Gateway& gateway, UpstreamGroup& group, const Route& route,
                             const Request& request, ExchangeSink& sink)
    : gateway_(gateway),
      group_(group),
      route_(route),
      sink_(sink) {
  method_ = request.method;
  head_request_ = request.isHead();
  idempotent_ = isIdempotent(request.method);
  chunked_body_ = request.framing == Request::BodyFraming::Chunked;
  client_minor_ = request.http_minor;
  retries_left_ = group.config().retries;
  std::string_view sent = request.field("x-request-id");
  request_id_ = RequestIds::isSane(sent) ? std::string(sent) : gateway.requestIds().next();
  ForwardContext ctx{.client_ip = sink.client().address, .proto = "http", .request_id = request_id_};
  appendUpstreamRequestHead(head_, request, ctx);
  // A body that needs no bytes (Content-Length: 0) is complete already.
  body_done_ = request.framing == Request::BodyFraming::None ||
               (request.framing == Request::BodyFraming::Length && request.content_length == 0);
}

ProxyExchange::~ProxyExchange() {
  // The client left (or the connection is done with us): an attempt still
  // running has no verdict, and its connection cannot be reused.
  if (conn_ != nullptr) gateway_.pool().close(conn_);
  conn_ = nullptr;
  if (attempt_) endAttempt(AttemptResult::Neutral);
}

void ProxyExchange::start() {
  group_.countRequest(gateway_.nowMs());
  attempt();
}

void ProxyExchange::attempt() {
  uint64_t now_ms = gateway_.nowMs();
  uint64_t retry_after_ms = 0;
  attempt_ = group_.pick(std::span<const uint32_t>(tried_.data(), tried_count_), now_ms,
                         &retry_after_ms);
  if (!attempt_) {
    group_.countNoTarget();
    answerError(503, "no usable target", retry_after_ms > 0 ? retry_after_ms : 1000);
    return;
  }
  tried_[tried_count_++] = attempt_->target;
  attempt_started_ns_ = uv_hrtime();
  uint32_t pool_index = group_.targets()[attempt_->target].pool_index;
  conn_ = gateway_.pool().take(pool_index, this);
  if (conn_ != nullptr) {
    send();
    return;
  }
  int error = 0;
  conn_ = gateway_.pool().open(pool_index, this, &error);
  if (conn_ == nullptr) {
    spdlog::warn("upstream {}: {}: cannot open a connection: {}", group_.name(),
                 group_.targets()[attempt_->target].address, uv_strerror(error));
    failAttempt(502, "connect failed", true);
    return;
  }
  stage_ = Stage::Connecting;
  conn_->setTimeout(group_.config().connect_timeout_ms);
}

void ProxyExchange::onConnected(int status) {
  conn_->clearTimeout();
  if (status != 0) {
    spdlog::debug("upstream {}: {}: connect: {}", group_.name(),
                  group_.targets()[attempt_->target].address, uv_strerror(status));
    dropConnection();
    failAttempt(502, "connect failed", true);
    return;
  }
  send();
}

// Head and whatever body came so far, in one write (sent with the worker's
// send batch). A retry sends the whole body again from the replay copy.
void ProxyExchange::send() {
  stage_ = Stage::Waiting;
  conn_->parser().setListener(this);
  conn_->parser().reset(head_request_);
  int rc = conn_->write(head_, tried_count_ > 1 || reuse_retry_used_ ? replay_ : unsent_);
  unsent_.clear();
  if (rc != 0) {
    onUpstreamSendFailed(rc);
    return;
  }
  conn_->startReading();
  conn_->setTimeout(group_.config().timeout_ms);
  updateInputPause();
}

void ProxyExchange::onBody(const char* data, size_t length) {
  if (finished_ || response_started_) {
    body_abandoned_ = true;  // answered already: the rest is not forwarded
    return;
  }
  if (chunked_body_) {
    std::string framed;
    appendChunk(framed, data, length);
    forwardBody(framed);
  } else {
    forwardBody(std::string_view(data, length));
  }
}

void ProxyExchange::onBodyEnd() {
  if (body_done_) return;
  body_done_ = true;
  if (finished_ || response_started_) return;
  if (chunked_body_) forwardBody(kLastChunk);
}

void ProxyExchange::forwardBody(std::string_view framed) {
  if (replayable_) {
    replay_ += framed;
    if (replay_.size() > kReplayLimit) {
      replayable_ = false;
      std::string().swap(replay_);
    }
  }
  if (stage_ == Stage::Waiting && conn_ != nullptr) {
    if (int rc = conn_->write(framed); rc != 0) {
      body_abandoned_ = true;  // the read side will report the failure
    }
  } else {
    unsent_ += framed;
  }
  updateInputPause();
}

// Pauses the client while too much of its body waits for the upstream.
void ProxyExchange::updateInputPause() {
  size_t backlog = unsent_.size() + (conn_ != nullptr ? conn_->pendingWrite() : 0);
  if (!input_paused_ && backlog > kMaxUpstreamBacklog) {
    input_paused_ = true;
    sink_.pauseInput();
  } else if (input_paused_ && backlog <= kMaxUpstreamBacklog / 2) {
    input_paused_ = false;
    sink_.resumeInput();
  }
}

void ProxyExchange::onUpstreamWritten(int status) {
  if (status < 0) body_abandoned_ = true;  // the read side reports the failure
  if (!finished_) updateInputPause();
}

// Nothing of the request reached the upstream, so any method may go again:
// once on a fresh connection when this one was pooled (the reuse race: the
// upstream closed it as it was taken), else on another target as a retry.
void ProxyExchange::onUpstreamSendFailed(int status) {
  spdlog::debug("upstream {}: {}: send: {}", group_.name(),
                group_.targets()[attempt_->target].address, uv_strerror(status));
  bool reused = conn_->reused();
  dropConnection();
  if (reused && !reuse_retry_used_ && replayable_) {
    retryOnFreshConnection();
    return;
  }
  failAttempt(502, "connection failed", true);
}

void ProxyExchange::onUpstreamData(const char* data, size_t length) {
  conn_->setTimeout(group_.config().timeout_ms);  // between reads
  UpstreamResponseParser& parser = conn_->parser();
  UpstreamResponseParser::Outcome outcome = parser.feed(data, length);
  if (retry_this_response_) {
    retry_this_response_ = false;
    dropConnection();
    endAttempt(AttemptResult::Failure);
    --retries_left_;
    attempt();
    return;
  }
  switch (outcome) {
    case UpstreamResponseParser::Outcome::Error:
      spdlog::warn("upstream {}: {}: bad response: {}", group_.name(),
                   group_.targets()[attempt_->target].address, parser.reason());
      if (response_started_) {
        abortResponse();
      } else {
        dropConnection();
        failAttempt(502, "bad response", false);
      }
      return;
    case UpstreamResponseParser::Outcome::Complete:
      // Bytes after the response: the upstream is confused; never reuse it.
      completeResponse(parser.consumed() == length);
      return;
    case UpstreamResponseParser::Outcome::Consumed: break;
  }
  sink_.flush();
  if (!reading_paused_ && sink_.pendingOutput() > kMaxClientBacklog) {
    reading_paused_ = true;
    conn_->stopReading();
  }
}

void ProxyExchange::onOutputDrained() {
  if (reading_paused_ && conn_ != nullptr && sink_.pendingOutput() <= kMaxClientBacklog / 2) {
    reading_paused_ = false;
    conn_->startReading();
  }
}

void ProxyExchange::onUpstreamEnd(int status) {
  UpstreamResponseParser::Outcome outcome =
      status == UV_EOF ? conn_->parser().finishEof() : UpstreamResponseParser::Outcome::Error;
  if (outcome == UpstreamResponseParser::Outcome::Complete) {
    completeResponse(false);
    return;
  }
  if (response_started_) {
    abortResponse();
    return;
  }
  bool nothing_back = !conn_->parser().started();
  bool reused = conn_->reused();
  dropConnection();
  if (nothing_back && reused && !reuse_retry_used_ && idempotent_ && replayable_) {
    retryOnFreshConnection();
    return;
  }
  failAttempt(502, nothing_back ? "connection closed before a response" : "bad response",
              nothing_back && idempotent_);
}

void ProxyExchange::onUpstreamTimeout() {
  if (stage_ == Stage::Connecting) {
    dropConnection();
    failAttempt(504, "connect timed out", true);
    return;
  }
  if (stage_ != Stage::Waiting) return;
  spdlog::debug("upstream {}: {}: no response within {} ms", group_.name(),
                group_.targets()[attempt_->target].address, group_.config().timeout_ms);
  if (response_started_) {
    abortResponse();
    return;
  }
  dropConnection();
  failAttempt(504, "timed out", false);
}

void ProxyExchange::onResponseHead(const ResponseHead& head) {
  if (head.interim()) {
    // Our own 100 Continue went out already; other 1xx (103 Early Hints)
    // reach an HTTP/1.1 client as they came.
    if (head.status == 100 || client_minor_ == 0 || response_started_) return;
    std::string interim;
    appendClientResponseHead(interim, head, ClientFraming::None, 0, ConnectionHeader::None, {},
                             gateway_.date());
    sink_.write(interim);
    sink_.flush();
    return;
  }
  status_ = head.status;
  if (retriesOn(route_, head.status) && idempotent_ && retryAllowed()) {
    retry_this_response_ = true;  // acted on once feed() returns
    return;
  }
  upstream_keep_alive_ = head.keep_alive;
  bool must_close = false;
  uint64_t length = 0;
  if (head_request_) {
    framing_ = ClientFraming::HeadLength;
  } else if (head.status == 204 || head.status == 304) {
    framing_ = ClientFraming::None;
  } else if (head.framing == ResponseHead::Framing::Length ||
             head.framing == ResponseHead::Framing::None) {
    framing_ = ClientFraming::Length;
    length = head.content_length;
  } else if (client_minor_ >= 1) {
    framing_ = ClientFraming::Chunked;
  } else {
    framing_ = ClientFraming::UntilClose;
    must_close = true;
  }
  ConnectionHeader connection = sink_.beginResponse(must_close);
  std::string& out = gateway_.scratch();
  appendClientResponseHead(out, head, framing_, length, connection, request_id_, gateway_.date(),
                           extra_);
  response_started_ = true;
  if (tap_ != nullptr) tap_->onTapHead(head);
  sink_.write(out);
}

void ProxyExchange::onResponseBody(const char* data, size_t length) {
  if (retry_this_response_ || !response_started_) return;
  if (tap_ != nullptr) tap_->onTapBody(data, length);
  if (framing_ == ClientFraming::Chunked) {
    chunk_.clear();
    appendChunk(chunk_, data, length);
    sink_.write(chunk_);
  } else {
    sink_.write(std::string_view(data, length));
  }
}

// The reuse race: the upstream closed the pooled connection as we sent on it.
// Once, on a fresh connection, and it is no verdict on the target.
void ProxyExchange::retryOnFreshConnection() {
  reuse_retry_used_ = true;
  endAttempt(AttemptResult::Neutral);
  --tried_count_;
  attempt();
}

bool ProxyExchange::retryAllowed() {
  return retries_left_ > 0 && replayable_ && group_.tryRetry(gateway_.nowMs());
}

void ProxyExchange::failAttempt(int status, const char* what, bool retry_allowed) {
  endAttempt(AttemptResult::Failure);
  if (retry_allowed && retryAllowed()) {
    --retries_left_;
    attempt();
    return;
  }
  answerError(status, what, 0);
}

void ProxyExchange::completeResponse(bool upstream_reusable) {
  stage_ = Stage::Done;
  if (framing_ == ClientFraming::Chunked) sink_.write(kLastChunk);
  bool request_sent = body_done_ && !body_abandoned_ && unsent_.empty();
  bool reusable = upstream_reusable && upstream_keep_alive_ && request_sent &&
                  conn_->pendingWrite() == 0;
  gateway_.pool().release(conn_, reusable);
  conn_ = nullptr;
  endAttempt(status_ >= 500 ? AttemptResult::Failure : AttemptResult::Success);
  finished_ = true;
  if (tap_ != nullptr) tap_->onTapEnd(true);
  sink_.finish(status_, framing_ != ClientFraming::UntilClose);
}

// The upstream failed after its head was relayed: the client must see the
// body end early (the connection closes), never a wrong one.
void ProxyExchange::abortResponse() {
  stage_ = Stage::Done;
  dropConnection();
  endAttempt(AttemptResult::Failure);
  finished_ = true;
  if (tap_ != nullptr) tap_->onTapEnd(false);
  sink_.finish(status_, false);
}

void ProxyExchange::endAttempt(AttemptResult result) {
  if (!attempt_) return;
  uint64_t elapsed_ns = uv_hrtime() - attempt_started_ns_;
  upstream_ms_ = static_cast<double>(elapsed_ns) / 1e6;
  auto event = group_.finish(*attempt_, result, gateway_.nowMs(), elapsed_ns / 1000);
  if (event) gateway_.breakerChanged(group_, *event);
  attempt_.reset();
}

void ProxyExchange::dropConnection() {
  if (conn_ != nullptr) gateway_.pool().close(conn_);
  conn_ = nullptr;
  reading_paused_ = false;
  stage_ = Stage::Idle;
}

void ProxyExchange::answerError(int status, const char* what, uint64_t retry_after_ms) {
  stage_ = Stage::Done;
  status_ = status;
  HeaderList extra = {{"X-Request-Id", request_id_}};
  if (retry_after_ms > 0) {
    extra.emplace_back("Retry-After", std::to_string((retry_after_ms + 999) / 1000));
  }
  Response r = makeJsonError(status, "upstream \"" + group_.name() + "\": " + what, extra);
  ConnectionHeader connection = sink_.beginResponse(false);
  std::string out;
  appendResponse(out, r, gateway_.date(), connection, head_request_, extra_);
  finished_ = true;
  if (tap_ != nullptr) tap_->onTapEnd(false);
  sink_.write(out);
  sink_.finish(status, true);
}

Exchange::Report ProxyExchange::report() const {
  Report r;
  r.request_id = request_id_;
  if (tried_count_ > 0) r.target = group_.targets()[tried_[tried_count_ - 1]].address;
  r.upstream_status = response_started_ ? status_ : 0;
  r.upstream_ms = upstream_ms_;
  return r;
}

}  // namespace phalanx::worker

// One proxied request: pick a target, send the request to it (its body
// streamed as it arrives), relay the response as it arrives, retry or answer
// an error when the upstream fails. See http/exchange.h for the client side's
// part of the contract.
//
// Buffers are bounded per exchange, whatever the sizes involved:
// - toward the upstream: at most kMaxUpstreamBacklog bytes wait (unsent while
//   connecting, or queued in the socket) before the client is paused;
// - toward the client: at most kMaxClientBacklog bytes wait in the
//   connection's output before reading the upstream stops;
// - for retries: the request body is kept while it is at most kReplayLimit
//   bytes; a larger one makes the request not retryable.
//
// Failures and answers (JSON bodies naming the upstream, never an internal
// error text):
//   connect refused or failed               → retry (any method: nothing was sent), else 502
//   connect_timeout_ms                      → retry (any method), else 504
//   reset or close before any response byte → idempotent methods retry, else 502;
//     on a reused pooled connection (the reuse race) the first such failure is
//     retried once on a fresh connection without counting as a retry
//   timeout_ms before the response head     → 504 (not retried: the upstream may still act)
//   a response status in the route's retry_on → retry if idempotent, else relayed
//   a broken response after its head was relayed → the client connection is
//     closed, so the client sees a truncated body, not a wrong one
//   no usable target (down, breakers open)  → 503 with Retry-After
// Every retry needs a retry left (`retries`) and room in the upstream's retry budget.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/gateway/forwarding.h"
#include "worker/gateway/upstream_group.h"
#include "worker/gateway/upstream_pool.h"
#include "worker/gateway/upstream_response_parser.h"
#include "worker/http/exchange.h"
#include "worker/http/http_parser.h"
#include "worker/router.h"

namespace phalanx::worker {

class Gateway;

// What sees a proxied response as it is relayed (the response cache, the
// invalidation after an unsafe method): the final head, the body bytes as the
// upstream sent them (de-chunked), and whether it ended complete.
class ResponseTap {
 public:
  virtual ~ResponseTap() = default;
  virtual void onTapHead(const ResponseHead& head) = 0;
  virtual void onTapBody(const char* data, size_t length) = 0;
  // `complete` false: the response was cut short or never came (an error answer).
  virtual void onTapEnd(bool complete) = 0;
};

class ProxyExchange final : public Exchange,
                            private UpstreamConnection::User,
                            private UpstreamResponseParser::Listener {
 public:
  static constexpr size_t kMaxUpstreamBacklog = 256 * 1024;
  static constexpr size_t kMaxClientBacklog = 256 * 1024;
  static constexpr size_t kReplayLimit = 64 * 1024;

  ProxyExchange(Gateway& gateway, UpstreamGroup& group, const Route& route,
                const Request& request, ExchangeSink& sink);
  ~ProxyExchange() override;

  // Before start(): header lines added to the client's response (`extra`,
  // which must outlive the exchange) and a tap on the response (or nullptr).
  void decorate(std::string_view extra, ResponseTap* tap) {
    extra_ = extra;
    tap_ = tap;
  }

  // Starts the first attempt; may answer at once (nothing usable).
  void start();

  // Exchange
  void onBody(const char* data, size_t length) override;
  void onBodyEnd() override;
  void onOutputDrained() override;
  Report report() const override;

 private:
  enum class Stage { Idle, Connecting, Waiting, Done };

  // UpstreamConnection::User
  void onConnected(int status) override;
  void onUpstreamData(const char* data, size_t length) override;
  void onUpstreamEnd(int status) override;
  void onUpstreamWritten(int status) override;
  void onUpstreamSendFailed(int status) override;
  void onUpstreamTimeout() override;
  // UpstreamResponseParser::Listener
  void onResponseHead(const ResponseHead& head) override;
  void onResponseBody(const char* data, size_t length) override;

  void attempt();
  void send();
  void forwardBody(std::string_view framed);
  // The attempt failed before a response was relayed: retry when allowed, else answer.
  void failAttempt(int status, const char* what, bool retry_allowed);
  bool retryAllowed();
  void retryOnFreshConnection();
  void completeResponse(bool upstream_reusable);
  void abortResponse();
  void endAttempt(AttemptResult result);
  void dropConnection();
  void answerError(int status, const char* what, uint64_t retry_after_ms);
  void updateInputPause();

  Gateway& gateway_;
  UpstreamGroup& group_;
  const Route& route_;
  ExchangeSink& sink_;
  Stage stage_ = Stage::Idle;
  std::optional<UpstreamGroup::Attempt> attempt_;
  UpstreamConnection* conn_ = nullptr;
  // Targets this request tried, in order: the first attempt, `retries`
  // others, and the reuse race's fresh connection.
  std::array<uint32_t, 12> tried_{};
  size_t tried_count_ = 0;
  uint32_t retries_left_ = 0;
  bool reuse_retry_used_ = false;

  // The request.
  uint8_t method_ = 0;
  bool head_request_ = false;
  bool idempotent_ = false;
  bool chunked_body_ = false;
  uint8_t client_minor_ = 1;
  std::string request_id_;
  std::string head_;    // the upstream request head, kept for retries
  std::string replay_;  // framed body bytes so far, while replayable_
  std::string unsent_;  // framed body bytes not yet handed to a connection
  bool replayable_ = true;
  bool body_done_ = false;
  bool body_abandoned_ = false;  // a response began before the body was sent
  bool input_paused_ = false;

  // The response.
  bool response_started_ = false;
  bool retry_this_response_ = false;
  bool upstream_keep_alive_ = false;
  bool reading_paused_ = false;
  bool finished_ = false;
  ClientFraming framing_ = ClientFraming::None;
  int status_ = 0;
  uint64_t attempt_started_ns_ = 0;
  double upstream_ms_ = 0;
  std::string chunk_;  // reused to frame chunks toward the client
  std::string_view extra_;
  ResponseTap* tap_ = nullptr;
};

}  // namespace phalanx::worker

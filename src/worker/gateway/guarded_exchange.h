// A request on a guarded route (an allow list, auth, rate limits, a cache),
// in the order of the design's request path:
//
//   allow → auth (401 / 403) → rate limits (429) → cache → handler
//
// Each step may answer for the route; only a request that passes them all
// reaches the route's handler: its static or builtin answer, or a
// ProxyExchange. Every response of a limited route, refusals included,
// carries the rate-limit headers of the limits that applied (the style of the
// route's first limit).
//
// Cache (upstream routes with "cache", GET and HEAD): a fresh level-1 entry
// answers at once (X-Cache: HIT, Age); else level 2 is asked (a Redis reply
// later than redis.timeout_ms is a miss); else the first miss for the key
// goes upstream (X-Cache: MISS) and the response is stored as it is relayed
// when the upstream's Cache-Control allows (policy/cache_control.h), while
// concurrent misses for the key wait for it (cache_layer.h). Requests that
// ask for no-store, and requests with credentials on a route that does not
// share such responses, go upstream untouched (X-Cache: BYPASS). A
// successful POST, PUT, PATCH or DELETE removes the path's entries from both
// levels (RFC 9111 4.4).
//
// Asynchronous steps (a cluster limit, level 2, a coalesced miss) hold the request:
// the client's input is paused, and the body bytes already read are kept
// (at most one read, see exchange.h) until the handler takes them.
//
// Answers (JSON bodies that never name an internal reason):
//   peer outside the route's allow list     → 403 "forbidden"
//   no credentials, or unknown / invalid    → 401 with WWW-Authenticate
//   a valid key whose tier may not use it   → 403 "forbidden for this tier"
//   a limit refused                         → 429 with Retry-After
//
// The exchange is its inner exchange's sink (a pass-through to the
// connection's), so it sees the handler finish.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "shared/policy/gcra.h"
#include "worker/gateway/authenticator.h"
#include "worker/gateway/guard.h"
#include "worker/gateway/proxy_exchange.h"
#include "worker/gateway/response_cache.h"
#include "worker/http/exchange.h"
#include "worker/http/http_parser.h"
#include "worker/router.h"
#include "worker/uv_timer.h"

namespace phalanx::worker {

class Gateway;

class GuardedExchange final : public Exchange, private ExchangeSink, private ResponseTap {
 public:
  GuardedExchange(Gateway& gateway, const Route& route, const Request& request, ExchangeSink& sink);
  ~GuardedExchange() override;

  void start();

  // Exchange
  void onBody(const char* data, size_t length) override;
  void onBodyEnd() override;
  void onOutputDrained() override;
  Report report() const override;

 private:
  // ExchangeSink, for the inner exchange: passed through to sink_.
  ConnectionHeader beginResponse(bool must_close) override {
    return sink_.beginResponse(must_close);
  }
  void write(std::string_view bytes) override { sink_.write(bytes); }
  void flush() override { sink_.flush(); }
  void finish(int status, bool reusable) override;
  size_t pendingOutput() const override { return sink_.pendingOutput(); }
  void pauseInput() override;
  void resumeInput() override;
  const ClientInfo& client() const override { return sink_.client(); }

  // ResponseTap: the proxied response, for the cache.
  void onTapHead(const ResponseHead& head) override;
  void onTapBody(const char* data, size_t length) override;
  void onTapEnd(bool complete) override;

  void checkLimits();
  void onLimitsDecided();
  // Every step passed: the cache, then the route's handler.
  void pass();
  // A static or builtin route's answer, written now.
  void answerHere();
  void lookUpCache();
  void afterLevel2(std::optional<std::string> bytes);
  void missCache();
  void onLeaderDone();
  void serveHit(const CachedResponse& hit);
  // The upstream answers; `tap`: the response is seen by the cache.
  void proxy(bool tap);
  void hold();
  void unhold();
  void resumeHeld();
  // Answers for the route (403, 401, 429).
  void refuse(int status, const char* message, HeaderList headers);
  void countUsage(bool refused);
  // The request's key for `limit`; empty when it has none (then the limit does not apply).
  std::string_view limitKey(const RateLimiter::Limit& limit) const;

  Gateway& gateway_;
  const Route& route_;
  const RouteGuard& guard_;
  const Request& request_;
  ExchangeSink& sink_;
  std::unique_ptr<ProxyExchange> inner_;
  std::unique_ptr<UvTimer> delay_;  // a static route's delay_ms
  Identity identity_;
  shared::KeyUsageRecord* usage_ = nullptr;

  // Limits: which apply, and what each decided.
  struct Applied {
    uint32_t limit = 0;
    shared::policy::GcraDecision decision;
  };
  std::vector<Applied> applied_;
  size_t undecided_ = 0;
  std::string extra_;  // rate-limit header lines for every response

  // The cache.
  const char* cache_status_ = nullptr;  // "HIT", "MISS", "BYPASS"; null: not a cached route
  std::string cache_key_;
  bool leader_ = false;      // this miss went upstream for the key's waiters
  uint64_t waiter_id_ = 0;   // waiting for the key's leader
  bool invalidate_ = false;  // an unsafe method: a success removes the path's entries
  std::unique_ptr<CachedResponse> storing_;  // the response being stored, while storable
  uint64_t store_ttl_ms_ = 0;

  // Body bytes read before the handler could take them.
  std::string held_body_;
  bool body_ended_ = false;
  bool waiting_ = false;       // an asynchronous step holds the request
  bool input_paused_ = false;  // we paused the client (waiting)
  bool inner_paused_ = false;  // the inner exchange paused the client
  bool finished_ = false;
  // Made for the first asynchronous step, released by the destructor: a
  // Redis answer or a leader's release that comes after the client left finds
  // its token expired.
  std::weak_ptr<bool> aliveToken();
  std::shared_ptr<bool> alive_;
};

}  // namespace phalanx::worker

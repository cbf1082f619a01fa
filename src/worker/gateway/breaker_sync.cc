#include "worker/gateway/breaker_sync.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "shared/shm.h"
#include "worker/gateway/upstream_group.h"

namespace phalanx::worker {

namespace policy = shared::policy;

namespace {

// Another worker of this host applied the same message a moment ago: its
// opened-at differs from ours by the clocks' sampling only.
constexpr uint64_t kSameOpeningMs = 1000;

bool shared(const UpstreamGroup& group) {
  return group.config().breaker.share == "cluster";
}

}  // namespace

BreakerSync::BreakerSync(uv_loop_t* loop, const shared::RedisConfig& redis, std::string origin,
                         std::vector<UpstreamGroup*> groups)
    : client_(std::make_unique<RedisClient>(
          loop, RedisClient::Options{.address = redis.address,
                                     .timeout_ms = redis.timeout_ms,
                                     .reconnect_min_ms = 100,
                                     .reconnect_max_ms = 5000})),
      bus_(std::make_unique<BreakerBus>(*client_, std::move(origin))),
      groups_(std::move(groups)) {}

BreakerSync::~BreakerSync() {
  close();
}

void BreakerSync::start() {
  client_->start();
  bus_->onTransition([this](const BreakerTransition& t) { apply(t); });
}

void BreakerSync::close() {
  if (client_) client_->close();
}

void BreakerSync::published(const UpstreamGroup& group, uint32_t target,
                            const policy::BreakerChange& change) {
  if (!shared(group) || change.to == policy::BreakerState::HalfOpen) return;
  uint64_t now_wall = shared::wallMs();
  uint64_t now_mono = shared::monotonicMs();
  BreakerTransition t;
  t.upstream = group.name();
  t.target = group.targets()[target].address;
  t.state = static_cast<uint32_t>(change.to);
  // Monotonic times mean nothing on another host: send wall-clock ones.
  uint64_t age = now_mono > change.at_ms ? now_mono - change.at_ms : 0;
  t.at_wall_ms = now_wall - age;
  if (change.to == policy::BreakerState::Open) {
    t.open_until_wall_ms = t.at_wall_ms + group.config().breaker.open_ms;
  }
  bus_->publish(t);
}

void BreakerSync::apply(const BreakerTransition& t) {
  for (UpstreamGroup* group : groups_) {
    if (group->name() != t.upstream || !shared(*group)) continue;
    const auto& targets = group->targets();
    for (uint32_t i = 0; i < targets.size(); ++i) {
      if (targets[i].address != t.target) continue;
      policy::BreakerCell& cell = *targets[i].cells.breaker;
      uint64_t now_mono = shared::monotonicMs();
      uint64_t now_wall = shared::wallMs();
      const policy::BreakerOptions& options = group->breakerOptions();
      policy::BreakerView v = policy::view(cell, options, now_mono);
      std::optional<policy::BreakerChange> change;
      if (t.state == static_cast<uint32_t>(policy::BreakerState::Open)) {
        uint64_t age = now_wall > t.at_wall_ms ? now_wall - t.at_wall_ms : 0;
        uint64_t opened_at = now_mono > age ? now_mono - age : 1;
        bool same = v.state == policy::BreakerState::Open &&
                    (v.opened_at_ms > opened_at ? v.opened_at_ms - opened_at
                                                : opened_at - v.opened_at_ms) < kSameOpeningMs;
        if (!same) change = policy::force(cell, policy::BreakerState::Open, now_mono, opened_at);
      } else if (t.state == static_cast<uint32_t>(policy::BreakerState::Closed) &&
                 v.state != policy::BreakerState::Closed) {
        change = policy::force(cell, policy::BreakerState::Closed, now_mono, 0);
      }
      if (!change) return;
      if (targets[i].cells.breaker_changed_wall_ms != nullptr) {
        targets[i].cells.breaker_changed_wall_ms->store(now_wall, std::memory_order_relaxed);
      }
      spdlog::warn("upstream {}: {}: breaker {} → {} (from {})", t.upstream, t.target,
                   policy::breakerStateName(change->from), policy::breakerStateName(change->to),
                   t.origin);
      return;
    }
  }
}

}  // namespace phalanx::worker

#include "master/upstream_commands.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "shared/shm_snapshot.h"
#include "shared/upstream_records.h"
#include "shared/upstream_report.h"

namespace phalanx::master {

namespace {

using shared::policy::BreakerState;

ControlCommand breakerCommand(const shared::SharedRegion& region,
                              std::function<const shared::Config&()> config, BreakerState to) {
  const char* verb = to == BreakerState::Open ? "open" : "close";
  std::string help = to == BreakerState::Open
                         ? "force a target's circuit breaker open (half-opens after open_ms)"
                         : "force a target's circuit breaker closed, its counts cleared";
  return {{"breaker", verb},
          "UPSTREAM TARGET",
          help,
          [&region, config, to, verb](const std::vector<std::string>& args,
                                      std::shared_ptr<ControlReply> reply) {
            if (args.size() != 2) {
              return reply->fail(std::string("usage: breaker ") + verb +
                                 " UPSTREAM TARGET (TARGET as in the config, e.g. "
                                 "127.0.0.1:9001)");
            }
            std::string error;
            auto forced = forceBreaker(region, config(), args[0], args[1], to, &error);
            if (!forced) return reply->fail(error);
            reply->ok([&](shared::JsonWriter& w) {
              w.field("upstream", args[0]);
              w.field("target", args[1]);
              w.field("breaker", shared::policy::breakerStateName(forced->state));
              w.field("changed", forced->changed);
            });
          }};
}

}  // namespace

std::optional<ForcedBreaker> forceBreaker(const shared::SharedRegion& region,
                                          const shared::Config& config, std::string_view upstream,
                                          std::string_view target, BreakerState to,
                                          std::string* error) {
  auto it = config.upstreams.find(std::string(upstream));
  if (it == config.upstreams.end()) {
    *error = "no upstream named \"" + std::string(upstream) + "\"";
    return std::nullopt;
  }
  const auto& targets = it->second.targets;
  bool known = std::any_of(targets.begin(), targets.end(), [&](const shared::UpstreamTarget& t) {
    return t.address.text == target;
  });
  shared::TargetRecord* record = known ? shared::findTarget(region, upstream, target) : nullptr;
  if (record == nullptr) {
    *error =
        "upstream \"" + std::string(upstream) + "\" has no target \"" + std::string(target) + "\"";
    return std::nullopt;
  }
  uint64_t now = shared::monotonicMs();
  auto change = shared::policy::force(record->breaker, to, now, now);
  if (change) {
    record->breaker_changed_wall_ms.store(shared::wallMs(), std::memory_order_relaxed);
    spdlog::warn("breaker of {} {}: {} → {}, forced from the control socket", upstream, target,
                 shared::policy::breakerStateName(change->from),
                 shared::policy::breakerStateName(change->to));
  }
  shared::policy::BreakerOptions options;
  options.window_ms = it->second.breaker.window_ms;
  return ForcedBreaker{.state = shared::policy::view(record->breaker, options, now).state,
                       .changed = change.has_value()};
}

std::vector<ControlCommand> upstreamCommands(const shared::SharedRegion& region,
                                             std::function<const shared::Config&()> config) {
  std::vector<ControlCommand> table;
  table.push_back({{"upstreams"},
                   "",
                   "every upstream target: health, breaker, in-flight, requests, latency",
                   [&region](const auto&, auto reply) {
                     auto snapshot = shared::takeSnapshot(region);
                     reply->ok([&](shared::JsonWriter& w) { shared::writeUpstreams(w, snapshot); });
                   }});
  table.push_back(breakerCommand(region, config, BreakerState::Open));
  table.push_back(breakerCommand(region, config, BreakerState::Closed));
  return table;
}

}  // namespace phalanx::master

// Control-socket commands over the gateway's upstream records (rows for the
// master's command table; `help` lists them like the others):
//   upstreams                   {"upstreams": [...]} as in status (upstream_report.h)
//   breaker open UPSTREAM TARGET    force the target's breaker open now: it
//                                   half-opens after the upstream's open_ms
//   breaker close UPSTREAM TARGET   force it closed, its window and
//                                   consecutive count cleared
// The breaker commands answer {"upstream", "target", "breaker": the state
// now, "changed": whether this command moved it}, or an error naming the
// upstream or target the served config lacks.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "master/control_server.h"
#include "shared/config.h"
#include "shared/policy/circuit_breaker.h"
#include "shared/shm.h"

namespace phalanx::master {

struct ForcedBreaker {
  shared::policy::BreakerState state;
  bool changed;
};

// Forces the breaker of `upstream`'s target `target` (its address as in
// `config`) to `to`: Open with opened_at = now, or Closed. nullopt with
// `error` set when `config` has no such upstream or target.
std::optional<ForcedBreaker> forceBreaker(const shared::SharedRegion& region,
                                          const shared::Config& config, std::string_view upstream,
                                          std::string_view target, shared::policy::BreakerState to,
                                          std::string* error);

// `config` returns the config being served (it changes with reloads).
std::vector<ControlCommand> upstreamCommands(const shared::SharedRegion& region,
                                             std::function<const shared::Config&()> config);

}  // namespace phalanx::master

// A builtin route's config, for unit tests that build routers and handlers.
#pragma once

#include <string>
#include <utility>

#include "shared/config.h"

inline phalanx::shared::RouteConfig builtin(std::string path, phalanx::shared::Builtin which) {
  phalanx::shared::RouteConfig r;
  r.path = std::move(path);
  r.kind = phalanx::shared::RouteKind::Builtin;
  r.builtin = which;
  return r;
}

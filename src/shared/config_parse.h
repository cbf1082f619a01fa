// What the parsers of config sections share (config.cc and its siblings):
// internal to the config parser, not an interface of phalanx.
#pragma once

#include "shared/config.h"
#include "shared/json_reader.h"

namespace phalanx::shared::config_parse {

using json::element;
using json::Errors;

// What the section parsers share: the errors, and the config built so far, so
// later sections can check their references against earlier ones.
struct Parse {
  Errors errors;
  Config config;
};

// "routes": every route, in file order; references to upstreams and rate
// limits are checked against the sections parsed before it.
void parseRoutes(Parse& p, element value);

}  // namespace phalanx::shared::config_parse

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
  // False when an entry of the top-level "listen" was invalid: a route's listen
  // address missing from config.listen is then not reported as a second error.
  bool listen_complete = true;
};

// A "HOST:PORT" string; reports why not at `path`.
std::optional<Address> readAddress(Errors& errors, const std::string& path, element value);

// An address range ("10.0.0.0/8"); reports why not at `path`.
std::optional<Cidr> readCidr(Errors& errors, const std::string& path, element value);

// "routes": every route, in file order; references to upstreams and rate
// limits are checked against the sections parsed before it.
void parseRoutes(Parse& p, element value);

}  // namespace phalanx::shared::config_parse

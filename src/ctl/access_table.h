// `phalanxctl access`: the master's {"access": ...} answer (access_report.h)
// as text for people: one row per rate limit, then one line each for the
// rate-limit table, auth, the cache and Redis.
#pragma once

#include <simdjson.h>

#include <optional>
#include <string>

namespace phalanx::ctl {

// nullopt with `error` set when the answer lacks a member the text needs.
std::optional<std::string> renderAccess(simdjson::dom::element answer, std::string* error);

}  // namespace phalanx::ctl

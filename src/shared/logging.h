// The error log: text lines on stderr (journald under systemd), one logger per
// process named for its role ("master", "worker 3"). Written synchronously: it
// carries rare events, never one line per request (that is the access log's job).
#pragma once

#include <string>

namespace phalanx::shared {

// Installs the default spdlog logger for this process. `level` is a config
// level name (already validated); an unknown one falls back to info.
void setupErrorLog(const std::string& role, const std::string& level);

}  // namespace phalanx::shared

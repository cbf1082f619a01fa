// The master process: validates the config, opens the listeners and the shm
// region, starts the workers and then only supervises. It never serves HTTP.
//
// Signals (turned into loop callbacks by libuv; handlers do no work):
//   TERM, INT  graceful stop within supervisor.shutdown_timeout_ms
//   QUIT       immediate stop
#pragma once

#include <string>

namespace phalanx::master {

// Runs until stopped. Returns the process exit code: 0 after a clean stop,
// 1 when the config is invalid or nothing could start.
int runMaster(const std::string& config_path);

}  // namespace phalanx::master

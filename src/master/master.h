// The master process: validates the config, opens the listeners, the shm
// region and the control socket, starts the workers and then only supervises.
// It never serves HTTP.
//
// Signals (turned into loop callbacks by libuv; handlers do no work):
//   HUP        reload the config file: a new generation of workers
//   TERM, INT  graceful stop within supervisor.shutdown_timeout_ms
//   QUIT       immediate stop
//   USR1       workers reopen their log files
//   TTIN/TTOU  one worker more / fewer (survives a reload)
// Under systemd it notifies READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1.
#pragma once

#include <string>

namespace phalanx::master {

// Runs until stopped. Returns the process exit code: 0 after a clean stop,
// 1 when the config is invalid or nothing could start.
int runMaster(const std::string& config_path);

}  // namespace phalanx::master

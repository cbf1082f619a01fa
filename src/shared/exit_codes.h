// Process exit codes shared by master and workers (nginx's convention for 2).
#pragma once

namespace phalanx::shared {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the master could not start or run
// A worker that cannot start (bad shm layout, unusable config or socket): the
// master must not respawn it in a loop.
inline constexpr int kExitFatal = 2;

}  // namespace phalanx::shared

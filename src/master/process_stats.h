// What the master samples about its workers from /proc: resident memory and
// CPU time. The master is not on any request path, so a synchronous read of a
// small procfs file once a second per worker is fine.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace phalanx::master {

struct ProcessStats {
  uint64_t rss_bytes = 0;
  uint64_t cpu_ms = 0;  // user + system
};

// Parses the text of /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses: fields are counted from the last ')'.
std::optional<ProcessStats> parseProcStat(std::string_view text, uint64_t page_bytes,
                                          uint64_t ticks_per_second);

// Reads /proc/PID/stat; nullopt when the process is gone.
std::optional<ProcessStats> readProcessStats(int pid);

}  // namespace phalanx::master

#include "master/process_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <string>

namespace phalanx::master {

std::optional<ProcessStats> parseProcStat(std::string_view text, uint64_t page_bytes,
                                          uint64_t ticks_per_second) {
  size_t close = text.rfind(')');
  if (close == std::string_view::npos || ticks_per_second == 0) return std::nullopt;
  // After ')': field 3 (state) is the first. utime = 14, stime = 15, rss = 24.
  std::string_view rest = text.substr(close + 1);
  uint64_t utime = 0, stime = 0, rss_pages = 0;
  int field = 2;
  size_t i = 0;
  while (i < rest.size() && field < 24) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\n') ++i;
    if (start == i) break;
    ++field;
    uint64_t* target = field == 14 ? &utime : field == 15 ? &stime : field == 24 ? &rss_pages
                                                                                : nullptr;
    if (target && std::from_chars(rest.data() + start, rest.data() + i, *target).ec != std::errc{}) {
      return std::nullopt;
    }
  }
  if (field < 24) return std::nullopt;
  return ProcessStats{.rss_bytes = rss_pages * page_bytes,
                      .cpu_ms = (utime + stime) * 1000 / ticks_per_second};
}

std::optional<ProcessStats> readProcessStats(int pid) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  static const uint64_t ticks = static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n <= 0) return std::nullopt;
  return parseProcStat(std::string_view(buf, static_cast<size_t>(n)), page, ticks);
}

}  // namespace phalanx::master

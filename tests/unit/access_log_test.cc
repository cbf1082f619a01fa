#include "worker/access_log.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "log_capture.h"
#include "temp_dir.h"

using phalanx::worker::AccessEntry;
using phalanx::worker::AccessLog;

namespace {

AccessEntry entry() {
  AccessEntry e;
  e.method = "GET";
  e.path = "/hello";
  e.status = 200;
  return e;
}
const AccessEntry kEntry = entry();

size_t lineCount(const std::string& path) {
  std::ifstream in(path);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines;
}

// Lines are written by the log's own thread: wait (bounded) until it got there.
void waitForWriteErrors(const AccessLog& log, uint64_t lines) {
  for (int i = 0; i < 500 && log.losses().write_error < lines; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(log.losses().write_error == lines);
}

}  // namespace

TEST_CASE("AccessLog: lines lost to a full disk are counted exactly and said once, in our format") {
  LogCapture captured;
  std::string error;
  std::unique_ptr<AccessLog> log = AccessLog::open("/dev/full", 0, &error);
  REQUIRE(log);
  for (int i = 0; i < 200; ++i) log->write(kEntry);
  log->close();
  CHECK(log->losses().write_error == 200);
  CHECK(log->losses().queue_full == 0);
  CHECK(captured.count("access log /dev/full: cannot write: No space left on device; 200 lines "
                       "lost") == 1);
  CHECK(captured.lines().size() == 1);
}

TEST_CASE("AccessLog: write errors are said at once, then at most once per interval with a count") {
  LogCapture captured;
  std::string error;
  std::unique_ptr<AccessLog> log = AccessLog::open("/dev/full", 0, &error);
  REQUIRE(log);
  for (int i = 0; i < 10; ++i) log->write(kEntry);
  waitForWriteErrors(*log, 10);
  log->reportWriteErrors(1'000);
  CHECK(captured.count("; 10 lines lost") == 1);

  for (int i = 0; i < 5; ++i) log->write(kEntry);
  waitForWriteErrors(*log, 15);
  log->reportWriteErrors(2'000);
  log->reportWriteErrors(3'000);
  CHECK(captured.lines().size() == 1);  // within the interval: only counted
  log->write(kEntry);
  waitForWriteErrors(*log, 16);
  log->reportWriteErrors(1'000 + AccessLog::kWriteErrorLogMs);
  CHECK(captured.count("; 6 lines lost in the 10.0 s since the last message") == 1);
  log->close();
  CHECK(captured.lines().size() == 2);  // nothing left to say at close
}

TEST_CASE("AccessLog: reopen writes out the old file and carries the counts on") {
  TempDir dir;
  std::string path = dir.file("access.log");
  std::string error;
  std::unique_ptr<AccessLog> log = AccessLog::open(path, 3, &error);
  REQUIRE(log);
  for (int i = 0; i < 3; ++i) log->write(kEntry);
  REQUIRE(std::rename(path.c_str(), dir.file("access.log.1").c_str()) == 0);
  REQUIRE(log->reopen(&error));
  for (int i = 0; i < 2; ++i) log->write(kEntry);
  log->close();
  CHECK(lineCount(dir.file("access.log.1")) == 3);
  CHECK(lineCount(path) == 2);
  CHECK(log->losses().write_error == 0);
  CHECK(log->losses().queue_full == 0);
  log->write(kEntry);  // closed: nothing, and no crash
  CHECK(lineCount(path) == 2);
}

TEST_CASE("AccessLog: a path that cannot be opened names the key and the path") {
  std::string error;
  CHECK_FALSE(AccessLog::open("/proc/phalanx-no-such-dir/access.log", 0, &error));
  CHECK(error == "log.access: /proc/phalanx-no-such-dir/access.log: No such file or directory");
}

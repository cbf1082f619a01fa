#include "worker/fd_sink.h"

#include <doctest/doctest.h>
#include <spdlog/logger.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "temp_dir.h"

using phalanx::worker::FdSink;

namespace {
std::string readFile(const std::string& path) {
  std::ostringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}
}  // namespace

TEST_CASE("FdSink: every line is written whole, appended to what the file held") {
  TempDir dir;
  std::string path = dir.write("access.log", "before\n");
  std::string error;
  std::shared_ptr<FdSink> sink = FdSink::openFile(path, &error);
  REQUIRE(sink);
  spdlog::logger logger("test", sink);
  logger.set_pattern("%v");
  for (int i = 0; i < 3; ++i) logger.info("line {}", i);
  CHECK(readFile(path) == "before\nline 0\nline 1\nline 2\n");
  CHECK(sink->linesLost() == 0);
  CHECK(sink->lastErrno() == 0);
}

TEST_CASE("FdSink: a file that cannot be opened is an error with strerror") {
  std::string error;
  CHECK_FALSE(FdSink::openFile("/proc/phalanx-no-such-dir/access.log", &error));
  CHECK(error == "No such file or directory");
}

TEST_CASE("FdSink: on a full disk every line is counted as lost, each one, with its errno") {
  std::string error;
  std::shared_ptr<FdSink> sink = FdSink::openFile("/dev/full", &error);
  REQUIRE(sink);
  spdlog::logger logger("test", sink);
  // No "[*** LOG ERROR ***]": a failed line is counted, never thrown.
  logger.set_error_handler([](const std::string& message) { FAIL("spdlog error: " << message); });
  for (int i = 0; i < 37; ++i) logger.info("line {}", i);
  CHECK(sink->linesLost() == 37);
  CHECK(sink->lastErrno() == ENOSPC);
}

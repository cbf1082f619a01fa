#include "master/control_server.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "shared/utf8.h"
#include "temp_dir.h"

using namespace phalanx::master;

namespace {

std::vector<ControlCommand> table(std::string* seen) {
  std::vector<ControlCommand> t;
  t.push_back({{"show", "stat"}, "", "csv", [seen](const auto&, auto reply) {
                 *seen = "show stat";
                 reply->ok([](phalanx::shared::JsonWriter& w) { w.field("text", "a,b\n"); });
               }});
  t.push_back({{"show"}, "WHAT", "anything", [seen](const auto& args, auto reply) {
                 *seen = "show " + (args.empty() ? std::string() : args[0]);
                 reply->fail("no such thing");
               }});
  t.push_back({{"scale"}, "N", "workers", [seen](const auto& args, auto reply) {
                 *seen = "scale " + args.at(0);
                 reply->ok(nullptr);
               }});
  return t;
}

// Sends `request` to a Unix socket at `path` and returns everything it answers.
std::string ask(const std::string& path, const std::string& request) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "connect: " + std::string(std::strerror(errno));
  }
  (void)!write(fd, request.data(), request.size());
  shutdown(fd, SHUT_WR);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
  close(fd);
  return answer;
}

// Runs the server's loop while `client` talks to it from another thread.
std::string exchange(uv_loop_t* loop, const std::string& path, const std::string& request) {
  std::string answer;
  std::atomic<bool> done = false;
  std::thread client([&] {
    answer = ask(path, request);
    done = true;
  });
  while (!done) uv_run(loop, UV_RUN_NOWAIT), std::this_thread::yield();
  client.join();
  uv_run(loop, UV_RUN_NOWAIT);
  return answer;
}


}  // namespace

TEST_CASE("command lines split on blanks; empty or control characters are refused") {
  CommandWords split = splitCommandLine("  show \t  stat\r\n");
  CHECK(split.error.empty());
  CHECK(split.words == std::vector<std::string>{"show", "stat"});
  split = splitCommandLine("   \n");
  CHECK(split.words.empty());
  CHECK(split.error == "empty command; try \"help\"");
  split = splitCommandLine(std::string("sta\0tus\n", 8));
  CHECK(split.words.empty());
  CHECK(split.error == "the command holds a control character: \"sta\\x00tus\"; try \"help\"");
  CHECK_FALSE(splitCommandLine("status\x7f").error.empty());
  CHECK_FALSE(splitCommandLine("sta\rtus").error.empty());
}

TEST_CASE("a command line that is not UTF-8 is refused, its bytes shown escaped") {
  CommandWords split = splitCommandLine("\xff\xfe status\n");
  CHECK(split.words.empty());
  CHECK(split.error == "the command is not valid UTF-8: \"\\xff\\xfe status\"; try \"help\"");
  CHECK_FALSE(splitCommandLine("\xc3\x28").error.empty());
  // Well-formed UTF-8 is words like any other (an upstream may be named so).
  split = splitCommandLine("breaker open caf\xc3\xa9 127.0.0.1:80");
  CHECK(split.error.empty());
  CHECK(split.words.at(2) == "caf\xc3\xa9");
}

TEST_CASE("request bytes are quoted printable, escaped and bounded") {
  CHECK(quoteRequestBytes("status") == "\"status\"");
  CHECK(quoteRequestBytes(std::string("a\0\"\\\xff", 5)) == "\"a\\x00\\x22\\x5c\\xff\"");
  std::string shown = quoteRequestBytes(std::string(100, 'x'));
  CHECK(shown == "\"" + std::string(kQuotedBytes, 'x') + "…\"");
}

TEST_CASE("the longest matching command wins and the rest are its arguments") {
  std::string seen;
  auto t = table(&seen);
  std::vector<std::string> args;
  CHECK(findCommand(t, {"show", "stat"}, &args)->help == "csv");
  CHECK(args.empty());
  CHECK(findCommand(t, {"show", "info"}, &args)->help == "anything");
  CHECK(args == std::vector<std::string>{"info"});
  CHECK(findCommand(t, {"nope"}, &args) == nullptr);
  std::string help = commandHelp(t);
  CHECK(help.find("  show stat") != std::string::npos);
  CHECK(help.find("  scale N") != std::string::npos);
}

TEST_CASE("the control server answers one JSON line per connection, mode 0600") {
  TempDir dir;
  std::string path = dir.file("sub/ctl.sock");
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::string seen;
  {
    ControlServer server(&loop, table(&seen));
    std::string error;
    REQUIRE_MESSAGE(server.listen(path, &error), error);
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    CHECK(exchange(&loop, path, "show stat\n") == "{\"version\":1,\"ok\":true,\"text\":\"a,b\\n\"}\n");
    CHECK(seen == "show stat");
    CHECK(exchange(&loop, path, "scale 3") == "{\"version\":1,\"ok\":true}\n");  // no newline
    CHECK(seen == "scale 3");
    CHECK(exchange(&loop, path, "show x\n") ==
          "{\"version\":1,\"ok\":false,\"error\":\"no such thing\"}\n");
    CHECK(exchange(&loop, path, "frobnicate\n").find("unknown command \\\"frobnicate\\\"") !=
          std::string::npos);
    CHECK(exchange(&loop, path, "help\n").find("scale N") != std::string::npos);

    // A command that takes no arguments refuses any, and never runs.
    seen.clear();
    CHECK(exchange(&loop, path, "show stat --help\n") ==
          "{\"version\":1,\"ok\":false,\"error\":\"\\\"show stat\\\" takes no arguments (got "
          "\\\"--help\\\")\"}\n");
    CHECK(exchange(&loop, path, "help me please\n")
              .find("\\\"help\\\" takes no arguments (got "
                    "\\\"me please\\\")") != std::string::npos);
    CHECK(seen.empty());

    // Whatever bytes come in, the answer is UTF-8 JSON that shows them escaped.
    std::string answer = exchange(&loop, path, "\xff\xfe status\n");
    CHECK(answer.find("\"ok\":false") != std::string::npos);
    CHECK(answer.find("not valid UTF-8: \\\"\\\\xff\\\\xfe status\\\"") != std::string::npos);
    CHECK(phalanx::shared::isValidUtf8(answer));
    answer = exchange(&loop, path, "st\xc3\xa4tus\n");
    CHECK(answer.find("unknown command \\\"st\\\\xc3\\\\xa4tus\\\"") != std::string::npos);
    answer = exchange(&loop, path, std::string(10'000, 'a') + "\n");
    CHECK(answer.find("\"error\":\"command line longer than 4096 bytes") != std::string::npos);
    CHECK(seen.empty());

    // A second server on the same live socket is refused.
    ControlServer other(&loop, {});
    CHECK_FALSE(other.listen(path, &error));
    CHECK(error.find("another phalanx master") != std::string::npos);
    server.close();
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_FALSE(std::filesystem::exists(path));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("a stale socket file is replaced; a regular file is not") {
  TempDir dir;
  std::string path = dir.file("ctl.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  close(fd);  // bound, never listened: connect is refused, like a dead master's
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::string error;
  {
    ControlServer server(&loop, {});
    CHECK_MESSAGE(server.listen(path, &error), error);
    server.close();
    std::string file = dir.file("plain");
    FILE* f = fopen(file.c_str(), "w");
    fclose(f);
    ControlServer other(&loop, {});
    CHECK_FALSE(other.listen(file, &error));
    CHECK(error.find("not a socket") != std::string::npos);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

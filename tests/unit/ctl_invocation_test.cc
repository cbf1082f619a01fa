#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "ctl/invocation.h"

using namespace std::chrono_literals;
using phalanx::ctl::Command;
using phalanx::ctl::effectiveTimeout;
using phalanx::ctl::Invocation;
using phalanx::ctl::parseCommandLine;
using phalanx::ctl::resolveSocket;
using phalanx::ctl::usage;

namespace {

Invocation parsed(std::vector<std::string_view> args) {
  auto result = parseCommandLine(args);
  REQUIRE_MESSAGE(result.invocation, result.error);
  return *result.invocation;
}

std::string failure(std::vector<std::string_view> args) {
  auto result = parseCommandLine(args);
  CHECK_FALSE(result.invocation);
  return result.error;
}


}  // namespace

TEST_CASE("each command becomes its one line") {
  CHECK(parsed({"status"}).line == "status\n");
  CHECK(parsed({"reload"}).command == Command::Reload);
  CHECK(parsed({"upgrade"}).line == "upgrade\n");
  CHECK(parsed({"stop"}).line == "stop\n");
  CHECK(parsed({"help"}).line == "help\n");
  CHECK(parsed({"show", "info"}).line == "show info\n");
  CHECK(parsed({"show", "stat"}).command == Command::ShowStat);
  Invocation scale = parsed({"scale", "04"});
  CHECK(scale.command == Command::Scale);
  CHECK(scale.line == "scale 4\n");
  CHECK(parsed({"scale", "256"}).line == "scale 256\n");
  CHECK(parsed({"upstreams"}).command == Command::Upstreams);
  CHECK(parsed({"upstreams", "--json"}).line == "upstreams\n");
  Invocation open = parsed({"breaker", "open", "api", "127.0.0.1:9001"});
  CHECK(open.command == Command::BreakerOpen);
  CHECK(open.line == "breaker open api 127.0.0.1:9001\n");
  CHECK(parsed({"breaker", "close", "api", "[::1]:80"}).line == "breaker close api [::1]:80\n");
  CHECK(parsed({"breaker", "close", "api", "[::1]:80"}).command == Command::BreakerClose);
}

TEST_CASE("breaker needs open or close, an upstream and a target") {
  std::string usage_error = "usage: breaker open|close UPSTREAM TARGET (TARGET as in the config)";
  CHECK(failure({"breaker"}) == usage_error);
  CHECK(failure({"breaker", "open", "api"}) == usage_error);
  CHECK(failure({"breaker", "reset", "api", "127.0.0.1:1"}) == usage_error);
  CHECK(failure({"breaker", "open", "api", "127.0.0.1:1", "x"}) == usage_error);
  CHECK(failure({"upstreams", "api"}) == "'upstreams' takes no arguments (got 'api')");
}

TEST_CASE("options go before or after the command; -s and -c both count, -s wins later") {
  Invocation inv = parsed({"-s", "a.sock", "status", "--json", "--timeout", "1.5"});
  CHECK(inv.socket == "a.sock");
  CHECK(inv.json);
  CHECK(inv.timeout == 1500ms);
  inv = parsed({"--socket=b.sock", "--config=c.json", "--timeout=0.0001", "reload"});
  CHECK(inv.socket == "b.sock");
  CHECK(inv.config == "c.json");
  CHECK(inv.timeout == 1ms);  // rounded up, never zero
  CHECK(parsed({"-c", "x.json", "stop"}).config == "x.json");
  CHECK(parsed({"--", "status"}).line == "status\n");
}

TEST_CASE("help and version answer whatever else the line holds") {
  CHECK(parsed({"-h"}).action == Invocation::Action::PrintHelp);
  CHECK(parsed({"bogus", "--help"}).action == Invocation::Action::PrintHelp);
  CHECK(parsed({"-v"}).action == Invocation::Action::PrintVersion);
  CHECK(parsed({"--version", "--no-such"}).action == Invocation::Action::PrintVersion);
  CHECK(usage().starts_with("usage: phalanxctl [-s SOCKET | -c CONFIG] [--json]"));
}

TEST_CASE("usage errors name what is wrong") {
  CHECK(failure({}) ==
        "no command given (commands: status, reload, scale N, stop, show info, show stat, "
        "upstreams, breaker open|close UPSTREAM TARGET, access, keys [N], cache purge [PREFIX], routes, errors [N], help)");
  CHECK(failure({"restart"}) ==
        "unknown command 'restart' (commands: status, reload, scale N, "
        "stop, show info, show stat, upstreams, breaker open|close UPSTREAM TARGET, access, keys [N], cache purge [PREFIX], routes, errors [N], help)");
  CHECK(failure({"status", "now"}) == "'status' takes no arguments (got 'now')");
  CHECK(failure({"routes", "10"}) == "'routes' takes no arguments (got '10')");
  CHECK(failure({"errors", "x"}) == "usage: errors [N] (the N most recent, default 20, at most 100)");
  CHECK(failure({"errors", "1", "2"}) ==
        "usage: errors [N] (the N most recent, default 20, at most 100)");
  CHECK(failure({"show"}) == "usage: show info | show stat");
  CHECK(failure({"show", "errors"}) == "usage: show info | show stat");
  CHECK(failure({"scale"}) == "usage: scale N (a worker count from 1 to 256)");
  CHECK(failure({"scale", "1", "2"}) == "usage: scale N (a worker count from 1 to 256)");
  for (std::string_view bad : {"0", "257", "-1", "+4", "4x", "4.0", " 4", "99999999999"}) {
    CHECK(failure({"scale", bad}) ==
          "scale: N must be a whole number from 1 to 256, got '" + std::string(bad) + "'");
  }
  CHECK(failure({"-x", "status"}) == "unknown option '-x'");
  CHECK(failure({"status", "-s"}) == "option -s needs a value");
  CHECK(failure({"--socket=", "status"}) == "option --socket needs a value");
  CHECK(failure({"--json=yes", "status"}) == "option --json takes no value");
  for (std::string_view bad :
       {"0", "-1", "abc", "1s", "inf", "nan", "86401", "0x10", "1e3", "1.2.3", "."}) {
    CHECK(failure({"--timeout", bad, "status"}) ==
          "--timeout needs a number of seconds above 0 and at most 86400, got '" +
              std::string(bad) + "'");
  }
  CHECK(failure({"--timeout=", "status"}) == "option --timeout needs a value");
}

TEST_CASE("reload waits longer than the other commands unless --timeout says otherwise") {
  CHECK(effectiveTimeout(parsed({"status"})) == 5s);
  CHECK(effectiveTimeout(parsed({"reload"})) == 120s);
  CHECK(effectiveTimeout(parsed({"reload", "--timeout", "3"})) == 3s);
}

TEST_CASE("the socket: -s, else the config's control_socket, else $PHALANX_SOCKET, else /run") {
  TempDir dir;
  std::string config = dir.write("p.json", R"({"listen":["127.0.0.1:8080"],
    "control_socket":"state/ctl.sock","routes":[{"path":"/","builtin":"live"}]})");
  std::string bare = dir.write("bare.json", R"({"listen":["127.0.0.1:8080"],
    "routes":[{"path":"/","builtin":"live"}]})");
  CHECK(resolveSocket(parsed({"-s", "a.sock", "-c", config, "status"}), "env.sock").path ==
        "a.sock");
  CHECK(resolveSocket(parsed({"-c", config, "status"}), "env.sock").path == "state/ctl.sock");
  CHECK(resolveSocket(parsed({"-c", bare, "status"}), "env.sock").path == "run/phalanx.sock");
  CHECK(resolveSocket(parsed({"status"}), "env.sock").path == "env.sock");
  CHECK(resolveSocket(parsed({"status"}), "").path == "/run/phalanx/phalanx.sock");
  CHECK(resolveSocket(parsed({"status"}), nullptr).path == "/run/phalanx/phalanx.sock");
}

TEST_CASE("a config with errors elsewhere still names its socket; an unusable one is an error") {
  TempDir dir;
  std::string broken = dir.write("broken.json", R"({"listen":["127.0.0.1:8080"],
    "control_socket":"s/ctl.sock","routes":[{"path":"/","upstream":"nope"}],"typo":1})");
  auto choice = resolveSocket(parsed({"-c", broken, "reload"}), nullptr);
  CHECK(choice.error == "");
  CHECK(choice.path == "s/ctl.sock");

  std::string missing = dir.write("x", "") + ".none";
  choice = resolveSocket(parsed({"-c", missing, "status"}), nullptr);
  CHECK(choice.path == "");
  CHECK(choice.error == missing + ": cannot read: No such file or directory");

  std::string not_json = dir.write("bad.json", "{\"control_socket\": ");
  choice = resolveSocket(parsed({"-c", not_json, "status"}), nullptr);
  CHECK(choice.path == "");
  CHECK(choice.error.starts_with(not_json + ": "));

  std::string wrong_type = dir.write("num.json", R"({"control_socket": 5})");
  choice = resolveSocket(parsed({"-c", wrong_type, "status"}), nullptr);
  CHECK(choice.path == "");
  CHECK(choice.error.find(wrong_type + ": control_socket: ") != std::string::npos);
}

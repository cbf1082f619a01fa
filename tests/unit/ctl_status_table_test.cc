#include <doctest/doctest.h>
#include <simdjson.h>

#include <string>

#include "ctl/status_table.h"

using phalanx::ctl::humanBytes;
using phalanx::ctl::humanCount;
using phalanx::ctl::humanDuration;
using phalanx::ctl::humanMillis;
using phalanx::ctl::readStatus;
using phalanx::ctl::renderStatus;
using phalanx::ctl::StatusView;

namespace {

constexpr uint64_t kNowMs = 1'700'000'000'000;

// A status answer as the master writes it (src/shared/status_report.h).
const char* kThreeWorkers = R"json({"version":1,"ok":true,
  "master":{"pid":4242,"version":"0.1.0","uptime_s":7980,"generation":3,"workers":3,
            "reloads":{"ok":2,"failed":0},
            "last_reload":{"result":"ok","at_ms":1699999700000,"error":""}},
  "totals":{"requests":1234567,"connections":12,"restarts":5,"rss_bytes":19293798},
  "workers":[
    {"slot":0,"pid":4243,"generation":3,"state":"ready","uptime_s":7900,"restarts":0,
     "unstable_restarts":0,"last_exit":"none","rss_bytes":4823449,"cpu_ms":12345,
     "connections":3,"requests":1200,"responses":{"1xx":0,"2xx":1200,"3xx":0,"4xx":0,"5xx":0},
     "latency_us":{"bounds":[100,1000],"counts":[1000,200,0],"sum":90000}},
    {"slot":1,"pid":4250,"generation":3,"state":"draining","uptime_s":65,"restarts":4,
     "unstable_restarts":2,"last_exit":"signal 9 (Killed)","rss_bytes":536870912,"cpu_ms":400,
     "connections":9,"requests":1233367},
    {"slot":2,"pid":0,"generation":3,"state":"waiting-restart","uptime_s":0,"restarts":1,
     "unstable_restarts":1,"last_exit":"exit 3","rss_bytes":0,"cpu_ms":0,"connections":0,
     "requests":0,"restart_in_ms":1500}]})json";

std::string render(const char* json, uint64_t now_ms = kNowMs) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(std::string(json)).get(root) == simdjson::SUCCESS);
  std::string error;
  std::optional<StatusView> status = readStatus(root, &error);
  REQUIRE_MESSAGE(status, error);
  return renderStatus(*status, now_ms);
}

std::string readError(const char* json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(std::string(json)).get(root) == simdjson::SUCCESS);
  std::string error;
  CHECK_FALSE(readStatus(root, &error));
  return error;
}

}  // namespace

TEST_CASE("status renders a header, one row per worker in the master's order, and totals") {
  CHECK(render(kThreeWorkers) ==
        "phalanx 0.1.0  master 4242  generation 3  up 2h13m  workers 3 (1 ready)  "
        "last reload ok 5m00s ago\n"
        "SLOT   PID  GEN  STATE                              UPTIME  RESTARTS  LAST-EXIT          "
        " RSS    CPU  CONN  REQS\n"
        "   0  4243    3  ready                               2h11m       0/0  -                  "
        "4.6M  12.3s     3  1.2k\n"
        "   1  4250    3  draining                            1m05s       4/2  signal 9 (Killed)  "
        "512M   0.4s     9  1.2M\n"
        "   2     -    3  waiting-restart (restart in 1.5s)       -       1/1  exit 3             "
        "   -      -     -     -\n"
        "total: 12 connections, 1.2M requests, 18.4M RSS, 5 restarts\n");
}

TEST_CASE("a failed reload shows in the header, its error lines indented below") {
  std::string text = render(R"json({"version":1,"ok":true,
    "master":{"pid":7,"version":"0.1.0","uptime_s":30,"generation":1,"workers":1,
              "last_reload":{"result":"failed","at_ms":1699999988000,
                             "error":"etc/p.json: routes[2].upstream: no upstream named \"api\"\netc/p.json: limits.x: unknown key\u001b[2J"}},
    "totals":{},"workers":[]})json");
  CHECK(text ==
        "phalanx 0.1.0  master 7  generation 1  up 30s  workers 1 (0 ready)  "
        "last reload FAILED 12s ago:\n"
        "  etc/p.json: routes[2].upstream: no upstream named \"api\"\n"
        "  etc/p.json: limits.x: unknown key?[2J\n"
        "SLOT  PID  GEN  STATE  UPTIME  RESTARTS  LAST-EXIT  RSS  CPU  CONN  REQS\n"
        "total: 0 connections, 0 requests, 0B RSS, 0 restarts\n");
}

TEST_CASE("a failed upgrade shows under the header with its reason") {
  std::string text = render(R"json({"version":1,"ok":true,
    "master":{"pid":7,"version":"0.1.0","uptime_s":30,"generation":1,"workers":1,
              "last_reload":{"result":"none","at_ms":0}},
    "upgrade":{"state":"failed","at_ms":1699999988000,
               "error":"the new master (pid 9) exited with code 3 before it was ready"},
    "totals":{},"workers":[]})json");
  CHECK(text.find("no reload yet\nlast upgrade FAILED 12s ago: the new master (pid 9) exited "
                  "with code 3 before it was ready\n") != std::string::npos);
  CHECK(render(R"json({"master":{"pid":1},"upgrade":{"state":"succeeded"},"workers":[]})json")
            .find("upgrade") == std::string::npos);
}

TEST_CASE("no reload yet; a reload time in the future or unknown prints no age") {
  const char* never = R"json({"master":{"pid":1,"last_reload":{"result":"none","at_ms":0}},
                          "workers":[]})json";
  CHECK(render(never).starts_with(
      "phalanx  master 1  generation 0  up 0s  workers 0 (0 ready)  no reload yet\n"));
  const char* future =
      R"json({"master":{"pid":1,"last_reload":{"result":"ok","at_ms":1800000000000}},
                           "workers":[]})json";
  CHECK(render(future).find("last reload ok\n") != std::string::npos);
}

TEST_CASE("errored slots show when they are retried; an errored slot with a process does not") {
  std::string text = render(R"json({"master":{"pid":1},"workers":[
    {"slot":0,"pid":0,"generation":2,"state":"errored","restarts":20,"unstable_restarts":16,
     "last_exit":"exit 1","restart_in_ms":15000},
    {"slot":1,"pid":99,"generation":2,"state":"errored","uptime_s":3,"restarts":16,
     "unstable_restarts":16,"last_exit":"signal 11 (Segmentation fault)","rss_bytes":1000}]})json");
  CHECK(text.find("errored (restart in 15.0s)") != std::string::npos);
  CHECK(text.find("20/16") != std::string::npos);
  CHECK(text.find("errored  ") != std::string::npos);
  CHECK(text.find("signal 11 (Segmentation fault)") != std::string::npos);
  CHECK(text.find("1000B") != std::string::npos);
}

TEST_CASE("a new worker whose memory was not sampled yet shows no RSS, not 0B") {
  std::string text = render(R"json({"master":{"pid":1},"workers":[
    {"slot":0,"pid":12,"generation":2,"state":"ready","uptime_s":0,"rss_bytes":0}]})json");
  CHECK(
      text.find("\n   0   12    2  ready      0s       0/0  -            -  0.0s     0     0\n") !=
      std::string::npos);
}

TEST_CASE("missing and mistyped fields read as zero; the table still prints") {
  std::string text = render(R"json({"master":{"pid":"x","generation":-1,"uptime_s":12.7},
    "workers":[{"slot":0,"pid":5,"state":"ready","requests":"many"}]})json");
  CHECK(text.starts_with("phalanx  master 0  generation 0  up 12s  workers 0 (1 ready)"));
  CHECK(text.find("   0    5    0  ready") != std::string::npos);
}

TEST_CASE("an answer without master or workers is refused") {
  CHECK(readError(R"json({"workers":[]})json") == "status without a \"master\" object");
  CHECK(readError(R"json({"master":3,"workers":[]})json") == "status without a \"master\" object");
  CHECK(readError(R"json({"master":{}})json") == "status without a \"workers\" array");
  CHECK(readError(R"json({"master":{},"workers":{}})json") == "status without a \"workers\" array");
}

TEST_CASE("human units") {
  CHECK(humanBytes(0) == "0B");
  CHECK(humanBytes(1023) == "1023B");
  CHECK(humanBytes(1024) == "1.0K");
  CHECK(humanBytes(4823449) == "4.6M");
  CHECK(humanBytes(512ull << 20) == "512M");
  CHECK(humanBytes((1ull << 20) - 1) == "1.0M");  // not "1024K"
  CHECK(humanBytes(1288490189) == "1.2G");

  CHECK(humanCount(999) == "999");
  CHECK(humanCount(1200) == "1.2k");
  CHECK(humanCount(45678) == "45.7k");
  CHECK(humanCount(123456) == "123k");
  CHECK(humanCount(999999) == "1.0M");  // not "1000k"
  CHECK(humanCount(1234567) == "1.2M");

  CHECK(humanDuration(0) == "0s");
  CHECK(humanDuration(59) == "59s");
  CHECK(humanDuration(125) == "2m05s");
  CHECK(humanDuration(7980) == "2h13m");
  CHECK(humanDuration(273600) == "3d04h");

  CHECK(humanMillis(0) == "0.0s");
  CHECK(humanMillis(400) == "0.4s");
  CHECK(humanMillis(1500) == "1.5s");
  CHECK(humanMillis(59999) == "59.9s");
  CHECK(humanMillis(125000) == "2m05s");
}

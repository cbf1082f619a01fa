#include <doctest/doctest.h>

#include <string>

#include "ctl/answer.h"

using phalanx::ctl::Answer;
using phalanx::ctl::Command;
using phalanx::ctl::renderAnswer;

namespace {

Answer parsed(std::string_view line) {
  std::string error;
  std::optional<Answer> answer = Answer::parse(line, &error);
  REQUIRE_MESSAGE(answer, error);
  return std::move(*answer);
}

std::string parseError(std::string_view line) {
  std::string error;
  CHECK_FALSE(Answer::parse(line, &error));
  return error;
}

std::string rendered(Command command, std::string_view line) {
  std::string error;
  std::optional<std::string> text = renderAnswer(command, parsed(line), 0, &error);
  REQUIRE_MESSAGE(text, error);
  return *text;
}

std::string renderError(Command command, std::string_view line) {
  std::string error;
  CHECK_FALSE(renderAnswer(command, parsed(line), 0, &error));
  return error;
}

}  // namespace

TEST_CASE("an answer needs version 1 and a boolean ok") {
  CHECK(parsed(R"({"version":1,"ok":true})").ok());
  CHECK(parseError("").starts_with("not JSON ("));
  CHECK(parseError("").ends_with("): (empty line)"));
  CHECK(parseError("hello\tworld").starts_with("not JSON ("));
  CHECK(parseError("hello\tworld").ends_with("): hello?world"));
  CHECK(parseError("[1]") == "not an object: [1]");
  CHECK(parseError(R"({"ok":true})") == R"(no protocol "version": {"ok":true})");
  CHECK(parseError(R"({"version":2,"ok":true})") ==
        R"(protocol version 2, phalanxctl speaks 1: {"version":2,"ok":true})");
  CHECK(parseError(R"({"version":1,"ok":"yes"})") ==
        R"(no boolean "ok": {"version":1,"ok":"yes"})");
  CHECK(parseError(std::string(300, '[')).ends_with(std::string(120, '[') + "..."));
}

TEST_CASE("an ok:false answer carries the master's error, or says it gave none") {
  Answer refused = parsed(R"({"version":1,"ok":false,"error":"permission denied"})");
  CHECK_FALSE(refused.ok());
  CHECK(refused.error() == "permission denied");
  CHECK(parsed(R"({"version":1,"ok":false})").error() == "the master failed without saying why");
}

TEST_CASE("an answer moves with the document it points into") {
  std::optional<Answer> kept;
  {
    std::string line = R"({"version":1,"ok":true,"text":"kept"})";
    std::string error;
    kept = Answer::parse(line, &error);
  }
  Answer moved = std::move(*kept);
  std::string error;
  CHECK(renderAnswer(Command::Help, moved, 0, &error) == "kept\n");
}

TEST_CASE("one line per outcome for reload, scale and stop") {
  CHECK(rendered(Command::Reload, R"({"version":1,"ok":true,"generation":4,"workers":2})") ==
        "reload ok: generation 4, 2 workers\n");
  CHECK(rendered(Command::Reload, R"({"version":1,"ok":true,"generation":2,"workers":1})") ==
        "reload ok: generation 2, 1 worker\n");
  CHECK(rendered(Command::Scale, R"({"version":1,"ok":true,"workers":8})") ==
        "scale ok: 8 workers\n");
  CHECK(rendered(Command::Stop, R"({"version":1,"ok":true})") == "stop ok: phalanx is stopping\n");
  CHECK(rendered(Command::Upgrade, R"({"version":1,"ok":true,"new_master":812,"old_master":77})") ==
        "upgrade ok: master pid 812 serves; pid 77 drains and exits\n");
  CHECK(renderError(Command::Upgrade, R"({"version":1,"ok":true,"new_master":812})") ==
        "an upgrade answer needs \"new_master\" and \"old_master\"");
  CHECK(renderError(Command::Reload, R"({"version":1,"ok":true,"generation":4})") ==
        "a reload answer needs \"generation\" and \"workers\"");
  CHECK(renderError(Command::Scale, R"({"version":1,"ok":true,"workers":"8"})") ==
        "a scale answer needs \"workers\"");
}

TEST_CASE("help and show print the text as it came, ending in a newline") {
  CHECK(
      rendered(Command::ShowInfo, R"({"version":1,"ok":true,"text":"Name: phalanx\nPid: 7\n"})") ==
      "Name: phalanx\nPid: 7\n");
  CHECK(rendered(Command::ShowStat, R"({"version":1,"ok":true,"text":"# pxname,svname"})") ==
        "# pxname,svname\n");
  CHECK(rendered(Command::Help, R"({"version":1,"ok":true,"text":""})") == "");
  CHECK(renderError(Command::ShowStat, R"({"version":1,"ok":true})") ==
        "no \"text\" string in the answer");
}

TEST_CASE("status goes through the status table") {
  std::string text = rendered(Command::Status, R"({"version":1,"ok":true,"master":{"pid":9},
                                                   "totals":{},"workers":[]})");
  CHECK(text.starts_with("phalanx  master 9  "));
  CHECK(text.find("ROUTE") == std::string::npos);  // no routes: no section
  std::string route = R"({"name":"r0","requests":7,"methods":{},"responses":{},
                          "latency_us":{"bounds":[100],"counts":[7,0],"sum":1}})";
  std::string routes;
  for (int i = 0; i < 7; ++i) routes += (i ? "," : "") + route;
  text = rendered(Command::Status, R"({"version":1,"ok":true,"master":{"pid":9},
                                       "totals":{},"workers":[],"routes":[)" +
                                       routes + "]}");
  CHECK(text.find("\nROUTE ") != std::string::npos);
  size_t rows = 0;
  for (size_t at = text.find("\nr0 "); at != std::string::npos; at = text.find("\nr0 ", at + 1))
    ++rows;
  CHECK(rows == 5);  // the busiest five
  CHECK(renderError(Command::Status, R"({"version":1,"ok":true})") ==
        "status without a \"master\" object");
}

TEST_CASE("breaker answers say the state now, and whether it was already so") {
  CHECK(rendered(Command::BreakerOpen, R"({"version":1,"ok":true,"upstream":"api",
        "target":"127.0.0.1:9001","breaker":"open","changed":true})") ==
        "breaker api 127.0.0.1:9001: open\n");
  CHECK(rendered(Command::BreakerClose, R"({"version":1,"ok":true,"upstream":"api",
        "target":"127.0.0.1:9001","breaker":"closed","changed":false})") ==
        "breaker api 127.0.0.1:9001: closed (it already was)\n");
  CHECK(renderError(Command::BreakerOpen, R"({"version":1,"ok":true})") ==
        "a breaker answer needs \"upstream\", \"target\", \"breaker\" and \"changed\"");
}

TEST_CASE("upstreams goes through the upstream table") {
  std::string text = rendered(Command::Upstreams, R"({"version":1,"ok":true,"upstreams":[]})");
  CHECK(text == "no upstreams configured\n");
  CHECK(renderError(Command::Upstreams, R"({"version":1,"ok":true})") ==
        "no \"upstreams\" array in the answer");
}

TEST_CASE("routes and errors render as tables, busiest and newest first") {
  std::string routes = rendered(Command::Routes, R"({"version":1,"ok":true,"routes":[
      {"name":"api","requests":10,"methods":{"GET":10},"responses":{"200":8,"2xx":1,"502":1},
       "latency_us":{"bounds":[100,1000],"counts":[5,4,1],"sum":9000}}]})");
  // p50 in the first bucket; p95 and p99 above every bound.
  CHECK(routes.find("api                                    10        9        0        0        1 "
                    "  100us    >10s    >10s") != std::string::npos);
  CHECK(rendered(Command::Routes, R"({"version":1,"ok":true,"routes":[]})") == "no routes\n");
  CHECK(renderError(Command::Routes, R"({"version":1,"ok":true,"routes":[{"name":"a"}]})") ==
        "a route row needs name, requests, responses and latency_us");

  std::string errors = rendered(Command::Errors, R"({"version":1,"ok":true,"errors":[
      {"at_ms":1796216669309,"route":"api","method":"GET","path":"/api/x","status":502,
       "client":"127.0.0.1","request_id":"abc","upstream":"127.0.0.1:9001"}]})");
  CHECK(errors.find("2026-12-02 ") != std::string::npos);
  CHECK(errors.find(".309    502 api                  GET     /api/x") != std::string::npos);
  CHECK(errors.find("127.0.0.1:9001         abc") != std::string::npos);
  CHECK(rendered(Command::Errors, R"({"version":1,"ok":true,"errors":[]})") ==
        "no errors recorded\n");
}

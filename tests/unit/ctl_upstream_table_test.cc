#include <doctest/doctest.h>

#include <string>

#include "ctl/upstream_table.h"

using namespace phalanx::ctl;

namespace {

constexpr uint64_t kNow = 1'700'000'000'000;

std::vector<UpstreamRow> read(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element root;
  REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
  std::string error;
  auto rows = readUpstreams(root, &error);
  REQUIRE_MESSAGE(rows, error);
  return *rows;
}

}  // namespace

TEST_CASE("upstreams table: one row per target, then a line per upstream") {
  simdjson::dom::parser parser;
  auto rows = read(parser, R"({"upstreams":[
    {"name":"api","state":"active","requests":1500,"retries":3,"retry_budget_exhausted":1,
     "no_target":2,"breaker_refusals":4,"targets":[
      {"address":"127.0.0.1:9001","state":"active","health":{"up":true},
       "breaker":{"state":"closed","since_ms":0},"in_flight":2,"requests":1200,"failures":5,
       "latency_ms":{"p50":0.1875,"p99":12.5}},
      {"address":"127.0.0.1:9002","state":"retired","health":{"up":false},
       "breaker":{"state":"open","since_ms":1699999875000},"in_flight":1,"requests":300,
       "failures":300,"latency_ms":{"p50":null,"p99":null}}]}]})");
  REQUIRE(rows.size() == 1);
  REQUIRE(rows[0].targets.size() == 2);
  CHECK(rows[0].targets[1].retired);
  CHECK_FALSE(rows[0].targets[1].p50_ms);
  CHECK(renderUpstreams(rows, kNow) ==
        "UPSTREAM  TARGET                    HEALTH  BREAKER  SINCE  IN-FLIGHT  REQUESTS  "
        "FAILURES     P50     P99\n"
        "api       127.0.0.1:9001            up      closed       -          2      1.2k  "
        "       5  0.19ms  12.5ms\n"
        "api       127.0.0.1:9002 (retired)  down    open     2m05s          1       300  "
        "     300       -       -\n"
        "\n"
        "api: 1.5k requests, 3 retries, 1 over the retry budget, 2 without a usable target, 4 "
        "refused by a breaker\n");
}

TEST_CASE("upstreams table: lenient about missing fields, strict about the array") {
  simdjson::dom::parser parser;
  auto rows = read(parser, R"({"upstreams":[{"name":"a","targets":[{"address":"x:1"}]}]})");
  REQUIRE(rows[0].targets.size() == 1);
  CHECK(rows[0].targets[0].up);
  CHECK(rows[0].targets[0].breaker.empty());
  simdjson::dom::element root;
  REQUIRE(parser.parse(std::string(R"({"upstreams":{}})")).get(root) == simdjson::SUCCESS);
  std::string error;
  CHECK_FALSE(readUpstreams(root, &error));
  CHECK(error == "no \"upstreams\" array in the answer");
}

TEST_CASE("latencies in the table") {
  CHECK(humanLatency(std::nullopt) == "-");
  CHECK(humanLatency(0.25) == "0.25ms");
  CHECK(humanLatency(12.54) == "12.5ms");
  CHECK(humanLatency(230.4) == "230ms");
  CHECK(humanLatency(1200) == "1.20s");
}

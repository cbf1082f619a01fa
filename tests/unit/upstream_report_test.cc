#include "shared/upstream_report.h"

#include <doctest/doctest.h>
#include <simdjson.h>

#include <string>

#include "master/upstream_commands.h"
#include "shared/status_report.h"

using namespace phalanx::shared;
using phalanx::master::forceBreaker;

namespace {

Config twoTargets() {
  Config config;
  for (const char* text : {"127.0.0.1:9001", "127.0.0.1:9002"}) {
    std::string error;
    config.upstreams["api"].targets.push_back(
        {.address = *parseAddress(text, &error), .weight = 1});
  }
  return config;
}

SharedRegion provisioned(const Config& config) {
  SharedRegion region = SharedRegion::create(2, 4);
  std::string error;
  REQUIRE_MESSAGE(provisionUpstreams(region, config, 1, &error), error);
  return region;
}

}  // namespace

TEST_CASE("a snapshot lists active targets, and retired ones while requests are in flight") {
  Config config = twoTargets();
  SharedRegion region = provisioned(config);
  TargetRecord* second = findTarget(region, "api", "127.0.0.1:9002");
  second->requests.store(9);
  second->in_flight.store(1);
  findUpstream(region, "api")->retries.store(4);
  Snapshot s = takeSnapshot(region);
  REQUIRE(s.targets.size() == 2);
  CHECK(s.targets[0].address == "127.0.0.1:9001");
  CHECK(s.targets[1].requests == 9);
  REQUIRE(s.upstreams.size() == 1);
  CHECK(s.upstreams[0].retries == 4);

  config.upstreams["api"].targets.pop_back();
  std::string error;
  REQUIRE(provisionUpstreams(region, config, 2, &error));
  s = takeSnapshot(region);
  REQUIRE(s.targets.size() == 2);
  CHECK(s.targets[1].state == RecordState::Retired);
  second->in_flight.store(0);
  CHECK(takeSnapshot(region).targets.size() == 1);
}

TEST_CASE("forcing a breaker from the control socket, and the errors naming what is unknown") {
  Config config = twoTargets();
  SharedRegion region = provisioned(config);
  std::string error;
  auto opened =
      forceBreaker(region, config, "api", "127.0.0.1:9001", policy::BreakerState::Open, &error);
  REQUIRE_MESSAGE(opened, error);
  CHECK(opened->state == policy::BreakerState::Open);
  CHECK(opened->changed);
  TargetRecord* record = findTarget(region, "api", "127.0.0.1:9001");
  CHECK(record->breaker_changed_wall_ms.load() > 0);
  Snapshot s = takeSnapshot(region);
  CHECK(s.targets[0].breaker.state == policy::BreakerState::Open);
  CHECK(s.targets[1].breaker.state == policy::BreakerState::Closed);

  auto closed =
      forceBreaker(region, config, "api", "127.0.0.1:9001", policy::BreakerState::Closed, &error);
  REQUIRE(closed);
  CHECK(closed->state == policy::BreakerState::Closed);
  auto again =
      forceBreaker(region, config, "api", "127.0.0.1:9001", policy::BreakerState::Closed, &error);
  REQUIRE(again);
  CHECK_FALSE(again->changed);
  CHECK(takeSnapshot(region).targets[0].breaker.transitions == 2);

  CHECK_FALSE(
      forceBreaker(region, config, "web", "127.0.0.1:9001", policy::BreakerState::Open, &error));
  CHECK(error == "no upstream named \"web\"");
  CHECK_FALSE(
      forceBreaker(region, config, "api", "127.0.0.1:9", policy::BreakerState::Open, &error));
  CHECK(error == "upstream \"api\" has no target \"127.0.0.1:9\"");
}

TEST_CASE("status carries an upstreams array with health, breaker, counts and percentiles") {
  Config config = twoTargets();
  SharedRegion region = provisioned(config);
  TargetRecord* first = findTarget(region, "api", "127.0.0.1:9001");
  first->requests.store(100);
  first->failures.store(3);
  for (int i = 0; i < 100; ++i) recordLatency(*first, i < 98 ? 800 : 40'000);
  findTarget(region, "api", "127.0.0.1:9002")->health.down.store(1);
  std::string error;
  forceBreaker(region, config, "api", "127.0.0.1:9002", policy::BreakerState::Open, &error);

  JsonWriter w;
  w.beginObject();
  writeStatus(w, takeSnapshot(region), "");
  w.endObject();
  std::string text = w.take();
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(text).get(root) == simdjson::SUCCESS);
  auto at = [&](const char* pointer) { return root.at_pointer(pointer); };
  CHECK(std::string_view(at("/upstreams/0/name").get_string().value()) == "api");
  CHECK(std::string_view(at("/upstreams/0/targets/0/address").get_string().value()) ==
        "127.0.0.1:9001");
  CHECK(at("/upstreams/0/targets/0/requests").get_uint64().value() == 100);
  CHECK(at("/upstreams/0/targets/0/failures").get_uint64().value() == 3);
  CHECK(at("/upstreams/0/targets/0/health/up").get_bool().value());
  CHECK(std::string_view(at("/upstreams/0/targets/0/breaker/state").get_string().value()) ==
        "closed");
  // 98 samples in (500, 1000] µs: p50 interpolates inside that bucket.
  CHECK(at("/upstreams/0/targets/0/latency_ms/p50").get_double().value() ==
        doctest::Approx(0.5 + 0.5 * 50.0 / 98.0));
  CHECK(at("/upstreams/0/targets/0/latency_ms/p99").get_double().value() ==
        doctest::Approx(25.0 + 25.0 * 0.5));
  CHECK_FALSE(at("/upstreams/0/targets/1/health/up").get_bool().value());
  CHECK(std::string_view(at("/upstreams/0/targets/1/breaker/state").get_string().value()) ==
        "open");
  CHECK(at("/upstreams/0/targets/1/breaker/since_ms").get_uint64().value() > 0);
  CHECK(at("/upstreams/0/targets/1/latency_ms/p50").is_null());
}

TEST_CASE("upstream metrics: per target and per upstream, labels escaped") {
  Snapshot s;
  TargetView t;
  t.upstream = "a\"b";
  t.address = "127.0.0.1:9001";
  t.state = RecordState::Active;
  t.requests = 12;
  t.breaker.state = policy::BreakerState::HalfOpen;
  t.healthy = false;
  t.latency_buckets[0] = 2;
  t.latency_buckets[kLatencyBuckets - 1] = 1;
  t.latency_sum_us = 20'000'100;
  s.targets.push_back(t);
  UpstreamView u;
  u.name = "a\"b";
  u.no_target = 7;
  s.upstreams.push_back(u);
  std::string text = prometheusMetrics(s);
  std::string labels = R"({upstream="a\"b",target="127.0.0.1:9001"})";
  CHECK(text.find("phalanx_upstream_requests_total" + labels + " 12\n") != std::string::npos);
  CHECK(text.find("phalanx_upstream_healthy" + labels + " 0\n") != std::string::npos);
  CHECK(text.find("phalanx_breaker_state" + labels + " 2\n") != std::string::npos);
  CHECK(
      text.find(
          R"(phalanx_upstream_latency_seconds_bucket{upstream="a\"b",target="127.0.0.1:9001",le="0.0001"} 2)") !=
      std::string::npos);
  CHECK(
      text.find(
          R"(phalanx_upstream_latency_seconds_bucket{upstream="a\"b",target="127.0.0.1:9001",le="+Inf"} 3)") !=
      std::string::npos);
  CHECK(text.find("phalanx_upstream_latency_seconds_sum" + labels + " 20.0001\n") !=
        std::string::npos);
  CHECK(text.find(R"(phalanx_upstream_no_target_total{upstream="a\"b"} 7)") != std::string::npos);
  CHECK(text.find("# TYPE phalanx_breaker_transitions_total counter\n") != std::string::npos);
  // No upstream, no family.
  CHECK(prometheusMetrics(Snapshot{}).find("phalanx_upstream") == std::string::npos);
}

TEST_CASE("latency quantiles from the buckets") {
  uint64_t buckets[kLatencyBuckets] = {};
  CHECK_FALSE(latencyQuantileMs(buckets, 0.5));
  buckets[0] = 4;  // (0, 100] µs
  CHECK(*latencyQuantileMs(buckets, 0.5) == doctest::Approx(0.05));
  buckets[kLatencyBuckets - 1] = 100;  // above every bound: the last bound
  CHECK(*latencyQuantileMs(buckets, 0.99) == doctest::Approx(10'000.0));
}

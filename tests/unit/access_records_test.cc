#include "shared/access_records.h"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "shared/access_report.h"

using namespace phalanx::shared;

namespace {

Config configWith(const char* limits_json) {
  std::string json = std::string(R"({"listen": ["127.0.0.1:8080"], "routes": [{"path": "/", "static": {}}], )") +
                     limits_json + "}";
  ConfigResult result = parseConfig(json);
  std::string first_error = result.errors.empty() ? "" : result.errors[0];
  REQUIRE_MESSAGE(result.config.has_value(), first_error);
  return *result.config;
}

}  // namespace

TEST_CASE("access records: the master provisions limits and tiers, reloads add, never remove") {
  SharedRegion region = SharedRegion::create(4, 8);
  Config first = configWith(R"("tiers": {"free": {"rate": "1/s"}, "admin": {}},
                                "rate_limits": {"per_ip": {"rate": "10/s"}})");
  std::string error;
  REQUIRE(provisionLimits(region, first, &error));
  REQUIRE(findLimit(region, "per_ip") != nullptr);
  REQUIRE(findLimit(region, "tier:free") != nullptr);
  CHECK(findLimit(region, "tier:admin") == nullptr);  // no rate: nothing to count
  findLimit(region, "per_ip")->allowed.fetch_add(7);
  Config second = configWith(R"("rate_limits": {"per_key": {"rate": "10/s"}})");
  REQUIRE(provisionLimits(region, second, &error));
  CHECK(findLimit(region, "per_ip")->allowed.load() == 7);  // kept: counters stay monotonic
  CHECK(findLimit(region, "per_key") != nullptr);
  REQUIRE(provisionLimits(region, first, &error));  // idempotent
  AccessView view = takeAccessView(region);
  REQUIRE(view.limits.size() == 3);
  CHECK(view.limits[0].name == "per_ip");
  CHECK(view.limits[0].allowed == 7);
}

TEST_CASE("access records: key usage is inserted once per id, across threads") {
  SharedRegion region = SharedRegion::create(4, 8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&region] {
      for (int i = 0; i < 500; ++i) {
        KeyUsageRecord* r = keyUsage(region, "key-" + std::to_string(i % 50), "free");
        REQUIRE(r != nullptr);
        r->requests.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  AccessView view = takeAccessView(region);
  REQUIRE(view.keys.size() == 50);  // one record per id, whoever inserted it
  uint64_t total = 0;
  for (const KeyView& k : view.keys) {
    CHECK(k.requests == 40);
    CHECK(k.tier == "free");
    total += k.requests;
  }
  CHECK(total == 2000);
}

TEST_CASE("access records: a purge request carries its prefix and a rising sequence") {
  SharedRegion region = SharedRegion::create(4, 8);
  CHECK(requestPurge(region, "/api/") == 1);
  CHECK(std::string(region.access().purge_prefix) == "/api/");
  CHECK(requestPurge(region, "") == 2);
  CHECK(std::string(region.access().purge_prefix).empty());
}

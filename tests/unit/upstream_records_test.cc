#include "shared/upstream_records.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace phalanx::shared;

namespace {

// A config with `upstreams`: name → target addresses.
Config configWith(const std::vector<std::pair<std::string, std::vector<std::string>>>& upstreams) {
  Config config;
  for (const auto& [name, addresses] : upstreams) {
    UpstreamConfig& upstream = config.upstreams[name];
    for (const std::string& text : addresses) {
      std::string error;
      auto address = parseAddress(text, &error);
      REQUIRE_MESSAGE(address, error);
      upstream.targets.push_back({.address = *address, .weight = 1});
    }
  }
  return config;
}

std::vector<std::string> ports(int from, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) out.push_back("127.0.0.1:" + std::to_string(from + i));
  return out;
}

RecordState stateOf(const TargetRecord* record) {
  return static_cast<RecordState>(record->state.load());
}

void provision(const SharedRegion& region, const Config& config, uint32_t generation) {
  std::string error;
  REQUIRE_MESSAGE(provisionUpstreams(region, config, generation, &error), error);
}

}  // namespace

TEST_CASE("records are 64-byte aligned in the region and found by name and address") {
  SharedRegion region = SharedRegion::create(2, 4);
  CHECK(region.upstreamCapacity() == 16);
  CHECK(region.targetCapacity() == 64);
  CHECK(reinterpret_cast<uintptr_t>(&region.target(1)) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(&region.upstream(1)) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(&region.gateway()) % 64 == 0);
  provision(region, configWith({{"api", {"127.0.0.1:9001", "127.0.0.1:9002"}}}), 1);

  TargetRecord* target = findTarget(region, "api", "127.0.0.1:9002");
  REQUIRE(target != nullptr);
  CHECK(std::string(target->upstream) == "api");
  CHECK(std::string(target->address) == "127.0.0.1:9002");
  CHECK(target->position.load() == 1);
  CHECK(target->breaker_window_ms.load() == BreakerConfig{}.window_ms);
  CHECK(stateOf(target) == RecordState::Active);
  UpstreamRecord* upstream = findUpstream(region, "api");
  REQUIRE(upstream != nullptr);
  CHECK(std::string(upstream->name) == "api");
  CHECK(findTarget(region, "api", "127.0.0.1:9003") == nullptr);
  CHECK(findTarget(region, "web", "127.0.0.1:9001") == nullptr);
  CHECK(findUpstream(region, "web") == nullptr);

  // Another process sees the same records.
  std::string error;
  SharedRegion attached = SharedRegion::attach(dup(region.fd()), &error);
  REQUIRE_MESSAGE(attached, error);
  CHECK(attached.targetCapacity() == 64);
  target->in_flight.fetch_add(3);
  TargetRecord* seen = findTarget(attached, "api", "127.0.0.1:9002");
  REQUIRE(seen != nullptr);
  CHECK(seen->in_flight.load() == 3);
}

TEST_CASE("keys: never 0, and the pair is hashed with a separator") {
  CHECK(upstreamKey("") != 0);
  CHECK(targetKey("", "") != 0);
  CHECK(targetKey("ab", "c") != targetKey("a", "bc"));
  CHECK(targetKey("api", "127.0.0.1:1") != upstreamKey("api"));
}

TEST_CASE("capacities: twice the config with minimums and caps") {
  CHECK(upstreamCapacityFor(Config{}).upstreams == 16);
  CHECK(upstreamCapacityFor(Config{}).targets == 64);
  Config big = configWith({{"a", ports(1000, 40)}, {"b", ports(2000, 40)}});
  CHECK(upstreamCapacityFor(big).targets == 160);
  CHECK(upstreamCapacityFor(big).upstreams == 16);
  Config huge = configWith({{"a", ports(1000, 3000)}});
  CHECK(upstreamCapacityFor(huge).targets == kMaxTargetRecords);
}

TEST_CASE("a reload that keeps a target keeps its record; one that removes it retires it") {
  SharedRegion region = SharedRegion::create(2, 4);
  provision(region, configWith({{"api", {"127.0.0.1:9001", "127.0.0.1:9002"}}}), 1);
  TargetRecord* kept = findTarget(region, "api", "127.0.0.1:9001");
  TargetRecord* removed = findTarget(region, "api", "127.0.0.1:9002");
  REQUIRE(kept != nullptr);
  REQUIRE(removed != nullptr);
  kept->requests.fetch_add(7);
  kept->breaker.status.store(0x1234567);  // whatever the breaker holds survives
  removed->in_flight.fetch_add(1);

  provision(region, configWith({{"api", {"127.0.0.1:9001", "127.0.0.1:9003"}}}), 2);
  CHECK(findTarget(region, "api", "127.0.0.1:9001") == kept);
  CHECK(kept->requests.load() == 7);
  CHECK(kept->breaker.status.load() == 0x1234567);
  CHECK(kept->last_generation.load() == 2);
  CHECK(stateOf(kept) == RecordState::Active);
  // Retired, still found (old workers hold it), still counting.
  CHECK(findTarget(region, "api", "127.0.0.1:9002") == removed);
  CHECK(stateOf(removed) == RecordState::Retired);
  CHECK(removed->last_generation.load() == 1);
  TargetRecord* added = findTarget(region, "api", "127.0.0.1:9003");
  REQUIRE(added != nullptr);
  CHECK(added->requests.load() == 0);
  CHECK(added->position.load() == 1);

  // Back in the config: the same record, Active again.
  provision(region, configWith({{"api", {"127.0.0.1:9002"}}}), 3);
  CHECK(findTarget(region, "api", "127.0.0.1:9002") == removed);
  CHECK(stateOf(removed) == RecordState::Active);
  CHECK(removed->in_flight.load() == 1);
  CHECK(stateOf(kept) == RecordState::Retired);
  CHECK(stateOf(added) == RecordState::Retired);
  // An upstream the config drops is retired too.
  provision(region, configWith({{"web", {"127.0.0.1:9002"}}}), 4);
  CHECK(static_cast<RecordState>(findUpstream(region, "api")->state.load()) ==
        RecordState::Retired);
  CHECK(static_cast<RecordState>(findUpstream(region, "web")->state.load()) == RecordState::Active);
}

TEST_CASE("a config past the capacity is refused with both counts, and nothing changes") {
  SharedRegion region = SharedRegion::create(2, 4, {.upstreams = 2, .targets = 4});
  provision(region, configWith({{"api", ports(9001, 2)}}), 1);
  std::string error;
  CHECK_FALSE(provisionUpstreams(region, configWith({{"api", ports(9001, 5)}}), 2, &error));
  CHECK(error == "upstreams: 5 targets, shared memory holds 4; restart phalanx to grow it");
  CHECK(findTarget(region, "api", "127.0.0.1:9003") == nullptr);
  CHECK(findTarget(region, "api", "127.0.0.1:9001")->last_generation.load() == 1);

  CHECK_FALSE(provisionUpstreams(region, configWith({{"a", {}}, {"b", {}}, {"c", {}}}), 2, &error));
  CHECK(error == "upstreams: 3 upstreams, shared memory holds 2; restart phalanx to grow it");
  CHECK(findUpstream(region, "a") == nullptr);
  CHECK(static_cast<RecordState>(findUpstream(region, "api")->state.load()) == RecordState::Active);
}

TEST_CASE("a retired record is reused only once no request and no older worker can use it") {
  SharedRegion region = SharedRegion::create(2, 4, {.upstreams = 2, .targets = 2});
  provision(region, configWith({{"api", ports(9001, 2)}}), 1);
  TargetRecord* old = findTarget(region, "api", "127.0.0.1:9002");
  old->in_flight.store(1);
  old->requests.store(5);
  // Generation 1's worker still runs.
  region.cell(0).pid.store(100);
  region.cell(0).generation.store(1);
  provision(region, configWith({{"api", {"127.0.0.1:9001"}}}), 2);

  std::string error;
  Config next = configWith({{"api", {"127.0.0.1:9001", "127.0.0.1:9003"}}});
  CHECK_FALSE(provisionUpstreams(region, next, 3, &error));
  CHECK(error.find("upstreams: 2 targets, shared memory holds 2 and 1 of them belong to removed "
                   "targets that draining workers may still use") == 0);
  old->in_flight.store(0);
  CHECK_FALSE(provisionUpstreams(region, next, 3, &error));  // the old worker still lives
  region.cell(0).generation.store(2);                        // replaced by generation 2
  provision(region, next, 3);
  TargetRecord* reused = findTarget(region, "api", "127.0.0.1:9003");
  CHECK(reused == old);
  CHECK(reused->requests.load() == 0);
  CHECK(std::string(reused->address) == "127.0.0.1:9003");
  CHECK(findTarget(region, "api", "127.0.0.1:9002") == nullptr);
}

TEST_CASE("colliding keys in a tiny table each find their own record") {
  // Three slots, eight targets over three reloads: every probe chain collides.
  SharedRegion region = SharedRegion::create(2, 4, {.upstreams = 4, .targets = 3});
  std::vector<std::string> addresses = ports(7000, 3);
  provision(region, configWith({{"api", addresses}}), 1);
  for (const std::string& address : addresses) {
    TargetRecord* record = findTarget(region, "api", address);
    REQUIRE(record != nullptr);
    CHECK(std::string(record->address) == address);
    record->requests.store(std::stoul(address.substr(10)));
  }
  // Drop the first: the others are still found past its (retired) record.
  provision(region, configWith({{"api", {addresses[1], addresses[2]}}}), 2);
  for (size_t i = 1; i < 3; ++i) {
    TargetRecord* record = findTarget(region, "api", addresses[i]);
    REQUIRE(record != nullptr);
    CHECK(record->requests.load() == std::stoul(addresses[i].substr(10)));
  }
  // A new one takes the retired record, wherever its chain started.
  provision(region, configWith({{"api", {addresses[1], addresses[2], "127.0.0.1:7100"}}}), 3);
  CHECK(findTarget(region, "api", addresses[0]) == nullptr);
  for (const std::string& address : {addresses[1], addresses[2], std::string("127.0.0.1:7100")}) {
    TargetRecord* record = findTarget(region, "api", address);
    REQUIRE(record != nullptr);
    CHECK(std::string(record->address) == address);
  }
}

TEST_CASE("a name or address too long for a record is refused with its path") {
  SharedRegion region = SharedRegion::create(2, 4);
  std::string error;
  CHECK_FALSE(provisionUpstreams(region, configWith({{std::string(64, 'u'), {}}}), 1, &error));
  CHECK(error.find("upstreams.uuu") == 0);
  CHECK(error.find("longer than 63 bytes") != std::string::npos);
  CHECK(provisionUpstreams(region, configWith({{std::string(63, 'u'), {}}}), 1, &error));
}

TEST_CASE("upstream latency lands in the shared histogram buckets") {
  SharedRegion region = SharedRegion::create(2, 4);
  provision(region, configWith({{"api", {"127.0.0.1:9001"}}}), 1);
  TargetRecord* target = findTarget(region, "api", "127.0.0.1:9001");
  recordLatency(*target, 1200);
  recordLatency(*target, 90);
  CHECK(target->latency_buckets[latencyBucket(1200)].load() == 1);
  CHECK(target->latency_buckets[0].load() == 1);
  CHECK(target->latency_sum_us.load() == 1290);
}

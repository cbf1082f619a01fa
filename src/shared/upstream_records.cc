#include "shared/upstream_records.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "shared/stable_hash.h"

namespace phalanx::shared {

namespace {

// stable_hash.h's mix, so that similar names (api-1, api-2) land far apart
// in the table; 0 means free and kReusingKey a record being rewritten:
// neither is a key.
uint64_t finish(uint64_t h) {
  h = mix64(h);
  if (h == 0 || h == kReusingKey) h = 1;
  return h;
}

// What one configured upstream or target needs: its key and its texts.
struct Want {
  uint64_t key = 0;
  std::string_view first;   // upstream name
  std::string_view second;  // target address; "" for an upstream
  uint32_t position = 0;
  uint32_t window_ms = 0;
};

// The two tables differ only in their record type and texts.
struct Table {
  const SharedRegion& region;
  bool targets;  // else upstreams

  uint32_t capacity() const {
    return targets ? region.targetCapacity() : region.upstreamCapacity();
  }
  const char* noun() const { return targets ? "targets" : "upstreams"; }
  std::atomic<uint64_t>& key(uint32_t i) const {
    return targets ? region.target(i).key : region.upstream(i).key;
  }
  std::atomic<uint32_t>& state(uint32_t i) const {
    return targets ? region.target(i).state : region.upstream(i).state;
  }
  std::atomic<uint32_t>& lastGeneration(uint32_t i) const {
    return targets ? region.target(i).last_generation : region.upstream(i).last_generation;
  }
  uint64_t inFlight(uint32_t i) const {
    return targets ? region.target(i).in_flight.load(std::memory_order_acquire) : 0;
  }
};

// Index of the record with `key`, or -1. Read-only; any process.
int64_t find(const Table& table, uint64_t key) {
  uint32_t capacity = table.capacity();
  if (capacity == 0 || key == 0 || key == kReusingKey) return -1;
  for (uint32_t step = 0, i = static_cast<uint32_t>(key % capacity); step < capacity;
       ++step, i = (i + 1) % capacity) {
    uint64_t k = table.key(i).load(std::memory_order_acquire);
    if (k == key) return i;
    if (k == 0) return -1;
  }
  return -1;
}

// The oldest generation of a live worker process; UINT32_MAX when none.
uint32_t oldestLiveGeneration(const SharedRegion& region) {
  uint32_t oldest = UINT32_MAX;
  for (uint32_t i = 0; i < region.cellCapacity(); ++i) {
    const WorkerCell& cell = region.cell(i);
    if (cell.pid.load(std::memory_order_acquire) == 0) continue;
    oldest = std::min(oldest, cell.generation.load(std::memory_order_relaxed));
  }
  return oldest;
}

// A Retired record nobody can be using: no request in flight, and every live
// worker runs a generation newer than the last one that had it.
bool reusable(const Table& table, uint32_t i, uint32_t oldest_live) {
  return static_cast<RecordState>(table.state(i).load(std::memory_order_relaxed)) ==
             RecordState::Retired &&
         table.inFlight(i) == 0 &&
         oldest_live > table.lastGeneration(i).load(std::memory_order_relaxed);
}

void copyText(char (&to)[kRecordTextBytes], std::string_view text) {
  std::memset(to, 0, sizeof to);
  std::memcpy(to, text.data(), std::min(text.size(), kMaxRecordText));
}

// A record taken for a new key: everything but the key zeroed (counters,
// cells), then the texts, then the key, published last.
void writeRecord(const Table& table, uint32_t i, const Want& want, uint32_t generation) {
  if (table.key(i).load(std::memory_order_relaxed) != 0) {
    // Reused: keep the probe chains through it intact while it is rewritten.
    table.key(i).store(kReusingKey, std::memory_order_release);
  }
  if (table.targets) {
    TargetRecord& r = table.region.target(i);
    auto* bytes = reinterpret_cast<char*>(&r);
    std::memset(bytes + sizeof r.key, 0, sizeof r - sizeof r.key);
    copyText(r.upstream, want.first);
    copyText(r.address, want.second);
  } else {
    UpstreamRecord& r = table.region.upstream(i);
    auto* bytes = reinterpret_cast<char*>(&r);
    std::memset(bytes + sizeof r.key, 0, sizeof r - sizeof r.key);
    copyText(r.name, want.first);
  }
  table.lastGeneration(i).store(generation, std::memory_order_relaxed);
  table.state(i).store(static_cast<uint32_t>(RecordState::Active), std::memory_order_relaxed);
  table.key(i).store(want.key, std::memory_order_release);
}

// Where each want goes: its existing record first (so a reload that keeps a
// key keeps its record), then a free or reusable one along its probe chain.
// -1 entries mean the table has no room; nothing is written here.
std::vector<int64_t> plan(const Table& table, const std::vector<Want>& wants,
                          uint32_t oldest_live) {
  uint32_t capacity = table.capacity();
  std::vector<int64_t> placed(wants.size(), -1);
  std::vector<bool> taken(capacity, false);
  for (size_t w = 0; w < wants.size(); ++w) {
    placed[w] = find(table, wants[w].key);
    if (placed[w] >= 0) taken[static_cast<size_t>(placed[w])] = true;
  }
  for (size_t w = 0; w < wants.size() && capacity > 0; ++w) {
    if (placed[w] >= 0) continue;
    for (uint32_t step = 0, i = static_cast<uint32_t>(wants[w].key % capacity); step < capacity;
         ++step, i = (i + 1) % capacity) {
      if (taken[i]) continue;
      if (table.key(i).load(std::memory_order_relaxed) == 0 || reusable(table, i, oldest_live)) {
        placed[w] = i;
        taken[i] = true;
        break;
      }
    }
  }
  return placed;
}

std::string roomError(const Table& table, size_t wanted, uint32_t oldest_live) {
  std::string text = std::string("upstreams: ") + std::to_string(wanted) + " " + table.noun() +
                     ", shared memory holds " + std::to_string(table.capacity());
  uint32_t held = 0;
  for (uint32_t i = 0; i < table.capacity(); ++i) {
    auto state = static_cast<RecordState>(table.state(i).load(std::memory_order_relaxed));
    held += state == RecordState::Retired && !reusable(table, i, oldest_live);
  }
  if (wanted <= table.capacity()) {
    return text + " and " + std::to_string(held) + " of them belong to removed " + table.noun() +
           " that draining workers may still use; reload again once they have exited, or "
           "restart phalanx to grow it";
  }
  return text + "; restart phalanx to grow it";
}

// Places and writes every want, retires the rest. False (nothing written)
// when the table has no room.
bool provisionTable(const Table& table, const std::vector<Want>& wants, uint32_t generation,
                    uint32_t oldest_live, std::string* error) {
  std::vector<int64_t> placed = plan(table, wants, oldest_live);
  if (std::find(placed.begin(), placed.end(), -1) != placed.end()) {
    *error = roomError(table, wants.size(), oldest_live);
    return false;
  }
  std::vector<bool> wanted(table.capacity(), false);
  for (size_t w = 0; w < wants.size(); ++w) {
    auto i = static_cast<uint32_t>(placed[w]);
    wanted[i] = true;
    if (table.key(i).load(std::memory_order_relaxed) == wants[w].key) {
      table.lastGeneration(i).store(std::max(generation, table.lastGeneration(i).load()),
                                    std::memory_order_relaxed);
      table.state(i).store(static_cast<uint32_t>(RecordState::Active), std::memory_order_release);
    } else {
      writeRecord(table, i, wants[w], generation);
    }
    if (table.targets) {
      table.region.target(i).position.store(wants[w].position, std::memory_order_relaxed);
      table.region.target(i).breaker_window_ms.store(wants[w].window_ms, std::memory_order_relaxed);
    }
  }
  for (uint32_t i = 0; i < table.capacity(); ++i) {
    if (wanted[i]) continue;
    if (static_cast<RecordState>(table.state(i).load(std::memory_order_relaxed)) ==
        RecordState::Active) {
      table.state(i).store(static_cast<uint32_t>(RecordState::Retired), std::memory_order_release);
    }
  }
  return true;
}

// The config's upstreams and targets as wants, duplicates dropped; false with
// `error` set for a name or address too long to store.
bool collectWants(const Config& config, std::vector<Want>* upstreams, std::vector<Want>* targets,
                  std::string* error) {
  for (const auto& [name, upstream] : config.upstreams) {
    if (name.size() > kMaxRecordText) {
      *error = "upstreams." + name + ": a name longer than " + std::to_string(kMaxRecordText) +
               " bytes cannot be tracked in shared memory";
      return false;
    }
    upstreams->push_back(
        {.key = upstreamKey(name), .first = name, .second = {}, .position = 0, .window_ms = 0});
    for (size_t t = 0; t < upstream.targets.size(); ++t) {
      const std::string& address = upstream.targets[t].address.text;
      if (address.size() > kMaxRecordText) {
        *error = "upstreams." + name + ".targets[" + std::to_string(t) + "].address: longer than " +
                 std::to_string(kMaxRecordText) + " bytes, cannot be tracked in shared memory";
        return false;
      }
      uint64_t key = targetKey(name, address);
      bool duplicate = std::any_of(targets->begin(), targets->end(),
                                   [&](const Want& w) { return w.key == key; });
      if (duplicate) continue;
      targets->push_back({.key = key,
                          .first = name,
                          .second = address,
                          .position = static_cast<uint32_t>(t),
                          .window_ms = upstream.breaker.window_ms});
    }
  }
  return true;
}

template <typename Record>
Record* lookup(const Table& table, uint64_t key, Record& (SharedRegion::*at)(uint32_t) const) {
  int64_t i = find(table, key);
  if (i < 0) return nullptr;
  Record& record = (table.region.*at)(static_cast<uint32_t>(i));
  auto state = static_cast<RecordState>(record.state.load(std::memory_order_acquire));
  return state == RecordState::Free ? nullptr : &record;
}

}  // namespace

const char* recordStateName(RecordState state) {
  switch (state) {
    case RecordState::Free: return "free";
    case RecordState::Active: return "active";
    case RecordState::Retired: return "retired";
  }
  return "unknown";
}

uint64_t upstreamKey(std::string_view name) {
  return finish(fnv1a(kFnvOffset, name));
}

uint64_t targetKey(std::string_view upstream, std::string_view address) {
  return finish(fnv1a(fnv1a(fnv1a(kFnvOffset, upstream), "\n"), address));
}

UpstreamCapacity upstreamCapacityFor(const Config& config) {
  uint64_t targets = 0;
  for (const auto& [name, upstream] : config.upstreams) targets += upstream.targets.size();
  uint64_t upstreams = config.upstreams.size();
  UpstreamCapacity defaults;
  return UpstreamCapacity{
      .upstreams = static_cast<uint32_t>(std::min<uint64_t>(
          kMaxUpstreamRecords, std::max<uint64_t>(defaults.upstreams, 2 * upstreams))),
      .targets = static_cast<uint32_t>(std::min<uint64_t>(
          kMaxTargetRecords, std::max<uint64_t>(defaults.targets, 2 * targets))),
      .rate_limit_entries = config.rate_limit_entries};
}

bool provisionUpstreams(const SharedRegion& region, const Config& config, uint32_t generation,
                        std::string* error) {
  std::vector<Want> upstreams, targets;
  if (!collectWants(config, &upstreams, &targets, error)) return false;
  uint32_t oldest_live = oldestLiveGeneration(region);
  Table upstream_table{.region = region, .targets = false};
  Table target_table{.region = region, .targets = true};
  // Both tables are checked before either is written: all or nothing.
  for (const Table* table : {&upstream_table, &target_table}) {
    const std::vector<Want>& wants = table->targets ? targets : upstreams;
    std::vector<int64_t> placed = plan(*table, wants, oldest_live);
    if (std::find(placed.begin(), placed.end(), -1) != placed.end()) {
      *error = roomError(*table, wants.size(), oldest_live);
      return false;
    }
  }
  return provisionTable(upstream_table, upstreams, generation, oldest_live, error) &&
         provisionTable(target_table, targets, generation, oldest_live, error);
}

TargetRecord* findTarget(const SharedRegion& region, std::string_view upstream,
                         std::string_view address) {
  return lookup(Table{.region = region, .targets = true}, targetKey(upstream, address),
                &SharedRegion::target);
}

UpstreamRecord* findUpstream(const SharedRegion& region, std::string_view name) {
  return lookup(Table{.region = region, .targets = false}, upstreamKey(name),
                &SharedRegion::upstream);
}

void recordLatency(TargetRecord& target, uint64_t us) {
  target.latency_buckets[latencyBucket(us)].fetch_add(1, std::memory_order_relaxed);
  target.latency_sum_us.fetch_add(us, std::memory_order_relaxed);
}

}  // namespace phalanx::shared

// The access side as operators see it: rate limits, auth failures, API key
// usage, the cache and Redis, read from the shared-memory records
// (access_records.h) into plain values, then written as Prometheus text
// (/metrics) or JSON (phalanxctl keys, status).
//
// Per-key usage is never a metric label (keys are unbounded); it is a
// top-N view: writeKeys().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shared/access_records.h"
#include "shared/json_writer.h"
#include "shared/prometheus_text.h"
#include "shared/shm.h"

namespace phalanx::shared {

struct LimitView {
  std::string name;
  uint64_t allowed = 0, limited = 0, unkeyed = 0;
  uint64_t redis_errors = 0, fallback_local = 0, fallback_open = 0, fallback_closed = 0;
};

struct KeyView {
  std::string id;
  std::string tier;
  uint64_t requests = 0;
  uint64_t refused = 0;
  uint64_t last_seen_wall_ms = 0;
};

struct AccessView {
  std::vector<LimitView> limits;  // by name
  std::vector<KeyView> keys;      // by requests, most first
  uint64_t keys_untracked = 0;
  uint64_t table_capacity = 0, table_occupancy = 0;
  uint64_t table_inserts = 0, table_evictions = 0, table_full = 0;
  uint64_t auth_ok = 0;
  uint64_t auth_failures[kAuthFailureCount] = {};
  uint64_t cache_hits = 0, cache_misses = 0, cache_bypasses = 0, cache_stores = 0;
  uint64_t cache_evictions = 0, cache_coalesced = 0, cache_invalidations = 0;
  uint64_t cache_l2_hits = 0, cache_l2_errors = 0, cache_hit_bytes = 0;
  uint64_t cache_bytes = 0, cache_entries = 0;  // level 1, summed over live workers
  uint32_t redis_up = 0, redis_down = 0;        // live workers whose Redis connection is so
};

AccessView takeAccessView(const SharedRegion& region);

void accessMetrics(Exposition& e, const AccessView& view);

// {"limits": [{"name", "allowed", "limited", "unkeyed", "redis_errors",
//   "fallback": {"local", "open", "closed"}}...],
//  "table": {"capacity", "entries", "evictions", "unrecorded"},
//  "auth": {"ok", "failures": {reason: n...}},
//  "cache": {"hits", "misses", "bypasses", "stores", "evictions", "coalesced",
//            "invalidations", "level2_hits", "level2_errors", "hit_bytes", "bytes", "entries"},
//  "redis": {"up", "down"}}: what `phalanxctl access` shows.
void writeAccess(JsonWriter& w, const AccessView& view);

// {"keys": [{"id", "tier", "requests", "refused", "last_seen_ms"}...], "untracked": N}
// with at most `top` keys.
void writeKeys(JsonWriter& w, const AccessView& view, size_t top);

}  // namespace phalanx::shared

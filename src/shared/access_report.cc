#include "shared/access_report.h"

#include <algorithm>
#include <cstring>

namespace phalanx::shared {

namespace {

uint64_t get(const std::atomic<uint64_t>& value) {
  return value.load(std::memory_order_relaxed);
}

std::string text(const char* field, size_t capacity) {
  return std::string(field, strnlen(field, capacity));
}

}  // namespace

AccessView takeAccessView(const SharedRegion& region) {
  AccessView v;
  for (uint32_t i = 0; i < kLimitRecords; ++i) {
    const LimitRecord& r = region.limit(i);
    if (r.key.load(std::memory_order_acquire) == 0) continue;
    v.limits.push_back({.name = text(r.name, sizeof r.name),
                        .allowed = get(r.allowed),
                        .limited = get(r.limited),
                        .unkeyed = get(r.unkeyed),
                        .redis_errors = get(r.redis_errors),
                        .fallback_local = get(r.fallback_local),
                        .fallback_open = get(r.fallback_open),
                        .fallback_closed = get(r.fallback_closed)});
  }
  std::sort(v.limits.begin(), v.limits.end(),
            [](const LimitView& a, const LimitView& b) { return a.name < b.name; });
  for (uint32_t i = 0; i < kKeyUsageRecords; ++i) {
    const KeyUsageRecord& r = region.keyUsage(i);
    uint64_t key = r.key.load(std::memory_order_acquire);
    if (key == 0 || key == UINT64_MAX) continue;
    v.keys.push_back({.id = text(r.id, sizeof r.id),
                      .tier = text(r.tier, sizeof r.tier),
                      .requests = get(r.requests),
                      .refused = get(r.refused),
                      .last_seen_wall_ms = get(r.last_seen_wall_ms)});
  }
  std::sort(v.keys.begin(), v.keys.end(), [](const KeyView& a, const KeyView& b) {
    return a.requests != b.requests ? a.requests > b.requests : a.id < b.id;
  });
  const AccessInfo& info = region.access();
  v.keys_untracked = get(info.keys_untracked);
  RateLimitTable table = rateLimitTable(region);
  v.table_capacity = table.capacity();
  v.table_occupancy = table.occupancy(monotonicMs() * 1000);
  v.table_inserts = get(info.table.inserts);
  v.table_evictions = get(info.table.evictions);
  v.table_full = get(info.table.full);
  v.auth_ok = get(info.auth_ok);
  for (uint32_t i = 0; i < kAuthFailureCount; ++i) v.auth_failures[i] = get(info.auth_failures[i]);
  v.cache_hits = get(info.cache_hits);
  v.cache_misses = get(info.cache_misses);
  v.cache_bypasses = get(info.cache_bypasses);
  v.cache_stores = get(info.cache_stores);
  v.cache_evictions = get(info.cache_evictions);
  v.cache_coalesced = get(info.cache_coalesced);
  v.cache_invalidations = get(info.cache_invalidations);
  v.cache_l2_hits = get(info.cache_l2_hits);
  v.cache_l2_errors = get(info.cache_l2_errors);
  v.cache_hit_bytes = get(info.cache_hit_bytes);
  for (uint32_t i = 0; i < region.cellCapacity(); ++i) {
    const WorkerCell& cell = region.cell(i);
    if (cell.pid.load(std::memory_order_relaxed) == 0) continue;
    v.cache_bytes += get(cell.cache_bytes);
    v.cache_entries += get(cell.cache_entries);
    auto redis = static_cast<RedisState>(cell.redis_state.load(std::memory_order_relaxed));
    if (redis == RedisState::Up) ++v.redis_up;
    if (redis == RedisState::Down) ++v.redis_down;
  }
  return v;
}

void accessMetrics(Exposition& e, const AccessView& v) {
  if (!v.limits.empty()) {
    e.family("phalanx_rate_limit_requests_total", "counter",
             "Requests each rate limit decided: allowed, limited (429), or unkeyed (the request "
             "lacked the limit's key).");
    for (const LimitView& l : v.limits) {
      std::string name = label("limit", l.name);
      e.sample("phalanx_rate_limit_requests_total", name + "," + label("result", "allowed"),
               l.allowed);
      e.sample("phalanx_rate_limit_requests_total", name + "," + label("result", "limited"),
               l.limited);
      e.sample("phalanx_rate_limit_requests_total", name + "," + label("result", "unkeyed"),
               l.unkeyed);
    }
    e.family(
        "phalanx_rate_limit_redis_errors_total", "counter",
        "Cluster-mode decisions Redis did not make (down, slow, an error), by fallback taken.");
    for (const LimitView& l : v.limits) {
      std::string name = label("limit", l.name);
      e.sample("phalanx_rate_limit_redis_errors_total", name + "," + label("fallback", "local"),
               l.fallback_local);
      e.sample("phalanx_rate_limit_redis_errors_total", name + "," + label("fallback", "open"),
               l.fallback_open);
      e.sample("phalanx_rate_limit_redis_errors_total", name + "," + label("fallback", "closed"),
               l.fallback_closed);
    }
  }
  e.family("phalanx_rate_limit_table_entries", "gauge",
           "Live entries of the host's rate-limit table (buckets not yet full again).");
  e.sample("phalanx_rate_limit_table_entries", "", v.table_occupancy);
  e.family("phalanx_rate_limit_table_capacity", "gauge", "Entries the rate-limit table holds.");
  e.sample("phalanx_rate_limit_table_capacity", "", v.table_capacity);
  e.family("phalanx_rate_limit_table_evictions_total", "counter",
           "Table entries taken over for another key (expired first, then the fullest bucket).");
  e.sample("phalanx_rate_limit_table_evictions_total", "", v.table_evictions);
  e.family("phalanx_rate_limit_table_unrecorded_total", "counter",
           "Decisions made without an entry (contention on a full neighbourhood): allowed.");
  e.sample("phalanx_rate_limit_table_unrecorded_total", "", v.table_full);
  e.family("phalanx_auth_requests_total", "counter", "Requests that passed authentication.");
  e.sample("phalanx_auth_requests_total", "", v.auth_ok);
  e.family("phalanx_auth_failures_total", "counter",
           "Requests refused by auth (401) or access rules (403), by reason.");
  for (uint32_t i = 0; i < kAuthFailureCount; ++i) {
    e.sample("phalanx_auth_failures_total",
             label("reason", authFailureName(static_cast<AuthFailure>(i))), v.auth_failures[i]);
  }
  e.family("phalanx_cache_requests_total", "counter",
           "Requests on cached routes: hit, miss, or bypass (not cacheable).");
  e.sample("phalanx_cache_requests_total", label("result", "hit"), v.cache_hits);
  e.sample("phalanx_cache_requests_total", label("result", "miss"), v.cache_misses);
  e.sample("phalanx_cache_requests_total", label("result", "bypass"), v.cache_bypasses);
  e.family("phalanx_cache_stores_total", "counter", "Responses stored in the cache.");
  e.sample("phalanx_cache_stores_total", "", v.cache_stores);
  e.family("phalanx_cache_evictions_total", "counter",
           "Entries the level-1 caches evicted to stay within their memory.");
  e.sample("phalanx_cache_evictions_total", "", v.cache_evictions);
  e.family(
      "phalanx_cache_coalesced_total", "counter",
      "Misses that waited for another request's upstream answer instead of sending their own.");
  e.sample("phalanx_cache_coalesced_total", "", v.cache_coalesced);
  e.family("phalanx_cache_invalidations_total", "counter",
           "Entries removed after a successful unsafe request on their path.");
  e.sample("phalanx_cache_invalidations_total", "", v.cache_invalidations);
  e.family("phalanx_cache_level2_total", "counter",
           "Redis level lookups: hit or error (timeouts too).");
  e.sample("phalanx_cache_level2_total", label("result", "hit"), v.cache_l2_hits);
  e.sample("phalanx_cache_level2_total", label("result", "error"), v.cache_l2_errors);
  e.family("phalanx_cache_hit_bytes_total", "counter", "Body bytes answered from the cache.");
  e.sample("phalanx_cache_hit_bytes_total", "", v.cache_hit_bytes);
  e.family("phalanx_cache_bytes", "gauge", "Bytes held by the level-1 caches of live workers.");
  e.sample("phalanx_cache_bytes", "", v.cache_bytes);
  e.family("phalanx_cache_entries", "gauge", "Entries in the level-1 caches of live workers.");
  e.sample("phalanx_cache_entries", "", v.cache_entries);
  e.family("phalanx_redis_connected_workers", "gauge",
           "Workers whose Redis connection (limits, cache) is up or down.");
  e.sample("phalanx_redis_connected_workers", label("state", "up"), v.redis_up);
  e.sample("phalanx_redis_connected_workers", label("state", "down"), v.redis_down);
}

void writeAccess(JsonWriter& w, const AccessView& v) {
  w.beginObject();
  w.key("limits");
  w.beginArray();
  for (const LimitView& l : v.limits) {
    w.beginObject();
    w.field("name", l.name);
    w.field("allowed", l.allowed);
    w.field("limited", l.limited);
    w.field("unkeyed", l.unkeyed);
    w.field("redis_errors", l.redis_errors);
    w.key("fallback");
    w.beginObject();
    w.field("local", l.fallback_local);
    w.field("open", l.fallback_open);
    w.field("closed", l.fallback_closed);
    w.endObject();
    w.endObject();
  }
  w.endArray();
  w.key("table");
  w.beginObject();
  w.field("capacity", v.table_capacity);
  w.field("entries", v.table_occupancy);
  w.field("evictions", v.table_evictions);
  w.field("unrecorded", v.table_full);
  w.endObject();
  w.key("auth");
  w.beginObject();
  w.field("ok", v.auth_ok);
  w.key("failures");
  w.beginObject();
  for (uint32_t i = 0; i < kAuthFailureCount; ++i) {
    w.field(authFailureName(static_cast<AuthFailure>(i)), v.auth_failures[i]);
  }
  w.endObject();
  w.endObject();
  w.key("cache");
  w.beginObject();
  w.field("hits", v.cache_hits);
  w.field("misses", v.cache_misses);
  w.field("bypasses", v.cache_bypasses);
  w.field("stores", v.cache_stores);
  w.field("evictions", v.cache_evictions);
  w.field("coalesced", v.cache_coalesced);
  w.field("invalidations", v.cache_invalidations);
  w.field("level2_hits", v.cache_l2_hits);
  w.field("level2_errors", v.cache_l2_errors);
  w.field("hit_bytes", v.cache_hit_bytes);
  w.field("bytes", v.cache_bytes);
  w.field("entries", v.cache_entries);
  w.endObject();
  w.key("redis");
  w.beginObject();
  w.field("up", static_cast<uint64_t>(v.redis_up));
  w.field("down", static_cast<uint64_t>(v.redis_down));
  w.endObject();
  w.endObject();
}

void writeKeys(JsonWriter& w, const AccessView& v, size_t top) {
  w.beginObject();
  w.key("keys");
  w.beginArray();
  for (size_t i = 0; i < v.keys.size() && i < top; ++i) {
    const KeyView& k = v.keys[i];
    w.beginObject();
    w.field("id", k.id);
    w.field("tier", k.tier);
    w.field("requests", k.requests);
    w.field("refused", k.refused);
    w.field("last_seen_ms", k.last_seen_wall_ms);
    w.endObject();
  }
  w.endArray();
  w.field("tracked", static_cast<uint64_t>(v.keys.size()));
  w.field("untracked", v.keys_untracked);
  w.endObject();
}

}  // namespace phalanx::shared

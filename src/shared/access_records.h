// The access side's records in the shared-memory region (layout version 4):
// the host's rate-limit table, one counter record per limit, one usage record
// per API key or JWT subject, and one AccessInfo with the host's auth and
// cache counters and the cache purge request.
//
// Who writes what:
// - LimitRecord: the master provisions one per rate limit ("per_ip") and per
//   tier with a rate ("tier:free") at start and on every reload, before
//   spawning (provisionLimits); a name is never removed (a reload that drops a
//   limit leaves its record, so counters stay monotonic). Workers count into
//   them with fetch_add: every worker decides for every limit.
// - KeyUsageRecord: workers insert (a key seen for the first time) with a CAS
//   on `key` (0 → kClaimingKey), write id and tier, then publish the key with
//   release; a reader that meets kClaimingKey waits for the publish (a few
//   stores) or gives up and counts the request in keys_untracked. A full
//   table also counts there: usage is a view, never a reason to refuse.
// - AccessInfo counters: fetch_add from every worker. The purge request:
//   written by the master (prefix, then the sequence with release); each
//   worker empties its level-1 cache when it sees a newer sequence, and the one
//   that wins purge_claimed's CAS empties the Redis level too.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "shared/config.h"
#include "shared/rate_limit_table.h"
#include "shared/shm.h"

namespace phalanx::shared {

inline constexpr uint32_t kLimitRecords = 256;
inline constexpr uint32_t kKeyUsageRecords = 4096;
inline constexpr size_t kPurgePrefixBytes = 256;

// Why a request on a route with auth or an allow list was refused. Also the
// reason label of phalanx_auth_failures_total.
enum class AuthFailure : uint32_t {
  Missing = 0,    // no credentials: 401
  UnknownKey,     // an API key nobody issued: 401
  Malformed,      // a JWT that is not one: 401
  Algorithm,      // alg none, or not the key's: 401
  Signature,      // 401
  Expired,        // 401
  NotYetValid,    // 401
  Issuer,         // 401
  Audience,       // 401
  JwtUnknownKey,  // no key for the token's kid: 401
  NoTier,         // a token without the tier claim and no default_tier: 403
  Tier,           // a valid key whose tier may not use the route: 403
  Address,        // a peer outside the route's allow list: 403
  Count_,
};
inline constexpr uint32_t kAuthFailureCount = static_cast<uint32_t>(AuthFailure::Count_);
const char* authFailureName(AuthFailure failure);

struct alignas(64) LimitRecord {
  std::atomic<uint64_t> key;  // a hash of name; 0 = free; master
  char name[64];              // master, before `key` is published
  std::atomic<uint64_t> allowed;
  std::atomic<uint64_t> limited;          // 429s this limit decided
  std::atomic<uint64_t> redis_errors;     // cluster mode: Redis failed or timed out
  std::atomic<uint64_t> fallback_local;   // ... and shared memory decided instead
  std::atomic<uint64_t> fallback_open;    // ... and the request was let through
  std::atomic<uint64_t> fallback_closed;  // ... and the request was refused
  std::atomic<uint64_t> unkeyed;          // requests without the limit's key (no such header)
};

struct alignas(64) KeyUsageRecord {
  std::atomic<uint64_t> key;  // a hash of id; 0 = free; kClaimingKey while written
  char id[64];                // an API key's id or a JWT subject; never a key
  char tier[32];
  std::atomic<uint64_t> requests;
  std::atomic<uint64_t> refused;  // 429s and 403s for this key
  std::atomic<uint64_t> last_seen_wall_ms;
};

struct alignas(64) AccessInfo {
  RateLimitTableCounters table;
  std::atomic<uint64_t> keys_untracked;
  std::atomic<uint64_t> auth_ok;
  std::atomic<uint64_t> auth_failures[16];  // by AuthFailure
  std::atomic<uint64_t> cache_hits;
  std::atomic<uint64_t> cache_misses;
  std::atomic<uint64_t> cache_bypasses;
  std::atomic<uint64_t> cache_stores;
  std::atomic<uint64_t> cache_evictions;
  std::atomic<uint64_t> cache_coalesced;      // misses that waited for another's upstream request
  std::atomic<uint64_t> cache_invalidations;  // entries removed after an unsafe method
  std::atomic<uint64_t> cache_l2_hits;
  std::atomic<uint64_t> cache_l2_errors;  // level 2 lookups that failed or timed out
  std::atomic<uint64_t> cache_hit_bytes;  // body bytes served from the cache
  std::atomic<uint64_t> purge_sequence;   // master: the latest purge request
  std::atomic<uint64_t> purge_claimed;    // the request whose Redis purge a worker took
  std::atomic<int64_t> purge_l2_removed;  // its result: keys removed, -1 failed
  std::atomic<uint64_t> purge_l2_done;    // the request whose Redis purge is over (result set)
  char purge_prefix[kPurgePrefixBytes];   // master, before purge_sequence moves
};

static_assert(sizeof(AuthFailure) == 4 && kAuthFailureCount <= 16);
static_assert(sizeof(LimitRecord) == 128 && offsetof(LimitRecord, allowed) == 72,
              "LimitRecord layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(KeyUsageRecord) == 128 && offsetof(KeyUsageRecord, requests) == 104,
              "KeyUsageRecord layout changed: bump kShmLayoutVersion and update this assert");
static_assert(offsetof(AccessInfo, purge_prefix) == 280,
              "AccessInfo layout changed: bump kShmLayoutVersion and update this assert");
static_assert(std::is_standard_layout_v<LimitRecord> && std::is_standard_layout_v<KeyUsageRecord> &&
              std::is_standard_layout_v<AccessInfo>);

// The name of a tier's limit record: "tier:" + name.
std::string tierLimitName(std::string_view tier);

// Master only: a record for every rate limit and every tier with a rate in
// `config`. False with `error` set when the table would overflow.
bool provisionLimits(const SharedRegion& region, const Config& config, std::string* error);

// Any process: the record of that name, or nullptr.
LimitRecord* findLimit(const SharedRegion& region, std::string_view name);

// Workers: the usage record of `id` (inserted, with `tier`, when new), or
// nullptr when the table is full or the slot stayed claimed too long.
KeyUsageRecord* keyUsage(const SharedRegion& region, std::string_view id, std::string_view tier);

// Master: asks every worker to empty its cache of paths starting with
// `prefix` ("" = everything). Returns the request's sequence number.
uint64_t requestPurge(const SharedRegion& region, std::string_view prefix);

// The host's rate-limit table.
RateLimitTable rateLimitTable(const SharedRegion& region);

}  // namespace phalanx::shared

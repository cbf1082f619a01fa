#include "shared/access_records.h"

#include <cstring>
#include <thread>

#include "shared/stable_hash.h"

namespace phalanx::shared {

namespace {

constexpr uint64_t kClaimingKey = UINT64_MAX;
// How long a reader waits for another process to publish a usage record it
// claimed: the writer does a few stores, so this only runs out when that
// process died in between (then the slot stays claimed: one record lost).
constexpr int kPublishSpins = 1000;

// A limit's name or a key's id, hashed; 0 means free and kClaimingKey a
// record being written: neither is a key.
uint64_t recordKey(std::string_view text) {
  uint64_t h = stableHash(text);
  return h == 0 || h == kClaimingKey ? 1 : h;
}

void copyText(char* out, size_t capacity, std::string_view text) {
  size_t n = std::min(text.size(), capacity - 1);
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

}  // namespace

const char* authFailureName(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::Missing: return "missing";
    case AuthFailure::UnknownKey: return "unknown_key";
    case AuthFailure::Malformed: return "malformed";
    case AuthFailure::Algorithm: return "algorithm";
    case AuthFailure::Signature: return "signature";
    case AuthFailure::Expired: return "expired";
    case AuthFailure::NotYetValid: return "not_yet_valid";
    case AuthFailure::Issuer: return "issuer";
    case AuthFailure::Audience: return "audience";
    case AuthFailure::JwtUnknownKey: return "jwt_unknown_key";
    case AuthFailure::NoTier: return "no_tier";
    case AuthFailure::Tier: return "tier";
    case AuthFailure::Address: return "address";
    case AuthFailure::Count_: break;
  }
  return "unknown";
}

std::string tierLimitName(std::string_view tier) {
  return "tier:" + std::string(tier);
}

bool provisionLimits(const SharedRegion& region, const Config& config, std::string* error) {
  std::vector<std::string> names;
  for (const auto& [name, limit] : config.rate_limits) names.push_back(name);
  for (const auto& [name, tier] : config.tiers) {
    if (tier.limit.rate.count > 0) names.push_back(tierLimitName(name));
  }
  for (const std::string& name : names) {
    if (name.size() >= sizeof(LimitRecord::name)) {
      *error = "rate_limits: name \"" + name.substr(0, 64) + "...\" is over 63 bytes";
      return false;
    }
  }
  uint32_t free_records = 0;
  for (uint32_t i = 0; i < kLimitRecords; ++i) {
    if (region.limit(i).key.load(std::memory_order_relaxed) == 0) ++free_records;
  }
  uint32_t needed = 0;
  for (const std::string& name : names) needed += findLimit(region, name) == nullptr;
  if (needed > free_records) {
    *error = "rate_limits: " + std::to_string(needed) + " new limits, shared memory has room for " +
             std::to_string(free_records) + " more; restart phalanx to reset it";
    return false;
  }
  for (const std::string& name : names) {
    if (findLimit(region, name) != nullptr) continue;
    uint64_t key = recordKey(name);
    for (uint32_t step = 0; step < kLimitRecords; ++step) {
      LimitRecord& r = region.limit(static_cast<uint32_t>((key + step) % kLimitRecords));
      if (r.key.load(std::memory_order_relaxed) != 0) continue;
      copyText(r.name, sizeof r.name, name);
      r.key.store(key, std::memory_order_release);
      break;
    }
  }
  return true;
}

LimitRecord* findLimit(const SharedRegion& region, std::string_view name) {
  uint64_t key = recordKey(name);
  for (uint32_t step = 0; step < kLimitRecords; ++step) {
    LimitRecord& r = region.limit(static_cast<uint32_t>((key + step) % kLimitRecords));
    uint64_t k = r.key.load(std::memory_order_acquire);
    if (k == 0) return nullptr;
    if (k == key && name == r.name) return &r;
  }
  return nullptr;
}

KeyUsageRecord* keyUsage(const SharedRegion& region, std::string_view id, std::string_view tier) {
  uint64_t key = recordKey(id);
  // A bounded probe: a full neighbourhood means the table is (nearly) full.
  constexpr uint32_t kProbe = 64;
  for (uint32_t step = 0; step < kProbe; ++step) {
    KeyUsageRecord& r = region.keyUsage(static_cast<uint32_t>((key + step) % kKeyUsageRecords));
    uint64_t k = r.key.load(std::memory_order_acquire);
    for (int spin = 0; k == kClaimingKey && spin < kPublishSpins; ++spin) {
      std::this_thread::yield();
      k = r.key.load(std::memory_order_acquire);
    }
    if (k == kClaimingKey) return nullptr;
    if (k == key) return &r;
    if (k != 0) continue;
    uint64_t expected = 0;
    if (!r.key.compare_exchange_strong(expected, kClaimingKey, std::memory_order_acq_rel)) {
      --step;  // somebody took it meanwhile: look at it again
      continue;
    }
    copyText(r.id, sizeof r.id, id);
    copyText(r.tier, sizeof r.tier, tier);
    r.key.store(key, std::memory_order_release);
    return &r;
  }
  return nullptr;
}

uint64_t requestPurge(const SharedRegion& region, std::string_view prefix) {
  AccessInfo& info = region.access();
  copyText(info.purge_prefix, sizeof info.purge_prefix, prefix);
  return info.purge_sequence.fetch_add(1, std::memory_order_acq_rel) + 1;
}

RateLimitTable rateLimitTable(const SharedRegion& region) {
  return RateLimitTable(region.rateLimitEntries(), region.rateLimitCapacity(),
                        &region.access().table);
}

}  // namespace phalanx::shared

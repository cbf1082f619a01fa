#include "worker/gateway/cache_layer.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace phalanx::worker {

CacheLayer::CacheLayer(const shared::CacheSettings& settings, const shared::SharedRegion& region,
                       shared::WorkerCell& cell, RedisCacheStore* l2)
    : l1_(settings.memory_bytes),
      l2_(l2),
      region_(region),
      info_(region.access()),
      cell_(cell),
      max_entry_bytes_(settings.memory_bytes / 8) {
  // Requests made before this worker started are done already.
  purge_seen_ = info_.purge_sequence.load(std::memory_order_acquire);
  cell_.purge_seen.store(purge_seen_, std::memory_order_relaxed);
}

uint64_t CacheLayer::join(const std::string& key, std::function<void()> resume) {
  uint64_t id = next_waiter_++;
  if (coalescer_.join(key, id)) return 0;
  waiters_.emplace(id, std::move(resume));
  return id;
}

void CacheLayer::stopWaiting(const std::string& key, uint64_t id) {
  coalescer_.leave(key, id);
  waiters_.erase(id);
}

void CacheLayer::release(const std::string& key) {
  for (uint64_t id : coalescer_.release(key)) {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) continue;
    std::function<void()> resume = std::move(it->second);
    waiters_.erase(it);
    resume();
  }
}

void CacheLayer::checkPurge() {
  uint64_t sequence = info_.purge_sequence.load(std::memory_order_acquire);
  if (sequence == purge_seen_) return;
  purge_seen_ = sequence;
  char prefix_bytes[shared::kPurgePrefixBytes];
  std::memcpy(prefix_bytes, info_.purge_prefix, sizeof prefix_bytes);
  prefix_bytes[sizeof prefix_bytes - 1] = '\0';
  std::string prefix(prefix_bytes);
  size_t removed = l1_.purge(prefix);
  spdlog::info("cache purge {} \"{}\": {} entries", sequence, prefix, removed);
  publish();
  cell_.purge_seen.store(sequence, std::memory_order_release);
  uint64_t claimed = info_.purge_claimed.load(std::memory_order_acquire);
  if (l2_ == nullptr || claimed >= sequence ||
      !info_.purge_claimed.compare_exchange_strong(claimed, sequence, std::memory_order_acq_rel)) {
    return;
  }
  l2_->purge(prefix, [this, sequence](int64_t keys) {
    info_.purge_l2_removed.store(keys, std::memory_order_relaxed);
    info_.purge_l2_done.store(sequence, std::memory_order_release);
  });
}

void CacheLayer::publish() {
  ResponseCache::Stats stats = l1_.stats();
  cell_.cache_bytes.store(stats.bytes, std::memory_order_relaxed);
  cell_.cache_entries.store(stats.entries, std::memory_order_relaxed);
  if (stats.evictions > evictions_published_) {
    info_.cache_evictions.fetch_add(stats.evictions - evictions_published_,
                                    std::memory_order_relaxed);
    evictions_published_ = stats.evictions;
  }
  if (l2_ != nullptr && l2_->counters().failures > l2_failures_published_) {
    info_.cache_l2_errors.fetch_add(l2_->counters().failures - l2_failures_published_,
                                    std::memory_order_relaxed);
    l2_failures_published_ = l2_->counters().failures;
  }
}

std::string CacheLayer::l2Key(std::string_view host, std::string_view path,
                              std::string_view query) {
  std::string key = l2PathPrefix(host, path);
  key += query;
  return key;
}

std::string CacheLayer::l2PathPrefix(std::string_view host, std::string_view path) {
  std::string key(path);
  key += '\n';
  for (char c : host) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  key += '\n';
  return key;
}

}  // namespace phalanx::worker

// The worker's response cache: level 1 in memory (ResponseCache), level 2 in
// Redis when the config says so (RedisCacheStore), the coalescing of
// concurrent misses, and the host-wide purge requests from the control socket.
//
// Coalescing: the first miss for a key leads (goes upstream, stores what it
// gets); later misses for the key wait, registered here by an id, until the
// leader releases them: each then looks level 1 up again and goes upstream
// itself if it still misses (not storable, failed, another Vary variant).
// One upstream request per key per worker: workers do not wait for each other.
//
// Purge: the master writes a request (prefix, sequence) into shared memory;
// every worker empties its level 1 when it sees a newer sequence (on each
// cached lookup and on its heartbeat) and says so in its cell; the worker
// that wins the request's CAS empties the Redis level (SCAN + UNLINK) and
// publishes how many keys went.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "shared/access_records.h"
#include "shared/config.h"
#include "shared/shm.h"
#include "worker/gateway/request_coalescer.h"
#include "worker/gateway/response_cache.h"
#include "worker/redis/redis_cache_store.h"

namespace phalanx::worker {

class CacheLayer {
 public:
  // `l2` may be null (no Redis level).
  CacheLayer(const shared::CacheSettings& settings, const shared::SharedRegion& region,
             shared::WorkerCell& cell, RedisCacheStore* l2);

  ResponseCache& l1() { return l1_; }
  RedisCacheStore* l2() { return l2_; }
  RequestCoalescer& coalescer() { return coalescer_; }
  shared::AccessInfo& info() { return info_; }
  // The largest response body stored: an entry over a level 1's eighth is refused anyway.
  uint64_t maxEntryBytes() const { return max_entry_bytes_; }

  // A miss for `key`: 0 when the caller leads (it goes upstream and must
  // release() the key when done), else the id of its wait; `resume` runs when
  // the leader is done.
  uint64_t join(const std::string& key, std::function<void()> resume);
  void stopWaiting(const std::string& key, uint64_t id);
  // The leader of `key` is done (stored or not): every waiter resumes.
  void release(const std::string& key);

  // Carries out a purge request newer than the last one seen.
  void checkPurge();
  // Level 1's size and evictions into the worker's cell and the host's counters.
  void publish();

  // Level 2 keys lead with the path, so a purge by path prefix is one SCAN
  // pattern: path '\n' host '\n' query (neither part may hold a newline).
  static std::string l2Key(std::string_view host, std::string_view path, std::string_view query);
  static std::string l2PathPrefix(std::string_view host, std::string_view path);

 private:
  ResponseCache l1_;
  RedisCacheStore* l2_;
  RequestCoalescer coalescer_;
  const shared::SharedRegion& region_;
  shared::AccessInfo& info_;
  shared::WorkerCell& cell_;
  uint64_t max_entry_bytes_;
  uint64_t purge_seen_ = 0;
  uint64_t evictions_published_ = 0;
  uint64_t l2_failures_published_ = 0;
  uint64_t next_waiter_ = 1;
  std::unordered_map<uint64_t, std::function<void()>> waiters_;
};

}  // namespace phalanx::worker

// The response cache's shared level 2: opaque values (the integrator
// serializes a response) under `prefix + key`, in Redis, for every host.
//
// Contract:
// - Keys and values are arbitrary bytes (NUL included): they travel as
//   length-delimited arguments.
// - get() never blocks. Its callback runs exactly once, from the loop, within
//   the client's timeout_ms (as RedisClient::command(); after the client's
//   close() it runs at once, from inside get()). It gets the value, or nullopt
//   on a miss or on any failure: a slow or absent Redis is a miss.
// - set() and remove() are fire and forget: nothing reports, nothing waits;
//   with Redis down they are lost (and counted, for set()).
// - purge() walks the keyspace with SCAN (never KEYS, which blocks the server):
//   `SCAN cursor MATCH <glob-escaped prefix + key_prefix>* COUNT 500`, then one
//   UNLINK per non-empty batch, until the cursor is back to 0. Each step is
//   bounded by timeout_ms, the whole walk is not: it takes about
//   (keys in the database / 500) round trips. It reports the number of keys
//   UNLINK removed, or -1 if a step failed or was refused (keys of the batches
//   done before are gone). Keys written while it runs may survive it. On a
//   Redis Cluster it sees only the node the client is connected to.
// - The RedisClient must outlive the store, and the store must outlive the
//   client's use of it (its callbacks reach the store): close the client
//   before destroying the store. close() fails a purge under way (-1).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "worker/redis/redis_client.h"

namespace phalanx::worker {

class RedisCacheStore {
 public:
  // Figures for /metrics, each only ever growing.
  struct Counters {
    uint64_t hits = 0;
    uint64_t misses = 0;          // Redis answered: no such key
    uint64_t failures = 0;        // get() without an answer or with an error (also a miss)
    uint64_t stores = 0;          // set() calls sent
    uint64_t store_failures = 0;  // of which Redis did not store
  };

  explicit RedisCacheStore(RedisClient& client, std::string prefix = "phalanx:cache:");
  RedisCacheStore(const RedisCacheStore&) = delete;
  RedisCacheStore& operator=(const RedisCacheStore&) = delete;

  void get(std::string_view key, std::function<void(std::optional<std::string>)> done);
  // SET prefix+key value PX ttl_ms. A ttl_ms of 0 stores nothing.
  void set(std::string_view key, std::string value, uint64_t ttl_ms);
  // Deletes every key starting with prefix + key_prefix, as purge() without a report.
  void remove(std::string_view key_prefix);
  void purge(std::string_view key_prefix, std::function<void(int64_t removed)> done);

  const std::string& prefix() const { return prefix_; }
  const Counters& counters() const { return counters_; }

 private:
  RedisClient& client_;
  std::string prefix_;
  Counters counters_;
};

// `text` with Redis's glob metacharacters (* ? [ ] \) escaped by a backslash,
// so that it matches itself only in a MATCH pattern.
std::string escapeRedisGlob(std::string_view text);

}  // namespace phalanx::worker

// Request coalescing: one upstream request per cache key per worker.
//
// What: the first miss for a key leads (it goes upstream); later misses for
// the same key join as waiters instead of sending the same request again.
// When the leader is done, stored or not, release() hands back its waiters in
// arrival order and forgets the key.
//
// Why: a popular entry that expires, or a cold cache after a deploy, would
// otherwise send every concurrent request for it upstream at once (a
// thundering herd, or "cache stampede"); nginx's proxy_cache_lock and
// Varnish's request coalescing do the same.
//
// Plain bookkeeping with no I/O and no clock: the integrator maps Waiter ids
// to its exchanges, and owns what this class does not decide:
// - after release(), each waiter looks the cache up again; one that misses
//   (the response was not cacheable, failed, or its Vary values differ) goes
//   upstream itself without joining again, so an uncacheable resource is not
//   fetched one request at a time;
// - a waiter that waits too long, or whose client leaves, calls leave() (and,
//   after a timeout, goes upstream itself);
// - a leader whose client leaves keeps its upstream request going for the
//   waiters (and the cache), or calls release() and dispatches the waiters
//   itself; either way every join() that returned true gets one release().
// Not thread-safe: one per worker loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace phalanx::worker {

class RequestCoalescer {
 public:
  using Waiter = uint64_t;  // an id the integrator maps to an exchange

  // True: no request for `key` is in flight, the caller now leads (the leader
  // is not a waiter: `waiter` is not queued). False: `waiter` is queued behind
  // the leader. A waiter joins once per key.
  bool join(const std::string& key, Waiter waiter);

  // The leader of `key` is done: its waiters, in the order they joined, and
  // the key is forgotten (the next join leads). Empty for a key not in flight.
  std::vector<Waiter> release(const std::string& key);

  // `waiter` stops waiting for `key`; nothing when it is not queued there.
  // The leader stays in flight even with no waiter left.
  void leave(const std::string& key, Waiter waiter);

  // Keys with a leader.
  size_t inFlight() const;

 private:
  std::unordered_map<std::string, std::vector<Waiter>> waiters_;
};

}  // namespace phalanx::worker

// The response cache's first level: one per worker, in memory, least recently
// used entries evicted to stay within a byte budget.
//
// Key: host '\0' path '\0' query (cacheKey()), the same for every method, so a
// HEAD is answered from a GET's entry and an unsafe method on the path can
// invalidate it (RFC 9111 4.4). Under one key live the Vary variants of the
// response (RFC 9111 4.1): each remembers the request's values of the header
// fields its Vary named, and a lookup takes the newest variant whose values
// equal the new request's (exactly; an absent field is ""). At most
// kMaxVariants per key, so a client cannot make a lookup scan thousands of
// them (storing one more evicts the key's oldest).
//
// Bytes: an entry costs its key, head, body and Vary strings plus
// kEntryOverhead (the list node, the shared_ptr's block, its share of the
// index). An entry above max_bytes / 8 is refused, so one response cannot
// empty the cache.
//
// Freshness: an entry is fresh while now_ms < expires_ms. A stale entry is
// never served (phalanx does not revalidate): find() drops the stale variants
// it meets, counted as expired, not evicted.
//
// Units: monotonic milliseconds passed in as now_ms; nothing here reads a clock.
// Not thread-safe: one per worker loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phalanx::worker {

struct CachedResponse {
  int status = 200;
  // The upstream's fields to replay, "Name: value\r\n" each, in order. Left
  // out (isReplayedField() says which), because the integrator renders them
  // per answer or they concern one connection or one client:
  // - Date, Age, X-Cache, Content-Length, Connection, X-Request-Id: rendered
  //   with the status line for each answer;
  // - Transfer-Encoding and the other hop-by-hop fields (and, as for
  //   forwarding, every field the upstream's Connection names): the body is
  //   replayed whole with a Content-Length;
  // - Set-Cookie: a cookie set for the client whose request filled the entry
  //   must never reach another client (only public responses with Set-Cookie
  //   are stored at all, see storeTtlMs).
  std::string head;
  std::string body;
  uint64_t stored_ms = 0;       // monotonic: when stored
  uint64_t expires_ms = 0;      // monotonic: stale from then on
  uint64_t age_at_store_s = 0;  // the upstream's Age header when stored
  // The fields the response's Vary named, lower-case, each with the value the
  // request that filled the entry sent ("" when absent), in Vary's order.
  std::vector<std::pair<std::string, std::string>> vary;
};

// False for the fields a CachedResponse's head leaves out (the list above,
// except those a Connection header names, which the caller knows);
// case-insensitive.
bool isReplayedField(std::string_view name);

// host (lower-cased) '\0' path '\0' query. Neither part may hold a NUL (the
// request parser refuses them).
std::string cacheKey(std::string_view host, std::string_view path, std::string_view query);

class ResponseCache {
 public:
  static constexpr uint64_t kEntryOverhead = 192;
  static constexpr size_t kMaxVariants = 8;

  explicit ResponseCache(uint64_t max_bytes);

  // The newest fresh variant of `key` whose Vary values match, or nullptr (a
  // miss). `request_header(name)` gives the request's value of the lower-case
  // field `name`, "" when absent. A hit becomes the most recently used. The
  // shared_ptr keeps the entry alive while an answer is written from it, even
  // if it is evicted or invalidated meanwhile.
  std::shared_ptr<const CachedResponse> find(
      std::string_view key, const std::function<std::string_view(std::string_view)>& request_header,
      uint64_t now_ms);

  // Stores `response` under `key` as the most recently used entry, replacing
  // the variant with the same Vary fields and values; then evicts the least
  // recently used entries until the total fits max_bytes. False, and nothing
  // changed, when the entry alone costs more than max_bytes / 8.
  bool store(std::string key, CachedResponse response);

  // Removes every entry of host + path, whatever its query and variant (RFC
  // 9111 4.4: after an unsafe method succeeded). O(log n + k). Returns how
  // many entries went.
  size_t invalidatePath(std::string_view host, std::string_view path);

  // Removes every entry whose path starts with `path_prefix`, on any host;
  // "" removes everything (`phalanxctl cache purge PREFIX`). O(h log n + k)
  // for h hosts. Returns how many entries went.
  size_t purge(std::string_view path_prefix);

  struct Stats {
    uint64_t entries;    // variants stored now
    uint64_t bytes;      // what they cost, as counted above
    uint64_t evictions;  // ever: removed to make room (LRU, or a key's oldest variant)
    uint64_t expired;    // ever: stale entries dropped by find()
  };
  Stats stats() const;

 private:
  struct Entry;
  using Lru = std::list<Entry>;
  // Variants of one key, newest first.
  using Index = std::map<std::string, std::vector<Lru::iterator>, std::less<>>;
  struct Entry {
    Index::iterator slot;
    std::shared_ptr<const CachedResponse> response;
    uint64_t bytes;
  };

  // Unlinks one entry from its key's variants (and the key when it was the
  // last) and from the LRU list.
  void remove(Lru::iterator entry);
  // Removes every variant in [first, last) of the index.
  size_t removeRange(Index::iterator first, Index::iterator last);

  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  uint64_t evictions_ = 0;
  uint64_t expired_ = 0;
  Lru lru_;  // most recently used first
  Index index_;
};

// The bytes of a CachedResponse for the cache's shared level (Redis):
// versioned and length-prefixed. It holds the remaining lifetime and the age
// at now_ms, not this host's monotonic instants.
std::string serializeCachedResponse(const CachedResponse& response, uint64_t now_ms);

// Reads serializeCachedResponse()'s bytes at now_ms (stored_ms = now_ms,
// expires_ms = now_ms + the lifetime left). nullopt for anything else: another
// version, truncated or trailing bytes, a status outside 100..999, a head that
// is not "Name: value\r\n" lines, a Vary name not a lower-case token, and a
// response with no lifetime left (it could not be served anyway).
std::optional<CachedResponse> parseCachedResponse(std::string_view bytes, uint64_t now_ms);

// The Age field's value at now_ms (RFC 9111 5.1): age_at_store_s plus the
// whole seconds since stored_ms; saturating.
uint64_t ageSeconds(const CachedResponse& response, uint64_t now_ms);

}  // namespace phalanx::worker

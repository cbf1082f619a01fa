#include "worker/gateway/response_cache.h"

#include <algorithm>
#include <array>
#include <limits>

#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

uint64_t entryBytes(std::string_view key, const CachedResponse& r) {
  uint64_t bytes = ResponseCache::kEntryOverhead + key.size() + r.head.size() + r.body.size();
  for (const auto& [name, value] : r.vary) bytes += name.size() + value.size();
  return bytes;
}

bool varyMatches(const CachedResponse& r,
                 const std::function<std::string_view(std::string_view)>& request_header) {
  for (const auto& [name, value] : r.vary) {
    if (request_header(name) != value) return false;
  }
  return true;
}

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

void appendLower(std::string& out, std::string_view text) {
  for (char c : text) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

}  // namespace

bool isReplayedField(std::string_view name) {
  static constexpr std::array<std::string_view, 13> kLeftOut = {
      // rendered per answer
      "date", "age", "x-cache", "content-length", "connection", "x-request-id",
      // hop-by-hop
      "transfer-encoding", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
      // one client's
      "set-cookie"};
  for (std::string_view out : kLeftOut) {
    if (equalsLowercase(name, out)) return false;
  }
  return true;
}

std::string cacheKey(std::string_view host, std::string_view path, std::string_view query) {
  std::string key;
  key.reserve(host.size() + path.size() + query.size() + 2);
  appendLower(key, host);
  key += '\0';
  key += path;
  key += '\0';
  key += query;
  return key;
}

ResponseCache::ResponseCache(uint64_t max_bytes) : max_bytes_(max_bytes) {}

std::shared_ptr<const CachedResponse> ResponseCache::find(
    std::string_view key, const std::function<std::string_view(std::string_view)>& request_header,
    uint64_t now_ms) {
  auto slot = index_.find(key);
  if (slot == index_.end()) return nullptr;
  // Stale variants are removed after the scan: removing the last one erases
  // the slot being scanned.
  std::vector<Lru::iterator> stale;
  Lru::iterator hit = lru_.end();
  for (Lru::iterator entry : slot->second) {
    if (now_ms >= entry->response->expires_ms) {
      stale.push_back(entry);
    } else if (hit == lru_.end() && varyMatches(*entry->response, request_header)) {
      hit = entry;
    }
  }
  for (Lru::iterator entry : stale) remove(entry);
  expired_ += stale.size();
  if (hit == lru_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, hit);
  return hit->response;
}

bool ResponseCache::store(std::string key, CachedResponse response) {
  uint64_t bytes = entryBytes(key, response);
  if (bytes > max_bytes_ / 8) return false;
  auto slot = index_.try_emplace(std::move(key)).first;
  std::vector<Lru::iterator>& variants = slot->second;
  auto same = std::find_if(variants.begin(), variants.end(), [&](Lru::iterator entry) {
    return entry->response->vary == response.vary;
  });
  auto shared = std::make_shared<const CachedResponse>(std::move(response));
  if (same != variants.end()) {
    // The replaced variant's entry is reused: newest first in both orders.
    Lru::iterator entry = *same;
    variants.erase(same);
    bytes_ -= entry->bytes;
    entry->response = std::move(shared);
    entry->bytes = bytes;
    lru_.splice(lru_.begin(), lru_, entry);
  } else {
    // kMaxVariants > 1, so the slot survives its oldest variant's removal.
    if (variants.size() >= kMaxVariants) {
      remove(variants.back());
      ++evictions_;
    }
    lru_.push_front(Entry{slot, std::move(shared), bytes});
  }
  variants.insert(variants.begin(), lru_.begin());
  bytes_ += bytes;
  // The new entry is at the front and costs at most max_bytes / 8: the loop
  // stops before it.
  while (bytes_ > max_bytes_) {
    remove(std::prev(lru_.end()));
    ++evictions_;
  }
  return true;
}

size_t ResponseCache::invalidatePath(std::string_view host, std::string_view path) {
  // Every key of host + path lies in [host\0path\0, host\0path\1).
  std::string from = cacheKey(host, path, "");
  std::string to = from;
  to.back() = '\1';
  return removeRange(index_.lower_bound(from), index_.lower_bound(to));
}

size_t ResponseCache::purge(std::string_view path_prefix) {
  if (path_prefix.empty()) {
    size_t count = lru_.size();
    index_.clear();
    lru_.clear();
    bytes_ = 0;
    return count;
  }
  // A NUL would reach past the path into the query.
  if (path_prefix.find('\0') != std::string_view::npos) return 0;
  size_t count = 0;
  auto slot = index_.begin();
  while (slot != index_.end()) {
    std::string host = slot->first.substr(0, slot->first.find('\0'));
    std::string from = host + '\0';
    from += path_prefix;
    auto first = index_.lower_bound(from);
    auto last = first;
    while (last != index_.end() && startsWith(last->first, from)) ++last;
    count += removeRange(first, last);
    // The next host's keys start after host\1 (no host holds a byte below 1).
    slot = index_.lower_bound(host + '\1');
  }
  return count;
}

ResponseCache::Stats ResponseCache::stats() const {
  return Stats{
      .entries = lru_.size(), .bytes = bytes_, .evictions = evictions_, .expired = expired_};
}

void ResponseCache::remove(Lru::iterator entry) {
  Index::iterator slot = entry->slot;
  std::vector<Lru::iterator>& variants = slot->second;
  variants.erase(std::find(variants.begin(), variants.end(), entry));
  if (variants.empty()) index_.erase(slot);
  bytes_ -= entry->bytes;
  lru_.erase(entry);
}

size_t ResponseCache::removeRange(Index::iterator first, Index::iterator last) {
  size_t count = 0;
  for (auto slot = first; slot != last; ++slot) {
    for (Lru::iterator entry : slot->second) {
      bytes_ -= entry->bytes;
      lru_.erase(entry);
      ++count;
    }
  }
  index_.erase(first, last);
  return count;
}

uint64_t ageSeconds(const CachedResponse& response, uint64_t now_ms) {
  uint64_t since = now_ms > response.stored_ms ? (now_ms - response.stored_ms) / 1000 : 0;
  return response.age_at_store_s > kU64Max - since ? kU64Max : response.age_at_store_s + since;
}

}  // namespace phalanx::worker

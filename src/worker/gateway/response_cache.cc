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

// The shared level's format, version 1, integers little-endian:
//   "PHXC" 0x01 | status u16 | ttl_ms u64 | age_s u64 | head u32 len + bytes
//   | body u64 len + bytes | vary count u32 | count × (name u32 len + bytes,
//   value u32 len + bytes)
// and nothing after. One response has one encoding, so parse and serialize
// give the same bytes back (the fuzz harness holds them to it).
constexpr std::string_view kMagic = "PHXC\x01";

template <typename T>
void put(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

void putString32(std::string& out, std::string_view text) {
  put<uint32_t>(out, static_cast<uint32_t>(text.size()));
  out += text;
}

// Reads what put() wrote; any read past the end fails it for good.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  bool ok() const { return ok_; }
  bool atEnd() const { return ok_ && bytes_.empty(); }

  template <typename T>
  T get() {
    if (!ok_ || bytes_.size() < sizeof(T)) return fail<T>();
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      value |= static_cast<T>(static_cast<T>(static_cast<unsigned char>(bytes_[i])) << (8 * i));
    bytes_.remove_prefix(sizeof(T));
    return value;
  }

  std::string_view take(uint64_t size) {
    if (!ok_ || bytes_.size() < size) return fail<std::string_view>();
    std::string_view out = bytes_.substr(0, size);
    bytes_.remove_prefix(size);
    return out;
  }

 private:
  template <typename T>
  T fail() {
    ok_ = false;
    bytes_ = {};
    return T{};
  }

  std::string_view bytes_;
  bool ok_ = true;
};

bool isTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "Name: value\r\n" lines: a token, a colon, a value with no CR, LF or NUL.
// What the integrator replays into a response must not split it.
bool isWellFormedHead(std::string_view head) {
  while (!head.empty()) {
    size_t end = head.find("\r\n");
    if (end == std::string_view::npos) return false;
    std::string_view line = head.substr(0, end);
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    for (size_t i = 0; i < colon; ++i) {
      if (!isTokenChar(line[i])) return false;
    }
    for (size_t i = colon + 1; i < line.size(); ++i) {
      if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0') return false;
    }
    head.remove_prefix(end + 2);
  }
  return true;
}

bool isLowercaseToken(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!isTokenChar(c) || (c >= 'A' && c <= 'Z')) return false;
  }
  return true;
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

std::string serializeCachedResponse(const CachedResponse& response, uint64_t now_ms) {
  std::string out;
  out.reserve(kMagic.size() + 34 + response.head.size() + response.body.size());
  out += kMagic;
  put<uint16_t>(out, static_cast<uint16_t>(response.status));
  put<uint64_t>(out, response.expires_ms > now_ms ? response.expires_ms - now_ms : 0);
  put<uint64_t>(out, ageSeconds(response, now_ms));
  putString32(out, response.head);
  put<uint64_t>(out, response.body.size());
  out += response.body;
  put<uint32_t>(out, static_cast<uint32_t>(response.vary.size()));
  for (const auto& [name, value] : response.vary) {
    putString32(out, name);
    putString32(out, value);
  }
  return out;
}

std::optional<CachedResponse> parseCachedResponse(std::string_view bytes, uint64_t now_ms) {
  if (!startsWith(bytes, kMagic)) return std::nullopt;
  Reader in(bytes.substr(kMagic.size()));
  CachedResponse r;
  r.status = in.get<uint16_t>();
  uint64_t ttl_ms = in.get<uint64_t>();
  r.age_at_store_s = in.get<uint64_t>();
  r.head = in.take(in.get<uint32_t>());
  r.body = in.take(in.get<uint64_t>());
  uint32_t count = in.get<uint32_t>();
  // No reserve(count): the count is not trusted, every pair is read first.
  for (uint32_t i = 0; i < count && in.ok(); ++i) {
    std::string_view name = in.take(in.get<uint32_t>());
    std::string_view value = in.take(in.get<uint32_t>());
    if (!isLowercaseToken(name)) return std::nullopt;
    r.vary.emplace_back(name, value);
  }
  if (!in.atEnd()) return std::nullopt;
  if (r.status < 100 || r.status > 999 || !isWellFormedHead(r.head)) return std::nullopt;
  if (ttl_ms == 0 || ttl_ms > kU64Max - now_ms) return std::nullopt;
  r.stored_ms = now_ms;
  r.expires_ms = now_ms + ttl_ms;
  return r;
}

uint64_t ageSeconds(const CachedResponse& response, uint64_t now_ms) {
  uint64_t since = now_ms > response.stored_ms ? (now_ms - response.stored_ms) / 1000 : 0;
  return response.age_at_store_s > kU64Max - since ? kU64Max : response.age_at_store_s + since;
}

}  // namespace phalanx::worker

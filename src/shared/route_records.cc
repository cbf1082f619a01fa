#include "shared/route_records.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "shared/stable_hash.h"

namespace phalanx::shared {

namespace {

uint64_t recordKey(std::string_view name) {
  uint64_t h = stableHash(name);
  return h == 0 || h == UINT64_MAX ? 1 : h;
}

// kTrackedCodes' positions by status, built once: the hot path indexes, never searches.
constexpr std::array<uint8_t, 600> kCodeIndex = [] {
  std::array<uint8_t, 600> table{};
  for (size_t status = 0; status < table.size(); ++status) {
    size_t cls = status / 100;
    table[status] = static_cast<uint8_t>(std::size(kTrackedCodes) + (cls >= 1 ? cls - 1 : 4));
  }
  for (size_t i = 0; i < std::size(kTrackedCodes); ++i) {
    table[kTrackedCodes[i]] = static_cast<uint8_t>(i);
  }
  return table;
}();

// Keeps at most N * 8 - 1 bytes, each outside printable ASCII as '?': a cut
// never splits a UTF-8 sequence, so the JSON and tables that show it stay valid.
template <size_t N>
void storeText(std::atomic<uint64_t> (&words)[N], std::string_view text) {
  char bytes[N * 8] = {};
  size_t n = std::min(text.size(), sizeof bytes - 1);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    bytes[i] = c < 0x20 || c >= 0x7f ? '?' : static_cast<char>(c);
  }
  for (size_t i = 0; i < N; ++i) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + i * 8, 8);
    words[i].store(word, std::memory_order_relaxed);
  }
}

template <size_t N>
std::string loadText(const std::atomic<uint64_t> (&words)[N]) {
  char bytes[N * 8 + 1] = {};
  for (size_t i = 0; i < N; ++i) {
    uint64_t word = words[i].load(std::memory_order_relaxed);
    std::memcpy(bytes + i * 8, &word, 8);
  }
  return std::string(bytes, strnlen(bytes, N * 8));
}

RouteRecord* findRecord(const SharedRegion& region, std::string_view name, uint32_t* index) {
  uint64_t key = recordKey(name);
  for (uint32_t step = 0; step < kRouteRecords; ++step) {
    uint32_t i = static_cast<uint32_t>((key + step) % kRouteRecords);
    RouteRecord& r = region.route(i);
    uint64_t k = r.key.load(std::memory_order_acquire);
    if (k == 0) return nullptr;
    if (k == key && name == r.name) {
      *index = i;
      return &r;
    }
  }
  return nullptr;
}

bool insertRecord(const SharedRegion& region, std::string_view name) {
  uint64_t key = recordKey(name);
  for (uint32_t step = 0; step < kRouteRecords; ++step) {
    RouteRecord& r = region.route(static_cast<uint32_t>((key + step) % kRouteRecords));
    if (r.key.load(std::memory_order_relaxed) != 0) continue;
    size_t n = std::min(name.size(), sizeof r.name - 1);
    std::memcpy(r.name, name.data(), n);
    r.name[n] = '\0';
    r.key.store(key, std::memory_order_release);
    return true;
  }
  return false;
}

}  // namespace

size_t routeCodeIndex(int status) {
  if (status < 100 || status >= 600) return std::size(kTrackedCodes) + 4;  // as a 5xx
  return kCodeIndex[static_cast<size_t>(status)];
}

std::string routeCodeLabel(size_t index) {
  if (index < std::size(kTrackedCodes)) return std::to_string(kTrackedCodes[index]);
  return std::to_string(index - std::size(kTrackedCodes) + 1) + "xx";
}

std::string routeName(const RouteConfig& route) {
  // Records hold 63 bytes of name: a longer path is cut there, the same way
  // by the master that provisions and the worker that looks it up.
  return route.name.empty() ? route.path.substr(0, 63) : route.name;
}

bool provisionRoutes(const SharedRegion& region, const Config& config, std::string* error) {
  std::vector<std::string> names;
  for (const RouteConfig& route : config.routes) {
    std::string name = routeName(route);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  // Record 0 is kUnmatchedRoute's, taken first so that no name lands there.
  RouteRecord& unmatched = region.route(kUnmatchedRoute);
  if (unmatched.key.load(std::memory_order_relaxed) == 0) {
    std::strcpy(unmatched.name, kUnmatchedRouteName);
    // Never found by name (its key is no name's hash), only by index.
    unmatched.key.store(UINT64_MAX, std::memory_order_release);
  }
  uint32_t index = 0;
  uint32_t needed = 0;
  for (const std::string& name : names) needed += findRecord(region, name, &index) == nullptr;
  uint32_t free_records = 0;
  for (uint32_t i = 0; i < kRouteRecords; ++i) {
    free_records += region.route(i).key.load(std::memory_order_relaxed) == 0;
  }
  if (needed > free_records) {
    *error = "routes: " + std::to_string(needed) + " new route names, shared memory has room for " +
             std::to_string(free_records) + " more; restart phalanx to reset it";
    return false;
  }
  for (const std::string& name : names) {
    if (findRecord(region, name, &index) == nullptr && !insertRecord(region, name)) {
      *error = "routes: no room left for \"" + name + "\"";
      return false;
    }
  }
  return true;
}

void noteSlotUsed(const SharedRegion& region, uint32_t slot) {
  std::atomic<uint32_t>& used = region.routeInfo().slots_used;
  if (used.load(std::memory_order_relaxed) <= slot) used.store(slot + 1, std::memory_order_release);
}

uint32_t findRoute(const SharedRegion& region, std::string_view name) {
  uint32_t index = kUnmatchedRoute;
  return findRecord(region, name, &index) != nullptr ? index : kUnmatchedRoute;
}

void countRoute(RouteCounters& c, size_t method, int status, uint64_t elapsed_us) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  c.methods[method < kRouteMethods ? method : kRouteMethods - 1].fetch_add(1, kRelaxed);
  c.codes[routeCodeIndex(status)].fetch_add(1, kRelaxed);
  c.latency_buckets[latencyBucket(elapsed_us)].fetch_add(1, kRelaxed);
  c.latency_sum_us.fetch_add(elapsed_us, kRelaxed);
}

void recordError(const SharedRegion& region, const ErrorFacts& f) {
  uint64_t n = region.routeInfo().errors_written.fetch_add(1, std::memory_order_relaxed);
  ErrorEntry& e = region.errorEntry(static_cast<uint32_t>(n % kErrorRing));
  e.sequence.store(2 * n + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  e.at_ms.store(f.at_ms, std::memory_order_relaxed);
  e.status.store(static_cast<uint32_t>(f.status), std::memory_order_relaxed);
  e.route.store(f.route, std::memory_order_relaxed);
  storeText(e.method, f.method);
  storeText(e.path, f.path);
  storeText(e.client, f.client);
  storeText(e.request_id, f.request_id);
  storeText(e.upstream, f.upstream);
  e.sequence.store(2 * n + 2, std::memory_order_release);
}

std::vector<RouteView> takeRouteViews(const SharedRegion& region) {
  std::vector<RouteView> views;
  uint32_t slots = std::min(region.routeInfo().slots_used.load(std::memory_order_acquire),
                            region.slotCapacity());
  for (uint32_t i = 0; i < kRouteRecords; ++i) {
    const RouteRecord& r = region.route(i);
    if (r.key.load(std::memory_order_acquire) == 0) continue;
    RouteView v;
    v.name = r.name;
    for (uint32_t slot = 0; slot < slots; ++slot) {
      const RouteCounters& c = region.routeCounters(slot, i);
      auto add = [](uint64_t& to, const std::atomic<uint64_t>& from) {
        to += from.load(std::memory_order_relaxed);
      };
      for (size_t m = 0; m < kRouteMethods; ++m) add(v.methods[m], c.methods[m]);
      for (size_t k = 0; k < kRouteCodes; ++k) add(v.codes[k], c.codes[k]);
      for (size_t b = 0; b < kLatencyBuckets; ++b) add(v.latency_buckets[b], c.latency_buckets[b]);
      add(v.latency_sum_us, c.latency_sum_us);
    }
    for (uint64_t count : v.methods) v.requests += count;
    // The unmatched record only once something fell to it.
    if (i == kUnmatchedRoute && v.requests == 0) continue;
    views.push_back(std::move(v));
  }
  std::sort(views.begin(), views.end(), [](const RouteView& a, const RouteView& b) {
    return a.requests != b.requests ? a.requests > b.requests : a.name < b.name;
  });
  return views;
}

std::vector<ErrorView> takeErrors(const SharedRegion& region, uint32_t max) {
  std::vector<ErrorView> errors;
  max = std::min(max, kRecentErrors);
  uint64_t written = region.routeInfo().errors_written.load(std::memory_order_acquire);
  for (uint64_t n = written; n > 0 && errors.size() < max && written - n < kRecentErrors; --n) {
    const ErrorEntry& e = region.errorEntry(static_cast<uint32_t>((n - 1) % kErrorRing));
    uint64_t published = 2 * (n - 1) + 2;
    if (e.sequence.load(std::memory_order_acquire) != published) continue;
    ErrorView v;
    v.at_ms = e.at_ms.load(std::memory_order_relaxed);
    v.status = static_cast<int>(e.status.load(std::memory_order_relaxed));
    uint32_t route = e.route.load(std::memory_order_relaxed);
    v.method = loadText(e.method);
    v.path = loadText(e.path);
    v.client = loadText(e.client);
    v.request_id = loadText(e.request_id);
    v.upstream = loadText(e.upstream);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.sequence.load(std::memory_order_relaxed) != published) continue;
    v.route = route < kRouteRecords ? region.route(route).name : "";
    errors.push_back(std::move(v));
  }
  return errors;
}

}  // namespace phalanx::shared

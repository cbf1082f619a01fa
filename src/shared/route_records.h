// Per-route figures and the recent errors, in the shared-memory region (layout
// version 5). Routes are named by the config (a route's "name", else its
// path), so the set of names, and so of metric labels, is bounded.
//
// Who writes what:
// - RouteRecord: the master provisions one per route name at start and on
//   every reload, before spawning (provisionRoutes); a name is never removed,
//   so a route that leaves and comes back keeps counting from where it was.
//   Record 0 is kUnmatchedRoute: requests no route took (404s, malformed).
// - RouteCounters: one per (slot, record). The worker of a slot adds with
//   fetch_add: a reload or a memory replacement runs two processes of one slot
//   for a while, and per slot (not per process) the counters need no folding
//   when a process exits. Both processes rarely count at the same moment, so
//   the adds stay uncontended; no cache line is shared between slots.
// - ErrorEntry ring: every worker writes. A writer takes a sequence number n
//   with fetch_add on RouteInfo::errors_written, marks entry n % kErrorRing
//   odd (2n+1), writes it whole, then publishes 2n+2 with release (a seqlock
//   per entry). A reader keeps an entry only if it read 2n+2 before and after
//   copying it; one being written or overwritten is skipped.
// Text fields of the ring are atomic words (8 bytes each), so that readers
// racing a writer read torn text at worst, which the sequence check drops.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "shared/config.h"
#include "shared/histogram.h"
#include "shared/shm.h"

namespace phalanx::shared {

inline constexpr uint32_t kRouteRecords = 128;
inline constexpr uint32_t kUnmatchedRoute = 0;
inline constexpr const char* kUnmatchedRouteName = "(none)";
inline constexpr uint32_t kErrorRing = 128;
inline constexpr uint32_t kRecentErrors = 100;  // what status and `errors` show at most

// Methods counted by name; the rest as "other". Index order = label order.
inline constexpr const char* kRouteMethodNames[] = {"GET",    "HEAD",  "POST",    "PUT",
                                                    "DELETE", "PATCH", "OPTIONS", "other"};
inline constexpr size_t kRouteMethods = std::size(kRouteMethodNames);

// Status codes counted one by one; any other is counted by its class ("2xx").
inline constexpr uint16_t kTrackedCodes[] = {200, 201, 202, 204, 206, 301, 302, 304, 307, 308,
                                             400, 401, 403, 404, 405, 408, 409, 413, 414, 415,
                                             422, 429, 431, 500, 501, 502, 503, 504};
inline constexpr size_t kRouteCodes = std::size(kTrackedCodes) + 5;  // + 1xx..5xx

// The counter index of `status`: a tracked code's own, else its class's.
size_t routeCodeIndex(int status);
// The label of counter index i: "200" or "2xx".
std::string routeCodeLabel(size_t index);

struct alignas(64) RouteInfo {
  std::atomic<uint64_t> errors_written;  // entries ever written to the ring
  std::atomic<uint32_t> slots_used;      // master: highest slot ever spawned + 1
  std::atomic<uint32_t> reserved;
};

struct alignas(64) RouteRecord {
  std::atomic<uint64_t> key;  // a hash of name; 0 = free; master
  char name[64];              // master, before `key` is published
};

struct alignas(64) RouteCounters {
  std::atomic<uint64_t> methods[kRouteMethods];
  std::atomic<uint64_t> codes[kRouteCodes];
  std::atomic<uint64_t> latency_buckets[kLatencyBuckets];
  std::atomic<uint64_t> latency_sum_us;
};

struct alignas(64) ErrorEntry {
  std::atomic<uint64_t> sequence;  // 2n+1 while entry n is written, 2n+2 once whole
  std::atomic<uint64_t> at_ms;     // wall clock
  std::atomic<uint32_t> status;
  std::atomic<uint32_t> route;  // RouteRecord index
  std::atomic<uint64_t> method[1];
  std::atomic<uint64_t> path[12];
  std::atomic<uint64_t> client[6];
  std::atomic<uint64_t> request_id[6];
  std::atomic<uint64_t> upstream[8];
};

static_assert(sizeof(RouteRecord) == 128);
static_assert(sizeof(RouteCounters) == 512 && offsetof(RouteCounters, latency_sum_us) == 464,
              "RouteCounters layout changed: bump kShmLayoutVersion and update this assert");
static_assert(sizeof(ErrorEntry) == 320 && offsetof(ErrorEntry, upstream) == 224,
              "ErrorEntry layout changed: bump kShmLayoutVersion and update this assert");
static_assert(std::is_standard_layout_v<RouteRecord> && std::is_standard_layout_v<RouteCounters> &&
              std::is_standard_layout_v<ErrorEntry> && std::is_standard_layout_v<RouteInfo>);

// The name a route's figures are kept under: its "name", else its path.
std::string routeName(const RouteConfig& route);

// Master only: a record for every route name of `config` (and kUnmatchedRoute).
// False with `error` set when the records would overflow.
bool provisionRoutes(const SharedRegion& region, const Config& config, std::string* error);

// Master only: remembers that `slot` has run a worker (readers sum up to it).
void noteSlotUsed(const SharedRegion& region, uint32_t slot);

// Any process: the record index of that name, or kUnmatchedRoute when none.
uint32_t findRoute(const SharedRegion& region, std::string_view name);

// A worker's counting, once per response. `method` indexes kRouteMethodNames.
void countRoute(RouteCounters& counters, size_t method, int status, uint64_t elapsed_us);

// What a worker knows of a failed request, for the ring.
struct ErrorFacts {
  uint64_t at_ms = 0;
  int status = 0;
  uint32_t route = kUnmatchedRoute;
  std::string_view method, path, client, request_id, upstream;
};
void recordError(const SharedRegion& region, const ErrorFacts& facts);

// Plain values for reports.
struct RouteView {
  std::string name;
  uint64_t requests = 0;
  uint64_t methods[kRouteMethods] = {};
  uint64_t codes[kRouteCodes] = {};
  uint64_t latency_buckets[kLatencyBuckets] = {};
  uint64_t latency_sum_us = 0;
};
struct ErrorView {
  uint64_t at_ms = 0;
  int status = 0;
  std::string route, method, path, client, request_id, upstream;
};

// Every provisioned route, summed over slots, most requests first (ties by name).
std::vector<RouteView> takeRouteViews(const SharedRegion& region);
// The most recent errors, newest first, at most `max` (≤ kRecentErrors).
std::vector<ErrorView> takeErrors(const SharedRegion& region, uint32_t max = kRecentErrors);

}  // namespace phalanx::shared

// A worker's per-route figures and its share of the recent-errors ring
// (shared/route_records.h): what the connection calls once per response.
// Route names are looked up once, at construction; counting is a few
// relaxed adds into this slot's counters.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "shared/config.h"
#include "shared/route_records.h"
#include "shared/shm.h"

namespace phalanx::worker {

class RouteFigures {
 public:
  // `region`'s route records must hold every route name of `config` (the
  // master provisions them before it spawns).
  RouteFigures(const shared::Config& config, const shared::SharedRegion& region, uint32_t slot);

  // The response to a request on config.routes[route_index], or on no route
  // (route_index < 0: 404s, and refusals before a route was known).
  // `method` is the request's llhttp_method_t (ignored without a request:
  // counted as "other").
  struct Response {
    int route_index = -1;
    bool has_request = false;
    uint8_t method = 0;
    int status = 0;
    uint64_t elapsed_us = 0;
  };
  void count(const Response& response);

  // A response that goes into the recent-errors ring (5xx).
  static bool isError(int status) { return status >= 500; }
  struct ErrorDetail {
    std::string_view method, path, client, request_id, upstream;
  };
  void recordError(const Response& response, const ErrorDetail& detail);

 private:
  uint32_t recordOf(int route_index) const;

  const shared::SharedRegion& region_;
  uint32_t slot_;
  std::vector<uint32_t> records_;  // by config.routes index
};

// kRouteMethodNames' index of an llhttp_method_t.
size_t routeMethodIndex(uint8_t method);

}  // namespace phalanx::worker

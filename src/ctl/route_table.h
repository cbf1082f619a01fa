// `phalanxctl routes` and `phalanxctl errors`: the master's {"routes": [...]}
// and {"errors": [...]} answers (shared/route_report.h) as text for people.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace phalanx::ctl {

// One row per route, busiest first (the first `max_rows`): requests,
// responses by class, and the p50 / p95 / p99 latencies read off the histogram
// (each the upper bound of its bucket, so "≤ 25ms"; ">10s" past the last bound).
std::optional<std::string> renderRoutes(simdjson::dom::element answer, std::string* error,
                                        size_t max_rows = SIZE_MAX);

// How many routes `phalanxctl status` shows under its worker table.
inline constexpr size_t kStatusTopRoutes = 5;

// One row per error, newest first; times in UTC.
std::optional<std::string> renderErrors(simdjson::dom::element answer, std::string* error);

// The upper bound, in µs, of the bucket holding quantile `q` of a histogram;
// UINT64_MAX when it falls above every bound, 0 when the histogram is empty.
uint64_t quantileBoundUs(const std::vector<uint64_t>& bounds, const std::vector<uint64_t>& counts,
                         double q);

}  // namespace phalanx::ctl

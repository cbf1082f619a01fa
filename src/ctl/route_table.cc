#include "ctl/route_table.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <vector>

namespace phalanx::ctl {

namespace {

using simdjson::dom::element;

std::string latency(uint64_t us) {
  if (us == 0) return "-";
  if (us == UINT64_MAX) return ">10s";
  char buf[32];
  if (us < 1000) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 "us", us);
  } else if (us < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 "ms", us / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRIu64 ".%" PRIu64 "s", us / 1'000'000, us / 100'000 % 10);
  }
  return buf;
}

std::string clip(std::string_view text, size_t width) {
  return std::string(text.substr(0, width));
}

bool readNumbers(element array, std::vector<uint64_t>* out) {
  simdjson::dom::array items;
  if (array.get_array().get(items) != simdjson::SUCCESS) return false;
  for (element item : items) {
    uint64_t v = 0;
    if (item.get_uint64().get(v) != simdjson::SUCCESS) return false;
    out->push_back(v);
  }
  return true;
}

// Responses of one status class: the exact codes of that class and its "Nxx" rest.
uint64_t classCount(simdjson::dom::object responses, char cls) {
  uint64_t total = 0;
  for (auto [code, count] : responses) {
    uint64_t v = 0;
    if (!code.empty() && code[0] == cls && count.get_uint64().get(v) == simdjson::SUCCESS) {
      total += v;
    }
  }
  return total;
}

}  // namespace

uint64_t quantileBoundUs(const std::vector<uint64_t>& bounds, const std::vector<uint64_t>& counts,
                         double q) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return 0;
  double wanted = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (static_cast<double>(seen) >= wanted) return i < bounds.size() ? bounds[i] : UINT64_MAX;
  }
  return UINT64_MAX;
}

std::optional<std::string> renderRoutes(element answer, std::string* error, size_t max_rows) {
  simdjson::dom::array routes;
  if (answer.at_key("routes").get_array().get(routes) != simdjson::SUCCESS) {
    *error = "a routes answer needs \"routes\"";
    return std::nullopt;
  }
  std::string out =
      "ROUTE                            REQUESTS      2XX      3XX      4XX      5XX     P50     "
      "P95     P99\n";
  size_t rows = 0;
  for (element route : routes) {
    if (rows++ == max_rows) break;
    std::string_view name;
    uint64_t requests = 0;
    simdjson::dom::object responses;
    std::vector<uint64_t> bounds, counts;
    if (route.at_key("name").get_string().get(name) != simdjson::SUCCESS ||
        route.at_key("requests").get_uint64().get(requests) != simdjson::SUCCESS ||
        route.at_key("responses").get_object().get(responses) != simdjson::SUCCESS ||
        !readNumbers(route.at_key("latency_us").at_key("bounds").value_unsafe(), &bounds) ||
        !readNumbers(route.at_key("latency_us").at_key("counts").value_unsafe(), &counts)) {
      *error = "a route row needs name, requests, responses and latency_us";
      return std::nullopt;
    }
    char line[256];
    std::snprintf(line, sizeof line,
                  "%-32s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                  " %7s %7s %7s\n",
                  clip(name, 32).c_str(), requests, classCount(responses, '2'),
                  classCount(responses, '3'), classCount(responses, '4'),
                  classCount(responses, '5'), latency(quantileBoundUs(bounds, counts, 0.5)).c_str(),
                  latency(quantileBoundUs(bounds, counts, 0.95)).c_str(),
                  latency(quantileBoundUs(bounds, counts, 0.99)).c_str());
    out += line;
  }
  if (routes.size() == 0) out = "no routes\n";
  return out;
}

std::optional<std::string> renderErrors(element answer, std::string* error) {
  simdjson::dom::array errors;
  if (answer.at_key("errors").get_array().get(errors) != simdjson::SUCCESS) {
    *error = "an errors answer needs \"errors\"";
    return std::nullopt;
  }
  std::string out =
      "TIME (UTC)               STATUS ROUTE                METHOD  PATH                       "
      "     CLIENT           UPSTREAM               REQUEST ID\n";
  for (element e : errors) {
    uint64_t at_ms = 0, status = 0;
    std::string_view route, method, path, client, request_id, upstream;
    if (e.at_key("at_ms").get_uint64().get(at_ms) != simdjson::SUCCESS ||
        e.at_key("status").get_uint64().get(status) != simdjson::SUCCESS ||
        e.at_key("route").get_string().get(route) != simdjson::SUCCESS ||
        e.at_key("method").get_string().get(method) != simdjson::SUCCESS ||
        e.at_key("path").get_string().get(path) != simdjson::SUCCESS ||
        e.at_key("client").get_string().get(client) != simdjson::SUCCESS ||
        e.at_key("request_id").get_string().get(request_id) != simdjson::SUCCESS ||
        e.at_key("upstream").get_string().get(upstream) != simdjson::SUCCESS) {
      *error =
          "an error row needs at_ms, status, route, method, path, client, request_id, upstream";
      return std::nullopt;
    }
    std::time_t seconds = static_cast<std::time_t>(at_ms / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    char line[512];
    std::snprintf(line, sizeof line, "%s.%03u %6" PRIu64 " %-20s %-7s %-32s %-16s %-22s %s\n", when,
                  static_cast<unsigned>(at_ms % 1000), status, clip(route, 20).c_str(),
                  clip(method, 7).c_str(), clip(path, 32).c_str(), clip(client, 16).c_str(),
                  clip(upstream.empty() ? "-" : upstream, 22).c_str(),
                  request_id.empty() ? "-" : std::string(request_id).c_str());
    out += line;
  }
  if (errors.size() == 0) out = "no errors recorded\n";
  return out;
}

}  // namespace phalanx::ctl

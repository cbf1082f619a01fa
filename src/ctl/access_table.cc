#include "ctl/access_table.h"

#include <cstdio>

namespace phalanx::ctl {

namespace {

using simdjson::dom::element;

uint64_t number(element object, const char* key, bool* ok) {
  uint64_t value = 0;
  if (object.at_key(key).get_uint64().get(value) != simdjson::SUCCESS) *ok = false;
  return value;
}

std::string n(uint64_t value) {
  return std::to_string(value);
}

}  // namespace

std::optional<std::string> renderAccess(element answer, std::string* error) {
  element access, table, auth, cache, redis;
  simdjson::dom::object failures;
  simdjson::dom::array limits;
  if (answer.at_key("access").get(access) != simdjson::SUCCESS ||
      access.at_key("limits").get_array().get(limits) != simdjson::SUCCESS ||
      access.at_key("table").get(table) != simdjson::SUCCESS ||
      access.at_key("auth").get(auth) != simdjson::SUCCESS ||
      auth.at_key("failures").get_object().get(failures) != simdjson::SUCCESS ||
      access.at_key("cache").get(cache) != simdjson::SUCCESS ||
      access.at_key("redis").get(redis) != simdjson::SUCCESS) {
    *error = "an access answer needs limits, table, auth, cache and redis";
    return std::nullopt;
  }
  bool ok = true;
  std::string out;
  if (limits.size() > 0) {
    out +=
        "LIMIT                           ALLOWED    LIMITED    UNKEYED  REDIS ERRORS "
        "(LOCAL/OPEN/CLOSED)\n";
    for (element limit : limits) {
      std::string_view name;
      element fallback;
      if (limit.at_key("name").get_string().get(name) != simdjson::SUCCESS ||
          limit.at_key("fallback").get(fallback) != simdjson::SUCCESS) {
        ok = false;
        break;
      }
      char line[256];
      std::snprintf(line, sizeof line, "%-30.*s %8llu %10llu %10llu  %llu (%llu/%llu/%llu)\n",
                    static_cast<int>(name.size() > 63 ? 63 : name.size()), name.data(),
                    static_cast<unsigned long long>(number(limit, "allowed", &ok)),
                    static_cast<unsigned long long>(number(limit, "limited", &ok)),
                    static_cast<unsigned long long>(number(limit, "unkeyed", &ok)),
                    static_cast<unsigned long long>(number(limit, "redis_errors", &ok)),
                    static_cast<unsigned long long>(number(fallback, "local", &ok)),
                    static_cast<unsigned long long>(number(fallback, "open", &ok)),
                    static_cast<unsigned long long>(number(fallback, "closed", &ok)));
      out += line;
    }
  } else {
    out += "no rate limits configured\n";
  }
  out += "rate-limit table: " + n(number(table, "entries", &ok)) + " of " +
         n(number(table, "capacity", &ok)) + " entries live, " +
         n(number(table, "evictions", &ok)) + " evictions, " + n(number(table, "unrecorded", &ok)) +
         " unrecorded\n";
  out += "auth: " + n(number(auth, "ok", &ok)) + " passed; refused:";
  bool any = false;
  for (auto [reason, count] : failures) {
    uint64_t value = 0;
    if (count.get_uint64().get(value) != simdjson::SUCCESS) ok = false;
    if (value == 0) continue;
    out += (any ? ", " : " ") + std::string(reason) + " " + n(value);
    any = true;
  }
  out += any ? "\n" : " none\n";
  out += "cache: " + n(number(cache, "hits", &ok)) + " hits, " + n(number(cache, "misses", &ok)) +
         " misses (" + n(number(cache, "coalesced", &ok)) + " coalesced), " +
         n(number(cache, "bypasses", &ok)) + " bypasses; " + n(number(cache, "stores", &ok)) +
         " stored, " + n(number(cache, "evictions", &ok)) + " evicted, " +
         n(number(cache, "invalidations", &ok)) +
         " invalidated; level 2: " + n(number(cache, "level2_hits", &ok)) + " hits, " +
         n(number(cache, "level2_errors", &ok)) + " errors; " + n(number(cache, "bytes", &ok)) +
         " bytes in " + n(number(cache, "entries", &ok)) + " entries\n";
  out += "redis: " + n(number(redis, "up", &ok)) + " workers connected, " +
         n(number(redis, "down", &ok)) + " not\n";
  if (!ok) {
    *error = "an access answer with a missing or malformed number";
    return std::nullopt;
  }
  return out;
}

}  // namespace phalanx::ctl

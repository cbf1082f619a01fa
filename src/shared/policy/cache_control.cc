#include "shared/policy/cache_control.h"

#include <limits>

namespace phalanx::shared::policy {

namespace {

bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

// tchar (RFC 9110 5.6.2).
bool isTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// `lower` must be lowercase ASCII.
bool equalsLowercase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    if (c != lower[i]) return false;
  }
  return true;
}

// One list element: `name [= argument]`. The quoted form's argument is kept
// with its escapes, which no directive phalanx reads can contain anyway.
struct Element {
  std::string_view name;
  std::string_view argument;
  bool has_argument = false;
  bool well_formed = true;
};

void skipBlanks(std::string_view v, size_t& i) {
  while (i < v.size() && isBlank(v[i])) ++i;
}

// Moves `i` to the next comma outside a quoted-string, or to the end.
void skipToComma(std::string_view v, size_t& i) {
  bool quoted = false;
  for (; i < v.size(); ++i) {
    char c = v[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      return;
    }
  }
  i = v.size();
}

// A quoted-string starting at v[i] == '"'; false when unterminated.
bool readQuoted(std::string_view v, size_t& i, std::string_view& content) {
  size_t start = ++i;
  for (; i < v.size(); ++i) {
    if (v[i] == '\\') {
      ++i;
    } else if (v[i] == '"') {
      content = v.substr(start, i - start);
      ++i;
      return true;
    }
  }
  return false;
}

// Reads the element at v[i] (not blank, not a comma) and leaves `i` at the
// comma that ends it, or at the end.
Element readElement(std::string_view v, size_t& i) {
  Element e;
  size_t start = i;
  while (i < v.size() && isTokenChar(v[i])) ++i;
  e.name = v.substr(start, i - start);
  skipBlanks(v, i);
  if (i < v.size() && v[i] == '=') {
    e.has_argument = true;
    ++i;
    skipBlanks(v, i);
    if (i < v.size() && v[i] == '"') {
      e.well_formed = readQuoted(v, i, e.argument);
    } else {
      size_t arg = i;
      while (i < v.size() && isTokenChar(v[i])) ++i;
      e.argument = v.substr(arg, i - arg);
      e.well_formed = !e.argument.empty();
    }
    skipBlanks(v, i);
  }
  if (e.name.empty() || (i < v.size() && v[i] != ',')) e.well_formed = false;
  skipToComma(v, i);
  return e;
}

// delta-seconds, clamped to kMaxDeltaSeconds; 0 when malformed (stale).
uint64_t deltaSeconds(const Element& e) {
  if (!e.well_formed || !e.has_argument || e.argument.empty()) return 0;
  uint64_t value = 0;
  for (char c : e.argument) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > kMaxDeltaSeconds) value = kMaxDeltaSeconds;
  }
  return value;
}

void apply(CacheDirectives& d, const Element& e) {
  if (equalsLowercase(e.name, "no-store")) {
    d.no_store = true;
  } else if (equalsLowercase(e.name, "no-cache")) {
    d.no_cache = true;
  } else if (equalsLowercase(e.name, "private")) {
    d.private_ = true;
  } else if (equalsLowercase(e.name, "must-revalidate")) {
    d.must_revalidate = true;
  } else if (equalsLowercase(e.name, "public")) {
    if (e.well_formed && !e.has_argument) d.public_ = true;
  } else if (equalsLowercase(e.name, "max-age")) {
    if (!d.max_age_s) d.max_age_s = deltaSeconds(e);
  } else if (equalsLowercase(e.name, "s-maxage")) {
    if (!d.s_maxage_s) d.s_maxage_s = deltaSeconds(e);
  }
}

uint64_t secondsToMs(uint64_t seconds) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  return seconds > kMax / 1000 ? kMax : seconds * 1000;
}

}  // namespace

CacheDirectives parseCacheControl(std::string_view value) {
  CacheDirectives d;
  mergeCacheControl(d, value);
  return d;
}

void mergeCacheControl(CacheDirectives& directives, std::string_view value) {
  size_t i = 0;
  while (i < value.size()) {
    if (value[i] == ',' || isBlank(value[i])) {
      ++i;
      continue;
    }
    apply(directives, readElement(value, i));
  }
}

uint64_t storeTtlMs(const StoreInput& in) {
  if (in.status < 200 || in.status > 299 || in.status == 206) return 0;
  const CacheDirectives& r = in.response;
  if (in.vary_star || r.no_store || r.private_ || r.no_cache) return 0;
  if (in.has_set_cookie && !r.public_) return 0;
  if (in.request_had_credentials && !in.shared_with_credentials && !r.public_ && !r.s_maxage_s)
    return 0;
  uint64_t lifetime_ms;
  if (r.s_maxage_s) {
    lifetime_ms = secondsToMs(*r.s_maxage_s);
  } else if (r.max_age_s) {
    lifetime_ms = secondsToMs(*r.max_age_s);
  } else if (in.expires_lifetime_s) {
    lifetime_ms = secondsToMs(*in.expires_lifetime_s);
  } else {
    lifetime_ms = in.route_ttl_ms;
  }
  uint64_t age_ms = secondsToMs(in.age_s);
  return lifetime_ms > age_ms ? lifetime_ms - age_ms : 0;
}

RequestCacheMode requestCacheMode(const CacheDirectives& request) {
  if (request.no_store) return RequestCacheMode::Bypass;
  if (request.no_cache || (request.max_age_s && *request.max_age_s == 0))
    return RequestCacheMode::Refresh;
  return RequestCacheMode::Use;
}

bool acceptsAge(const CacheDirectives& request, uint64_t age_s) {
  return !request.max_age_s || age_s <= *request.max_age_s;
}

}  // namespace phalanx::shared::policy

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "shared/policy/cache_control.h"

using namespace phalanx::shared::policy;

namespace {

// A cacheable response to a request without credentials; tests change one thing.
StoreInput storable(const CacheDirectives& d) {
  return StoreInput{.status = 200,
                    .response = d,
                    .has_set_cookie = false,
                    .vary_star = false,
                    .request_had_credentials = false,
                    .shared_with_credentials = false,
                    .route_ttl_ms = 60000};
}

}  // namespace

TEST_CASE("cache-control: nothing in an empty or blank value") {
  for (const char* value : {"", " ", ",", " , ,\t", ",,,"}) {
    CAPTURE(value);
    CacheDirectives d = parseCacheControl(value);
    CHECK_FALSE(d.no_store);
    CHECK_FALSE(d.no_cache);
    CHECK_FALSE(d.private_);
    CHECK_FALSE(d.public_);
    CHECK_FALSE(d.must_revalidate);
    CHECK_FALSE(d.max_age_s);
    CHECK_FALSE(d.s_maxage_s);
  }
}

TEST_CASE("cache-control: a comma list, names case-insensitive, whitespace optional") {
  CacheDirectives d =
      parseCacheControl("Public,MAX-AGE=60 ,  s-MaxAge=120,must-revalidate, No-Cache ,no-store");
  CHECK(d.public_);
  CHECK(d.max_age_s == 60);
  CHECK(d.s_maxage_s == 120);
  CHECK(d.must_revalidate);
  CHECK(d.no_cache);
  CHECK(d.no_store);
  CHECK_FALSE(d.private_);
  CHECK(parseCacheControl("private").private_);
  CHECK(parseCacheControl("\tmax-age=0\t").max_age_s == 0);
}

TEST_CASE("cache-control: quoted arguments, commas and escapes inside them") {
  CHECK(parseCacheControl("max-age=\"5\"").max_age_s == 5);
  // The qualified forms count as unqualified; the comma in quotes is no separator.
  CacheDirectives d = parseCacheControl("private=\"Set-Cookie, X-Foo\", max-age=30");
  CHECK(d.private_);
  CHECK(d.max_age_s == 30);
  d = parseCacheControl("no-cache=\"a\\\",public\", max-age=7");
  CHECK(d.no_cache);
  CHECK_FALSE(d.public_);  // inside the quotes, after an escaped quote
  CHECK(d.max_age_s == 7);
  d = parseCacheControl("ext=\"x,max-age=1\", max-age=9");
  CHECK(d.max_age_s == 9);
}

TEST_CASE("cache-control: unknown directives and extensions are ignored") {
  CacheDirectives d =
      parseCacheControl("immutable, stale-while-revalidate=30, foo=\"bar\", max-age=5");
  CHECK(d.max_age_s == 5);
  CHECK_FALSE(d.no_store);
  CHECK_FALSE(parseCacheControl("no-storex").no_store);
  CHECK_FALSE(parseCacheControl("max-ages=5").max_age_s);
}

TEST_CASE("cache-control: a repeated max-age or s-maxage keeps the first value") {
  CHECK(parseCacheControl("max-age=5, max-age=10").max_age_s == 5);
  CHECK(parseCacheControl("s-maxage=10, s-maxage=5").s_maxage_s == 10);
  // The first is malformed: stale, and a later valid one does not revive it.
  CHECK(parseCacheControl("max-age=x, max-age=10").max_age_s == 0);
}

TEST_CASE("cache-control: a malformed max-age or s-maxage is 0, stale (RFC 9111 4.2.1)") {
  for (const char* value :
       {"max-age", "max-age=", "max-age=abc", "max-age=-1", "max-age=1.5", "max-age=5x",
        "max-age=\"5", "max-age=\"\"", "max-age=5 6", "max-age=\" 5\"", "max-age=5;x"}) {
    CAPTURE(value);
    CHECK(parseCacheControl(value).max_age_s == 0);
  }
  CHECK(parseCacheControl("s-maxage=1e3").s_maxage_s == 0);
  CHECK(parseCacheControl("s-maxage").s_maxage_s == 0);
}

TEST_CASE("cache-control: delta-seconds past 2^31 count as 2^31 (RFC 9111 1.2.2)") {
  CHECK(parseCacheControl("max-age=2147483647").max_age_s == 2147483647u);
  CHECK(parseCacheControl("max-age=2147483648").max_age_s == kMaxDeltaSeconds);
  CHECK(parseCacheControl("max-age=2147483649").max_age_s == kMaxDeltaSeconds);
  CHECK(parseCacheControl("max-age=99999999999999999999999999999").max_age_s == kMaxDeltaSeconds);
  CHECK(parseCacheControl("max-age=007").max_age_s == 7);
}

TEST_CASE("cache-control: malformed restrictive directives still restrict, public does not") {
  CHECK(parseCacheControl("no-store junk").no_store);
  CHECK(parseCacheControl("no-cache=").no_cache);
  CHECK(parseCacheControl("private ;").private_);
  CHECK(parseCacheControl("must-revalidate=\"").must_revalidate);
  CHECK_FALSE(parseCacheControl("public junk").public_);
  CHECK_FALSE(parseCacheControl("public=yes").public_);
  CHECK(parseCacheControl("public ").public_);
  // A broken element does not hide the next one.
  CacheDirectives d = parseCacheControl("=5, @@, max-age=3, \"x,y\", no-store");
  CHECK(d.max_age_s == 3);
  CHECK(d.no_store);
}

TEST_CASE("cache-control: merging several fields") {
  CacheDirectives d = parseCacheControl("max-age=60");
  mergeCacheControl(d, "no-cache, max-age=5");
  mergeCacheControl(d, "s-maxage=30");
  mergeCacheControl(d, "s-maxage=1, public");
  CHECK(d.max_age_s == 60);
  CHECK(d.s_maxage_s == 30);
  CHECK(d.no_cache);
  CHECK(d.public_);
  mergeCacheControl(d, "");
  CHECK(d.max_age_s == 60);
}

TEST_CASE("storeTtlMs: 2xx only, never 206") {
  CacheDirectives d = parseCacheControl("max-age=10");
  for (int status : {200, 201, 203, 204, 299}) {
    StoreInput in = storable(d);
    in.status = status;
    CAPTURE(status);
    CHECK(storeTtlMs(in) == 10000);
  }
  for (int status : {100, 199, 206, 300, 301, 304, 404, 500, 503}) {
    StoreInput in = storable(d);
    in.status = status;
    CAPTURE(status);
    CHECK(storeTtlMs(in) == 0);
  }
}

TEST_CASE("storeTtlMs: no-store, private, no-cache and Vary: * are not stored") {
  for (const char* value : {"no-store, max-age=60", "private, max-age=60", "no-cache, max-age=60",
                            "public, no-store", "s-maxage=60, private"}) {
    CAPTURE(value);
    CacheDirectives d = parseCacheControl(value);
    CHECK(storeTtlMs(storable(d)) == 0);
  }
  CacheDirectives d = parseCacheControl("public, max-age=60");
  StoreInput in = storable(d);
  in.vary_star = true;
  CHECK(storeTtlMs(in) == 0);
}

TEST_CASE("storeTtlMs: s-maxage, then max-age, then Expires, then the route's ttl") {
  CacheDirectives both = parseCacheControl("max-age=10, s-maxage=20");
  CHECK(storeTtlMs(storable(both)) == 20000);
  CacheDirectives max_age = parseCacheControl("max-age=10");
  CHECK(storeTtlMs(storable(max_age)) == 10000);
  // An explicit lifetime wins over the route's, longer or shorter.
  CacheDirectives long_life = parseCacheControl("max-age=3600");
  CHECK(storeTtlMs(storable(long_life)) == 3600000);
  CacheDirectives none;
  CHECK(storeTtlMs(storable(none)) == 60000);
  StoreInput in = storable(none);
  in.expires_lifetime_s = 30;
  CHECK(storeTtlMs(in) == 30000);
  in.expires_lifetime_s = 0;  // Expires in the past
  CHECK(storeTtlMs(in) == 0);
  StoreInput overridden = storable(max_age);
  overridden.expires_lifetime_s = 0;
  CHECK(storeTtlMs(overridden) == 10000);
  StoreInput no_route_ttl = storable(none);
  no_route_ttl.route_ttl_ms = 0;
  CHECK(storeTtlMs(no_route_ttl) == 0);
  CacheDirectives zero = parseCacheControl("max-age=0");
  CHECK(storeTtlMs(storable(zero)) == 0);
  CacheDirectives malformed = parseCacheControl("max-age=soon");
  CHECK(storeTtlMs(storable(malformed)) == 0);
}

TEST_CASE("storeTtlMs: the upstream's Age is deducted") {
  CacheDirectives d = parseCacheControl("max-age=60");
  StoreInput in = storable(d);
  in.age_s = 15;
  CHECK(storeTtlMs(in) == 45000);
  in.age_s = 60;
  CHECK(storeTtlMs(in) == 0);
  in.age_s = std::numeric_limits<uint64_t>::max();
  CHECK(storeTtlMs(in) == 0);
  CacheDirectives none;
  StoreInput route = storable(none);
  route.age_s = 20;
  CHECK(storeTtlMs(route) == 40000);
  route.expires_lifetime_s = std::numeric_limits<uint64_t>::max();  // saturates
  route.age_s = 0;
  CHECK(storeTtlMs(route) == std::numeric_limits<uint64_t>::max());
}

TEST_CASE("storeTtlMs: Set-Cookie only with public") {
  CacheDirectives d = parseCacheControl("max-age=60");
  StoreInput in = storable(d);
  in.has_set_cookie = true;
  CHECK(storeTtlMs(in) == 0);
  CacheDirectives pub = parseCacheControl("public, max-age=60");
  StoreInput p = storable(pub);
  p.has_set_cookie = true;
  CHECK(storeTtlMs(p) == 60000);
  CacheDirectives shared_only = parseCacheControl("s-maxage=60");
  StoreInput s = storable(shared_only);
  s.has_set_cookie = true;
  CHECK(storeTtlMs(s) == 0);
}

TEST_CASE("storeTtlMs: a request with credentials (RFC 9111 3.5)") {
  CacheDirectives d = parseCacheControl("max-age=60");
  StoreInput in = storable(d);
  in.request_had_credentials = true;
  CHECK(storeTtlMs(in) == 0);
  in.shared_with_credentials = true;  // the route says so
  CHECK(storeTtlMs(in) == 60000);
  CacheDirectives pub = parseCacheControl("public, max-age=60");
  StoreInput p = storable(pub);
  p.request_had_credentials = true;
  CHECK(storeTtlMs(p) == 60000);
  CacheDirectives shared = parseCacheControl("s-maxage=30");
  StoreInput s = storable(shared);
  s.request_had_credentials = true;
  CHECK(storeTtlMs(s) == 30000);
  // must-revalidate also allows it in the RFC; phalanx stays stricter.
  CacheDirectives revalidate = parseCacheControl("must-revalidate, max-age=60");
  StoreInput r = storable(revalidate);
  r.request_had_credentials = true;
  CHECK(storeTtlMs(r) == 0);
  // The route's ttl, no upstream lifetime: only when the route shares.
  CacheDirectives none;
  StoreInput n = storable(none);
  n.request_had_credentials = true;
  CHECK(storeTtlMs(n) == 0);
  n.shared_with_credentials = true;
  CHECK(storeTtlMs(n) == 60000);
}

TEST_CASE("requestCacheMode: no-store bypasses, no-cache and max-age=0 refresh") {
  CHECK(requestCacheMode(parseCacheControl("")) == RequestCacheMode::Use);
  CHECK(requestCacheMode(parseCacheControl("max-age=60")) == RequestCacheMode::Use);
  CHECK(requestCacheMode(parseCacheControl("no-cache")) == RequestCacheMode::Refresh);
  CHECK(requestCacheMode(parseCacheControl("max-age=0")) == RequestCacheMode::Refresh);
  CHECK(requestCacheMode(parseCacheControl("max-age=oops")) == RequestCacheMode::Refresh);
  CHECK(requestCacheMode(parseCacheControl("no-store")) == RequestCacheMode::Bypass);
  CHECK(requestCacheMode(parseCacheControl("no-cache, no-store")) == RequestCacheMode::Bypass);
}

TEST_CASE("acceptsAge: a request's max-age bounds the stored response's age") {
  CHECK(acceptsAge(parseCacheControl(""), 1000000));
  CacheDirectives d = parseCacheControl("max-age=30");
  CHECK(acceptsAge(d, 0));
  CHECK(acceptsAge(d, 30));
  CHECK_FALSE(acceptsAge(d, 31));
}

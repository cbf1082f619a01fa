#include "worker/gateway/response_cache.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>

using namespace phalanx::worker;

namespace {

CachedResponse response(std::string body, uint64_t expires_ms = 100000,
                        std::vector<std::pair<std::string, std::string>> vary = {}) {
  CachedResponse r;
  r.status = 200;
  r.head = "Content-Type: text/plain\r\n";
  r.body = std::move(body);
  r.stored_ms = 0;
  r.expires_ms = expires_ms;
  r.vary = std::move(vary);
  return r;
}

// A request's header fields, lower-case names.
struct Headers {
  std::map<std::string, std::string, std::less<>> fields;
  std::string_view operator()(std::string_view name) const {
    auto it = fields.find(name);
    return it == fields.end() ? std::string_view() : std::string_view(it->second);
  }
};

const Headers kNoHeaders;

std::string key(std::string_view path, std::string_view query = "") {
  return cacheKey("example.com", path, query);
}

bool has(ResponseCache& cache, std::string_view k, uint64_t now_ms = 0) {
  return cache.find(k, kNoHeaders, now_ms) != nullptr;
}

// What response() costs under key(path) with a body of `body` bytes.
uint64_t cost(std::string_view path, size_t body) {
  return ResponseCache::kEntryOverhead + key(path).size() +
         std::string_view("Content-Type: text/plain\r\n").size() + body;
}

}  // namespace

TEST_CASE("cacheKey: host lower-cased, NUL-separated host, path and query") {
  CHECK(cacheKey("Example.COM", "/A/b", "x=Y") == std::string("example.com\0/A/b\0x=Y", 20));
  CHECK(cacheKey("h", "/", "") == std::string("h\0/\0", 4));
  CHECK(cacheKey("h", "/a", "") != cacheKey("h", "/", "a"));
}

TEST_CASE("response cache: a miss, then a hit that shares the stored response") {
  ResponseCache cache(1 << 20);
  CHECK(cache.find(key("/a"), kNoHeaders, 0) == nullptr);
  REQUIRE(cache.store(key("/a"), response("hello")));
  auto hit = cache.find(key("/a"), kNoHeaders, 10);
  REQUIRE(hit != nullptr);
  CHECK(hit->status == 200);
  CHECK(hit->body == "hello");
  CHECK(hit->head == "Content-Type: text/plain\r\n");
  CHECK_FALSE(has(cache, key("/a", "q=1")));
  CHECK_FALSE(has(cache, cacheKey("other.example", "/a", "")));
  ResponseCache::Stats s = cache.stats();
  CHECK(s.entries == 1);
  CHECK(s.bytes == cost("/a", 5));
  CHECK(s.evictions == 0);
  CHECK(s.expired == 0);
}

TEST_CASE("response cache: bytes count key, head, body, Vary strings and the overhead") {
  ResponseCache cache(1 << 20);
  REQUIRE(cache.store(key("/a"), response("12345", 100000, {{"accept-encoding", "gzip"}})));
  CHECK(cache.stats().bytes == cost("/a", 5) + 15 + 4);
  // Replacing the variant replaces its bytes.
  REQUIRE(cache.store(key("/a"), response("1", 100000, {{"accept-encoding", "gzip"}})));
  CHECK(cache.stats().entries == 1);
  CHECK(cache.stats().bytes == cost("/a", 1) + 15 + 4);
}

TEST_CASE("response cache: least recently used entries go first, and the total stays in bounds") {
  // Room for exactly eight entries of `each` bytes (each is max_bytes / 8).
  const uint64_t each = cost("/0", 100);
  ResponseCache cache(each * 8);
  auto path = [](int i) { return "/" + std::to_string(i); };
  for (int i = 0; i < 8; ++i) REQUIRE(cache.store(key(path(i)), response(std::string(100, 'x'))));
  CHECK(cache.stats().entries == 8);
  CHECK(cache.stats().bytes == each * 8);
  CHECK(cache.stats().evictions == 0);
  // A hit makes /0 the most recent: /1 is the least, and goes for /8.
  CHECK(has(cache, key("/0")));
  REQUIRE(cache.store(key("/8"), response(std::string(100, 'x'))));
  CHECK(cache.stats().evictions == 1);
  CHECK(cache.stats().bytes == each * 8);
  // A replacement makes its entry the most recent too: /3 goes for /9, not /2.
  REQUIRE(cache.store(key("/2"), response(std::string(100, 'y'))));
  CHECK(cache.stats().evictions == 1);
  REQUIRE(cache.store(key("/9"), response(std::string(100, 'x'))));
  CHECK(cache.stats().evictions == 2);
  CHECK(cache.stats().entries == 8);
  CHECK(cache.stats().bytes == each * 8);
  for (int i = 0; i < 10; ++i) {
    CAPTURE(i);
    CHECK(has(cache, key(path(i))) == (i != 1 && i != 3));
  }
  CHECK(cache.find(key("/2"), kNoHeaders, 0)->body == std::string(100, 'y'));
}

TEST_CASE("response cache: a bigger entry evicts as many small ones as it takes") {
  const uint64_t max = cost("/00", 200) * 8;
  ResponseCache cache(max);
  const uint64_t small = cost("/00", 0);
  int stored = 0;
  while (cache.stats().evictions == 0) {
    REQUIRE(cache.store(key(std::to_string(100 + stored)), response("")));
    ++stored;
  }
  CHECK(cache.stats().bytes <= max);
  CHECK(cache.stats().entries == max / small);
  const uint64_t room = max - cache.stats().bytes;  // less than one small entry
  REQUIRE(room < max / 8);
  REQUIRE(cache.store(key("/big"), response(std::string(max / 8 - cost("/big", 0), 'x'))));
  CHECK(cache.stats().bytes <= max);
  CHECK(cache.stats().evictions == 1 + (max / 8 - room + small - 1) / small);
  CHECK(has(cache, key("/big")));
}

TEST_CASE("response cache: an entry above max_bytes / 8 is refused and changes nothing") {
  const uint64_t max = cost("/a", 100) * 8;
  ResponseCache cache(max);
  CHECK(cache.store(key("/a"), response(std::string(100, 'x'))));  // exactly max / 8
  CHECK_FALSE(cache.store(key("/b"), response(std::string(101, 'x'))));
  CHECK_FALSE(cache.store(key("/a"), response(std::string(101, 'y'))));
  CHECK(cache.stats().entries == 1);
  CHECK(cache.stats().evictions == 0);
  CHECK(cache.find(key("/a"), kNoHeaders, 0)->body == std::string(100, 'x'));
  ResponseCache none(0);
  CHECK_FALSE(none.store(key("/a"), response("")));
}

TEST_CASE("response cache: a stale entry is dropped on lookup, counted as expired") {
  ResponseCache cache(1 << 20);
  REQUIRE(cache.store(key("/a"), response("x", 1000)));
  CHECK(has(cache, key("/a"), 999));
  CHECK_FALSE(has(cache, key("/a"), 1000));
  ResponseCache::Stats s = cache.stats();
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);
  CHECK(s.expired == 1);
  CHECK(s.evictions == 0);
  // A stale variant goes even when another variant answers.
  REQUIRE(cache.store(key("/b"), response("old", 1000, {{"accept-encoding", "gzip"}})));
  REQUIRE(cache.store(key("/b"), response("new", 5000, {{"accept-encoding", ""}})));
  CHECK(has(cache, key("/b"), 2000));
  CHECK(cache.stats().entries == 1);
  CHECK(cache.stats().expired == 2);
}

TEST_CASE("response cache: Vary variants, Accept-Encoding gzip and none") {
  ResponseCache cache(1 << 20);
  REQUIRE(cache.store(key("/a"), response("zipped", 100000, {{"accept-encoding", "gzip"}})));
  REQUIRE(cache.store(key("/a"), response("plain", 100000, {{"accept-encoding", ""}})));
  CHECK(cache.stats().entries == 2);
  Headers gzip{{{"accept-encoding", "gzip"}}};
  Headers br{{{"accept-encoding", "br"}}};
  auto zipped = cache.find(key("/a"), gzip, 0);
  REQUIRE(zipped != nullptr);
  CHECK(zipped->body == "zipped");
  auto plain = cache.find(key("/a"), kNoHeaders, 0);
  REQUIRE(plain != nullptr);
  CHECK(plain->body == "plain");
  CHECK(cache.find(key("/a"), br, 0) == nullptr);
  // The same Vary values replace their variant only.
  REQUIRE(cache.store(key("/a"), response("zipped again", 100000, {{"accept-encoding", "gzip"}})));
  CHECK(cache.stats().entries == 2);
  CHECK(cache.find(key("/a"), gzip, 0)->body == "zipped again");
  CHECK(cache.find(key("/a"), kNoHeaders, 0)->body == "plain");
  // A response without Vary matches every request; the newest variant that matches wins.
  REQUIRE(cache.store(key("/a"), response("any")));
  CHECK(cache.find(key("/a"), br, 0)->body == "any");
  CHECK(cache.find(key("/a"), gzip, 0)->body == "any");
}

TEST_CASE("response cache: several Vary fields must all match") {
  ResponseCache cache(1 << 20);
  REQUIRE(cache.store(
      key("/a"), response("x", 100000, {{"accept-encoding", "gzip"}, {"accept-language", "fr"}})));
  CHECK(
      cache.find(key("/a"), Headers{{{"accept-encoding", "gzip"}, {"accept-language", "fr"}}}, 0));
  CHECK_FALSE(cache.find(key("/a"), Headers{{{"accept-encoding", "gzip"}}}, 0));
  CHECK_FALSE(cache.find(key("/a"), Headers{{{"accept-language", "fr"}}}, 0));
}

TEST_CASE("response cache: at most kMaxVariants per key, the oldest goes") {
  ResponseCache cache(1 << 20);
  for (size_t i = 0; i <= ResponseCache::kMaxVariants; ++i) {
    REQUIRE(cache.store(
        key("/a"), response(std::to_string(i), 100000, {{"accept-language", std::to_string(i)}})));
  }
  CHECK(cache.stats().entries == ResponseCache::kMaxVariants);
  CHECK(cache.stats().evictions == 1);
  CHECK_FALSE(cache.find(key("/a"), Headers{{{"accept-language", "0"}}}, 0));
  CHECK(cache.find(key("/a"), Headers{{{"accept-language", "1"}}}, 0));
  CHECK(cache.find(key("/a"), Headers{{{"accept-language", "8"}}}, 0));
}

TEST_CASE("response cache: a found response outlives its eviction") {
  ResponseCache cache(cost("/a", 10) * 8);
  REQUIRE(cache.store(key("/a"), response("0123456789")));
  auto held = cache.find(key("/a"), kNoHeaders, 0);
  CHECK(cache.purge("") == 1);
  CHECK(cache.stats().entries == 0);
  REQUIRE(held != nullptr);
  CHECK(held->body == "0123456789");
}

TEST_CASE("response cache: invalidatePath removes host + path, any query, nothing else") {
  ResponseCache cache(1 << 20);
  for (const char* query : {"", "x=1", "y=2"})
    REQUIRE(cache.store(key("/a", query), response("a")));
  REQUIRE(cache.store(key("/a", "v"), response("gz", 100000, {{"accept-encoding", "gzip"}})));
  for (const char* path : {"/", "/ab", "/a/b", "/A", "/"})
    REQUIRE(cache.store(key(path), response("o")));
  REQUIRE(cache.store(cacheKey("other.example", "/a", ""), response("host")));
  REQUIRE(cache.store(cacheKey("example.co", "/a", ""), response("host")));
  const uint64_t before = cache.stats().entries;
  CHECK(cache.invalidatePath("EXAMPLE.com", "/a") == 4);
  CHECK(cache.stats().entries == before - 4);
  CHECK_FALSE(has(cache, key("/a")));
  CHECK_FALSE(has(cache, key("/a", "x=1")));
  for (const char* path : {"/", "/ab", "/a/b", "/A"}) {
    CAPTURE(path);
    CHECK(has(cache, key(path)));
  }
  CHECK(has(cache, cacheKey("other.example", "/a", "")));
  CHECK(has(cache, cacheKey("example.co", "/a", "")));
  CHECK(cache.invalidatePath("example.com", "/a") == 0);
  CHECK(cache.invalidatePath("nowhere", "/") == 0);
}

TEST_CASE("response cache: purge by path prefix on every host; \"\" purges everything") {
  ResponseCache cache(1 << 20);
  for (const char* host : {"a.example", "b.example", "c.example"}) {
    for (const char* path : {"/api/users", "/api/", "/apix", "/other", "/"})
      REQUIRE(cache.store(cacheKey(host, path, "q"), response("x")));
  }
  REQUIRE(
      cache.store(cacheKey("a.example", "/api/v", ""), response("x", 100000, {{"accept", "a"}})));
  REQUIRE(
      cache.store(cacheKey("a.example", "/api/v", ""), response("x", 100000, {{"accept", "b"}})));
  CHECK(cache.stats().entries == 17);
  CHECK(cache.purge("/api/") == 8);
  CHECK(cache.stats().entries == 9);
  for (const char* host : {"a.example", "b.example", "c.example"}) {
    CAPTURE(host);
    CHECK_FALSE(has(cache, cacheKey(host, "/api/users", "q")));
    CHECK(has(cache, cacheKey(host, "/apix", "q")));
    CHECK(has(cache, cacheKey(host, "/other", "q")));
  }
  CHECK(cache.purge("/nothing") == 0);
  CHECK(cache.purge(std::string_view("/\0", 2)) == 0);  // no reaching into the query
  CHECK(cache.purge("/") == 9);
  REQUIRE(cache.store(key("/a"), response("x")));
  REQUIRE(cache.store(key("/b"), response("x")));
  CHECK(cache.purge("") == 2);
  ResponseCache::Stats s = cache.stats();
  CHECK(s.entries == 0);
  CHECK(s.bytes == 0);
  CHECK(s.evictions == 0);
}

TEST_CASE("isReplayedField: per-answer, hop-by-hop fields and Set-Cookie are left out") {
  for (const char* name : {"Date", "age", "X-Cache", "Content-Length", "CONNECTION", "X-Request-Id",
                           "Transfer-Encoding", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                           "Upgrade", "Set-Cookie"}) {
    CAPTURE(name);
    CHECK_FALSE(isReplayedField(name));
  }
  for (const char* name : {"Content-Type", "Cache-Control", "ETag", "Vary", "Last-Modified",
                           "Content-Encoding", "Set-Cookie2x", "Dates"}) {
    CAPTURE(name);
    CHECK(isReplayedField(name));
  }
}

TEST_CASE("ageSeconds: the upstream's Age plus whole seconds stored") {
  CachedResponse r = response("x");
  r.stored_ms = 10000;
  r.age_at_store_s = 5;
  CHECK(ageSeconds(r, 10000) == 5);
  CHECK(ageSeconds(r, 10999) == 5);
  CHECK(ageSeconds(r, 11000) == 6);
  CHECK(ageSeconds(r, 70000) == 65);
  CHECK(ageSeconds(r, 0) == 5);  // a clock before stored_ms adds nothing
  r.age_at_store_s = std::numeric_limits<uint64_t>::max() - 1;
  CHECK(ageSeconds(r, 20000) == std::numeric_limits<uint64_t>::max());
}

TEST_CASE("serialize and parse: a round trip keeps the response, the lifetime left and the age") {
  CachedResponse r = response(std::string("body\0with nul", 13), 50000,
                              {{"accept-encoding", "gzip"}, {"accept-language", ""}});
  r.status = 203;
  r.head = "Content-Type: text/plain\r\nETag: \"x\"\r\nX-Empty:\r\n";
  r.stored_ms = 10000;
  r.age_at_store_s = 7;
  std::string bytes = serializeCachedResponse(r, 13500);  // 36.5 s left, age 10
  std::optional<CachedResponse> back = parseCachedResponse(bytes, 900000);
  REQUIRE(back);
  CHECK(back->status == 203);
  CHECK(back->head == r.head);
  CHECK(back->body == r.body);
  CHECK(back->vary == r.vary);
  CHECK(back->stored_ms == 900000);
  CHECK(back->expires_ms == 900000 + 36500);
  CHECK(back->age_at_store_s == 10);
  CHECK(ageSeconds(*back, 902000) == 12);
  // One response, one encoding.
  CHECK(serializeCachedResponse(*back, 900000) == bytes);
  CachedResponse empty = response("", 1);
  empty.head.clear();
  std::optional<CachedResponse> e = parseCachedResponse(serializeCachedResponse(empty, 0), 0);
  REQUIRE(e);
  CHECK(e->head.empty());
  CHECK(e->body.empty());
  CHECK(e->vary.empty());
}

TEST_CASE("parse: truncated, extended or garbage bytes give nullopt") {
  CachedResponse r = response("hello", 50000, {{"accept-encoding", "gzip"}});
  std::string bytes = serializeCachedResponse(r, 0);
  REQUIRE(parseCachedResponse(bytes, 0));
  for (size_t size = 0; size < bytes.size(); ++size) {
    CAPTURE(size);
    CHECK_FALSE(parseCachedResponse(std::string_view(bytes).substr(0, size), 0));
  }
  CHECK_FALSE(parseCachedResponse(bytes + '\0', 0));
  CHECK_FALSE(parseCachedResponse("", 0));
  CHECK_FALSE(parseCachedResponse("garbage that is long enough to be read as a record", 0));
  std::string other_version = bytes;
  other_version[4] = '\x02';
  CHECK_FALSE(parseCachedResponse(other_version, 0));
  // Every byte of the record flipped: nullopt or a response, never a crash.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0xff);
    (void)parseCachedResponse(flipped, 0);
  }
  // A huge length or Vary count does not allocate it.
  std::string huge = bytes;
  huge.replace(huge.size() - 4 - 4 - 15 - 4 - 4, 4, "\xff\xff\xff\xff");
  CHECK_FALSE(parseCachedResponse(huge, 0));
  std::string huge_body = bytes;  // the body's u64 length, before "hello"
  huge_body.replace(huge_body.size() - 31 - 5 - 8, 8, std::string(8, '\xff'));
  CHECK_FALSE(parseCachedResponse(huge_body, 0));
}

TEST_CASE("parse: what could not be served or would split a response gives nullopt") {
  CachedResponse r = response("x", 1000);
  CHECK_FALSE(parseCachedResponse(serializeCachedResponse(r, 1000), 1000));  // no lifetime left
  CHECK_FALSE(parseCachedResponse(serializeCachedResponse(r, 5000), 5000));
  CHECK(parseCachedResponse(serializeCachedResponse(r, 999), 999));
  // The lifetime left does not overflow the reader's clock.
  CHECK_FALSE(parseCachedResponse(serializeCachedResponse(r, 0),
                                  std::numeric_limits<uint64_t>::max() - 10));
  for (int status : {0, 99, 1000, 65535}) {
    CachedResponse s = response("x");
    s.status = status;
    CAPTURE(status);
    CHECK_FALSE(parseCachedResponse(serializeCachedResponse(s, 0), 0));
  }
  for (const char* head :
       {"No-Colon\r\n", ": empty name\r\n", "Bad Name: x\r\n", "A: b\n", "A: b\r\nC: d",
        "A: b\r\n\r\nInjected: yes\r\n", "A: b\rc\r\n", "A: b\r\r\n"}) {
    CachedResponse h = response("x");
    h.head = head;
    CAPTURE(head);
    CHECK_FALSE(parseCachedResponse(serializeCachedResponse(h, 0), 0));
  }
  std::string nul_head = "A: b";
  nul_head += '\0';
  nul_head += "\r\n";
  CachedResponse n = response("x");
  n.head = nul_head;
  CHECK_FALSE(parseCachedResponse(serializeCachedResponse(n, 0), 0));
  for (const char* name : {"", "Accept-Encoding", "accept encoding"}) {
    CachedResponse v = response("x", 100000, {{name, "gzip"}});
    CAPTURE(name);
    CHECK_FALSE(parseCachedResponse(serializeCachedResponse(v, 0), 0));
  }
}

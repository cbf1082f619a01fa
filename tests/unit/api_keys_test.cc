#include "worker/gateway/api_keys.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using phalanx::shared::ApiKeyRecord;
using phalanx::shared::sha256;
using namespace phalanx::worker;

namespace {

ApiKeyRecord record(const std::string& key, const std::string& tier, const std::string& id) {
  return ApiKeyRecord{.sha256 = sha256(key), .tier = tier, .id = id};
}

}  // namespace

TEST_CASE("ApiKeyStore: finds a key by its bytes, and nothing else") {
  ApiKeyStore store({record("key-one-aaaaaaaaaaaa", "free", "one"),
                     record("key-two-bbbbbbbbbbbb", "premium", "two")});
  CHECK(store.size() == 2);
  const ApiKeyRecord* one = store.find("key-one-aaaaaaaaaaaa");
  REQUIRE(one != nullptr);
  CHECK(one->tier == "free");
  CHECK(one->id == "one");
  const ApiKeyRecord* two = store.find("key-two-bbbbbbbbbbbb");
  REQUIRE(two != nullptr);
  CHECK(two->id == "two");
  CHECK(store.find("") == nullptr);
  CHECK(store.find("key-one-aaaaaaaaaaab") == nullptr);   // the last byte differs
  CHECK(store.find("key-one-aaaaaaaaaaa") == nullptr);    // a prefix
  CHECK(store.find("key-one-aaaaaaaaaaaaa") == nullptr);  // one byte more
  CHECK(store.find("KEY-ONE-AAAAAAAAAAAA") == nullptr);   // keys are case-sensitive
  CHECK(store.find(std::string("key-one-aaaaaaaaaaaa\0", 21)) == nullptr);
}

TEST_CASE("ApiKeyStore: empty, and a digest given twice keeps its first record") {
  ApiKeyStore empty({});
  CHECK(empty.size() == 0);
  CHECK(empty.find("anything-at-all-here") == nullptr);

  ApiKeyStore twice({record("same-key-cccccccccccc", "free", "first"),
                     record("same-key-cccccccccccc", "premium", "second")});
  CHECK(twice.size() == 1);
  REQUIRE(twice.find("same-key-cccccccccccc") != nullptr);
  CHECK(twice.find("same-key-cccccccccccc")->id == "first");
}

TEST_CASE("ApiKeyStore: 10000 keys, each found, none confused with another") {
  std::vector<ApiKeyRecord> records;
  for (int i = 0; i < 10000; ++i) {
    records.push_back(
        record("bulk-key-" + std::to_string(i) + "-xxxxxxxx", "free", std::to_string(i)));
  }
  ApiKeyStore store(std::move(records));
  CHECK(store.size() == 10000);
  for (int i = 0; i < 10000; ++i) {
    const ApiKeyRecord* found = store.find("bulk-key-" + std::to_string(i) + "-xxxxxxxx");
    REQUIRE(found != nullptr);
    REQUIRE(found->id == std::to_string(i));
  }
  CHECK(store.find("bulk-key-10000-xxxxxxxx") == nullptr);
}

TEST_CASE("bearerToken: the Bearer scheme in any case, one or more spaces, one token") {
  CHECK(bearerToken("Bearer abc.def-ghi") == "abc.def-ghi");
  CHECK(bearerToken("bearer abc") == "abc");
  CHECK(bearerToken("BEARER abc") == "abc");
  CHECK(bearerToken("bEaReR abc") == "abc");
  CHECK(bearerToken("Bearer    abc") == "abc");
  CHECK(bearerToken("Bearer abc  ") == "abc");
  CHECK(bearerToken("Bearer abc\t") == "abc");
  CHECK(bearerToken("Bearer a+/b==") == "a+/b==");
}

TEST_CASE("bearerToken: empty for anything else") {
  CHECK(bearerToken("") == "");
  CHECK(bearerToken("Bearer") == "");
  CHECK(bearerToken("Bearer ") == "");
  CHECK(bearerToken("Bearer    ") == "");
  CHECK(bearerToken("Bearerabc") == "");
  CHECK(bearerToken("Bearer\tabc") == "");  // RFC 9110 11.4: the scheme ends with a space
  CHECK(bearerToken(" Bearer abc") == "");
  CHECK(bearerToken("Bearer abc def") == "");
  CHECK(bearerToken("Bearer abc\tdef") == "");
  CHECK(bearerToken("Basic dXNlcjpwYXNz") == "");
  CHECK(bearerToken("Bearers abc") == "");
  CHECK(bearerToken("Token abc") == "");
}

TEST_CASE("presentedApiKey: a bearer token wins, else X-API-Key, else nothing") {
  CHECK(presentedApiKey("Bearer from-auth", "from-header") == "from-auth");
  CHECK(presentedApiKey("", "from-header") == "from-header");
  CHECK(presentedApiKey("Basic dXNlcjpwYXNz", "from-header") == "from-header");
  CHECK(presentedApiKey("Bearer ", "from-header") == "from-header");
  CHECK(presentedApiKey("Bearer from-auth", "") == "from-auth");
  CHECK(presentedApiKey("Basic dXNlcjpwYXNz", "") == "");
  CHECK(presentedApiKey("", "") == "");
}

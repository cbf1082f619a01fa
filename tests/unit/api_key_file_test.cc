#include "shared/api_key_file.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace phalanx::shared {
namespace {

const std::set<std::string> kTiers = {"free", "premium"};

// The error lines, one a line, so a failed CHECK shows them all.
std::string lines(const std::vector<std::string>& errors) {
  std::string text;
  for (const std::string& line : errors) text += line + "\n";
  return text;
}

std::string errorsOf(const std::string& json) {
  ApiKeyFileResult result = parseApiKeyFile(json, kTiers, "keys.json");
  CHECK(result.keys.empty());
  return lines(result.errors);
}

std::vector<ApiKeyRecord> valid(const std::string& json) {
  ApiKeyFileResult result = parseApiKeyFile(json, kTiers, "keys.json");
  CHECK(lines(result.errors) == "");
  return result.keys;
}

constexpr const char* kKeyA = "k-aaaaaaaaaaaaaaaaaaaa";  // 22 bytes
constexpr const char* kKeyB = "k-bbbbbbbbbbbbbbbbbbbb";

}  // namespace

TEST_CASE("sha256: the FIPS 180-2 examples, as 64 lowercase hex digits") {
  CHECK(sha256Hex(sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256Hex(sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256Hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("parseSha256Hex: exactly 64 hex digits, either case") {
  Sha256 abc = sha256("abc");
  std::string hex = sha256Hex(abc);
  CHECK(parseSha256Hex(hex) == abc);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(parseSha256Hex(upper) == abc);
  CHECK_FALSE(parseSha256Hex(""));
  CHECK_FALSE(parseSha256Hex(hex.substr(1)));
  CHECK_FALSE(parseSha256Hex(hex + "0"));
  CHECK_FALSE(parseSha256Hex("g" + hex.substr(1)));
  CHECK_FALSE(parseSha256Hex(" " + hex.substr(1)));
  CHECK_FALSE(parseSha256Hex("0x" + hex.substr(2)));
}

TEST_CASE("parseApiKeyFile: a key or its digest, a tier, an id or one made from the digest") {
  std::string digest_b = sha256Hex(sha256(kKeyB));
  std::vector<ApiKeyRecord> keys =
      valid(std::string(R"({"keys": [ {"key": ")") + kKeyA + R"(", "tier": "free"},
                 {"sha256": ")" +
            digest_b + R"(", "tier": "premium", "id": "acme"} ]})");
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].sha256 == sha256(kKeyA));
  CHECK(keys[0].tier == "free");
  CHECK(keys[0].id == "key-" + sha256Hex(sha256(kKeyA)).substr(0, 12));
  CHECK(keys[1].sha256 == sha256(kKeyB));
  CHECK(keys[1].tier == "premium");
  CHECK(keys[1].id == "acme");
}

TEST_CASE("parseApiKeyFile: an empty list is valid (it lets nobody in); ids may repeat") {
  CHECK(valid(R"({"keys": []})").empty());
  std::vector<ApiKeyRecord> keys = valid(std::string(R"({"keys": [
      {"key": ")") + kKeyA + R"(", "tier": "free", "id": "acme"},
      {"key": ")" + kKeyB + R"(", "tier": "free", "id": "acme"}]})");
  CHECK(keys.size() == 2);
}

TEST_CASE("parseApiKeyFile: key bounds, 16 to 256 printable bytes without spaces") {
  auto withKey = [](const std::string& key) {
    return R"({"keys": [{"key": ")" + key + R"(", "tier": "free"}]})";
  };
  CHECK(valid(withKey(std::string(16, 'k'))).size() == 1);
  CHECK(valid(withKey(std::string(256, 'k'))).size() == 1);
  CHECK(valid(withKey("!~" + std::string(14, 'k'))).size() == 1);
  CHECK(errorsOf(withKey(std::string(15, 'k'))) ==
        "keys.json: keys[0].key: must be 16 to 256 bytes, got 15\n");
  CHECK(errorsOf(withKey(std::string(257, 'k'))) ==
        "keys.json: keys[0].key: must be 16 to 256 bytes, got 257\n");
  CHECK(errorsOf(withKey("kkkkkkkk kkkkkkkk")) ==
        "keys.json: keys[0].key: must be printable ASCII without spaces\n");
  CHECK(errorsOf(withKey("kkkkkkkk\\tkkkkkkkk")) ==
        "keys.json: keys[0].key: must be printable ASCII without spaces\n");
  CHECK(errorsOf(withKey("kkkkkkkk\\u00e9kkkkkkk")) ==
        "keys.json: keys[0].key: must be printable ASCII without spaces\n");
}

TEST_CASE("parseApiKeyFile: every error, each with the file and its path") {
  std::string errors = errorsOf(std::string(R"({"keys": [
      {"key": ")") + kKeyA + R"(", "tier": "free"},
      {"key": ")" + kKeyB + R"(", "tier": "free", "tiers": "x"},
      {"key": ")" + kKeyB + R"(", "tier": "gold"},
      {"sha256": "abc", "tier": "free"},
      {"key": ")" + kKeyA + R"(", "sha256": ")" +
                                sha256Hex(sha256(kKeyA)) + R"(", "tier": "free"},
      {"tier": "free"},
      {"key": 42},
      {"key": "kkkkkkkkkkkkkkkkkkkk", "tier": "free", "id": ")" +
                                std::string(65, 'i') + R"("},
      {"key": "kkkkkkkkkkkkkkkkkkkl", "tier": "free", "id": "a\nb"},
      {"sha256": ")" + sha256Hex(sha256(kKeyA)) +
                                R"(", "tier": "premium"},
      "key"
    ], "extra": true})");
  CHECK(errors ==
        "keys.json: keys[1].tiers: unknown key (did you mean \"tier\"?)\n"
        "keys.json: keys[2].tier: no tier named \"gold\"\n"
        "keys.json: keys[2].key: same key as keys[1]\n"
        "keys.json: keys[3].sha256: expected 64 hex digits (a SHA-256), got \"abc\"\n"
        "keys.json: keys[4]: give either key or sha256, not both\n"
        "keys.json: keys[5]: needs a key or its sha256\n"
        "keys.json: keys[6].key: expected a string, got number\n"
        "keys.json: keys[6].tier: required\n"
        "keys.json: keys[7].id: must be at most 64 bytes, got 65\n"
        "keys.json: keys[8].id: must be printable ASCII\n"
        "keys.json: keys[9].sha256: same key as keys[0]\n"
        "keys.json: keys[10]: expected an object, got string\n"
        "keys.json: extra: unknown key\n");
}

TEST_CASE("parseApiKeyFile: no message quotes a key") {
  std::string secret = "s3cr3t-" + std::string(20, 'x');
  std::string errors = errorsOf(R"({"keys": [{"key": ")" + secret + R"(", "tier": "gold"},
                                            {"key": ")" +
                                secret + R"(", "tier": "free"},
                                            {"key": ")" +
                                secret + R"( ", "tier": "free"}]})");
  CHECK(errors.find("s3cr3t") == std::string::npos);
  CHECK(errors.find("keys[1].key: same key as keys[0]") != std::string::npos);
}

TEST_CASE("parseApiKeyFile: a document that is not a key file") {
  CHECK(errorsOf("").rfind("keys.json: invalid JSON: ", 0) == 0);
  CHECK(errorsOf("{\"keys\": [}").rfind("keys.json: invalid JSON: ", 0) == 0);
  CHECK(errorsOf("[]") == "keys.json: top level: expected an object, got array\n");
  CHECK(errorsOf("{}") == "keys.json: keys: required\n");
  CHECK(errorsOf(R"({"keys": {}})") == "keys.json: keys: expected an array, got object\n");
}

TEST_CASE("parseApiKeyFile: a tier that does not exist is an error even with no tiers") {
  ApiKeyFileResult result = parseApiKeyFile(
      std::string(R"({"keys": [{"key": ")") + kKeyA + R"(", "tier": "free"}]})", {}, "k.json");
  CHECK(result.keys.empty());
  CHECK(lines(result.errors) == "k.json: keys[0].tier: no tier named \"free\"\n");
}

TEST_CASE("loadApiKeyFile: reads the file, names it in errors") {
  TempDir dir;
  std::string path = dir.write(
      "keys.json", std::string(R"({"keys": [{"key": ")") + kKeyA + R"(", "tier": "free"}]})");
  ApiKeyFileResult result = loadApiKeyFile(path, kTiers);
  CHECK(lines(result.errors) == "");
  REQUIRE(result.keys.size() == 1);
  CHECK(result.keys[0].sha256 == sha256(kKeyA));

  std::string bad = dir.write("bad.json", R"({"keys": [{"key": "short", "tier": "free"}]})");
  CHECK(lines(loadApiKeyFile(bad, kTiers).errors) ==
        bad + ": keys[0].key: must be 16 to 256 bytes, got 5\n");
  CHECK(lines(loadApiKeyFile(dir.file("missing.json"), kTiers).errors) ==
        dir.file("missing.json") + ": cannot read: No such file or directory\n");
  CHECK(lines(loadApiKeyFile(dir.path(), kTiers).errors) ==
        dir.path() + ": cannot read: Is a directory\n");
}

}  // namespace phalanx::shared

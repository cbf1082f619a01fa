#include "shared/api_key_file.h"

#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "shared/json_reader.h"

namespace phalanx::shared {

namespace {

using json::element;
using json::Errors;
using json::ObjectReader;

struct MdFree {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};

// Fetched once: EVP_sha256() would look the implementation up in the provider
// store on every digest, and a worker hashes every presented key.
const EVP_MD* sha256Md() {
  static const std::unique_ptr<EVP_MD, MdFree> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  if (!md) {
    std::fprintf(stderr, "phalanx: OpenSSL has no SHA256 (EVP_MD_fetch failed)\n");
    std::abort();
  }
  return md.get();
}

bool isPrintable(unsigned char c) {
  return c >= 0x20 && c < 0x7f;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// What one entry says before its key is checked against the others.
struct Entry {
  std::optional<Sha256> digest;
  std::string digest_path;  // where the key was given: "keys[1].key" or "keys[1].sha256"
  ApiKeyRecord record;
};

// `key`: reports why a key is unusable, never what it is.
std::optional<Sha256> readKey(Errors& errors, const std::string& path, element value) {
  std::string key;
  if (!json::readString(errors, path, value, key)) return std::nullopt;
  if (key.size() < kMinApiKeyBytes || key.size() > kMaxApiKeyBytes) {
    errors.add(path, "must be " + std::to_string(kMinApiKeyBytes) + " to " +
                         std::to_string(kMaxApiKeyBytes) + " bytes, got " +
                         std::to_string(key.size()));
    return std::nullopt;
  }
  // Keys travel in a header: a space or a control byte could never be sent.
  if (!std::all_of(key.begin(), key.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
    errors.add(path, "must be printable ASCII without spaces");
    return std::nullopt;
  }
  return sha256(key);
}

std::optional<Sha256> readDigest(Errors& errors, const std::string& path, element value) {
  std::string hex;
  if (!json::readString(errors, path, value, hex)) return std::nullopt;
  std::optional<Sha256> digest = parseSha256Hex(hex);
  if (!digest) errors.add(path, "expected 64 hex digits (a SHA-256), got " + json::inQuotes(hex));
  return digest;
}

Entry readEntry(Errors& errors, const std::string& path, element value,
                const std::set<std::string>& tiers) {
  Entry entry;
  ObjectReader r(errors, path, value);
  std::optional<element> key = r.get("key");
  std::optional<element> digest = r.get("sha256");
  if (key && digest) {
    r.fail("give either key or sha256, not both");
  } else if (key) {
    entry.digest_path = r.pathOf("key");
    entry.digest = readKey(errors, entry.digest_path, *key);
  } else if (digest) {
    entry.digest_path = r.pathOf("sha256");
    entry.digest = readDigest(errors, entry.digest_path, *digest);
  } else if (r.valid()) {
    r.fail("needs a key or its sha256");
  }
  std::optional<element> tier = r.required("tier");
  if (tier && json::readString(errors, r.pathOf("tier"), *tier, entry.record.tier) &&
      tiers.count(entry.record.tier) == 0) {
    errors.add(r.pathOf("tier"), "no tier named " + json::inQuotes(entry.record.tier));
  }
  std::string& id = entry.record.id;
  if (r.string("id", id)) {
    if (id.size() > kMaxApiKeyIdBytes) {
      errors.add(r.pathOf("id"), "must be at most " + std::to_string(kMaxApiKeyIdBytes) +
                                     " bytes, got " + std::to_string(id.size()));
    } else if (!std::all_of(id.begin(), id.end(), isPrintable)) {
      errors.add(r.pathOf("id"), "must be printable ASCII");
    }
  }
  if (entry.digest && id.empty()) id = "key-" + sha256Hex(*entry.digest).substr(0, 12);
  if (entry.digest) entry.record.sha256 = *entry.digest;
  return entry;
}

void readKeys(Errors& errors, element root, const std::set<std::string>& tiers,
              std::vector<ApiKeyRecord>& out) {
  ObjectReader top(errors, "", root);
  std::optional<element> keys = top.required("keys");
  if (!keys) return;
  std::map<Sha256, std::string> seen;  // digest -> the path of the entry that gave it first
  json::forEachItem(errors, "keys", *keys, false, [&](const std::string& path, element item) {
    size_t before = errors.size();
    Entry entry = readEntry(errors, path, item, tiers);
    if (!entry.digest) return;
    auto [first, inserted] = seen.emplace(*entry.digest, path);
    if (!inserted) errors.add(entry.digest_path, "same key as " + first->second);
    if (errors.size() == before) out.push_back(std::move(entry.record));
  });
}

}  // namespace

Sha256 sha256(std::string_view bytes) {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, sha256Md(), nullptr) != 1 ||
      length != digest.size()) {
    std::fprintf(stderr, "phalanx: EVP_Digest(SHA256, %zu bytes) failed\n", bytes.size());
    std::abort();
  }
  return digest;
}

std::string sha256Hex(const Sha256& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(digest.size() * 2);
  for (uint8_t byte : digest) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

std::optional<Sha256> parseSha256Hex(std::string_view hex) {
  Sha256 digest{};
  if (hex.size() != digest.size() * 2) return std::nullopt;
  for (size_t i = 0; i < digest.size(); ++i) {
    int high = hexValue(hex[2 * i]);
    int low = hexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return digest;
}

ApiKeyFileResult parseApiKeyFile(std::string_view json_text, const std::set<std::string>& tiers,
                                 std::string_view file_name) {
  ApiKeyFileResult result;
  simdjson::dom::parser parser;
  element root;
  simdjson::error_code error = parser.parse(json_text.data(), json_text.size()).get(root);
  if (error != simdjson::SUCCESS) {
    result.errors.push_back(std::string("invalid JSON: ") + simdjson::error_message(error));
  } else {
    Errors errors;
    readKeys(errors, root, tiers, result.keys);
    result.errors = errors.take();
  }
  if (!result.errors.empty()) result.keys.clear();
  if (!file_name.empty()) {
    for (std::string& line : result.errors) line.insert(0, std::string(file_name) + ": ");
  }
  return result;
}

ApiKeyFileResult loadApiKeyFile(const std::string& path, const std::set<std::string>& tiers) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  auto cannotRead = [&](int error) {
    return ApiKeyFileResult{.keys = {},
                            .errors = {path + ": cannot read: " + std::strerror(error)}};
  };
  if (!file) return cannotRead(errno);
  std::string text;
  char buffer[65536];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, got);
  // A directory opens fine and fails here, with EISDIR.
  if (std::ferror(file.get())) return cannotRead(errno);
  return parseApiKeyFile(text, tiers, path);
}

}  // namespace phalanx::shared

#include "worker/gateway/api_keys.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace phalanx::worker {

namespace {

uint64_t prefixOf(const shared::Sha256& digest) {
  uint64_t prefix = 0;
  std::memcpy(&prefix, digest.data(), sizeof prefix);
  return prefix;
}

bool sameDigest(const shared::Sha256& a, const shared::Sha256& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

ApiKeyStore::ApiKeyStore(std::vector<shared::ApiKeyRecord> records) {
  records_.reserve(records.size());
  by_prefix_.reserve(records.size());
  for (shared::ApiKeyRecord& record : records) {
    uint64_t prefix = prefixOf(record.sha256);
    auto [begin, end] = by_prefix_.equal_range(prefix);
    bool known = false;
    for (auto it = begin; it != end; ++it)
      known |= sameDigest(records_[it->second].sha256, record.sha256);
    if (known) continue;
    by_prefix_.emplace(prefix, static_cast<uint32_t>(records_.size()));
    records_.push_back(std::move(record));
  }
}

const shared::ApiKeyRecord* ApiKeyStore::find(std::string_view presented) const {
  if (presented.empty() || records_.empty()) return nullptr;
  shared::Sha256 digest = shared::sha256(presented);
  auto [begin, end] = by_prefix_.equal_range(prefixOf(digest));
  for (auto it = begin; it != end; ++it) {
    const shared::ApiKeyRecord& record = records_[it->second];
    if (sameDigest(record.sha256, digest)) return &record;
  }
  return nullptr;
}

std::string_view bearerToken(std::string_view authorization) {
  static constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || authorization[kScheme.size()] != ' ') return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (lower(authorization[i]) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  token.remove_prefix(std::min(token.find_first_not_of(' '), token.size()));
  size_t last = token.find_last_not_of(" \t");
  token = last == std::string_view::npos ? std::string_view() : token.substr(0, last + 1);
  if (token.find_first_of(" \t") != std::string_view::npos) return {};
  return token;
}

std::string_view presentedApiKey(std::string_view authorization, std::string_view x_api_key) {
  std::string_view bearer = bearerToken(authorization);
  return bearer.empty() ? x_api_key : bearer;
}

}  // namespace phalanx::worker

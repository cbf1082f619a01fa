// API key authentication: which key a request presents, and whose it is.
//
// A store holds the SHA-256 of each key, never the key (see
// shared/api_key_file.h). A lookup hashes the presented bytes and finds the
// record by digest; the digest it found is then confirmed with CRYPTO_memcmp.
// The time a lookup takes depends on the presented key's digest, not on how
// many leading bytes it shares with a real key, so timing cannot be used to
// guess a key byte by byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shared/api_key_file.h"

namespace phalanx::worker {

class ApiKeyStore {
 public:
  // A digest given twice keeps its first record (a parsed key file has none).
  explicit ApiKeyStore(std::vector<shared::ApiKeyRecord> records);

  // The record of the key `presented`, or nullptr. The pointer lives as long
  // as the store.
  const shared::ApiKeyRecord* find(std::string_view presented) const;
  size_t size() const { return records_.size(); }

 private:
  std::vector<shared::ApiKeyRecord> records_;
  // The digest's first 8 bytes -> its index in records_. Digests are uniform,
  // so 8 bytes are as good a hash as 32, and a full compare confirms.
  std::unordered_multimap<uint64_t, uint32_t> by_prefix_;
};

// The token of an `Authorization: Bearer TOKEN` value: the scheme in any case,
// then one or more spaces, then a token without spaces or tabs (trailing ones
// are trimmed). Empty for another scheme, a missing token or a token with a
// space inside.
std::string_view bearerToken(std::string_view authorization);

// The API key a request presents: the bearer token of `authorization` when it
// has one, else the `X-API-Key` value as given; empty when neither.
std::string_view presentedApiKey(std::string_view authorization, std::string_view x_api_key);

}  // namespace phalanx::worker

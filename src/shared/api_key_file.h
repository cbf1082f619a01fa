// API keys from a key file of their own, apart from the config: keys come and
// go more often than routes, and a file that holds digests instead of keys can
// be handed around (a config repository, a ticket) without handing out access.
//
// The file:
//   {"keys": [ {"key": "SECRET...", "tier": "free"},
//              {"sha256": "<64 hex digits>", "tier": "premium", "id": "acme"} ]}
// - Each entry has exactly one of `key` (the key itself: 16 to 256 bytes of
//   printable ASCII without spaces, the bytes a client puts in a header) or
//   `sha256` (the SHA-256 of those bytes, 64 hex digits, either case), a `tier`
//   that names an existing tier, and an optional `id`.
// - `id` names the key's holder in logs and metrics: 1 to 64 bytes of
//   printable ASCII. Two keys may share one (a holder's old and new key during
//   a rotation). Without one, the id is "key-" and the first 12 hex digits of
//   the key's SHA-256: stable, and never the key.
// - The same key twice (by its SHA-256, however each entry gave it) is an
//   error; an empty list is not (it lets nobody in).
//
// Errors: every one in the file is collected, one line each, as
// `FILE: PATH: what` (`keys.json: keys[2].tier: no tier named "gold"`). Unknown
// members are errors, so a misspelled `tier` is never silently ignored. No
// message ever quotes a key.
//
// Pure: parseApiKeyFile() reads only its arguments, so the master can validate
// a file on reload and a worker can load the same bytes to the same result.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::shared {

using Sha256 = std::array<uint8_t, 32>;

struct ApiKeyRecord {
  Sha256 sha256;     // of the key's bytes; the key itself is not kept
  std::string tier;  // the name of an existing tier
  std::string id;    // for logs and metrics; never the key
};

// Bounds of a key's length in bytes. Below 16 a key can be guessed; above 256
// it is no longer a key but a header-size lever.
inline constexpr size_t kMinApiKeyBytes = 16;
inline constexpr size_t kMaxApiKeyBytes = 256;
inline constexpr size_t kMaxApiKeyIdBytes = 64;

Sha256 sha256(std::string_view bytes);
// 64 lowercase hex digits.
std::string sha256Hex(const Sha256& digest);
// Exactly 64 hex digits, either case; nullopt otherwise.
std::optional<Sha256> parseSha256Hex(std::string_view hex);

// keys: in file order, and only when `errors` is empty (a file with an error
// loads nothing, so a reload never applies half a file).
struct ApiKeyFileResult {
  std::vector<ApiKeyRecord> keys;
  std::vector<std::string> errors;
};

// `tiers`: the names of the tiers that exist. `file_name` prefixes every error.
ApiKeyFileResult parseApiKeyFile(std::string_view json, const std::set<std::string>& tiers,
                                 std::string_view file_name);
// Reads `path` and parses it, errors prefixed with `path`; a file that cannot
// be read is one error (`PATH: cannot read: No such file or directory`).
ApiKeyFileResult loadApiKeyFile(const std::string& path, const std::set<std::string>& tiers);

}  // namespace phalanx::shared

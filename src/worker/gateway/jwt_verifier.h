// Bearer JWTs (RFC 7519) in JWS compact form (RFC 7515), verified against a
// JWKS: who the caller is and which tier they pay for.
//
// What verify() checks, in this order (the first failure is the answer):
// 1. Malformed: empty or over kMaxTokenBytes; not three base64url parts (see
//    base64UrlDecode); a header that is not a JSON object, has a member twice
//    (no parser differential over which one counts), has `crit` (phalanx
//    understands no extension), or whose `alg` or `kid` is not a string.
// 2. Algorithm: `alg` is "none" or anything but RS256, ES256 and HS256; the
//    key `kid` names is for another algorithm; or, without `kid`, no key is
//    for this one. A key is used only with its own algorithm, so an RSA
//    public key can never serve as an HMAC secret.
//    UnknownKey: `kid` names no key. (`jku`, `jwk` and `x5u` are ignored:
//    keys come from the JWKS only.)
// 3. Signature: no key of the token's algorithm (the one `kid` names, or
//    every one when there is no `kid`) verifies it. ES256 signatures are
//    JOSE's 64-byte r||s; HS256 ones are compared in constant time.
// 4. Malformed: a payload that is not a JSON object or has a member twice;
//    `exp` missing or not a number; `nbf` or `iat` not a number; `sub` or the
//    tier claim present but not a string.
// 5. Expired: now >= exp + leeway. NotYetValid: now + leeway < nbf. (`iat`
//    is not compared with the clock.)
// 6. Issuer: `iss` is not settings.issuer (when that is set).
// 7. Audience: `aud`, a string or an array of them, does not hold
//    settings.audience (when that is set).
// No claim of a token is read before its signature is verified.
//
// NumericDates (`exp`, `nbf`) are seconds since the epoch and may have a
// fraction; they are compared in milliseconds, `now_ms` being wall-clock ms.
//
// A verified token is cached (at most kCacheEntries, by its SHA-256, least
// recently used evicted first), so a client that sends the same token with
// every request costs one hash a request, not one signature check. A cached
// token is checked against `exp` and `nbf` again at each use and leaves the
// cache once expired; a token that failed is never cached. The cache is the
// verifier's: keys or settings change by building a new verifier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "shared/api_key_file.h"
#include "worker/gateway/jwks.h"

namespace phalanx::worker {

struct JwtSettings {
  std::string issuer;    // `iss` must equal it; empty: not checked
  std::string audience;  // `aud` must hold it; empty: not checked
  std::string tier_claim = "tier";
  uint64_t leeway_ms = 30000;  // clock skew allowed on `exp` and `nbf`
};

enum class JwtError : uint8_t {
  None,
  Malformed,
  Algorithm,
  UnknownKey,
  Signature,
  Expired,
  NotYetValid,
  Issuer,
  Audience,
};

// "none" for None, then "malformed", "algorithm", "unknown_key", "signature",
// "expired", "not_yet_valid", "issuer", "audience": for logs and metrics.
const char* jwtErrorName(JwtError error);

// With an error, every other field is empty.
struct JwtIdentity {
  JwtError error = JwtError::None;
  std::string subject;      // `sub`; empty when absent
  std::string tier;         // the tier claim; empty when absent (the caller's default)
  uint64_t expires_ms = 0;  // `exp`, in ms
};

class JwtVerifier {
 public:
  static constexpr size_t kMaxTokenBytes = 8192;
  static constexpr size_t kCacheEntries = 4096;

  JwtVerifier(Jwks keys, JwtSettings settings);
  JwtVerifier(JwtVerifier&&) noexcept;
  JwtVerifier& operator=(JwtVerifier&&) noexcept;
  ~JwtVerifier();

  // `token`: the bearer token as sent. `now_ms`: wall-clock milliseconds.
  JwtIdentity verify(std::string_view token, uint64_t now_ms);

  // Tokens in the cache now.
  size_t cached() const { return cache_index_.size(); }

 private:
  struct Header;
  struct Verified {
    JwtIdentity identity;
    uint64_t not_before_ms = 0;
  };
  struct DigestHash {
    size_t operator()(const shared::Sha256& digest) const {
      size_t hash;
      std::memcpy(&hash, digest.data(), sizeof hash);  // a digest is uniform already
      return hash;
    }
  };
  using CacheList = std::list<std::pair<shared::Sha256, Verified>>;

  Verified verifyUncached(std::string_view token, uint64_t now_ms);
  JwtError readHeader(std::string_view json, Header& header);
  JwtError checkSignature(const Header& header, std::string_view signing_input,
                          std::string_view signature) const;
  Verified readClaims(std::string_view json, uint64_t now_ms);
  JwtError checkTimes(uint64_t expires_ms, uint64_t not_before_ms, uint64_t now_ms) const;
  void remember(const shared::Sha256& digest, const Verified& verified);

  Jwks keys_;
  JwtSettings settings_;
  // The JSON parser, reused so its buffers grow once, not per token. Behind a
  // pointer so that simdjson's layout (which depends on its build options)
  // stays out of this header.
  struct Parser;
  std::unique_ptr<Parser> parser_;
  CacheList cache_;  // most recently used first
  std::unordered_map<shared::Sha256, CacheList::iterator, DigestHash> cache_index_;
};

}  // namespace phalanx::worker

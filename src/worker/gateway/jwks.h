// The keys JWTs are verified with, read from a JWKS document (RFC 7517):
//   {"keys": [ {"kty": "RSA", "n": "...", "e": "AQAB", "kid": "2024-01", "alg": "RS256"},
//              {"kty": "EC", "crv": "P-256", "x": "...", "y": "...", "kid": "ec1"},
//              {"kty": "oct", "k": "...", "alg": "HS256"} ]}
//
// Contract:
// - Three kinds of key, one algorithm each: RSA (n, e) for RS256, EC on P-256
//   (x, y) for ES256, oct (k) for HS256. `alg` may be omitted (it follows from
//   the key) but when given must be that one; `kid` is optional and unique.
// - Numbers and secrets are base64url without padding (RFC 7518 6.3.1); see
//   base64UrlDecode for how strictly.
// - Refused, each with its path: RSA moduli under 2048 bits (RFC 7518 3.3) or
//   over 16384; EC points not on P-256, or coordinates not 32 bytes; HS256
//   secrets under 32 bytes (RFC 7518 3.2); keys whose `use` is not "sig"; and
//   private members (`d`, `p`...), which mean a private key was published
//   where only its public half belongs. No message quotes a secret.
// - Members a JWK may carry but phalanx does not use (`x5c`, `x5t`,
//   `key_ops`...) are ignored, as RFC 7517 4 requires, so an identity
//   provider's JWKS can be used as it is published.
// - Every error is collected as `FILE: PATH: what`
//   (`jwks.json: keys[1].crv: only P-256 is supported`), and a document with
//   an error yields no keys.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::worker {

enum class JwsAlg : uint8_t { RS256, ES256, HS256 };

// "RS256", "ES256", "HS256".
const char* jwsAlgName(JwsAlg alg);
// The algorithm of that exact name; nullopt for any other ("none" included).
std::optional<JwsAlg> jwsAlgNamed(std::string_view name);

// RFC 4648 5 (base64url) as JOSE uses it: the alphabet A-Z a-z 0-9 - _ and no
// padding. Refused: any other byte ('=', '+', '/', whitespace), a length of 4n+1,
// and unused low bits that are not zero, so that each byte string has exactly
// one encoding (a token cannot be altered without its signature changing).
std::optional<std::string> base64UrlDecode(std::string_view text);

struct EvpPkeyFree {
  void operator()(EVP_PKEY* key) const;
};
using EvpPkey = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

struct Jwk {
  std::string kid;  // empty when the JWK has none
  JwsAlg alg = JwsAlg::RS256;
  // RS256 and ES256: the public key. HS256: an HMAC key holding the secret
  // (OpenSSL keeps it and wipes it when the key is freed).
  EvpPkey key;
};

struct Jwks {
  std::vector<Jwk> keys;
};

struct JwksResult {
  Jwks jwks;  // empty when there are errors
  std::vector<std::string> errors;
};

// `file_name` prefixes every error.
JwksResult parseJwks(std::string_view json, std::string_view file_name);
// Reads `path` and parses it, errors prefixed with `path`.
JwksResult loadJwksFile(const std::string& path);

}  // namespace phalanx::worker

// Who is calling: an API key (config api_keys and api_key_file) or a bearer
// JWT (jwt.jwks_file), checked on routes with "auth". Built once per worker
// from the config; the key file and the JWKS are read then, so a reload (new
// workers) picks up their changes, and a file that does not parse stops the
// new workers from starting (the reload fails, the old generation serves on).
//
// Contract:
// - authenticate() is synchronous and allocation-light: an API key costs one
//   SHA-256 and a hash lookup; a JWT is verified once and then cached until
//   its exp (JwtVerifier).
// - A key is never kept or logged: an Identity carries the key's id (a
//   digest prefix unless the config names it) or the JWT's subject.
// - Failures say why (shared::AuthFailure) so /metrics can count them; the
//   client only learns "missing or invalid credentials".
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "shared/access_records.h"
#include "shared/config.h"
#include "worker/gateway/api_keys.h"
#include "worker/gateway/jwt_verifier.h"
#include "worker/http/http_parser.h"

namespace phalanx::worker {

struct Identity {
  bool ok = false;
  shared::AuthFailure failure = shared::AuthFailure::Missing;  // when !ok
  std::string id;                                              // key id or JWT subject
  std::string tier;                                            // a configured tier's name
};

class Authenticator {
 public:
  enum class Scheme { ApiKey, Jwt };

  // nullptr with `error` set when the key file or the JWKS cannot be read or parsed.
  static std::unique_ptr<Authenticator> create(const shared::Config& config, std::string* error);

  // `wall_ms`: the wall clock, for a JWT's exp and nbf.
  Identity authenticate(Scheme scheme, const Request& request, uint64_t wall_ms);

 private:
  Authenticator() = default;
  Identity byApiKey(std::string_view authorization, std::string_view x_api_key) const;
  Identity byJwt(std::string_view authorization, uint64_t wall_ms);

  std::optional<ApiKeyStore> keys_;
  std::optional<JwtVerifier> jwt_;
  std::string default_tier_;
  std::set<std::string> tiers_;
};

}  // namespace phalanx::worker

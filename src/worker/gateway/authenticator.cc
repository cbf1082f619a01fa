#include "worker/gateway/authenticator.h"

#include "shared/api_key_file.h"
#include "worker/http/ascii.h"

namespace phalanx::worker {

namespace {

using shared::AuthFailure;

AuthFailure failureOf(JwtError error) {
  switch (error) {
    case JwtError::None:
    case JwtError::Malformed: return AuthFailure::Malformed;
    case JwtError::Algorithm: return AuthFailure::Algorithm;
    case JwtError::UnknownKey: return AuthFailure::JwtUnknownKey;
    case JwtError::Signature: return AuthFailure::Signature;
    case JwtError::Expired: return AuthFailure::Expired;
    case JwtError::NotYetValid: return AuthFailure::NotYetValid;
    case JwtError::Issuer: return AuthFailure::Issuer;
    case JwtError::Audience: return AuthFailure::Audience;
  }
  return AuthFailure::Malformed;
}

Identity refused(AuthFailure failure) {
  Identity identity;
  identity.failure = failure;
  return identity;
}

}  // namespace

std::unique_ptr<Authenticator> Authenticator::create(const shared::Config& config,
                                                     std::string* error) {
  std::unique_ptr<Authenticator> auth(new Authenticator());
  for (const auto& [name, tier] : config.tiers) auth->tiers_.insert(name);
  std::vector<shared::ApiKeyRecord> records;
  for (const shared::ApiKeyConfig& key : config.api_keys) {
    shared::ApiKeyRecord record;
    record.sha256 = key.key.empty() ? *shared::parseSha256Hex(key.sha256) : shared::sha256(key.key);
    record.tier = key.tier;
    record.id = key.id.empty() ? "key-" + shared::sha256Hex(record.sha256).substr(0, 12) : key.id;
    records.push_back(std::move(record));
  }
  if (!config.api_key_file.empty()) {
    shared::ApiKeyFileResult file = shared::loadApiKeyFile(config.api_key_file, auth->tiers_);
    if (!file.errors.empty()) {
      *error = file.errors.front();
      return nullptr;
    }
    for (auto& record : file.keys) records.push_back(std::move(record));
  }
  auth->keys_.emplace(std::move(records));
  if (config.jwt) {
    JwksResult jwks = loadJwksFile(config.jwt->jwks_file);
    if (!jwks.errors.empty()) {
      *error = jwks.errors.front();
      return nullptr;
    }
    JwtSettings settings{.issuer = config.jwt->issuer,
                         .audience = config.jwt->audience,
                         .tier_claim = config.jwt->tier_claim,
                         .leeway_ms = config.jwt->leeway_ms};
    auth->jwt_.emplace(std::move(jwks.jwks), std::move(settings));
    auth->default_tier_ = config.jwt->default_tier;
  }
  return auth;
}

Identity Authenticator::authenticate(Scheme scheme, const Request& request, uint64_t wall_ms) {
  std::string_view authorization;
  std::string_view x_api_key;
  for (size_t i = 0; i < request.headerCount(); ++i) {
    auto [name, value] = request.header(i);
    if (equalsLowercase(name, "authorization")) {
      authorization = value;
    } else if (equalsLowercase(name, "x-api-key")) {
      x_api_key = value;
    }
  }
  return scheme == Scheme::ApiKey ? byApiKey(authorization, x_api_key)
                                  : byJwt(authorization, wall_ms);
}

Identity Authenticator::byApiKey(std::string_view authorization, std::string_view x_api_key) const {
  std::string_view presented = presentedApiKey(authorization, x_api_key);
  if (presented.empty()) return refused(AuthFailure::Missing);
  const shared::ApiKeyRecord* record = keys_ ? keys_->find(presented) : nullptr;
  if (record == nullptr) return refused(AuthFailure::UnknownKey);
  return Identity{
      .ok = true, .failure = AuthFailure::Missing, .id = record->id, .tier = record->tier};
}

Identity Authenticator::byJwt(std::string_view authorization, uint64_t wall_ms) {
  std::string_view token = bearerToken(authorization);
  if (token.empty()) return refused(AuthFailure::Missing);
  if (!jwt_) return refused(AuthFailure::Malformed);
  JwtIdentity verified = jwt_->verify(token, wall_ms);
  if (verified.error != JwtError::None) return refused(failureOf(verified.error));
  std::string tier = verified.tier.empty() ? default_tier_ : verified.tier;
  if (tier.empty() || tiers_.count(tier) == 0) return refused(AuthFailure::NoTier);
  std::string id = verified.subject.empty() ? "jwt" : "sub:" + verified.subject;
  if (id.size() > 63) id.resize(63);
  return Identity{.ok = true, .failure = AuthFailure::Missing, .id = std::move(id), .tier = tier};
}

}  // namespace phalanx::worker

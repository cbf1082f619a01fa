#include "worker/gateway/jwt_verifier.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <array>
#include <limits>
#include <memory>
#include <optional>

#include "shared/json_reader.h"

namespace phalanx::worker {

namespace {

using shared::json::element;
using shared::json::Errors;
using shared::json::ObjectReader;
using simdjson::dom::element_type;

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr size_t kEs256SignatureBytes = 64;  // r||s, 32 bytes each (RFC 7518 3.4)
constexpr size_t kHs256SignatureBytes = 32;

struct MdContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using MdContext = std::unique_ptr<EVP_MD_CTX, MdContextFree>;

const unsigned char* bytesOf(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

uint64_t saturatingAdd(uint64_t a, uint64_t b) {
  return a > kMaxU64 - b ? kMaxU64 : a + b;
}

JwtIdentity failed(JwtError error) {
  JwtIdentity identity;
  identity.error = error;
  return identity;
}

// A NumericDate (RFC 7519 2: seconds, possibly with a fraction) in ms,
// saturating: before the epoch is 0, past uint64 is its maximum.
std::optional<uint64_t> numericDateMs(element value) {
  switch (value.type()) {
    case element_type::UINT64: {
      uint64_t seconds = value.get_uint64().value_unsafe();
      return seconds > kMaxU64 / 1000 ? kMaxU64 : seconds * 1000;
    }
    case element_type::INT64: {
      int64_t signed_seconds = value.get_int64().value_unsafe();
      if (signed_seconds < 0) return 0;
      uint64_t seconds = static_cast<uint64_t>(signed_seconds);
      return seconds > kMaxU64 / 1000 ? kMaxU64 : seconds * 1000;
    }
    case element_type::DOUBLE: {
      double ms = value.get_double().value_unsafe() * 1000.0;
      if (!(ms > 0)) return 0;
      if (ms >= 18446744073709551616.0) return kMaxU64;
      return static_cast<uint64_t>(ms);
    }
    default: return std::nullopt;
  }
}

// One DER INTEGER (X.690 8.3) from a big-endian unsigned number: no leading
// zero bytes, and one zero byte when the first bit would make it negative.
size_t derInteger(const uint8_t* number, size_t size, uint8_t* out) {
  size_t skip = 0;
  while (skip + 1 < size && number[skip] == 0) ++skip;
  bool pad = (number[skip] & 0x80) != 0;
  size_t length = size - skip + (pad ? 1 : 0);
  size_t at = 0;
  out[at++] = 0x02;
  out[at++] = static_cast<uint8_t>(length);
  if (pad) out[at++] = 0;
  std::memcpy(out + at, number + skip, size - skip);
  return at + size - skip;
}

// JOSE's r||s as the DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs) OpenSSL
// verifies. At most 2 + 2 * 35 bytes, so every length is one byte.
size_t es256ToDer(std::string_view jose, std::array<uint8_t, 72>& der) {
  const uint8_t* r = bytesOf(jose);
  const uint8_t* s = r + kEs256SignatureBytes / 2;
  size_t at = 2;
  at += derInteger(r, kEs256SignatureBytes / 2, der.data() + at);
  at += derInteger(s, kEs256SignatureBytes / 2, der.data() + at);
  der[0] = 0x30;
  der[1] = static_cast<uint8_t>(at - 2);
  return at;
}

bool digestVerifies(EVP_PKEY* key, std::string_view input, const uint8_t* signature,
                    size_t signature_size) {
  MdContext context(EVP_MD_CTX_new());
  bool ok =
      context &&
      EVP_DigestVerifyInit_ex(context.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) ==
          1 &&
      EVP_DigestVerify(context.get(), signature, signature_size, bytesOf(input), input.size()) == 1;
  ERR_clear_error();  // a refused signature leaves errors that are no one else's business
  return ok;
}

bool hmacMatches(EVP_PKEY* key, std::string_view input, std::string_view signature) {
  if (signature.size() != kHs256SignatureBytes) return false;
  std::array<uint8_t, EVP_MAX_MD_SIZE> mac;
  size_t mac_size = mac.size();
  MdContext context(EVP_MD_CTX_new());
  bool ok =
      context &&
      EVP_DigestSignInit_ex(context.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) ==
          1 &&
      EVP_DigestSign(context.get(), mac.data(), &mac_size, bytesOf(input), input.size()) == 1 &&
      mac_size == kHs256SignatureBytes &&
      CRYPTO_memcmp(mac.data(), signature.data(), kHs256SignatureBytes) == 0;
  ERR_clear_error();
  return ok;
}

bool signatureMatches(const Jwk& jwk, std::string_view input, std::string_view signature) {
  switch (jwk.alg) {
    case JwsAlg::RS256:
      return digestVerifies(jwk.key.get(), input, bytesOf(signature), signature.size());
    case JwsAlg::ES256: {
      if (signature.size() != kEs256SignatureBytes) return false;
      std::array<uint8_t, 72> der;
      size_t size = es256ToDer(signature, der);
      return digestVerifies(jwk.key.get(), input, der.data(), size);
    }
    case JwsAlg::HS256: return hmacMatches(jwk.key.get(), input, signature);
  }
  return false;
}

// A string member, or nothing; false when present but not a string.
bool optionalString(ObjectReader& r, std::string_view member, std::string& out) {
  std::optional<element> value = r.get(member);
  if (!value) return true;
  std::string_view text;
  if (value->get_string().get(text) != simdjson::SUCCESS) return false;
  out = text;
  return true;
}

bool audienceHolds(std::optional<element> aud, std::string_view audience) {
  if (!aud) return false;
  std::string_view text;
  if (aud->get_string().get(text) == simdjson::SUCCESS) return text == audience;
  simdjson::dom::array list;
  if (aud->get_array().get(list) != simdjson::SUCCESS) return false;
  for (element item : list) {
    if (item.get_string().get(text) == simdjson::SUCCESS && text == audience) return true;
  }
  return false;
}

}  // namespace

struct JwtVerifier::Parser {
  simdjson::dom::parser json;
};

struct JwtVerifier::Header {
  JwsAlg alg = JwsAlg::RS256;
  bool has_kid = false;
  std::string kid;
};

const char* jwtErrorName(JwtError error) {
  switch (error) {
    case JwtError::None: return "none";
    case JwtError::Malformed: return "malformed";
    case JwtError::Algorithm: return "algorithm";
    case JwtError::UnknownKey: return "unknown_key";
    case JwtError::Signature: return "signature";
    case JwtError::Expired: return "expired";
    case JwtError::NotYetValid: return "not_yet_valid";
    case JwtError::Issuer: return "issuer";
    case JwtError::Audience: return "audience";
  }
  return "unknown";
}

JwtVerifier::JwtVerifier(Jwks keys, JwtSettings settings)
    : keys_(std::move(keys)), settings_(std::move(settings)), parser_(std::make_unique<Parser>()) {
  cache_index_.reserve(kCacheEntries);
}

JwtVerifier::JwtVerifier(JwtVerifier&&) noexcept = default;
JwtVerifier& JwtVerifier::operator=(JwtVerifier&&) noexcept = default;
JwtVerifier::~JwtVerifier() = default;

JwtIdentity JwtVerifier::verify(std::string_view token, uint64_t now_ms) {
  if (token.empty() || token.size() > kMaxTokenBytes) return failed(JwtError::Malformed);
  shared::Sha256 digest = shared::sha256(token);
  if (auto hit = cache_index_.find(digest); hit != cache_index_.end()) {
    const Verified& verified = hit->second->second;
    JwtError timing = checkTimes(verified.identity.expires_ms, verified.not_before_ms, now_ms);
    if (timing == JwtError::Expired) {
      cache_.erase(hit->second);
      cache_index_.erase(hit);
    }
    if (timing != JwtError::None) return failed(timing);
    cache_.splice(cache_.begin(), cache_, hit->second);
    return verified.identity;
  }
  Verified verified = verifyUncached(token, now_ms);
  if (verified.identity.error == JwtError::None) remember(digest, verified);
  return std::move(verified.identity);
}

JwtVerifier::Verified JwtVerifier::verifyUncached(std::string_view token, uint64_t now_ms) {
  auto refuse = [](JwtError error) {
    Verified refused;
    refused.identity = failed(error);
    return refused;
  };
  size_t first = token.find('.');
  size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return refuse(JwtError::Malformed);
  }
  std::optional<std::string> header_json = base64UrlDecode(token.substr(0, first));
  std::optional<std::string> payload_json =
      base64UrlDecode(token.substr(first + 1, second - first - 1));
  std::optional<std::string> signature = base64UrlDecode(token.substr(second + 1));
  if (!header_json || !payload_json || !signature) return refuse(JwtError::Malformed);
  Header header;
  if (JwtError error = readHeader(*header_json, header); error != JwtError::None) {
    return refuse(error);
  }
  // The signing input is the token up to its second dot, as sent (RFC 7515 5.2).
  if (JwtError error = checkSignature(header, token.substr(0, second), *signature);
      error != JwtError::None) {
    return refuse(error);
  }
  return readClaims(*payload_json, now_ms);
}

JwtError JwtVerifier::readHeader(std::string_view json, Header& header) {
  element root;
  if (parser_->json.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    return JwtError::Malformed;
  }
  Errors errors;
  ObjectReader r(errors, "header", root);
  r.entries();  // every member is allowed; duplicates are already in `errors`
  if (!r.valid() || errors.size() != 0 || r.get("crit")) return JwtError::Malformed;
  std::optional<element> alg = r.get("alg");
  std::string_view alg_name;
  if (!alg || alg->get_string().get(alg_name) != simdjson::SUCCESS) return JwtError::Malformed;
  if (std::optional<element> kid = r.get("kid")) {
    std::string_view kid_text;
    if (kid->get_string().get(kid_text) != simdjson::SUCCESS) return JwtError::Malformed;
    header.has_kid = true;
    header.kid = kid_text;
  }
  std::optional<JwsAlg> named = jwsAlgNamed(alg_name);
  if (!named) return JwtError::Algorithm;
  header.alg = *named;
  return JwtError::None;
}

JwtError JwtVerifier::checkSignature(const Header& header, std::string_view signing_input,
                                     std::string_view signature) const {
  bool tried = false;
  for (const Jwk& jwk : keys_.keys) {
    if (header.has_kid) {
      if (jwk.kid.empty() || jwk.kid != header.kid) continue;  // a key without kid has none
      if (jwk.alg != header.alg) return JwtError::Algorithm;
    } else if (jwk.alg != header.alg) {
      continue;
    }
    tried = true;
    if (signatureMatches(jwk, signing_input, signature)) return JwtError::None;
  }
  if (!tried) return header.has_kid ? JwtError::UnknownKey : JwtError::Algorithm;
  return JwtError::Signature;
}

JwtVerifier::Verified JwtVerifier::readClaims(std::string_view json, uint64_t now_ms) {
  Verified verified;
  auto refuse = [](JwtError error) {
    Verified refused;
    refused.identity = failed(error);
    return refused;
  };
  element root;
  if (parser_->json.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    return refuse(JwtError::Malformed);
  }
  Errors errors;
  ObjectReader r(errors, "payload", root);
  r.entries();
  if (!r.valid() || errors.size() != 0) return refuse(JwtError::Malformed);
  std::optional<element> exp = r.get("exp");
  std::optional<uint64_t> expires_ms = exp ? numericDateMs(*exp) : std::nullopt;
  if (!expires_ms) return refuse(JwtError::Malformed);
  if (std::optional<element> nbf = r.get("nbf")) {
    std::optional<uint64_t> not_before_ms = numericDateMs(*nbf);
    if (!not_before_ms) return refuse(JwtError::Malformed);
    verified.not_before_ms = *not_before_ms;
  }
  std::optional<element> iat = r.get("iat");
  if (iat && !numericDateMs(*iat)) return refuse(JwtError::Malformed);
  JwtIdentity& identity = verified.identity;
  if (!optionalString(r, "sub", identity.subject) ||
      !optionalString(r, settings_.tier_claim, identity.tier)) {
    return refuse(JwtError::Malformed);
  }
  identity.expires_ms = *expires_ms;
  JwtError timing = checkTimes(*expires_ms, verified.not_before_ms, now_ms);
  if (timing != JwtError::None) return refuse(timing);
  if (!settings_.issuer.empty()) {
    std::optional<element> iss = r.get("iss");
    std::string_view issuer;
    if (!iss || iss->get_string().get(issuer) != simdjson::SUCCESS || issuer != settings_.issuer) {
      return refuse(JwtError::Issuer);
    }
  }
  if (!settings_.audience.empty() && !audienceHolds(r.get("aud"), settings_.audience)) {
    return refuse(JwtError::Audience);
  }
  return verified;
}

JwtError JwtVerifier::checkTimes(uint64_t expires_ms, uint64_t not_before_ms,
                                 uint64_t now_ms) const {
  if (now_ms >= saturatingAdd(expires_ms, settings_.leeway_ms)) return JwtError::Expired;
  if (saturatingAdd(now_ms, settings_.leeway_ms) < not_before_ms) return JwtError::NotYetValid;
  return JwtError::None;
}

void JwtVerifier::remember(const shared::Sha256& digest, const Verified& verified) {
  if (cache_index_.size() >= kCacheEntries) {
    cache_index_.erase(cache_.back().first);
    cache_.pop_back();
  }
  cache_.emplace_front(digest, verified);
  cache_index_.emplace(digest, cache_.begin());
}

}  // namespace phalanx::worker

#include "worker/gateway/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <simdjson.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "shared/json_reader.h"

namespace phalanx::worker {

namespace {

using shared::json::element;
using shared::json::Errors;
using shared::json::ObjectReader;

template <auto Free>
struct Freer {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};
using Bignum = std::unique_ptr<BIGNUM, Freer<BN_free>>;
using ParamBuilder = std::unique_ptr<OSSL_PARAM_BLD, Freer<OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Freer<OSSL_PARAM_free>>;
using PkeyContext = std::unique_ptr<EVP_PKEY_CTX, Freer<EVP_PKEY_CTX_free>>;

constexpr int kMinRsaBits = 2048;   // RFC 7518 3.3
constexpr int kMaxRsaBits = 16384;  // past this a verification is a CPU lever, not security
constexpr size_t kP256CoordinateBytes = 32;
constexpr size_t kMinHmacSecretBytes = 32;  // RFC 7518 3.2: at least the hash's size

// Members that only a private JWK has (RFC 7518 6.2.2, 6.3.2).
constexpr std::string_view kPrivateMembers[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};

constexpr std::array<int8_t, 256> kBase64UrlValues = [] {
  std::array<int8_t, 256> values{};
  values.fill(-1);
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    values[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return values;
}();

// Builds a public key from OSSL_PARAMs of `type` ("RSA", "EC"): the
// OpenSSL 3 way, with no deprecated RSA_* or EC_KEY_* calls.
EvpPkey keyFromParams(const char* type, OSSL_PARAM_BLD* builder) {
  Params params(OSSL_PARAM_BLD_to_param(builder));
  PkeyContext context(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !context || EVP_PKEY_fromdata_init(context.get()) != 1 ||
      EVP_PKEY_fromdata(context.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return EvpPkey(key);
}

// What OpenSSL checks of a public key before it is used: for EC, that the
// point is on the curve and in its group; for RSA, an odd modulus with no
// small factor and an odd exponent above 1.
bool publicKeyChecks(EVP_PKEY* key) {
  PkeyContext context(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  bool ok = context && EVP_PKEY_public_check(context.get()) == 1;
  ERR_clear_error();
  return ok;
}

class JwkReader {
 public:
  JwkReader(Errors& errors, const std::string& path, element value)
      : errors_(errors), r_(errors, path, value) {
    // RFC 7517 4: members not understood MUST be ignored.
    r_.entries();
  }

  bool valid() const { return r_.valid(); }

  // Decodes a base64url member that must be present; reports why not.
  std::optional<std::string> bytes(std::string_view member) {
    std::optional<element> value = r_.required(member);
    std::string text;
    if (!value || !shared::json::readString(errors_, r_.pathOf(member), *value, text)) {
      return std::nullopt;
    }
    std::optional<std::string> decoded = base64UrlDecode(text);
    if (!decoded) errors_.add(r_.pathOf(member), "not base64url (RFC 4648 5, without padding)");
    return decoded;
  }

  bool noPrivateMembers() {
    bool none = true;
    for (std::string_view member : kPrivateMembers) {
      if (r_.get(member)) {
        errors_.add(r_.pathOf(member),
                    "a private key member: publish only the public key (and rotate this one)");
        none = false;
      }
    }
    return none;
  }

  EvpPkey rsa() {
    if (!noPrivateMembers()) return nullptr;
    std::optional<std::string> n = bytes("n");
    std::optional<std::string> e = bytes("e");
    if (!n || !e) return nullptr;
    Bignum modulus(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                             static_cast<int>(n->size()), nullptr));
    Bignum exponent(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                              static_cast<int>(e->size()), nullptr));
    if (!modulus || !exponent) return nullptr;
    int bits = BN_num_bits(modulus.get());
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      errors_.add(r_.pathOf("n"), "RSA keys must have " + std::to_string(kMinRsaBits) + " to " +
                                      std::to_string(kMaxRsaBits) + " bits, got " +
                                      std::to_string(bits));
      return nullptr;
    }
    ParamBuilder builder(OSSL_PARAM_BLD_new());
    if (!builder ||
        OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, modulus.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, exponent.get()) != 1) {
      return nullptr;
    }
    EvpPkey key = keyFromParams("RSA", builder.get());
    if (!key || !publicKeyChecks(key.get())) {
      r_.fail("n and e are not a valid RSA public key");
      return nullptr;
    }
    return key;
  }

  EvpPkey ec() {
    std::string curve;
    std::optional<element> crv = r_.required("crv");
    if (!crv || !shared::json::readString(errors_, r_.pathOf("crv"), *crv, curve)) return nullptr;
    if (curve != "P-256") {
      errors_.add(r_.pathOf("crv"), "only P-256 is supported");
      return nullptr;
    }
    if (!noPrivateMembers()) return nullptr;
    std::optional<std::string> x = coordinate("x");
    std::optional<std::string> y = coordinate("y");
    if (!x || !y) return nullptr;
    std::string point = "\x04" + *x + *y;  // SEC 1 2.3.3, uncompressed
    ParamBuilder builder(OSSL_PARAM_BLD_new());
    if (!builder ||
        OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      return nullptr;
    }
    EvpPkey key = keyFromParams("EC", builder.get());
    if (!key || !publicKeyChecks(key.get())) {
      r_.fail("x and y are not a point of P-256");
      return nullptr;
    }
    return key;
  }

  EvpPkey oct() {
    std::optional<std::string> secret = bytes("k");
    if (!secret) return nullptr;
    EvpPkey key;
    if (secret->size() < kMinHmacSecretBytes) {
      errors_.add(r_.pathOf("k"), "an HS256 secret must be at least " +
                                      std::to_string(kMinHmacSecretBytes) + " bytes, got " +
                                      std::to_string(secret->size()));
    } else {
      key.reset(EVP_PKEY_new_raw_private_key_ex(
          nullptr, "HMAC", nullptr, reinterpret_cast<const unsigned char*>(secret->data()),
          secret->size()));
      if (!key) r_.fail("OpenSSL refused the HMAC key");
      ERR_clear_error();
    }
    // The key holds its own copy now; this one should not linger in freed memory.
    OPENSSL_cleanse(secret->data(), secret->size());
    return key;
  }

  ObjectReader& object() { return r_; }

 private:
  std::optional<std::string> coordinate(std::string_view member) {
    std::optional<std::string> value = bytes(member);
    if (value && value->size() != kP256CoordinateBytes) {
      errors_.add(r_.pathOf(member), "expected " + std::to_string(kP256CoordinateBytes) +
                                         " bytes (a P-256 coordinate), got " +
                                         std::to_string(value->size()));
      return std::nullopt;
    }
    return value;
  }

  Errors& errors_;
  ObjectReader r_;
};

// kid -> the path of the key that has it.
using Kids = std::map<std::string, std::string>;

void readJwk(Errors& errors, const std::string& path, element value, Kids& kids,
             std::vector<Jwk>& out) {
  size_t before = errors.size();
  JwkReader reader(errors, path, value);
  if (!reader.valid()) return;
  ObjectReader& r = reader.object();
  Jwk jwk;
  if (r.string("kid", jwk.kid)) {
    auto [first, inserted] = kids.emplace(jwk.kid, path);
    if (!inserted) errors.add(r.pathOf("kid"), "same kid as " + first->second);
  }
  std::string use;
  if (r.string("use", use) && use != "sig") {
    errors.add(r.pathOf("use"), "only \"sig\" keys verify signatures");
  }
  std::string kty;
  std::optional<element> kty_value = r.required("kty");
  if (!kty_value || !shared::json::readString(errors, r.pathOf("kty"), *kty_value, kty)) return;
  JwsAlg natural = JwsAlg::RS256;
  if (kty == "RSA") {
    natural = JwsAlg::RS256;
  } else if (kty == "EC") {
    natural = JwsAlg::ES256;
  } else if (kty == "oct") {
    natural = JwsAlg::HS256;
  } else {
    errors.add(r.pathOf("kty"), "unsupported key type " + shared::json::inQuotes(kty) +
                                    " (supported: RSA, EC, oct)");
    return;
  }
  std::string alg;
  if (r.string("alg", alg)) {
    std::optional<JwsAlg> named = jwsAlgNamed(alg);
    if (!named) {
      errors.add(r.pathOf("alg"), "unsupported alg " + shared::json::inQuotes(alg) +
                                      " (supported: RS256, ES256, HS256)");
    } else if (*named != natural) {
      errors.add(r.pathOf("alg"), kty + " keys are for " + jwsAlgName(natural) + ", not " + alg);
    }
  }
  jwk.alg = natural;
  switch (natural) {
    case JwsAlg::RS256: jwk.key = reader.rsa(); break;
    case JwsAlg::ES256: jwk.key = reader.ec(); break;
    case JwsAlg::HS256: jwk.key = reader.oct(); break;
  }
  if (!jwk.key && errors.size() == before) {
    errors.add(path, "OpenSSL could not build this key");  // out of memory: never silent
  }
  if (jwk.key && errors.size() == before) out.push_back(std::move(jwk));
}

}  // namespace

void EvpPkeyFree::operator()(EVP_PKEY* key) const {
  EVP_PKEY_free(key);
}

const char* jwsAlgName(JwsAlg alg) {
  switch (alg) {
    case JwsAlg::RS256: return "RS256";
    case JwsAlg::ES256: return "ES256";
    case JwsAlg::HS256: return "HS256";
  }
  return "?";
}

std::optional<JwsAlg> jwsAlgNamed(std::string_view name) {
  for (JwsAlg alg : {JwsAlg::RS256, JwsAlg::ES256, JwsAlg::HS256}) {
    if (name == jwsAlgName(alg)) return alg;
  }
  return std::nullopt;
}

std::optional<std::string> base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t pending = 0;  // the low `bits` bits are not yet in `out`
  int bits = 0;
  for (char c : text) {
    int8_t value = kBase64UrlValues[static_cast<unsigned char>(c)];
    if (value < 0) return std::nullopt;
    pending = (pending << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((pending >> bits) & 0xff));
      pending &= (1u << bits) - 1;
    }
  }
  if (pending != 0) return std::nullopt;  // unused bits set: a second encoding of `out`
  return out;
}

JwksResult parseJwks(std::string_view json_text, std::string_view file_name) {
  JwksResult result;
  simdjson::dom::parser parser;
  element root;
  simdjson::error_code error = parser.parse(json_text.data(), json_text.size()).get(root);
  if (error != simdjson::SUCCESS) {
    result.errors.push_back(std::string("invalid JSON: ") + simdjson::error_message(error));
  } else {
    Errors errors;
    ObjectReader top(errors, "", root);
    top.entries();  // RFC 7517 5: members of the set not understood MUST be ignored
    Kids kids;
    if (std::optional<element> keys = top.required("keys")) {
      shared::json::forEachItem(errors, "keys", *keys, true,
                                [&](const std::string& path, element item) {
                                  readJwk(errors, path, item, kids, result.jwks.keys);
                                });
    }
    result.errors = errors.take();
  }
  if (!result.errors.empty()) result.jwks.keys.clear();
  if (!file_name.empty()) {
    for (std::string& line : result.errors) line.insert(0, std::string(file_name) + ": ");
  }
  return result;
}

JwksResult loadJwksFile(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  auto cannotRead = [&](int error) {
    JwksResult result;
    result.errors.push_back(path + ": cannot read: " + std::strerror(error));
    return result;
  };
  if (!file) return cannotRead(errno);
  std::string text;
  char buffer[65536];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, got);
  if (std::ferror(file.get())) return cannotRead(errno);
  return parseJwks(text, path);
}

}  // namespace phalanx::worker

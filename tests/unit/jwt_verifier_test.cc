#include "worker/gateway/jwt_verifier.h"

#include <doctest/doctest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <optional>
#include <string>
#include <vector>

using namespace phalanx::worker;

namespace doctest {
template <>
struct StringMaker<JwtError> {
  static String convert(JwtError error) { return jwtErrorName(error); }
};
}  // namespace doctest

namespace {

// ---- A tiny JWS signer, so the tests make real tokens with real keys. ----

std::string base64Url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t pending = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    pending = (pending << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(pending >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(pending << (6 - bits)) & 63];
  return out;
}

std::string bnParam(EVP_PKEY* key, const char* name, size_t width = 0) {
  BIGNUM* number = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(key, name, &number) == 1);
  std::string bytes(width != 0 ? width : static_cast<size_t>(BN_num_bytes(number)), '\0');
  REQUIRE(BN_bn2binpad(number, reinterpret_cast<unsigned char*>(bytes.data()),
                       static_cast<int>(bytes.size())) == static_cast<int>(bytes.size()));
  BN_free(number);
  return bytes;
}

EvpPkey hmacKey(std::string_view secret) {
  return EvpPkey(EVP_PKEY_new_raw_private_key_ex(
      nullptr, "HMAC", nullptr, reinterpret_cast<const unsigned char*>(secret.data()),
      secret.size()));
}

// SHA-256 signature of `input` with `key` (RSA PKCS#1 v1.5, ECDSA DER, or HMAC).
std::string digestSign(EVP_PKEY* key, std::string_view input) {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestSignInit_ex(context, nullptr, "SHA256", nullptr, nullptr, key, nullptr) == 1);
  size_t size = 0;
  auto data = reinterpret_cast<const unsigned char*>(input.data());
  REQUIRE(EVP_DigestSign(context, nullptr, &size, data, input.size()) == 1);
  std::string signature(size, '\0');
  REQUIRE(EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &size, data,
                         input.size()) == 1);
  EVP_MD_CTX_free(context);
  signature.resize(size);
  return signature;
}

// ECDSA's DER signature as JOSE's r||s (RFC 7518 3.4).
std::string derToJose(const std::string& der) {
  auto p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* signature = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  REQUIRE(signature != nullptr);
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(signature, &r, &s);
  std::string jose(64, '\0');
  auto out = reinterpret_cast<unsigned char*>(jose.data());
  BN_bn2binpad(r, out, 32);
  BN_bn2binpad(s, out + 32, 32);
  ECDSA_SIG_free(signature);
  return jose;
}

std::string signingInput(std::string_view header, std::string_view payload) {
  return base64Url(header) + "." + base64Url(payload);
}

// A compact JWS of `header` and `payload` (JSON text) signed with `key` for `alg`.
std::string sign(JwsAlg alg, EVP_PKEY* key, std::string_view header, std::string_view payload) {
  std::string input = signingInput(header, payload);
  std::string signature = digestSign(key, input);
  if (alg == JwsAlg::ES256) signature = derToJose(signature);
  return input + "." + base64Url(signature);
}

// ---- Keys: generated once per run, published as a JWKS. ----

struct TestKeys {
  EvpPkey rsa;
  EvpPkey rsa2;  // published without kid, like rsa_nokid
  EvpPkey ec;
  std::string hmac_secret;
  EvpPkey hmac;
};

std::string rsaJwk(EVP_PKEY* key, const std::string& kid_member) {
  return R"({"kty": "RSA", )" + kid_member + R"("alg": "RS256", "n": ")" +
         base64Url(bnParam(key, OSSL_PKEY_PARAM_RSA_N)) + R"(", "e": ")" +
         base64Url(bnParam(key, OSSL_PKEY_PARAM_RSA_E)) + R"("})";
}

const TestKeys& testKeys() {
  static const TestKeys keys = [] {
    TestKeys k;
    k.rsa.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    k.rsa2.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    k.ec.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    k.hmac_secret.resize(32);
    REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(k.hmac_secret.data()), 32) == 1);
    k.hmac = hmacKey(k.hmac_secret);
    REQUIRE(k.rsa);
    REQUIRE(k.rsa2);
    REQUIRE(k.ec);
    REQUIRE(k.hmac);
    return k;
  }();
  return keys;
}

// kids: "rsa-1" (RS256), "ec-1" (ES256), "hmac-1" (HS256); a second RSA key without kid.
std::string testJwks(bool with_hmac = true) {
  const TestKeys& k = testKeys();
  std::string jwks = R"({"keys": [)" + rsaJwk(k.rsa.get(), R"("kid": "rsa-1", )") + ", " +
                     rsaJwk(k.rsa2.get(), "") + R"(, {"kty": "EC", "crv": "P-256", "kid": "ec-1",
                     "x": ")" +
                     base64Url(bnParam(k.ec.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32)) + R"(", "y": ")" +
                     base64Url(bnParam(k.ec.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + R"("})";
  if (with_hmac) {
    jwks += R"(, {"kty": "oct", "kid": "hmac-1", "k": ")" + base64Url(k.hmac_secret) + R"("})";
  }
  return jwks + "]}";
}

Jwks parsed(const std::string& json) {
  JwksResult result = parseJwks(json, "jwks.json");
  for (const std::string& error : result.errors) FAIL_CHECK(error);
  return std::move(result.jwks);
}

constexpr uint64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kNow = 1'700'000'000;  // s

const JwtSettings kSettings{.issuer = "https://idp.example", .audience = "api"};

// A token's claims; each optional member is left out when empty. Values are JSON text.
struct Claims {
  std::optional<std::string> sub = R"("user-1")";
  std::optional<std::string> iss = R"("https://idp.example")";
  std::optional<std::string> aud = R"("api")";
  std::optional<std::string> tier = R"("premium")";
  std::optional<std::string> exp = std::to_string(kNow + 600);
  std::optional<std::string> nbf = std::nullopt;
  std::optional<std::string> iat = std::to_string(kNow);

  std::string json() const {
    std::string out;
    auto add = [&](const char* name, const std::optional<std::string>& value) {
      if (!value) return;
      out += (out.empty() ? "{" : ", ") + std::string("\"") + name + "\": " + *value;
    };
    add("sub", sub);
    add("iss", iss);
    add("aud", aud);
    add("tier", tier);
    add("exp", exp);
    add("nbf", nbf);
    add("iat", iat);
    return out.empty() ? "{}" : out + "}";
  }
};

std::string header(const char* alg, const char* kid) {
  std::string out = std::string(R"({"typ": "JWT", "alg": ")") + alg + "\"";
  if (kid != nullptr) out += std::string(R"(, "kid": ")") + kid + "\"";
  return out + "}";
}

std::string rs256(const Claims& claims = {}, const char* kid = "rsa-1") {
  return sign(JwsAlg::RS256, testKeys().rsa.get(), header("RS256", kid), claims.json());
}
std::string es256(const Claims& claims = {}, const char* kid = "ec-1") {
  return sign(JwsAlg::ES256, testKeys().ec.get(), header("ES256", kid), claims.json());
}
std::string hs256(const Claims& claims = {}, const char* kid = "hmac-1") {
  return sign(JwsAlg::HS256, testKeys().hmac.get(), header("HS256", kid), claims.json());
}

JwtVerifier verifier(JwtSettings settings = kSettings, bool with_hmac = true) {
  return JwtVerifier(parsed(testJwks(with_hmac)), std::move(settings));
}

JwtError errorOf(const std::string& token, uint64_t now_ms = kNowMs,
                 JwtSettings settings = kSettings) {
  return verifier(std::move(settings)).verify(token, now_ms).error;
}

// The token with one byte of its decoded signature flipped.
std::string flipSignatureByte(const std::string& token, size_t index) {
  size_t dot = token.rfind('.');
  std::string signature = *base64UrlDecode(std::string_view(token).substr(dot + 1));
  signature[index % signature.size()] ^= 0x01;
  return token.substr(0, dot + 1) + base64Url(signature);
}

std::string tokenOf(std::string_view header_json, std::string_view payload_json,
                    std::string_view signature) {
  return signingInput(header_json, payload_json) + "." + base64Url(signature);
}

}  // namespace

TEST_CASE("jwtErrorName: the names logs and metrics use") {
  CHECK(std::string(jwtErrorName(JwtError::None)) == "none");
  CHECK(std::string(jwtErrorName(JwtError::Malformed)) == "malformed");
  CHECK(std::string(jwtErrorName(JwtError::Algorithm)) == "algorithm");
  CHECK(std::string(jwtErrorName(JwtError::UnknownKey)) == "unknown_key");
  CHECK(std::string(jwtErrorName(JwtError::Signature)) == "signature");
  CHECK(std::string(jwtErrorName(JwtError::Expired)) == "expired");
  CHECK(std::string(jwtErrorName(JwtError::NotYetValid)) == "not_yet_valid");
  CHECK(std::string(jwtErrorName(JwtError::Issuer)) == "issuer");
  CHECK(std::string(jwtErrorName(JwtError::Audience)) == "audience");
}

TEST_CASE("verify: RFC 7515 A.1 (HS256), A.2 (RS256) and A.3 (ES256), as published") {
  // Each token: iss "joe", exp 1300819380, and no kid; the keys are the RFC's.
  const std::string payload =
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
      "fQ";
  const std::string hs256_token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + payload +
                                  ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const std::string rs256_token =
      "eyJhbGciOiJSUzI1NiJ9." + payload +
      ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
      "O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSj"
      "tQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6Ie"
      "YI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
  const std::string es256_token =
      "eyJhbGciOiJFUzI1NiJ9." + payload +
      ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
  const std::string jwks = R"({"keys": [
    {"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
    {"kty": "RSA", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
    {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
  ]})";
  JwtVerifier rfc(parsed(jwks), {.issuer = "joe", .audience = "", .leeway_ms = 0});
  constexpr uint64_t kExpMs = 1300819380000;
  for (const std::string& token : {hs256_token, rs256_token, es256_token}) {
    CAPTURE(token);
    JwtIdentity identity = rfc.verify(token, kExpMs - 1);
    CHECK(identity.error == JwtError::None);
    CHECK(identity.expires_ms == kExpMs);
    CHECK(identity.subject == "");
    CHECK(identity.tier == "");
    CHECK(rfc.verify(token, kExpMs).error == JwtError::Expired);
    CHECK(rfc.verify(flipSignatureByte(token, 7), kExpMs - 1).error == JwtError::Signature);
  }
}

TEST_CASE("verify: valid RS256, ES256 and HS256 tokens give the subject, tier and expiry") {
  JwtVerifier v = verifier();
  for (const std::string& token : {rs256(), es256(), hs256()}) {
    JwtIdentity identity = v.verify(token, kNowMs);
    CHECK(identity.error == JwtError::None);
    CHECK(identity.subject == "user-1");
    CHECK(identity.tier == "premium");
    CHECK(identity.expires_ms == static_cast<uint64_t>(kNow + 600) * 1000);
  }
}

TEST_CASE("verify: without kid, every key of the token's algorithm is tried") {
  // rsa2 has no kid; rsa-1 is tried first and fails, then rsa2 verifies.
  std::string token =
      sign(JwsAlg::RS256, testKeys().rsa2.get(), header("RS256", nullptr), Claims{}.json());
  CHECK(errorOf(token) == JwtError::None);
  CHECK(errorOf(rs256({}, nullptr)) == JwtError::None);
  CHECK(errorOf(es256({}, nullptr)) == JwtError::None);
  // A kid selects one key: rsa2's token under rsa-1's kid is a bad signature.
  CHECK(errorOf(sign(JwsAlg::RS256, testKeys().rsa2.get(), header("RS256", "rsa-1"),
                     Claims{}.json())) == JwtError::Signature);
}

TEST_CASE("verify: the tier claim is optional, a string, and may have another name") {
  JwtIdentity no_tier = verifier().verify(rs256({.tier = std::nullopt}), kNowMs);
  CHECK(no_tier.error == JwtError::None);
  CHECK(no_tier.tier == "");
  CHECK(errorOf(rs256({.tier = "42"})) == JwtError::Malformed);
  CHECK(errorOf(rs256({.tier = R"(["premium"])"})) == JwtError::Malformed);

  JwtSettings plan = kSettings;
  plan.tier_claim = "plan";
  JwtVerifier v = verifier(plan);
  std::string token = sign(JwsAlg::HS256, testKeys().hmac.get(), header("HS256", "hmac-1"),
                           R"({"sub": "s", "iss": "https://idp.example", "aud": "api",
                               "plan": "free", "tier": "premium", "exp": )" +
                               std::to_string(kNow + 60) + "}");
  JwtIdentity identity = v.verify(token, kNowMs);
  CHECK(identity.error == JwtError::None);
  CHECK(identity.tier == "free");
}

TEST_CASE("verify: sub is optional and a string") {
  JwtIdentity identity = verifier().verify(hs256({.sub = std::nullopt}), kNowMs);
  CHECK(identity.error == JwtError::None);
  CHECK(identity.subject == "");
  CHECK(errorOf(hs256({.sub = "7"})) == JwtError::Malformed);
}

TEST_CASE("verify: exp is required; expired past the leeway, not before") {
  CHECK(errorOf(rs256({.exp = std::nullopt})) == JwtError::Malformed);
  CHECK(errorOf(rs256({.exp = R"("1700000600")"})) == JwtError::Malformed);
  CHECK(errorOf(rs256({.exp = "null"})) == JwtError::Malformed);
  // exp 29 s ago: within the 30 s leeway. 31 s ago, or exactly 30: expired.
  CHECK(errorOf(es256({.exp = std::to_string(kNow - 29)})) == JwtError::None);
  CHECK(errorOf(es256({.exp = std::to_string(kNow - 30)})) == JwtError::Expired);
  CHECK(errorOf(es256({.exp = std::to_string(kNow - 31)})) == JwtError::Expired);
  CHECK(errorOf(hs256({.exp = "0"})) == JwtError::Expired);
  CHECK(errorOf(hs256({.exp = "-5"})) == JwtError::Expired);
  // Fractions count, in ms.
  CHECK(errorOf(hs256({.exp = std::to_string(kNow - 30) + ".002"})) == JwtError::None);
  CHECK(errorOf(hs256({.exp = std::to_string(kNow - 30) + ".0"})) == JwtError::Expired);
  CHECK(errorOf(hs256({.exp = "1e300"})) == JwtError::None);
  CHECK(errorOf(hs256({.exp = "18446744073709551615"})) == JwtError::None);

  JwtSettings strict = kSettings;
  strict.leeway_ms = 0;
  CHECK(errorOf(es256({.exp = std::to_string(kNow + 1)}), kNowMs, strict) == JwtError::None);
  CHECK(errorOf(es256({.exp = std::to_string(kNow)}), kNowMs, strict) == JwtError::Expired);
  CHECK(errorOf(es256({.exp = std::to_string(kNow - 29)}), kNowMs, strict) == JwtError::Expired);
}

TEST_CASE("verify: nbf in the future past the leeway is not yet valid") {
  CHECK(errorOf(rs256({.nbf = std::to_string(kNow + 29)})) == JwtError::None);
  CHECK(errorOf(rs256({.nbf = std::to_string(kNow + 30)})) == JwtError::None);
  CHECK(errorOf(rs256({.nbf = std::to_string(kNow + 31)})) == JwtError::NotYetValid);
  CHECK(errorOf(rs256({.nbf = std::to_string(kNow - 3600)})) == JwtError::None);
  CHECK(errorOf(rs256({.nbf = R"("soon")"})) == JwtError::Malformed);
  JwtSettings strict = kSettings;
  strict.leeway_ms = 0;
  CHECK(errorOf(rs256({.nbf = std::to_string(kNow)}), kNowMs, strict) == JwtError::None);
  CHECK(errorOf(rs256({.nbf = std::to_string(kNow + 1)}), kNowMs, strict) == JwtError::NotYetValid);
}

TEST_CASE("verify: iat is optional, a number, and not compared with the clock") {
  CHECK(errorOf(rs256({.iat = std::nullopt})) == JwtError::None);
  CHECK(errorOf(rs256({.iat = std::to_string(kNow + 3600)})) == JwtError::None);
  CHECK(errorOf(rs256({.iat = R"("now")"})) == JwtError::Malformed);
}

TEST_CASE("verify: a byte flipped in the signature is a bad signature, for each algorithm") {
  for (size_t index : {size_t{0}, size_t{17}, size_t{31}, size_t{63}, size_t{255}}) {
    CAPTURE(index);
    CHECK(errorOf(flipSignatureByte(rs256(), index)) == JwtError::Signature);
    CHECK(errorOf(flipSignatureByte(es256(), index)) == JwtError::Signature);
    CHECK(errorOf(flipSignatureByte(hs256(), index)) == JwtError::Signature);
  }
}

TEST_CASE("verify: a changed payload under the original signature is a bad signature") {
  std::string token = rs256();
  std::string forged = signingInput(header("RS256", "rsa-1"), Claims{.tier = R"("gold")"}.json()) +
                       token.substr(token.rfind('.'));
  CHECK(errorOf(forged) == JwtError::Signature);
  // Claims are not read before the signature: an expired forgery is a bad signature.
  std::string expired = signingInput(header("HS256", "hmac-1"), Claims{.exp = "1"}.json()) +
                        hs256().substr(hs256().rfind('.'));
  CHECK(errorOf(expired) == JwtError::Signature);
}

TEST_CASE("verify: signatures of the wrong size or form are bad signatures") {
  std::string es = es256();
  std::string input = es.substr(0, es.rfind('.'));
  std::string der = digestSign(testKeys().ec.get(), input);
  CHECK(errorOf(input + "." + base64Url(der)) == JwtError::Signature);  // DER, not r||s
  CHECK(errorOf(input + ".") == JwtError::Signature);
  std::string hs = hs256();
  std::string mac = *base64UrlDecode(std::string_view(hs).substr(hs.rfind('.') + 1));
  CHECK(errorOf(hs.substr(0, hs.rfind('.') + 1) + base64Url(mac.substr(0, 16))) ==
        JwtError::Signature);
  CHECK(errorOf(hs.substr(0, hs.rfind('.') + 1) + base64Url(mac + mac)) == JwtError::Signature);
}

TEST_CASE("verify: audience, a string or an array that holds it") {
  CHECK(errorOf(rs256({.aud = R"("other")"})) == JwtError::Audience);
  CHECK(errorOf(rs256({.aud = std::nullopt})) == JwtError::Audience);
  CHECK(errorOf(rs256({.aud = R"(["other", "api"])"})) == JwtError::None);
  CHECK(errorOf(rs256({.aud = R"(["other", 7])"})) == JwtError::Audience);
  CHECK(errorOf(rs256({.aud = "[]"})) == JwtError::Audience);
  CHECK(errorOf(rs256({.aud = R"("API")"})) == JwtError::Audience);
  CHECK(errorOf(rs256({.aud = R"({"api": true})"})) == JwtError::Audience);
  JwtSettings any = kSettings;
  any.audience = "";
  CHECK(errorOf(rs256({.aud = R"("other")"}), kNowMs, any) == JwtError::None);
  CHECK(errorOf(rs256({.aud = std::nullopt}), kNowMs, any) == JwtError::None);
}

TEST_CASE("verify: issuer must match exactly when set") {
  CHECK(errorOf(es256({.iss = R"("https://evil.example")"})) == JwtError::Issuer);
  CHECK(errorOf(es256({.iss = R"("https://idp.example/")"})) == JwtError::Issuer);
  CHECK(errorOf(es256({.iss = std::nullopt})) == JwtError::Issuer);
  CHECK(errorOf(es256({.iss = "1"})) == JwtError::Issuer);
  JwtSettings any = kSettings;
  any.issuer = "";
  CHECK(errorOf(es256({.iss = R"("https://evil.example")"}), kNowMs, any) == JwtError::None);
}

TEST_CASE("verify: alg none, unknown algorithms and a kid for another algorithm") {
  std::string payload = Claims{}.json();
  CHECK(errorOf(tokenOf(R"({"alg": "none"})", payload, "")) == JwtError::Algorithm);
  CHECK(errorOf(tokenOf(R"({"alg": "none", "kid": "rsa-1"})", payload, "")) == JwtError::Algorithm);
  CHECK(errorOf(tokenOf(R"({"alg": "None"})", payload, "")) == JwtError::Algorithm);
  CHECK(errorOf(tokenOf(R"({"alg": "RS512"})", payload, "x")) == JwtError::Algorithm);
  CHECK(errorOf(tokenOf(R"({"alg": "PS256"})", payload, "x")) == JwtError::Algorithm);
  CHECK(errorOf(tokenOf(R"({"alg": ""})", payload, "x")) == JwtError::Algorithm);
  // ES256 with the RSA key's kid.
  CHECK(errorOf(sign(JwsAlg::ES256, testKeys().ec.get(), header("ES256", "rsa-1"), payload)) ==
        JwtError::Algorithm);
  CHECK(errorOf(rs256({}, "no-such-kid")) == JwtError::UnknownKey);
  CHECK(errorOf(rs256({}, "")) == JwtError::UnknownKey);
}

TEST_CASE("verify: HS256 signed with the RSA public key as the secret (key confusion)") {
  EVP_PKEY* rsa = testKeys().rsa.get();
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PUBKEY(bio, rsa) == 1);
  char* pem_data = nullptr;
  long pem_size = BIO_get_mem_data(bio, &pem_data);
  std::string pem(pem_data, static_cast<size_t>(pem_size));
  BIO_free(bio);
  unsigned char* der_data = nullptr;
  int der_size = i2d_PUBKEY(rsa, &der_data);
  REQUIRE(der_size > 0);
  std::string der(reinterpret_cast<char*>(der_data), static_cast<size_t>(der_size));
  OPENSSL_free(der_data);
  std::string n = bnParam(rsa, OSSL_PKEY_PARAM_RSA_N);

  for (const std::string& secret : {pem, der, n}) {
    EvpPkey confused = hmacKey(secret);
    std::string payload = Claims{}.json();
    // With the RSA key's kid: that key is for RS256 only.
    CHECK(errorOf(sign(JwsAlg::HS256, confused.get(), header("HS256", "rsa-1"), payload)) ==
          JwtError::Algorithm);
    // Without kid: only HS256 keys are tried, and the RSA key is not one.
    std::string no_kid = sign(JwsAlg::HS256, confused.get(), header("HS256", nullptr), payload);
    CHECK(errorOf(no_kid) == JwtError::Signature);
    CHECK(verifier(kSettings, false).verify(no_kid, kNowMs).error == JwtError::Algorithm);
  }
}

TEST_CASE("verify: malformed tokens") {
  std::string good = rs256();
  std::string payload = Claims{}.json();
  std::string signature = "sig";
  for (const std::string& token : std::vector<std::string>{
           "",
           "abc",
           "a.b",
           good + ".x",
           "..",
           good.substr(0, good.find('.')) + "=" + good.substr(good.find('.')),
           good + "=",
           good.substr(0, good.find('.')) + "+" + good.substr(good.find('.')),
           " " + good,
           good + " ",
           tokenOf("not json", payload, signature),
           tokenOf("[]", payload, signature),
           tokenOf("{}", payload, signature),
           tokenOf(R"({"alg": 256})", payload, signature),
           tokenOf(R"({"alg": "RS256", "kid": 1})", payload, signature),
           tokenOf(R"({"alg": "RS256", "crit": ["exp"], "exp": 1})", payload, signature),
           tokenOf(R"({"alg": "RS256", "alg": "none"})", payload, signature),
           tokenOf(R"({"alg": "none", "alg": "RS256"})", payload, signature),
       }) {
    CAPTURE(token);
    CHECK(errorOf(token) == JwtError::Malformed);
  }
  // The payload is read once the signature holds.
  const TestKeys& k = testKeys();
  for (const char* claims : {"", "[]", "\"x\"", "not json", R"({"exp": 1, "exp": 2})"}) {
    CAPTURE(claims);
    CHECK(errorOf(sign(JwsAlg::HS256, k.hmac.get(), header("HS256", "hmac-1"), claims)) ==
          JwtError::Malformed);
  }
}

TEST_CASE("verify: tokens over 8 KiB are malformed, whatever they hold") {
  Claims claims;
  claims.sub = "\"" + std::string(5900, 'u') + "\"";
  std::string token = hs256(claims);
  REQUIRE(token.size() <= JwtVerifier::kMaxTokenBytes);
  CHECK(errorOf(token) == JwtError::None);
  claims.sub = "\"" + std::string(6200, 'u') + "\"";
  token = hs256(claims);
  REQUIRE(token.size() > JwtVerifier::kMaxTokenBytes);
  CHECK(errorOf(token) == JwtError::Malformed);
}

TEST_CASE("verify cache: a hit returns the same identity, and expiry still holds") {
  JwtVerifier v = verifier();
  std::string token = rs256({.exp = std::to_string(kNow + 60)});
  JwtIdentity first = v.verify(token, kNowMs);
  REQUIRE(first.error == JwtError::None);
  CHECK(v.cached() == 1);
  JwtIdentity second = v.verify(token, kNowMs + 1000);
  CHECK(second.error == JwtError::None);
  CHECK(second.subject == first.subject);
  CHECK(second.tier == first.tier);
  CHECK(second.expires_ms == first.expires_ms);
  CHECK(v.cached() == 1);
  // Within the leeway after exp, then past it: refused, and gone from the cache.
  CHECK(v.verify(token, first.expires_ms + 29'999).error == JwtError::None);
  CHECK(v.verify(token, first.expires_ms + 30'000).error == JwtError::Expired);
  CHECK(v.cached() == 0);
  CHECK(v.verify(token, first.expires_ms + 30'000).error == JwtError::Expired);
  CHECK(v.cached() == 0);
}

TEST_CASE("verify cache: nbf is checked again on a hit (the wall clock can step back)") {
  JwtVerifier v = verifier();
  std::string token = hs256({.nbf = std::to_string(kNow)});
  CHECK(v.verify(token, kNowMs).error == JwtError::None);
  CHECK(v.verify(token, kNowMs - 60'000).error == JwtError::NotYetValid);
  CHECK(v.verify(token, kNowMs).error == JwtError::None);
  CHECK(v.cached() == 1);
}

TEST_CASE("verify cache: refused tokens are not cached") {
  JwtVerifier v = verifier();
  CHECK(v.verify(flipSignatureByte(rs256(), 3), kNowMs).error == JwtError::Signature);
  CHECK(v.verify(rs256({.aud = R"("other")"}), kNowMs).error == JwtError::Audience);
  CHECK(v.verify(rs256({.exp = std::to_string(kNow - 600)}), kNowMs).error == JwtError::Expired);
  CHECK(v.verify("abc", kNowMs).error == JwtError::Malformed);
  CHECK(v.cached() == 0);
  // A token that was not yet valid is cached once it is.
  std::string early = rs256({.nbf = std::to_string(kNow + 120)});
  CHECK(v.verify(early, kNowMs).error == JwtError::NotYetValid);
  CHECK(v.cached() == 0);
  CHECK(v.verify(early, kNowMs + 120'000).error == JwtError::None);
  CHECK(v.cached() == 1);
}

TEST_CASE("verify cache: bounded; an evicted token is verified again") {
  JwtVerifier v = verifier();
  std::string oldest;
  for (size_t i = 0; i < JwtVerifier::kCacheEntries + 10; ++i) {
    std::string token = hs256({.sub = "\"user-" + std::to_string(i) + "\""});
    if (i == 0) oldest = token;
    REQUIRE(v.verify(token, kNowMs).error == JwtError::None);
  }
  CHECK(v.cached() == JwtVerifier::kCacheEntries);
  JwtIdentity again = v.verify(oldest, kNowMs);
  CHECK(again.error == JwtError::None);
  CHECK(again.subject == "user-0");
  CHECK(v.cached() == JwtVerifier::kCacheEntries);
}

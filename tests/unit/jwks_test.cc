#include "worker/gateway/jwks.h"

#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <string>
#include <vector>

#include "temp_dir.h"

using namespace phalanx::worker;

namespace {

std::string lines(const std::vector<std::string>& errors) {
  std::string text;
  for (const std::string& line : errors) text += line + "\n";
  return text;
}

std::string errorsOf(const std::string& json) {
  JwksResult result = parseJwks(json, "jwks.json");
  CHECK(result.jwks.keys.empty());
  return lines(result.errors);
}

Jwks valid(const std::string& json) {
  JwksResult result = parseJwks(json, "jwks.json");
  CHECK(lines(result.errors) == "");
  return std::move(result.jwks);
}

std::string keys(const std::string& members) {
  return R"({"keys": [{)" + members + "}]}";
}

// RFC 7517 A.1's example public keys (the EC one with "use": "sig" for "enc").
constexpr const char* kRfcEc =
    R"("kty": "EC", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
       "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM", "use": "sig", "kid": "1")";
constexpr const char* kRfcRsaN =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQ"
    "Fh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
std::string rfcRsa(const std::string& more = R"(, "e": "AQAB")") {
  return R"("kty": "RSA", "n": ")" + std::string(kRfcRsaN) + "\"" + more;
}
// RFC 7515 A.1's HMAC key (64 bytes).
constexpr const char* kRfcOct =
    R"("kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")";

}  // namespace

TEST_CASE("base64UrlDecode: RFC 4648 10's vectors, in the URL alphabet without padding") {
  CHECK(base64UrlDecode("") == "");
  CHECK(base64UrlDecode("Zg") == "f");
  CHECK(base64UrlDecode("Zm8") == "fo");
  CHECK(base64UrlDecode("Zm9v") == "foo");
  CHECK(base64UrlDecode("Zm9vYg") == "foob");
  CHECK(base64UrlDecode("Zm9vYmE") == "fooba");
  CHECK(base64UrlDecode("Zm9vYmFy") == "foobar");
  CHECK(base64UrlDecode("-_8") == "\xfb\xff");
  CHECK(base64UrlDecode("AAAA") == std::string(3, '\0'));
}

TEST_CASE("base64UrlDecode: refuses padding, other alphabets, bad lengths and stray bits") {
  CHECK_FALSE(base64UrlDecode("Zg=="));
  CHECK_FALSE(base64UrlDecode("Zm8="));
  CHECK_FALSE(base64UrlDecode("+_8"));  // '+' and '/' are base64, not base64url
  CHECK_FALSE(base64UrlDecode("-/8"));
  CHECK_FALSE(base64UrlDecode("Z"));  // 4n+1 characters end no byte
  CHECK_FALSE(base64UrlDecode("Zm9vY"));
  CHECK_FALSE(base64UrlDecode("Zh"));  // "f" with a low bit set: a second spelling of "f"
  CHECK_FALSE(base64UrlDecode("Zm9"));
  CHECK_FALSE(base64UrlDecode("Zm 9v"));
  CHECK_FALSE(base64UrlDecode("Zm9v\n"));
  CHECK_FALSE(base64UrlDecode(std::string("Zm\09v", 5)));
  CHECK_FALSE(base64UrlDecode("Zm9v\xc3\xa9"));
}

TEST_CASE("jwsAlgNamed: exactly RS256, ES256, HS256") {
  CHECK(jwsAlgNamed("RS256") == JwsAlg::RS256);
  CHECK(jwsAlgNamed("ES256") == JwsAlg::ES256);
  CHECK(jwsAlgNamed("HS256") == JwsAlg::HS256);
  CHECK_FALSE(jwsAlgNamed("none"));
  CHECK_FALSE(jwsAlgNamed("rs256"));
  CHECK_FALSE(jwsAlgNamed("RS512"));
  CHECK_FALSE(jwsAlgNamed("PS256"));
  CHECK_FALSE(jwsAlgNamed(""));
  CHECK(std::string(jwsAlgName(JwsAlg::ES256)) == "ES256");
}

TEST_CASE("parseJwks: RFC 7517 A.1's keys and RFC 7515 A.1's secret, with kid and alg") {
  Jwks jwks = valid(R"({"keys": [{)" + std::string(kRfcEc) + "}, {" +
                    rfcRsa(R"(, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29")") + "}, {" +
                    kRfcOct + "}]}");
  REQUIRE(jwks.keys.size() == 3);
  CHECK(jwks.keys[0].kid == "1");
  CHECK(jwks.keys[0].alg == JwsAlg::ES256);
  CHECK(EVP_PKEY_is_a(jwks.keys[0].key.get(), "EC") == 1);
  CHECK(EVP_PKEY_get_bits(jwks.keys[0].key.get()) == 256);
  CHECK(jwks.keys[1].kid == "2011-04-29");
  CHECK(jwks.keys[1].alg == JwsAlg::RS256);
  CHECK(EVP_PKEY_is_a(jwks.keys[1].key.get(), "RSA") == 1);
  CHECK(EVP_PKEY_get_bits(jwks.keys[1].key.get()) == 2048);
  CHECK(jwks.keys[2].kid == "");
  CHECK(jwks.keys[2].alg == JwsAlg::HS256);
  CHECK(EVP_PKEY_is_a(jwks.keys[2].key.get(), "HMAC") == 1);
}

TEST_CASE("parseJwks: members phalanx does not use are ignored (RFC 7517 4 and 5)") {
  Jwks jwks = valid(R"({"keys": [{)" + rfcRsa() +
                    R"(, "x5t": "abc", "x5c": ["MIIC"], "key_ops": ["verify"], "ext": true}],
                       "next_rotation": "2030-01-01"})");
  CHECK(jwks.keys.size() == 1);
}

TEST_CASE("parseJwks: what is refused, each error with the file and the path") {
  CHECK(errorsOf(keys(R"("kty": "EC", "crv": "P-384", "x": "AA", "y": "AA")")) ==
        "jwks.json: keys[0].crv: only P-256 is supported\n");
  CHECK(errorsOf(keys(R"("kty": "OKP", "crv": "Ed25519", "x": "AA")")) ==
        "jwks.json: keys[0].kty: unsupported key type \"OKP\" (supported: RSA, EC, oct)\n");
  CHECK(errorsOf(keys(R"("crv": "P-256")")) == "jwks.json: keys[0].kty: required\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB", "alg": "ES256")"))) ==
        "jwks.json: keys[0].alg: RSA keys are for RS256, not ES256\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB", "alg": "RS512")"))) ==
        "jwks.json: keys[0].alg: unsupported alg \"RS512\" (supported: RS256, ES256, HS256)\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB", "alg": "none")"))) ==
        "jwks.json: keys[0].alg: unsupported alg \"none\" (supported: RS256, ES256, HS256)\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB", "use": "enc")"))) ==
        "jwks.json: keys[0].use: only \"sig\" keys verify signatures\n");
  CHECK(errorsOf(keys(rfcRsa(""))) == "jwks.json: keys[0].e: required\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB==")"))) ==
        "jwks.json: keys[0].e: not base64url (RFC 4648 5, without padding)\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": 65537)"))) ==
        "jwks.json: keys[0].e: expected a string, got number\n");
  CHECK(errorsOf(R"({"keys": []})") == "jwks.json: keys: must not be empty\n");
  CHECK(errorsOf(R"({"key": []})") == "jwks.json: keys: required\n");
  CHECK(errorsOf(R"({"keys": [1]})") == "jwks.json: keys[0]: expected an object, got number\n");
  CHECK(errorsOf("[]") == "jwks.json: top level: expected an object, got array\n");
  CHECK(errorsOf("{").rfind("jwks.json: invalid JSON: ", 0) == 0);
}

TEST_CASE("parseJwks: RSA moduli of 2048 to 16384 bits that OpenSSL accepts, with e") {
  // 1024 bits, all ones.
  std::string n1024 = std::string(170, '_') + "8";
  CHECK(errorsOf(keys(R"("kty": "RSA", "e": "AQAB", "n": ")" + n1024 + "\"")) ==
        "jwks.json: keys[0].n: RSA keys must have 2048 to 16384 bits, got 1024\n");
  CHECK(valid(keys(rfcRsa(R"(, "e": "Aw")"))).keys.size() == 1);  // 3
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAA")"))) ==             // 65536: even
        "jwks.json: keys[0]: n and e are not a valid RSA public key\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQ")"))) ==  // 1
        "jwks.json: keys[0]: n and e are not a valid RSA public key\n");
  // The RFC's modulus with its last byte even: no RSA modulus.
  std::string even_n = std::string(kRfcRsaN);
  even_n.back() = 'A';
  CHECK(errorsOf(keys(R"("kty": "RSA", "e": "AQAB", "n": ")" + even_n + "\"")) ==
        "jwks.json: keys[0]: n and e are not a valid RSA public key\n");
}

TEST_CASE("parseJwks: P-256 points: 32-byte coordinates on the curve") {
  CHECK(errorsOf(keys(R"("kty": "EC", "crv": "P-256", "x": "AAAA",
                         "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM")")) ==
        "jwks.json: keys[0].x: expected 32 bytes (a P-256 coordinate), got 3\n");
  // x of RFC 7517 A.1's key, y of RFC 7515 A.3's: no point of the curve.
  CHECK(errorsOf(keys(R"("kty": "EC", "crv": "P-256",
                         "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")")) ==
        "jwks.json: keys[0]: x and y are not a point of P-256\n");
  CHECK(errorsOf(keys(R"("kty": "EC", "x": "AA", "y": "AA")")) ==
        "jwks.json: keys[0].crv: required\n");
}

TEST_CASE("parseJwks: HS256 secrets of 32 bytes or more, never quoted") {
  // 16 zero bytes.
  std::string errors = errorsOf(keys(R"("kty": "oct", "k": "AAAAAAAAAAAAAAAAAAAAAA")"));
  CHECK(errors == "jwks.json: keys[0].k: an HS256 secret must be at least 32 bytes, got 16\n");
  errors = errorsOf(keys(R"("kty": "oct", "k": "c2VjcmV0LXZhbHVl=")"));
  CHECK(errors == "jwks.json: keys[0].k: not base64url (RFC 4648 5, without padding)\n");
  CHECK(errors.find("c2VjcmV0") == std::string::npos);
}

TEST_CASE("parseJwks: a private key in a JWKS is refused, member by member") {
  CHECK(errorsOf(keys(std::string(kRfcEc) +
                      R"(, "d": "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE")")) ==
        "jwks.json: keys[0].d: a private key member: publish only the public key (and rotate this "
        "one)\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB", "p": "AQAB", "q": "AQAB")"))) ==
        "jwks.json: keys[0].p: a private key member: publish only the public key (and rotate this "
        "one)\n"
        "jwks.json: keys[0].q: a private key member: publish only the public key (and rotate this "
        "one)\n");
}

TEST_CASE("parseJwks: a kid names one key") {
  CHECK(errorsOf(R"({"keys": [{)" + rfcRsa(R"(, "e": "AQAB", "kid": "a")") + "}, {" + kRfcOct +
                 R"(, "kid": "a"}]})") == "jwks.json: keys[1].kid: same kid as keys[0]\n");
  CHECK(errorsOf(keys(rfcRsa(R"(, "e": "AQAB", "kid": "")"))) ==
        "jwks.json: keys[0].kid: must not be empty\n");
}

TEST_CASE("parseJwks: every error of the document, and no keys when there is one") {
  JwksResult result = parseJwks(R"({"keys": [{)" + rfcRsa() + "}, {" + kRfcOct +
                                    R"(, "alg": "RS256"}, {"kty": "EC", "crv": "P-521"}]})",
                                "jwks.json");
  CHECK(result.jwks.keys.empty());
  CHECK(lines(result.errors) ==
        "jwks.json: keys[1].alg: oct keys are for HS256, not RS256\n"
        "jwks.json: keys[2].crv: only P-256 is supported\n");
}

TEST_CASE("loadJwksFile: reads the file, names it in errors") {
  TempDir dir;
  std::string path = dir.write("jwks.json", keys(rfcRsa()));
  JwksResult result = loadJwksFile(path);
  CHECK(lines(result.errors) == "");
  CHECK(result.jwks.keys.size() == 1);
  CHECK(lines(loadJwksFile(dir.file("none.json")).errors) ==
        dir.file("none.json") + ": cannot read: No such file or directory\n");
  std::string bad = dir.write("bad.json", R"({"keys": []})");
  CHECK(lines(loadJwksFile(bad).errors) == bad + ": keys: must not be empty\n");
}

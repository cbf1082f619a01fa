// Fuzzing of the JWT verifier: for any bytes as a bearer token, verify() must
// not crash, hang or leak, and what it answers must hold together: a refusal
// carries no identity; an acceptance is unexpired at `now`; a token over 8 KiB
// is malformed; and asking again (from the cache when it was accepted) gives
// the same answer.
//
// Input: the first byte's bit 0 requires the audience "api" (otherwise `aud`
// is not checked). With bit 1 clear, the rest is the token. Only tokens made
// with the keys (the RFC 7515 examples', like the seeds) get past the
// signature, so with bit 1 set the rest is a header and a payload, JSON
// separated by a newline, which the harness encodes and signs with the HS256
// key: that is how the fuzzer reaches the claims.
//
// Issuer "joe", leeway 30 s, now 2011-03-22T18:41:40Z (80 s before the RFC
// tokens' exp).
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "worker/gateway/jwks.h"
#include "worker/gateway/jwt_verifier.h"

namespace {

using namespace phalanx::worker;

constexpr uint64_t kNowMs = 1'300'819'300'000;

// RFC 7515 A.1 (oct), A.2 (RSA) and A.3 (EC) keys.
constexpr const char* kJwks = R"({"keys": [
  {"kty": "oct", "kid": "hs", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
  {"kty": "RSA", "kid": "rs", "alg": "RS256", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
  {"kty": "EC", "kid": "es", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
]})";

[[noreturn]] void fail(const char* what, std::string_view token) {
  std::fprintf(stderr, "jwt_fuzz: %s: %.*s\n", what, static_cast<int>(token.size()), token.data());
  __builtin_trap();
}

// The keys, parsed once (an RSA key's checks are slow); each input gets its
// own verifier, so its cache starts empty and runs are repeatable.
Jwks freshKeys() {
  static const Jwks parsed = [] {
    JwksResult result = parseJwks(kJwks, "jwks");
    if (!result.errors.empty()) fail("the fixed JWKS is refused", result.errors[0]);
    return std::move(result.jwks);
  }();
  Jwks copy;
  for (const Jwk& jwk : parsed.keys) {
    EVP_PKEY_up_ref(jwk.key.get());
    copy.keys.push_back(Jwk{.kid = jwk.kid, .alg = jwk.alg, .key = EvpPkey(jwk.key.get())});
  }
  return copy;
}

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

// "HEADER\nPAYLOAD" as a token signed with the HS256 key of kJwks.
std::string signedToken(std::string_view text) {
  static const std::string secret = *base64UrlDecode(
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow");
  size_t newline = text.find('\n');
  std::string_view header = text.substr(0, newline);
  std::string_view payload = newline == std::string_view::npos ? "" : text.substr(newline + 1);
  std::string input = base64Url(header) + "." + base64Url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_size = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, sizeof mac,
                &mac_size) == nullptr) {
    fail("HMAC failed", input);
  }
  return input + "." + base64Url(std::string_view(reinterpret_cast<char*>(mac), mac_size));
}

bool same(const JwtIdentity& a, const JwtIdentity& b) {
  return a.error == b.error && a.subject == b.subject && a.tier == b.tier &&
         a.expires_ms == b.expires_ms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  JwtSettings settings{.issuer = "joe", .audience = (data[0] & 1) != 0 ? "api" : ""};
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string signed_token;
  if ((data[0] & 2) != 0) signed_token = signedToken(rest);
  std::string_view token = (data[0] & 2) != 0 ? std::string_view(signed_token) : rest;
  JwtVerifier verifier(freshKeys(), settings);

  JwtIdentity first = verifier.verify(token, kNowMs);
  if (first.error == JwtError::None) {
    // exp saturates at the largest uint64: no sum here.
    if (first.expires_ms <= kNowMs - settings.leeway_ms) fail("accepted past its exp", token);
    if (verifier.cached() != 1) fail("accepted but not cached", token);
  } else {
    if (!first.subject.empty() || !first.tier.empty() || first.expires_ms != 0) {
      fail("a refusal with an identity", token);
    }
    if (verifier.cached() != 0) fail("refused but cached", token);
  }
  if (token.size() > JwtVerifier::kMaxTokenBytes && first.error != JwtError::Malformed) {
    fail("a token over 8 KiB not refused as malformed", token);
  }
  if (!same(verifier.verify(token, kNowMs), first)) fail("a second verify disagrees", token);
  return 0;
}

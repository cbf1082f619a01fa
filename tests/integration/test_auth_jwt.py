"""Bearer JWTs on a route with "auth": "jwt": real RS256 keys made with the
openssl CLI and an HS256 secret, verified against a JWKS file; the tier comes
from a claim and sets the limit; every broken token is a 401."""

import base64
import hashlib
import hmac
import json
import subprocess
import time

from conftest import make_config
from test_proxy import get


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_rsa(tmp_path):
    key = tmp_path / "rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", str(key), "-noout", "-modulus"],
                             check=True, capture_output=True, text=True).stdout
    n = bytes.fromhex(modulus.strip().split("=", 1)[1])
    return key, {"kty": "RSA", "kid": "rsa1", "alg": "RS256", "n": b64url(n),
                 "e": b64url((65537).to_bytes(3, "big"))}


SECRET = b"an-hmac-secret-of-at-least-32-bytes!!"


def token(claims, alg="RS256", key=None, kid="rsa1", tamper=False):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    if alg == "RS256":
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)],
                                   input=signing_input, check=True, capture_output=True).stdout
    elif alg == "HS256":
        signature = hmac.new(SECRET, signing_input, hashlib.sha256).digest()
    else:
        signature = b""
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    return signing_input.decode() + "." + b64url(signature)


def test_jwt_tiers_and_refusals(phalanx_factory, tmp_path):
    key, jwk = make_rsa(tmp_path)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk, {"kty": "oct", "kid": "hs1", "alg": "HS256",
                                               "k": b64url(SECRET)}]}))
    cfg = make_config(workers=2, routes=[
        {"path": "/health/live", "builtin": "live"},
              {"path": "/metrics", "builtin": "metrics"},
        {"path": "/api", "static": {"body": "hi\n"}, "auth": "jwt"}],
        extra={"tiers": {"free": {"rate": "3/h"}, "premium": {"rate": "10000/h"}},
               "jwt": {"jwks_file": str(jwks), "issuer": "https://id.example",
                       "audience": "api", "default_tier": "free", "leeway_ms": 1000}})
    cfg["log"] = {"level": "info", "access": str(tmp_path / "access.log")}
    ph = phalanx_factory(cfg)
    now = int(time.time())
    good = {"iss": "https://id.example", "aud": "api", "sub": "alice", "exp": now + 600,
            "tier": "premium"}

    def call(tok):
        return get(ph.port, "/api", headers={"Authorization": f"Bearer {tok}"})[0]

    premium = token(good, key=key)
    assert [call(premium) for _ in range(10)] == [200] * 10
    free = token({**good, "sub": "bob", "tier": "free"}, key=key)
    assert [call(free) for _ in range(5)] == [200, 200, 200, 429, 429]
    default_tier = token({k: v for k, v in {**good, "sub": "carol"}.items() if k != "tier"}, key=key)
    assert [call(default_tier) for _ in range(4)] == [200, 200, 200, 429]
    assert call(token({**good, "sub": "dave"}, alg="HS256", kid="hs1")) == 200

    refused = {
        "expired": token({**good, "exp": now - 60}, key=key),
        "not yet valid": token({**good, "nbf": now + 600}, key=key),
        "wrong signature": token(good, key=key, tamper=True),
        "wrong audience": token({**good, "aud": "other"}, key=key),
        "wrong issuer": token({**good, "iss": "https://evil.example"}, key=key),
        "alg none": token(good, alg="none", kid=None),
        "unknown kid": token(good, key=key, kid="nope"),
        "garbage": "not.a.jwt",
    }
    for what, tok in refused.items():
        status, headers, _ = get(ph.port, "/api", headers={"Authorization": f"Bearer {tok}"})
        assert status == 401, what
        assert dict(headers)["WWW-Authenticate"] == 'Bearer realm="phalanx", error="invalid_token"'
    assert get(ph.port, "/api")[0] == 401
    metrics = get(ph.port, "/metrics")[2].decode()
    for reason in ("expired", "not_yet_valid", "signature", "audience", "issuer", "algorithm"):
        assert f'phalanx_auth_failures_total{{reason="{reason}"}} 1' in metrics, reason
    assert 'phalanx_rate_limit_requests_total{limit="tier:free",result="limited"} 3' in metrics
    time.sleep(0.3)
    log = (tmp_path / "access.log").read_text()
    assert '"key_id":"sub:alice"' in log
    assert premium not in log

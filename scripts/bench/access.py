#!/usr/bin/env python3
"""The access side's cost, as ratios to phalanx's own static route, in one run
(rounds interleaved, medians; the machine is shared and noisy, so ratios, not
absolute numbers):

  static    GET /            the baseline
  limited   GET /limited/    a local limit nothing reaches        target >= 0.95
  refused   GET /refused/    a limit refusing every request (429) target >= 1.0
  keyed     GET /keyed/      API key auth (an unlimited tier)     target >= 0.95
  jwt       GET /jwt/        RS256 bearer JWT (verified once, then cached until exp)
  cached    GET /cached/x    a cache hit on a proxied route       target >= 0.9
  proxied   GET /api/x       the same upstream without the cache (for reference)

    scripts/bench/access.py [--bin build/phalanx] [--rounds 5] [--duration 4]

Starts its own phalanx (scripts/bench/phalanx.json plus a JWKS made here with
the openssl CLI) on a free loopback port, and, for the two proxied cases, the
ceiling responder (../shared/bench/ceiling.c, compiled with gcc) on 19001 when
that file is there. wrk -t1 -c64, keep-alive. Everything stops by itself.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CEILING_SOURCE = os.path.join(REPO, "..", "shared", "bench", "ceiling.c")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_jwt(work):
    key = os.path.join(work, "rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key], check=True, capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": b64url(bytes.fromhex(modulus)),
                      "e": b64url((65537).to_bytes(3, "big"))}]}
    path = os.path.join(work, "jwks.json")
    with open(path, "w") as f:
        json.dump(jwks, f)
    header = b64url(json.dumps({"alg": "RS256", "kid": "k1"}).encode())
    claims = b64url(json.dumps({"sub": "bench", "tier": "bench",
                                "exp": int(time.time()) + 3600}).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                               check=True, capture_output=True).stdout
    return path, f"{header}.{claims}.{b64url(signature)}"


def wait_http(url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["curl", "-sf", "-o", "/dev/null", url]).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def wrk(url, duration, headers):
    cmd = ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99_ms, int(non2xx.group(1)) if non2xx else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "phalanx"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=4)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="phalanx-access-bench-")
    procs = []
    try:
        with open(os.path.join(HERE, "phalanx.json")) as f:
            cfg = json.load(f)
        port = free_port()
        cfg["listen"] = [f"127.0.0.1:{port}"]
        cfg["control_socket"] = os.path.join(work, "ctl.sock")
        jwks, token = make_jwt(work)
        cfg["jwt"] = {"jwks_file": jwks}
        cfg["routes"].insert(-1, {"path": "/jwt/", "auth": "jwt", "static": {
            "status": 200, "body": "ok\n", "headers": {"Content-Type": "text/plain"}}})
        with open(os.path.join(work, "phalanx.json"), "w") as f:
            json.dump(cfg, f)
        cases = [("static", "/", []), ("limited", "/limited/", []), ("refused", "/refused/", []),
                 ("keyed", "/keyed/", ["X-API-Key: bench-key-0123456789abcdef"]),
                 ("jwt", "/jwt/", [f"Authorization: Bearer {token}"])]
        if os.path.exists(CEILING_SOURCE) and shutil.which("gcc"):
            ceiling = os.path.join(work, "ceiling")
            subprocess.run(["gcc", "-O2", "-o", ceiling, CEILING_SOURCE], check=True)
            procs.append(subprocess.Popen([ceiling, "19001", "1"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            cases += [("cached", "/cached/x", []), ("proxied", "/api/x", [])]
        else:
            print("(no ../shared/bench/ceiling.c: the cached and proxied cases are skipped)")
        procs.append(subprocess.Popen([a.bin, "-c", os.path.join(work, "phalanx.json")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        base = f"http://127.0.0.1:{port}"
        if not wait_http(base + "/health/live"):
            sys.exit("phalanx did not start")
        results = {name: [] for name, _, _ in cases}
        for name, path, headers in cases:  # warm-up: caches, JWT cache, pools
            wrk(base + path, 1, headers)
        for r in range(a.rounds):
            for name, path, headers in cases:
                results[name].append(wrk(base + path, a.duration, headers))
        static = statistics.median(x[0] for x in results["static"])
        print(f"{'case':10} {'req/s':>10} {'ratio':>7} {'p99 ms':>8} {'non-2xx':>9}")
        for name, _, _ in cases:
            rps = statistics.median(x[0] for x in results[name])
            p99 = statistics.median(x[1] for x in results[name])
            non2xx = sum(x[2] for x in results[name])
            print(f"{name:10} {rps:10.0f} {rps / static:7.3f} {p99:8.2f} {non2xx:9d}")
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

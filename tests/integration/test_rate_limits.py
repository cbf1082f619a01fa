"""Rate limits decided in shared memory: exact across the workers of a host,
with the IETF draft headers or draft-06's trio, keyed by IP (X-Forwarded-For
only from trusted proxies), by header, by API key tier; refusals are 429s
with Retry-After, and /metrics counts them."""

import re
import threading
import time

from conftest import Conn, build_request, ctl, make_config, wait_until
from test_proxy import get, header
from test_upstream_view import check_with_promtool


def limited_config(limits, routes, extra=None):
    cfg_extra = {"rate_limits": limits}
    cfg_extra.update(extra or {})
    base = [{"path": "/health/live", "builtin": "live"},
            {"path": "/metrics", "builtin": "metrics"}]
    return make_config(workers=2, routes=base + routes, extra=cfg_extra)


def burst(port, path, connections=30, per_connection=10, headers=None):
    """connections × per_connection pipelined GETs, all sent at once; the responses."""
    conns = [Conn(port) for _ in range(connections)]
    request = build_request("GET", path, headers=headers)
    t0 = time.monotonic()
    for c in conns:
        c.send(request * per_connection)
    responses = []
    for c in conns:
        for _ in range(per_connection):
            responses.append(c.read_response())
    took = time.monotonic() - t0
    for c in conns:
        c.sock.close()
    return responses, took


def test_100_per_minute_allows_exactly_100_of_300_across_workers(phalanx_factory):
    ph = phalanx_factory(limited_config(
        {"per_ip": {"key": "ip", "rate": "100/m"}},
        [{"path": "/limited", "static": {"body": "ok\n"}, "rate_limit": "per_ip"}]))
    responses, took = burst(ph.port, "/limited")
    # GCRA refills one request per 600 ms: exact while the burst takes less.
    assert took < 0.6, f"the burst took {took:.2f} s"
    allowed = [r for r in responses if r.status == 200]
    refused = [r for r in responses if r.status == 429]
    assert len(allowed) == 100 and len(refused) == 200, (len(allowed), len(refused))
    # both workers served the burst
    for r in allowed:
        assert r.header("RateLimit-Policy") == '"per_ip";q=100;w=60'
        m = re.fullmatch(r'"per_ip";r=(\d+);t=(\d+)', r.header("RateLimit"))
        assert m and 0 <= int(m.group(1)) < 100 and 1 <= int(m.group(2)) <= 60, r.header("RateLimit")
    remaining = sorted(int(re.search(r"r=(\d+)", r.header("RateLimit")).group(1)) for r in allowed)
    assert remaining == list(range(100))  # each allowed request saw its own count
    for r in refused:
        assert r.header("Retry-After") == "1"  # one request refills within 600 ms
        assert r.header("RateLimit") == '"per_ip";r=0;t=60'
        assert r.header("RateLimit-Policy") == '"per_ip";q=100;w=60'
        assert r.header("Content-Type") == "application/json"
        assert r.json() == {"error": "too many requests", "status": 429}
    metrics = get(ph.port, "/metrics")[2].decode()
    assert 'phalanx_rate_limit_requests_total{limit="per_ip",result="allowed"} 100' in metrics
    assert 'phalanx_rate_limit_requests_total{limit="per_ip",result="limited"} 200' in metrics


def test_draft_6_headers_and_a_limit_refilling(phalanx_factory):
    ph = phalanx_factory(limited_config(
        {"old": {"rate": "5/s", "headers": "draft-6"}},
        [{"path": "/old", "static": {"body": "ok\n"}, "rate_limit": "old"}]))
    responses, took = burst(ph.port, "/old", connections=2, per_connection=5)
    assert took < 0.2
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 5 and statuses.count(429) == 5
    ok = [r for r in responses if r.status == 200]
    assert sorted(int(r.header("RateLimit-Remaining")) for r in ok) == [0, 1, 2, 3, 4]
    for r in responses:
        assert r.header("RateLimit-Limit") == "5"
        assert r.header("RateLimit-Policy") == "5;w=1"
        assert int(r.header("RateLimit-Reset")) == 1
        assert r.header("RateLimit") is None
    time.sleep(0.25)  # one request refills every 200 ms
    assert get(ph.port, "/old")[0] == 200


def test_x_forwarded_for_counts_only_from_trusted_proxies(phalanx_factory):
    routes = [{"path": "/limited", "static": {"body": "ok\n"}, "rate_limit": "per_ip"}]
    limits = {"per_ip": {"rate": "2/m"}}
    trusted = phalanx_factory(limited_config(limits, routes, {"trusted_proxies": ["127.0.0.0/8"]}))
    for client in ("203.0.113.7", "203.0.113.8"):
        codes = [get(trusted.port, "/limited", headers={"X-Forwarded-For": f"{client}, 127.0.0.2"})[0]
                 for _ in range(3)]
        assert codes == [200, 200, 429], (client, codes)
    # a spoofed entry left of the real client does not move its bucket
    assert get(trusted.port, "/limited",
               headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})[0] == 429
    untrusted = phalanx_factory(limited_config(limits, routes, {"trusted_proxies": ["10.0.0.0/8"]}))
    codes = [get(untrusted.port, "/limited", headers={"X-Forwarded-For": f"203.0.113.{i}"})[0]
             for i in range(3)]
    assert codes == [200, 200, 429]  # the peer is the client: XFF ignored


def test_header_keyed_limits_and_requests_without_the_header(phalanx_factory):
    ph = phalanx_factory(limited_config(
        {"tenant": {"key": "header", "header": "X-Tenant", "rate": "1/m"}},
        [{"path": "/t", "static": {"body": "ok\n"}, "rate_limit": "tenant"}]))
    assert [get(ph.port, "/t", headers={"X-Tenant": "a"})[0] for _ in range(2)] == [200, 429]
    assert get(ph.port, "/t", headers={"X-Tenant": "b"})[0] == 200
    assert [get(ph.port, "/t")[0] for _ in range(3)] == [200, 200, 200]  # no key: not limited
    metrics = get(ph.port, "/metrics")[2].decode()
    assert 'phalanx_rate_limit_requests_total{limit="tenant",result="unkeyed"} 3' in metrics


KEYS = [{"key": "free-key-0123456789abcdef", "tier": "free"},
        {"key": "premium-key-0123456789abcdef", "tier": "premium", "id": "acme"},
        {"key": "admin-key-0123456789abcdef", "tier": "admin"}]


def auth_config(tmp_path, access_log):
    return limited_config(
        {"per_ip": {"rate": "1000/m"}},
        [{"path": "/api", "static": {"body": "hi\n"}, "auth": "api_key", "rate_limit": "per_ip"},
         {"path": "/gold", "static": {"body": "gold\n"}, "auth": "api_key",
          "tiers": ["premium", "admin"]},
         {"path": "/internal", "static": {"body": "x\n"}, "allow": ["10.0.0.0/8"]}],
        {"tiers": {"free": {"rate": "5/h"}, "premium": {"rate": "10000/h"}, "admin": {}},
         "api_keys": KEYS})


def test_tiers_keys_and_refusals(phalanx_factory, phalanxctl_bin, tmp_path):
    cfg = auth_config(tmp_path, None)
    cfg["log"] = {"level": "info", "access": str(tmp_path / "access.log")}
    ph = phalanx_factory(cfg)

    def call(path, key=None, how="x-api-key"):
        headers = {}
        if key and how == "x-api-key":
            headers["X-API-Key"] = key
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        return get(ph.port, path, headers=headers)

    status, headers, body = call("/api")
    assert status == 401
    assert dict(headers)["WWW-Authenticate"] == 'Bearer realm="phalanx"'
    status, headers, _ = call("/api", "wrong-key-0123456789abcdef")
    assert status == 401
    assert dict(headers)["WWW-Authenticate"] == 'Bearer realm="phalanx", error="invalid_token"'
    free = [call("/api", KEYS[0]["key"], how)[0] for how in ("x-api-key", "bearer") * 4]
    assert free == [200] * 5 + [429] * 3, free
    status, headers, _ = call("/api", KEYS[0]["key"])
    assert status == 429
    h = dict(headers)
    assert '"tier:free";q=5;w=3600' in h["RateLimit-Policy"]
    assert int(h["Retry-After"]) > 600  # one request per 12 minutes
    assert [call("/api", KEYS[1]["key"])[0] for _ in range(20)] == [200] * 20
    assert [call("/api", KEYS[2]["key"])[0] for _ in range(20)] == [200] * 20  # admin: no limit
    assert call("/gold", KEYS[1]["key"])[0] == 200
    assert call("/gold", KEYS[2]["key"])[0] == 200
    status, _, body = call("/gold", KEYS[0]["key"])
    assert status == 403 and b"tier" in body
    assert get(ph.port, "/internal")[0] == 403  # 127.0.0.1 is not in 10/8

    metrics = get(ph.port, "/metrics")[2].decode()
    check_with_promtool(metrics)
    assert 'phalanx_auth_failures_total{reason="missing"} 1' in metrics
    assert 'phalanx_auth_failures_total{reason="unknown_key"} 1' in metrics
    assert 'phalanx_auth_failures_total{reason="tier"} 1' in metrics
    assert 'phalanx_auth_failures_total{reason="address"} 1' in metrics
    assert 'phalanx_rate_limit_requests_total{limit="tier:free",result="limited"} 4' in metrics

    out = ctl(phalanxctl_bin, ph, "access")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    per_ip = [line for line in lines if line.startswith("per_ip ")][0].split()
    assert per_ip[1:4] == ["49", "0", "0"]  # every /api call with a valid key: 9 + 20 + 20
    free = [line for line in lines if line.startswith("tier:free ")][0].split()
    assert free[1:3] == ["5", "4"]
    auth = [line for line in lines if line.startswith("auth: ")][0]
    assert "missing 1" in auth and "unknown_key 1" in auth and "tier 1" in auth and "address 1" in auth
    assert any(line.startswith("rate-limit table: ") for line in lines)
    out = ctl(phalanxctl_bin, ph, "keys", "2")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert len(rows) == 3 and rows[0].split()[:2] == ["ID", "TIER"]
    assert rows[1].split()[:4] == ["acme", "premium", "21", "0"]
    assert rows[2].split()[1:4] == ["admin", "21", "0"]
    out = ctl(phalanxctl_bin, ph, "keys")
    free_row = [r for r in out.stdout.splitlines() if " free " in r][0].split()
    assert free_row[2:4] == ["10", "5"]  # 5 allowed + 4 limited + 1 forbidden; 4 + 1 refused
    for k in KEYS:
        assert k["key"] not in out.stdout

    def logged():
        text = (tmp_path / "access.log").read_text()
        return text if text.count("\n") >= 55 else None
    text = wait_until(logged, 5.0, message="access log lines")
    for k in KEYS:
        assert k["key"] not in text
    assert '"key_id":"acme"' in text
    assert "wrong-key" not in text


def test_the_key_file_is_read_again_on_reload_and_a_bad_one_fails_it(phalanx_factory,
                                                                      phalanxctl_bin, tmp_path):
    import hashlib
    import json as js
    keys = tmp_path / "keys.json"
    old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    keys.write_text(js.dumps({"keys": [{"key": old, "tier": "t"}]}))
    ph = phalanx_factory(limited_config({}, [
        {"path": "/api", "static": {"body": "hi\n"}, "auth": "api_key"}],
        {"tiers": {"t": {}}, "api_key_file": str(keys)}))
    assert get(ph.port, "/api", headers={"X-API-Key": old})[0] == 200
    # the file names the new key by its digest only: it holds no secret
    keys.write_text(js.dumps({"keys": [
        {"sha256": hashlib.sha256(new.encode()).hexdigest(), "tier": "t", "id": "rotated"}]}))
    out = ctl(phalanxctl_bin, ph, "reload")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: get(ph.port, "/api", headers={"X-API-Key": new})[0] == 200, 5.0,
               message="the new key accepted")
    wait_until(lambda: get(ph.port, "/api", headers={"X-API-Key": old})[0] == 401, 5.0,
               message="the old key refused")
    keys.write_text('{"keys": [{"key": "short", "tier": "t"}]}')
    out = ctl(phalanxctl_bin, ph, "reload")
    assert out.returncode == 1
    assert "keys.json" in out.stderr
    assert get(ph.port, "/api", headers={"X-API-Key": new})[0] == 200  # the old generation serves


def test_a_limited_static_route_keeps_its_delay(phalanx_factory):
    ph = phalanx_factory(limited_config(
        {"per_ip": {"rate": "10/s"}},
        [{"path": "/slow", "static": {"body": "ok\n", "delay_ms": 200}, "rate_limit": "per_ip"}]))
    t0 = time.monotonic()
    status, headers, body = get(ph.port, "/slow")
    took = time.monotonic() - t0
    assert status == 200 and body == b"ok\n" and 0.2 <= took < 1.0, took
    assert dict(headers)["RateLimit-Policy"] == '"per_ip";q=10;w=1'


def test_a_full_table_evicts_and_says_so(phalanx_factory):
    cfg = limited_config(
        {"tenant": {"key": "header", "header": "X-Tenant", "rate": "1/h"}},
        [{"path": "/t", "static": {"body": "ok\n"}, "rate_limit": "tenant"}],
        {"rate_limit_entries": 1024})
    ph = phalanx_factory(cfg)
    conns = [Conn(ph.port) for _ in range(10)]
    for i, c in enumerate(conns):
        c.send(b"".join(build_request("GET", "/t", headers={"X-Tenant": f"t{i}-{j}"})
                        for j in range(200)))
    statuses = [c.read_response().status for c in conns for _ in range(200)]
    for c in conns:
        c.sock.close()
    assert statuses.count(200) == 2000  # each tenant's first request: never refused for room
    metrics = get(ph.port, "/metrics")[2].decode().splitlines()
    value = {line.split()[0]: int(line.split()[1]) for line in metrics
             if line.startswith("phalanx_rate_limit_table_")}
    assert value["phalanx_rate_limit_table_capacity"] == 1024
    assert value["phalanx_rate_limit_table_evictions_total"] >= 2000 - 1024
    assert value["phalanx_rate_limit_table_entries"] <= 1024


def test_five_limits_on_one_route_are_all_shown_and_the_tightest_refuses(phalanx_factory):
    """More limits than GuardedExchange keeps on the stack (4): every one is
    decided, shown in order, and the one that runs out refuses."""
    rates = {"l1": "100/m", "l2": "50/m", "l3": "3/m", "l4": "200/m", "l5": "10/m"}
    ph = phalanx_factory(limited_config(
        {name: {"key": "ip", "rate": rate} for name, rate in rates.items()},
        [{"path": "/many", "static": {"body": "ok\n"}, "rate_limit": list(rates)}]))
    policy = ", ".join(f'"{name}";q={rate.split("/")[0]};w=60' for name, rate in rates.items())
    for i in range(3):
        status, headers, _ = get(ph.port, "/many")
        assert status == 200, (i, status)
        assert header(headers, "RateLimit-Policy") == policy, headers
        shown = re.findall(r'"(l\d)";r=(\d+);t=\d+', header(headers, "RateLimit"))
        assert [name for name, _ in shown] == list(rates), headers
        assert dict(shown)["l3"] == str(2 - i) and dict(shown)["l4"] == str(199 - i), shown
    status, headers, _ = get(ph.port, "/many")
    assert status == 429
    assert '"l3";r=0;' in header(headers, "RateLimit"), headers

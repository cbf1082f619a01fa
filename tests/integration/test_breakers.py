"""Circuit breakers in shared memory, seen through real traffic: every worker
of a host counts into one breaker per target, an open breaker answers without
touching the upstream, half-opens after open_ms and closes once its probes
pass; retries stay within the upstream's budget."""

import json
import time

from conftest import ctl, make_config, wait_until
from test_proxy import get, header


def config(targets, breaker=None, upstream=None, workers=2, routes=None):
    up = {"targets": [{"address": a} for a in targets], "retries": 0,
          "breaker": {"consecutive_failures": 5, "minimum_calls": 1000, "open_ms": 1500,
                      "half_open_calls": 2, **(breaker or {})}}
    up.update(upstream or {})
    routes = [{"path": "/health/live", "builtin": "live"},
              {"path": "/health/status", "builtin": "status"},
              {"path": "/health/ready", "builtin": "ready"},
              {"path": "/metrics", "builtin": "metrics"}] + (
        routes or [{"prefix": "/", "upstream": "api"}])
    return make_config(workers=workers, routes=routes, extra={"upstreams": {"api": up}})


def breaker_of(ph, address):
    for u in ph.status()["upstreams"]:
        for t in u["targets"]:
            if t["address"] == address:
                return t["breaker"]
    raise AssertionError(f"no target {address}")


def test_five_failures_over_two_workers_open_one_breaker(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(config([up.address]))
    up.reset_stats()
    for _ in range(5):  # fresh connections: both workers take part
        status, _, _ = get(ph.port, "/status/500", headers={"Connection": "close"})
        assert status == 500
    assert up.stats()["requests"] == 5
    # the sixth is refused by phalanx itself: the upstream sees nothing
    status, headers, body = get(ph.port, "/status/500")
    assert status == 503, body
    assert int(header(headers, "Retry-After")) >= 1
    assert "api" in json.loads(body)["error"]
    assert up.stats()["requests"] == 5
    assert breaker_of(ph, up.address)["state"] == "open"
    # after open_ms: half-open, two passing probes close it
    time.sleep(1.6)
    assert get(ph.port, "/echo")[0] == 200
    assert get(ph.port, "/echo")[0] == 200
    wait_until(lambda: breaker_of(ph, up.address)["state"] == "closed", 2.0,
               message="breaker closed after its probes passed")
    assert get(ph.port, "/echo")[0] == 200
    assert up.stats()["requests"] == 8


def test_a_failing_probe_opens_again(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(config([up.address], breaker={"consecutive_failures": 2}))
    for _ in range(2):
        get(ph.port, "/status/502")
    assert get(ph.port, "/echo")[0] == 503
    time.sleep(1.6)
    assert get(ph.port, "/status/500")[0] == 500  # the probe fails
    assert breaker_of(ph, up.address)["state"] == "open"
    assert get(ph.port, "/echo")[0] == 503


def test_an_open_breaker_sends_traffic_to_the_other_target(phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(config([a.address, b.address], breaker={"open_ms": 60000}))
    a.kill()
    for _ in range(12):
        get(ph.port, "/echo")
    assert breaker_of(ph, a.address)["state"] == "open"
    b.reset_stats()
    for _ in range(20):
        status, headers, _ = get(ph.port, "/echo")
        assert status == 502 or header(headers, "X-Upstream") == "b"
    ok = sum(get(ph.port, "/echo")[0] == 200 for _ in range(20))
    assert ok == 20


def test_manual_breaker_control(phalanx_factory, upstream_factory, phalanxctl_bin):
    up = upstream_factory("u")
    ph = phalanx_factory(config([up.address], breaker={"open_ms": 60000}))
    assert ctl(phalanxctl_bin, ph, "breaker", "open", "api", up.address).returncode == 0
    up.reset_stats()
    assert get(ph.port, "/echo")[0] == 503
    assert up.stats()["requests"] == 0
    assert ctl(phalanxctl_bin, ph, "breaker", "close", "api", up.address).returncode == 0
    assert get(ph.port, "/echo")[0] == 200


def test_required_upstream_makes_ready_fail(phalanx_factory, upstream_factory, phalanxctl_bin):
    up = upstream_factory("u")
    ph = phalanx_factory(config([up.address], upstream={"required": True},
                                breaker={"open_ms": 60000}))
    assert get(ph.port, "/health/ready")[0] == 200
    assert ctl(phalanxctl_bin, ph, "breaker", "open", "api", up.address).returncode == 0
    status, _, body = get(ph.port, "/health/ready")
    assert status == 503 and b"required upstream" in body


def test_a_retry_storm_stays_within_the_budget(phalanx_factory, upstream_factory):
    """Every request fails with a 503 the route retries on, 3 retries each:
    without a budget the upstream would see 4x the traffic."""
    a, b = upstream_factory("a"), upstream_factory("b")
    routes = [{"prefix": "/", "upstream": "api", "retry_on": [503]}]
    ph = phalanx_factory(config([a.address, b.address], routes=routes,
                                breaker={"consecutive_failures": 0, "failure_rate": 1.0},
                                upstream={"retries": 3, "retry_budget": {
                                    "ratio": 0.2, "window_ms": 10000, "min_retries": 5}}))
    a.reset_stats()
    b.reset_stats()
    n = 300
    for _ in range(n):
        assert get(ph.port, "/status/503")[0] == 503
    seen = a.stats()["requests"] + b.stats()["requests"]
    retries = seen - n
    assert retries <= 0.2 * n + 5 + 2, (seen, retries)  # + one in flight per worker
    assert retries >= 0.2 * n - 5, (seen, retries)
    metrics = get(ph.port, "/metrics")[2].decode()
    assert 'phalanx_upstream_retry_budget_exhausted_total{upstream="api"}' in metrics

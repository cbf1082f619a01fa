"""Active health checks and breakers when a target dies under load: failures
stop within one health-check interval or the breaker's threshold, whichever
comes first, and traffic returns once the target passes the healthy threshold.
Checks run once per host (one worker holds the lease), not once per worker."""

import time

from conftest import RequestLoop, make_config, wait_until
from test_breakers import breaker_of
from test_proxy import get


def config(targets, health, breaker, workers=2):
    up = {"targets": [{"address": a} for a in targets], "retries": 0,
          "health_check": {"path": "/health", **{"timeout_ms": 300, **health}},
          "breaker": breaker}
    routes = [{"path": "/health/live", "builtin": "live"},
              {"path": "/health/status", "builtin": "status"},
              {"prefix": "/", "upstream": "api"}]
    return make_config(workers=workers, routes=routes, extra={"upstreams": {"api": up}})


def health_of(ph, address):
    for u in ph.status()["upstreams"]:
        for t in u["targets"]:
            if t["address"] == address:
                return t["health"]
    raise AssertionError(address)


NO_BREAKER = {"consecutive_failures": 0, "failure_rate": 1.0, "minimum_calls": 1000000}


def test_the_breaker_stops_failures_first(phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(config([a.address, b.address], {"interval_ms": 5000},
                                {"consecutive_failures": 5, "minimum_calls": 1000,
                                 "open_ms": 60000}))
    with RequestLoop(ph.port, "/echo", keepalive=2, fresh=1) as loop:
        time.sleep(0.5)
        t_kill = time.monotonic() - loop._t0
        a.kill()
        time.sleep(1.5)
    assert loop.ok > 100
    failures = [f for f in loop.failures if f[0] >= t_kill]
    assert len(loop.failures) == len(failures), loop.failures
    # 5 to open the breaker, plus what was in flight on the 3 clients
    assert len(failures) <= 5 + 3, failures
    assert breaker_of(ph, a.address)["state"] == "open"


def test_health_checks_stop_failures_within_an_interval_and_bring_traffic_back(
        phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    interval = 0.5
    ph = phalanx_factory(config([a.address, b.address],
                                {"interval_ms": int(interval * 1000), "unhealthy_threshold": 1,
                                 "healthy_threshold": 2}, NO_BREAKER))
    wait_until(lambda: health_of(ph, a.address)["checks"] >= 2, 3.0, message="checks running")
    with RequestLoop(ph.port, "/echo", keepalive=2, fresh=1) as loop:
        time.sleep(0.5)
        t_kill = time.monotonic() - loop._t0
        a.kill()
        time.sleep(2 * interval + 0.5)
        t_restart = time.monotonic() - loop._t0
        a.start()
        a.reset_stats()
        wait_until(lambda: a.stats()["by_path"].get("/echo", 0) > 0, 5.0,
                   message="traffic back on the restarted target")
        t_back = time.monotonic() - loop._t0
    failures = [f[0] for f in loop.failures]
    assert failures, "killing a target with no breaker and no retries must cost something"
    last = max(failures)
    # the check that notices may start up to one interval after the kill and
    # takes at most its timeout (0.3 s)
    assert last - t_kill <= interval + 0.3 + 0.2, (t_kill, loop.failures)
    assert t_back - t_restart <= 2 * interval + 0.3 + 0.5, (t_restart, t_back)
    assert health_of(ph, a.address)["up"] is True


def test_checks_run_once_per_host_not_once_per_worker(phalanx_factory, upstream_factory):
    a = upstream_factory("a")
    ph = phalanx_factory(config([a.address], {"interval_ms": 200, "timeout_ms": 150}, NO_BREAKER,
                                workers=2))
    time.sleep(0.5)
    a.reset_stats()
    time.sleep(2.0)
    checks = a.stats()["by_path"].get("/health", 0)
    assert 8 <= checks <= 12, checks  # one checker: 2 s / 200 ms, not twice that
    del ph

"""Breakers shared by the hosts of a fleet through a real redis-server: two
(or three) phalanx instances stand for hosts. An open on one reaches the
others within 100 ms; a host that starts later reads the current states; with
Redis gone every host keeps its breakers locally and no request waits."""

import statistics
import time

from conftest import make_config, wait_until
from test_breakers import breaker_of
from test_proxy import get


def cluster_config(target, redis, open_ms=60000):
    up = {"targets": [{"address": target}], "retries": 0,
          "breaker": {"consecutive_failures": 3, "minimum_calls": 1000, "open_ms": open_ms,
                      "half_open_calls": 1, "share": "cluster"}}
    routes = [{"path": "/health/live", "builtin": "live"},
              {"path": "/health/status", "builtin": "status"},
              {"prefix": "/", "upstream": "api"}]
    return make_config(workers=2, routes=routes,
                       extra={"upstreams": {"api": up},
                              "redis": {"address": redis.address, "timeout_ms": 50}})


def open_on(ph, up):
    for _ in range(3):
        assert get(ph.port, "/status/500")[0] == 500
    assert breaker_of(ph, up.address)["state"] == "open"


def test_an_open_breaker_reaches_the_other_host_within_100_ms(phalanx_factory, upstream_factory,
                                                              redis_factory):
    redis = redis_factory()
    up = upstream_factory("u")
    a = phalanx_factory(cluster_config(up.address, redis))
    b = phalanx_factory(cluster_config(up.address, redis))
    assert get(b.port, "/echo")[0] == 200
    time.sleep(0.3)  # both subscribed
    open_on(a, up)
    t0 = time.monotonic()
    wait_until(lambda: breaker_of(b, up.address)["state"] == "open", 2.0,
               interval=0.005, message="the breaker open on the other host")
    took = time.monotonic() - t0
    print(f"breaker open reached the other host in {took * 1000:.1f} ms")
    assert took < 0.1, f"took {took * 1000:.0f} ms"
    up.reset_stats()
    assert get(b.port, "/echo")[0] == 503
    assert up.stats()["requests"] == 0  # refused without touching the upstream
    # a host that starts later reads the state Redis kept
    c = phalanx_factory(cluster_config(up.address, redis))
    wait_until(lambda: breaker_of(c, up.address)["state"] == "open", 3.0,
               message="the later host read the stored state")


def test_a_close_reaches_the_other_host(phalanx_factory, upstream_factory, redis_factory):
    redis = redis_factory()
    up = upstream_factory("u")
    a = phalanx_factory(cluster_config(up.address, redis, open_ms=1000))
    b = phalanx_factory(cluster_config(up.address, redis, open_ms=1000))
    time.sleep(0.3)
    open_on(a, up)
    wait_until(lambda: breaker_of(b, up.address)["state"] == "open", 2.0, message="open on b")
    time.sleep(1.1)
    assert get(a.port, "/echo")[0] == 200  # a's probe passes: closed, and published
    wait_until(lambda: breaker_of(a, up.address)["state"] == "closed", 2.0, message="closed on a")
    wait_until(lambda: breaker_of(b, up.address)["state"] == "closed", 2.0, message="closed on b")


def test_without_redis_breakers_work_locally_and_nothing_waits(phalanx_factory, upstream_factory,
                                                               redis_factory):
    redis = redis_factory()
    up = upstream_factory("u")
    a = phalanx_factory(cluster_config(up.address, redis))
    b = phalanx_factory(cluster_config(up.address, redis))

    def latencies(ph, n=60):
        out = []
        for _ in range(n):
            t0 = time.monotonic()
            assert get(ph.port, "/echo")[0] == 200
            out.append(time.monotonic() - t0)
        return out

    with_redis = latencies(a)
    redis.stop()
    without = latencies(a) + latencies(b)
    assert statistics.median(without) < statistics.median(with_redis) + 0.005, (
        statistics.median(with_redis), statistics.median(without))
    assert max(without) < 0.2
    open_on(a, up)  # locally still
    assert get(a.port, "/echo")[0] == 503
    assert breaker_of(b, up.address)["state"] == "closed"  # nothing could carry it
    assert a.running() and b.running()

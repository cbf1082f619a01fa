"""Cluster-mode rate limits: one GCRA decided by Redis per request, exact
across hosts (two phalanx instances on one redis-server); Redis gone, each
on_redis_error policy answers within timeout_ms and does what it says; Redis
back, cluster decisions resume without a restart."""

import time

from conftest import make_config, wait_until
from test_proxy import get
from test_rate_limits import burst


def cluster_config(redis, on_error="local", rate="100/m"):
    routes = [{"path": "/health/live", "builtin": "live"},
              {"path": "/metrics", "builtin": "metrics"},
              {"path": "/health/ready", "builtin": "ready"},
              {"path": "/limited", "static": {"body": "ok\n"}, "rate_limit": "fleet"}]
    return make_config(workers=2, routes=routes, extra={
        "redis": {"address": redis.address, "timeout_ms": 50},
        "rate_limits": {"fleet": {"key": "route", "rate": rate, "mode": "cluster",
                                  "on_redis_error": on_error}}})


def redis_connected(ph):
    metrics = get(ph.port, "/metrics")[2].decode()
    return 'phalanx_redis_connected_workers{state="up"} 2' in metrics


def test_two_hosts_share_one_limit_exactly(phalanx_factory, redis_factory):
    redis = redis_factory()
    a = phalanx_factory(cluster_config(redis))
    b = phalanx_factory(cluster_config(redis))
    for ph in (a, b):
        wait_until(lambda: redis_connected(ph), 5.0, message="workers connected to redis")
    ra, took_a = burst(a.port, "/limited", connections=15, per_connection=10)
    rb, took_b = burst(b.port, "/limited", connections=15, per_connection=10)
    assert took_a + took_b < 0.6
    statuses = [r.status for r in ra + rb]
    assert statuses.count(200) == 100 and statuses.count(429) == 200, statuses.count(200)
    for r in ra + rb:
        assert r.header("RateLimit-Policy") == '"fleet";q=100;w=60'
    keys = redis.command("KEYS", "phalanx:rl:*")
    assert keys == [b"phalanx:rl:{fleet:%2Flimited}"]  # hash-tagged, the key escaped


def timed_statuses(port, n):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        status = get(port, "/limited")[0]
        out.append((status, time.monotonic() - t0))
    return out


def test_redis_down_each_policy_then_back(phalanx_factory, redis_factory):
    redis = redis_factory()
    local = phalanx_factory(cluster_config(redis, "local", rate="5/m"))
    open_ = phalanx_factory(cluster_config(redis, "open", rate="5/m"))
    closed = phalanx_factory(cluster_config(redis, "closed", rate="5/m"))
    for ph in (local, open_, closed):
        wait_until(lambda: redis_connected(ph), 5.0, message="workers connected to redis")
    redis.command("FLUSHALL")
    assert [s for s, _ in timed_statuses(local.port, 3)] == [200] * 3  # 3 of the fleet's 5
    redis.stop()
    for ph, want in ((local, [200] * 5 + [429] * 3), (open_, [200] * 8), (closed, [429] * 8)):
        results = timed_statuses(ph.port, 8)
        assert [s for s, _ in results] == want, (want, results)
        slowest = max(t for _, t in results)
        print(f"slowest request with redis down: {slowest * 1000:.1f} ms")
        assert slowest < 0.050 + 0.050
    metrics = get(local.port, "/metrics")[2].decode()
    assert 'phalanx_rate_limit_redis_errors_total{limit="fleet",fallback="local"} 8' in metrics
    wait_until(lambda: 'phalanx_redis_connected_workers{state="down"} 2' in
               get(local.port, "/metrics")[2].decode(), 3.0, message="redis reported down")
    status, _, body = get(local.port, "/health/ready")
    assert status == 200 and b'"redis":"down"' in body  # reported, still ready
    redis.start()
    # Reconnected (backoff up to a second or so): "closed" answers 200 again,
    # decided by Redis on a fresh bucket.
    wait_until(lambda: get(closed.port, "/limited")[0] == 200, 10.0,
               message="cluster decisions resumed")
    assert redis.command("EXISTS", "phalanx:rl:{fleet:%2Flimited}") == 1

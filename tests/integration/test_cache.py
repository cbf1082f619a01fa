"""The response cache on proxied routes: level 1 per worker, level 2 in a real
redis-server shared by workers and hosts; MISS then HIT with the upstream
seeing one request, Cache-Control respected, TTL expiry, coalescing of
concurrent misses, invalidation after a POST, and phalanxctl cache purge."""

import http.client
import json
import threading
import time

from conftest import ctl, make_config, wait_until
from test_proxy import get
from test_upstream_view import check_with_promtool


def cache_config(upstream, ttl_ms=60000, workers=2, redis=None, shared=False):
    extra = {"upstreams": {"api": {"targets": [{"address": upstream.address}], "retries": 0}},
             "cache": {"memory": "8M"}}
    if redis is not None:
        extra["redis"] = {"address": redis.address, "timeout_ms": 50}
        extra["cache"]["redis"] = True
    routes = [{"path": "/health/live", "builtin": "live"},
              {"path": "/metrics", "builtin": "metrics"},
              {"prefix": "/cacheable", "upstream": "api",
               "cache": {"ttl_ms": ttl_ms, "shared": shared}},
              {"prefix": "/", "upstream": "api"}]
    return make_config(workers=workers, routes=routes, extra=extra)


class Client:
    """One keep-alive connection: the same worker answers every request."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path, method="GET", headers=None, body=None):
        self.c.request(method, path, body=body, headers=headers or {})
        r = self.c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def close(self):
        self.c.close()


def upstream_count(up, path):
    return up.stats()["by_path"].get(path, 0)


def test_miss_then_hit_and_what_is_not_stored(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(cache_config(up))
    c = Client(ph.port)
    status, h, body = c.get("/cacheable/a")
    assert status == 200 and h["x-cache"] == "MISS" and json.loads(body)["n"] == 1
    status, h, body2 = c.get("/cacheable/a")
    assert status == 200 and h["x-cache"] == "HIT" and body2 == body
    assert h["age"] == "0" and "date" in h and h["content-length"] == str(len(body))
    assert h["x-upstream"] == "u"  # the upstream's own fields are replayed
    status, h, _ = c.get("/cacheable/a", method="HEAD")
    assert status == 200 and h["x-cache"] == "HIT"
    assert upstream_count(up, "/cacheable/a") == 1
    # query strings are part of the key
    assert c.get("/cacheable/a?x=1")[1]["x-cache"] == "MISS"
    # no-store, private and Set-Cookie responses are not kept
    for query in ("cc=no-store", "cc=private", "cookie=1"):
        assert [c.get(f"/cacheable/b?{query}")[1]["x-cache"] for _ in range(2)] == ["MISS", "MISS"]
    # a request asking for no-store, and one with credentials, bypass the cache
    assert c.get("/cacheable/a", headers={"Cache-Control": "no-store"})[1]["x-cache"] == "BYPASS"
    assert c.get("/cacheable/a", headers={"Authorization": "Bearer x"})[1]["x-cache"] == "BYPASS"
    # the upstream's max-age wins over the route's ttl
    assert c.get("/cacheable/c?cc=max-age=1")[1]["x-cache"] == "MISS"
    assert c.get("/cacheable/c?cc=max-age=1")[1]["x-cache"] == "HIT"
    time.sleep(1.2)
    assert c.get("/cacheable/c?cc=max-age=1")[1]["x-cache"] == "MISS"
    # Vary: a variant per Accept value
    assert c.get("/cacheable/v?vary=Accept", headers={"Accept": "a/b"})[1]["x-cache"] == "MISS"
    assert c.get("/cacheable/v?vary=Accept", headers={"Accept": "c/d"})[1]["x-cache"] == "MISS"
    _, h, body = c.get("/cacheable/v?vary=Accept", headers={"Accept": "a/b"})
    assert h["x-cache"] == "HIT" and json.loads(body)["accept"] == "a/b"
    # an error is not cached
    assert [c.get("/cacheable/e?status=500")[1]["x-cache"] for _ in range(2)] == ["MISS", "MISS"]
    c.close()
    metrics = get(ph.port, "/metrics")[2].decode()
    check_with_promtool(metrics)
    assert 'phalanx_cache_requests_total{result="hit"} 4' in metrics
    assert 'phalanx_cache_requests_total{result="bypass"} 2' in metrics


def test_ttl_expiry(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(cache_config(up, ttl_ms=300))
    c = Client(ph.port)
    assert [c.get("/cacheable/t")[1]["x-cache"] for _ in range(2)] == ["MISS", "HIT"]
    time.sleep(0.4)
    _, h, body = c.get("/cacheable/t")
    assert h["x-cache"] == "MISS" and json.loads(body)["n"] == 2
    c.close()


def test_concurrent_misses_send_one_upstream_request_per_worker(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(cache_config(up))
    results = []
    lock = threading.Lock()

    def one():
        status, headers, body = get(ph.port, "/cacheable/slow?ms=400")
        with lock:
            results.append((status, dict(headers).get("X-Cache"), json.loads(body)["n"]))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50 and all(s == 200 for s, _, _ in results)
    sent = upstream_count(up, "/cacheable/slow")
    print(f"50 concurrent misses, {sent} upstream requests")
    assert 1 <= sent <= 2  # one per worker at most
    assert {n for _, _, n in results} <= {1, 2}
    metrics = get(ph.port, "/metrics")[2].decode().splitlines()

    def sample(name):
        return int([line for line in metrics if line.startswith(name + " ")][0].split()[1])
    # every request but the leaders waited for a leader, or came after it and hit
    assert sample("phalanx_cache_coalesced_total") + sample(
        'phalanx_cache_requests_total{result="hit"}') == 50 - sent


def test_a_successful_post_invalidates_the_path(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(cache_config(up))
    c = Client(ph.port)
    assert [c.get("/cacheable/item")[1]["x-cache"] for _ in range(2)] == ["MISS", "HIT"]
    assert c.get("/cacheable/item?page=2")[1]["x-cache"] == "MISS"
    status, h, _ = c.get("/cacheable/item?status=404", method="POST", body=b"{}")
    assert status == 404 and h["x-cache"] == "BYPASS"  # a failure invalidates nothing
    assert c.get("/cacheable/item")[1]["x-cache"] == "HIT"
    status, h, _ = c.get("/cacheable/item", method="POST", body=b"{}")
    assert status == 200
    assert c.get("/cacheable/item")[1]["x-cache"] == "MISS"
    assert c.get("/cacheable/item?page=2")[1]["x-cache"] == "MISS"  # every query of the path
    c.close()


def test_purge_empties_every_worker(phalanx_factory, upstream_factory, phalanxctl_bin):
    up = upstream_factory("u")
    ph = phalanx_factory(cache_config(up))
    clients = [Client(ph.port) for _ in range(8)]  # both workers, most likely
    for c in clients:
        c.get("/cacheable/p1")
        c.get("/cacheable/q1")
    assert all(c.get("/cacheable/p1")[1]["x-cache"] == "HIT" for c in clients)
    out = ctl(phalanxctl_bin, ph, "cache", "purge", "/cacheable/p")
    assert out.returncode == 0, out.stderr
    assert "2 of 2 workers emptied their cache" in out.stdout
    assert all(c.get("/cacheable/p1")[1]["x-cache"] == "MISS" for c in clients[:1])
    assert all(c.get("/cacheable/q1")[1]["x-cache"] == "HIT" for c in clients)
    assert ctl(phalanxctl_bin, ph, "cache", "purge", "nope").returncode != 0
    for c in clients:
        c.close()


def test_the_redis_level_serves_other_workers_and_hosts(phalanx_factory, upstream_factory,
                                                       redis_factory, phalanxctl_bin):
    up = upstream_factory("u")
    redis = redis_factory()
    a = phalanx_factory(cache_config(up, redis=redis))
    b = phalanx_factory(cache_config(up, redis=redis))
    for ph in (a, b):
        wait_until(lambda: 'phalanx_redis_connected_workers{state="up"} 2' in
                   get(ph.port, "/metrics")[2].decode(), 5.0, message="redis connected")
    # hosts of a fleet see the same Host (behind one name), so they share keys
    host = {"Host": "api.example"}
    _, headers, body = get(a.port, "/cacheable/shared", headers=host)
    assert dict(headers)["X-Cache"] == "MISS"
    wait_until(lambda: redis.command("DBSIZE") == 1, 2.0, message="stored in redis")
    for ph in (a, b, b):
        _, headers, body2 = get(ph.port, "/cacheable/shared", headers=host)
        assert dict(headers)["X-Cache"] == "HIT" and body2 == body
    assert upstream_count(up, "/cacheable/shared") == 1
    out = ctl(phalanxctl_bin, b, "cache", "purge")
    assert out.returncode == 0, out.stderr
    assert "Redis: 1 keys removed" in out.stdout
    assert redis.command("DBSIZE") == 0
    redis.stop()
    t0 = time.monotonic()
    status, headers, _ = get(a.port, "/cacheable/other")
    assert status == 200 and dict(headers)["X-Cache"] == "MISS"
    assert time.monotonic() - t0 < 0.5  # a dead Redis is a miss, not a stall


def test_a_stopped_redis_is_a_miss_within_its_timeout(phalanx_factory, upstream_factory,
                                                      redis_factory):
    import os
    import signal
    up = upstream_factory("u")
    redis = redis_factory()
    ph = phalanx_factory(cache_config(up, redis=redis))
    wait_until(lambda: 'phalanx_redis_connected_workers{state="up"} 2' in
               get(ph.port, "/metrics")[2].decode(), 5.0, message="redis connected")
    os.kill(redis.proc.pid, signal.SIGSTOP)  # hung, not gone: connections stay open
    try:
        slowest = 0
        for i in range(5):
            t0 = time.monotonic()
            status, headers, _ = get(ph.port, f"/cacheable/hung{i}")
            slowest = max(slowest, time.monotonic() - t0)
            assert status == 200 and dict(headers)["X-Cache"] == "MISS"
        print(f"slowest miss with Redis hung: {slowest * 1000:.1f} ms")
        assert slowest < 0.050 + 0.100  # redis.timeout_ms, plus the upstream's own answer
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    # every lookup that timed out is counted (published on the workers' heartbeats)
    wait_until(lambda: int([line for line in get(ph.port, "/metrics")[2].decode().splitlines()
                            if line.startswith('phalanx_cache_level2_total{result="error"}')][0]
                           .split()[1]) >= 5, 3.0, message="level 2 errors counted")

"""Reloads under proxied load: zero errors while generations change, and the
upstream state in shared memory (breakers, counters) survives a reload that
keeps its target."""

import subprocess
import time

from conftest import ctl, parse_wrk, rewrite_config
from test_breakers import breaker_of, config
from test_proxy import get
from test_reload import five_reloads_while


def test_five_reloads_under_proxied_wrk_load_lose_nothing(phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(config([a.address, b.address], upstream={"retries": 1}))
    wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d8s", "--timeout", "5s",
                            f"http://127.0.0.1:{ph.port}/echo"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    out = five_reloads_while(ph, wrk, gap=0.6)
    res = parse_wrk(out)
    assert res["requests"] and res["requests"] > 2000, out
    assert res["socket_errors"] == (0, 0, 0, 0), out
    assert res["non2xx"] == 0, out


def test_an_open_breaker_stays_open_across_a_reload(phalanx_factory, upstream_factory,
                                                    phalanxctl_bin):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(config([a.address, b.address], breaker={"open_ms": 600000}))
    for _ in range(10):
        get(ph.port, "/echo")
    before = {t: breaker_of(ph, t) for t in (a.address, b.address)}
    assert ctl(phalanxctl_bin, ph, "breaker", "open", "api", a.address).returncode == 0
    # a reload with another config that keeps both targets
    cfg = dict(ph.config)
    cfg["routes"] = [{"path": "/extra", "static": {"status": 200, "body": "x"}}] + cfg["routes"]
    rewrite_config(ph, cfg)
    assert ctl(phalanxctl_bin, ph, "reload").returncode == 0
    assert get(ph.port, "/extra")[0] == 200  # the new generation serves
    assert breaker_of(ph, a.address)["state"] == "open"
    a.reset_stats()
    for _ in range(10):
        assert get(ph.port, "/echo")[0] == 200
    assert a.stats()["requests"] == 0  # still skipped by the new workers
    requests = {u["name"]: u for u in ph.status()["upstreams"]}["api"]["requests"]
    assert requests >= 20, before  # the counters went on from where they were

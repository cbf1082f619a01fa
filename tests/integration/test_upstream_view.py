"""The operator's view of the upstream records in shared memory: `phalanxctl
upstreams`, `breaker open|close`, the "upstreams" of status and /health/status,
the upstream families of /metrics (checked with promtool), and what reloads do
to the records: a kept target keeps its breaker, a removed one leaves the others
alone, a config past the region's capacity is refused and the old generation
keeps serving.

A route proxies /api/ to the upstream, but no request goes through it here:
what is under test is the records the master provisions and the views of them."""

import json
import re
import subprocess

from conftest import ctl, free_port, http_get, make_config, rewrite_config, wait_until

ROUTES = [
    {"path": "/health/live", "builtin": "live"},
    {"path": "/health/status", "builtin": "status"},
    {"path": "/metrics", "builtin": "metrics"},
    {"prefix": "/api/", "upstream": "api"},
    {"path": "/", "static": {"status": 200, "body": "ok\n"}},
]


def upstream_config(addresses):
    return make_config(workers=2, routes=ROUTES,
                       extra={"upstreams": {"api": {"targets": [{"address": a} for a in addresses],
                                                    "breaker": {"open_ms": 600000}}}})


def targets_of(answer, upstream="api"):
    """{address: target object} of one upstream in a status or upstreams answer."""
    for u in answer["upstreams"]:
        if u["name"] == upstream:
            return {t["address"]: t for t in u["targets"]}
    raise AssertionError(f"no upstream {upstream!r} in {answer['upstreams']!r}")


def breaker_state_samples(metrics):
    """{target: value} of phalanx_breaker_state for upstream api."""
    out = {}
    for m in re.finditer(r'^phalanx_breaker_state\{upstream="api",target="([^"]+)"\} (\d+)$',
                         metrics, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def check_with_promtool(text):
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, f"promtool check metrics:\n{res.stdout}{res.stderr}"


def test_upstreams_table_and_forcing_a_breaker(phalanx_factory, phalanxctl_bin):
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ph = phalanx_factory(config=upstream_config([a, b]))

    res = ctl(phalanxctl_bin, ph, "upstreams")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["UPSTREAM", "TARGET", "HEALTH", "BREAKER", "SINCE", "IN-FLIGHT",
                                "REQUESTS", "FAILURES", "P50", "P99"], res.stdout
    for line, address in zip(lines[1:3], [a, b]):
        assert line.split() == ["api", address, "up", "closed", "-", "0", "0", "0", "-", "-"], \
            res.stdout
    raw = json.loads(ctl(phalanxctl_bin, ph, "upstreams", "--json").stdout)
    assert set(targets_of(raw)) == {a, b}

    res = ctl(phalanxctl_bin, ph, "breaker", "open", "api", a)
    assert res.returncode == 0 and res.stdout == f"breaker api {a}: open\n", (res.stdout, res.stderr)
    # Every worker reads the same record: any of them answers with it open.
    for _ in range(4):
        t = targets_of(http_get(ph.port, "/health/status").json())
        assert t[a]["breaker"]["state"] == "open" and t[b]["breaker"]["state"] == "closed", t
        assert t[a]["breaker"]["since_ms"] > 0 and t[a]["breaker"]["transitions"] == 1, t[a]
    metrics = http_get(ph.port, "/metrics").body.decode()
    assert breaker_state_samples(metrics) == {a: 1, b: 0}, metrics
    assert f'phalanx_upstream_healthy{{upstream="api",target="{a}"}} 1' in metrics
    assert 'phalanx_upstream_no_target_total{upstream="api"} 0' in metrics
    check_with_promtool(metrics)
    table = ctl(phalanxctl_bin, ph, "upstreams").stdout
    assert re.search(rf"^api\s+{re.escape(a)}\s+up\s+open\s+\d+s\s", table, re.M), table

    res = ctl(phalanxctl_bin, ph, "breaker", "close", "api", a)
    assert res.returncode == 0 and res.stdout == f"breaker api {a}: closed\n", res.stderr
    assert targets_of(ph.status())[a]["breaker"]["state"] == "closed"
    assert breaker_state_samples(http_get(ph.port, "/metrics").body.decode()) == {a: 0, b: 0}

    res = ctl(phalanxctl_bin, ph, "breaker", "open", "api", "127.0.0.1:1")
    assert res.returncode == 1 and 'upstream "api" has no target "127.0.0.1:1"' in res.stderr
    res = ctl(phalanxctl_bin, ph, "breaker", "open", "web", a)
    assert res.returncode == 1 and 'no upstream named "web"' in res.stderr
    assert "breaker open UPSTREAM TARGET" in ph.control("help")["text"]


def test_reloads_keep_a_kept_targets_breaker_and_retire_a_removed_one(phalanx_factory,
                                                                      phalanxctl_bin):
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ph = phalanx_factory(config=upstream_config([a, b]))
    assert ctl(phalanxctl_bin, ph, "breaker", "open", "api", a).returncode == 0
    since = targets_of(ph.status())[a]["breaker"]["since_ms"]

    # Same targets, a changed knob: the record, and its open breaker, stay.
    config = upstream_config([a, b])
    config["listen"] = ph.config["listen"]
    config["upstreams"]["api"]["retries"] = 2
    rewrite_config(ph, config)
    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 0, res.stderr
    t = targets_of(http_get(ph.port, "/health/status").json())
    assert t[a]["breaker"]["state"] == "open" and t[a]["breaker"]["since_ms"] == since, t

    # b removed: a keeps its state; b is retired, and with nothing in flight not listed.
    config["upstreams"]["api"]["targets"] = [{"address": a}]
    rewrite_config(ph, config)
    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 0, res.stderr
    st = ph.status()
    assert st["master"]["generation"] == 3
    t = targets_of(st)
    assert set(t) == {a} and t[a]["breaker"]["state"] == "open", t
    metrics = http_get(ph.port, "/metrics").body.decode()
    assert breaker_state_samples(metrics) == {a: 1}, metrics
    check_with_promtool(metrics)

    # b back: its old record, its breaker closed as it was.
    config["upstreams"]["api"]["targets"] = [{"address": a}, {"address": b}]
    rewrite_config(ph, config)
    assert ctl(phalanxctl_bin, ph, "reload").returncode == 0
    t = targets_of(ph.status())
    assert t[a]["breaker"]["state"] == "open" and t[b]["breaker"]["state"] == "closed", t


def test_a_reload_past_the_shared_memory_capacity_is_refused(phalanx_factory, phalanxctl_bin):
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ph = phalanx_factory(config=upstream_config([a, b]))
    assert ctl(phalanxctl_bin, ph, "breaker", "open", "api", b).returncode == 0
    pids = set(ph.worker_pids())

    # Two targets get 64 records (the minimum); 65 do not fit.
    config = upstream_config([f"127.0.0.1:{20000 + i}" for i in range(65)])
    config["listen"] = ph.config["listen"]
    rewrite_config(ph, config)
    res = ctl(phalanxctl_bin, ph, "reload")
    message = "upstreams: 65 targets, shared memory holds 64; restart phalanx to grow it"
    assert res.returncode == 1 and message in res.stderr, (res.stdout, res.stderr)

    st = ph.status()
    assert st["master"]["generation"] == 1 and st["master"]["last_reload"]["result"] == "failed"
    assert message in st["master"]["last_reload"]["error"]
    assert set(ph.worker_pids()) == pids
    assert http_get(ph.port, "/").status == 200
    t = targets_of(st)
    assert set(t) == {a, b} and t[b]["breaker"]["state"] == "open", t
    wait_until(lambda: message in ph.log(), 5.0, message="the refusal in the log")

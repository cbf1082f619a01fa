"""Per-route figures and the recent errors, as an operator reads them: the
"routes" and "errors" of status and /health/status, phalanxctl routes and
errors, and the route families of /metrics (promtool-checked). Requests are
counted under the route's name (or path), by method and status, in the slot
of whichever worker served them; counts survive a reload and a worker's
death; 5xx responses land in the shared ring with the request id the client
got, newest first, at most 100."""

import json
import os
import re
import signal
import subprocess

from conftest import ctl, free_port, http_get, make_config, rewrite_config, wait_until


def config(dead_port, extra_routes=()):
    routes = [
        {"path": "/health/live", "builtin": "live"},
        {"path": "/health/status", "builtin": "status"},
        {"path": "/metrics", "builtin": "metrics"},
        {"prefix": "/api/", "upstream": "dead", "name": "api-v1"},
        *extra_routes,
        {"path": "/", "static": {"status": 200, "body": "ok\n"}},
    ]
    return make_config(workers=2, routes=routes,
                       extra={"upstreams": {"dead": {
                           "targets": [{"address": f"127.0.0.1:{dead_port}"}],
                           "retries": 0, "connect_timeout_ms": 500,
                           "breaker": {"consecutive_failures": 1000, "minimum_calls": 1000}}}})


def routes_by_name(answer):
    return {r["name"]: r for r in answer["routes"]}


def status_of(ph):
    return json.loads(http_get(ph.port, "/health/status").body)


def test_requests_count_by_route_method_and_status(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(config(free_port()))
    for _ in range(5):
        assert http_get(ph.port, "/").status == 200
    assert http_get(ph.port, "/", method="HEAD").status == 200
    assert http_get(ph.port, "/nowhere/").status == 404  # "/" is exact: no route takes it
    ids = []
    for method in ("GET", "POST", "DELETE"):
        r = http_get(ph.port, "/api/users", method=method)
        assert r.status == 502, r
        ids.append(r.header("X-Request-Id"))

    routes = routes_by_name(status_of(ph))
    assert routes["/"]["requests"] == 6
    assert routes["/"]["methods"] == {"GET": 5, "HEAD": 1}
    assert routes["/"]["responses"] == {"200": 6}
    assert sum(routes["/"]["latency_us"]["counts"]) == 6
    assert routes["api-v1"]["methods"] == {"GET": 1, "POST": 1, "DELETE": 1}
    assert routes["api-v1"]["responses"] == {"502": 3}
    assert routes["(none)"]["responses"] == {"404": 1}
    # busiest first
    names = [r["name"] for r in status_of(ph)["routes"]]
    assert names.index("/") < names.index("api-v1")

    # the control socket gives the same, and phalanxctl prints a table
    answer = json.loads(ctl(phalanxctl_bin, ph, "routes", "--json").stdout)
    assert routes_by_name(answer)["api-v1"]["responses"] == {"502": 3}
    table = ctl(phalanxctl_bin, ph, "routes").stdout
    line = next(l for l in table.splitlines() if l.startswith("api-v1"))
    assert line.split()[1:6] == ["3", "0", "0", "0", "3"], table

    # the errors: newest first, with what the client was told
    errors = status_of(ph)["errors"]
    assert [e["method"] for e in errors] == ["DELETE", "POST", "GET"]
    assert [e["request_id"] for e in errors] == ids[::-1]
    for e in errors:
        assert e["status"] == 502 and e["route"] == "api-v1" and e["path"] == "/api/users"
        assert e["client"] == "127.0.0.1"
        assert e["upstream"].startswith("127.0.0.1:")
    answer = json.loads(ctl(phalanxctl_bin, ph, "errors", "2", "--json").stdout)
    assert [e["request_id"] for e in answer["errors"]] == ids[::-1][:2]
    text = ctl(phalanxctl_bin, ph, "errors").stdout
    assert ids[0] in text and "api-v1" in text and " 502 " in text, text
    bad = ctl(phalanxctl_bin, ph, "errors", "101")
    assert bad.returncode == 1 and "usage: errors [N]" in bad.stdout + bad.stderr

    # /metrics: the same figures, valid exposition
    metrics = http_get(ph.port, "/metrics").body.decode()
    assert 'phalanx_route_requests_total{route="/",method="GET"} 5' in metrics
    assert 'phalanx_route_responses_total{route="api-v1",code="502"} 3' in metrics
    assert 'phalanx_route_request_duration_seconds_count{route="(none)"} 1' in metrics
    assert re.search(r"^phalanx_worker_memory_limit_bytes 536870912$", metrics, re.M)
    check = subprocess.run(["promtool", "check", "metrics"], input=metrics, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_counts_survive_a_reload_and_a_killed_worker_and_new_routes_appear(phalanx_factory):
    dead = free_port()
    ph = phalanx_factory(config(dead))
    for _ in range(20):
        assert http_get(ph.port, "/").status == 200
    assert routes_by_name(status_of(ph))["/"]["requests"] == 20

    os.kill(ph.worker_by_slot()[0], signal.SIGKILL)
    wait_until(lambda: [r["state"] for r in ph.serving_rows().values()] == ["ready", "ready"], 10,
               message="the slot respawned")
    assert routes_by_name(status_of(ph))["/"]["requests"] == 20

    new_config = config(dead, extra_routes=[
        {"path": "/v2", "static": {"status": 201, "body": "made\n"}, "name": "v2"}])
    new_config["listen"] = ph.config["listen"]
    rewrite_config(ph, new_config)
    assert ctl_reload(ph)
    # The old generation may take a connection or two until it has seen its
    # drain (it shares each slot's socket): ask until the new config answers.
    wait_until(lambda: http_get(ph.port, "/v2").status == 201, 5, message="/v2 served")
    routes = routes_by_name(status_of(ph))
    assert routes["/"]["requests"] == 20  # the old generation's counts are kept
    assert routes["v2"]["responses"] == {"201": 1}


def ctl_reload(ph):
    answer = ph.control("reload")
    return answer.get("ok") is True


def test_the_error_ring_keeps_the_last_hundred(phalanx_factory):
    ph = phalanx_factory(config(free_port()))
    for i in range(130):
        assert http_get(ph.port, f"/api/{i}").status == 502
    errors = status_of(ph)["errors"]
    assert len(errors) == 100
    assert [e["path"] for e in errors[:2]] == ["/api/129", "/api/128"]
    assert errors[-1]["path"] == "/api/30"

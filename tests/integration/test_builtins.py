"""Builtin endpoints (/health/ready, /health/status, /metrics), static
responses with delay_ms, and the worker's signals as clients and operators see
them: a delayed answer keeps pipelined order and survives a graceful stop, a
draining worker lets go of its listening sockets, and USR1 reopens the access
log after a rotation."""

import os
import re
import signal
import socket
import struct
import time

from conftest import (wait_until, DEFAULT_ROUTES, Conn, build_request, http_get, listening_inodes,
                      make_config, pid_alive, socket_inodes)

SLOW_MS = 400

ROUTES = [
    {"path": "/health/ready", "builtin": "ready"},
    {"path": "/health/status", "builtin": "status"},
    {"path": "/metrics", "builtin": "metrics"},
    {"path": "/slow", "static": {"status": 200, "body": "slow", "delay_ms": SLOW_MS}},
    {"path": "/slow2s", "static": {"status": 200, "body": "two seconds", "delay_ms": 2000}},
] + DEFAULT_ROUTES


def wait_for(predicate, timeout, message):
    return wait_until(predicate, timeout, message=message)


def builtin_config(workers=2, **kw):
    return make_config(workers=workers, routes=ROUTES, **kw)


# --------------------------------------------------------------------------
# Prometheus text format 0.0.4
# --------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """{(name, ((label, value), ...)): float}; asserts the text is well formed:
    every sample's family has a HELP and a TYPE line before it."""
    assert text.endswith("\n"), "exposition must end with a newline"
    types, helps, samples = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        assert not line.startswith("#") and line, f"unexpected line {line!r}"
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, raw_labels, value = m.groups()
        labels = []
        rest = raw_labels or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        family = name
        if family not in types:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert types.get(family) == "histogram", f"{name} has no TYPE line before it"
        assert family in helps, f"{name} has no HELP line before it"
        key = (name, tuple(labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def scrape(port):
    r = http_get(port, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8", r
    assert r.header("Cache-Control") == "no-store", r
    return parse_prometheus(r.body.decode())


def value(samples, name, **labels):
    return samples[(name, tuple(labels.items()))]


def buckets(samples):
    """[(le, cumulative count)] of the latency histogram, in output order."""
    return [(dict(k[1])["le"], v) for k, v in samples.items()
            if k[0] == "phalanx_request_duration_seconds_bucket"]


# --------------------------------------------------------------------------
# health and status
# --------------------------------------------------------------------------

def test_ready_answers_200_with_json(phalanx_factory):
    ph = phalanx_factory(builtin_config())
    r = http_get(ph.port, "/health/ready")
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    assert r.header("Cache-Control") == "no-store"
    body = r.json()
    assert body["status"] == "ready"
    assert body["pid"] in ph.worker_pids()
    head = http_get(ph.port, "/health/ready", method="HEAD")
    assert head.status == 200 and head.body == b""


def test_live_is_not_cacheable(phalanx_factory):
    ph = phalanx_factory(builtin_config())
    r = http_get(ph.port, "/health/live")
    assert r.status == 200 and r.header("Cache-Control") == "no-store", r


def test_status_shows_the_master_and_one_row_per_worker(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=3))
    pids = ph.worker_pids()
    # The master marks a worker ready in shm as soon as it reports; wait for all.
    status = wait_for(lambda: (lambda s: s if sum(w["state"] == "ready" for w in s["workers"]) == 3
                               else None)(http_get(ph.port, "/health/status").json()),
                      5, "three ready rows")
    assert status["status"] == "ok"
    assert status["master"]["pid"] == ph.pid
    assert status["master"]["generation"] >= 1
    assert status["master"]["workers"] == 3
    assert status["master"]["uptime_s"] >= 0
    assert status["master"]["last_reload"]["result"] == "none"
    rows = status["workers"]
    assert len(rows) == 3, rows
    assert {w["pid"] for w in rows} == pids
    assert sorted(w["slot"] for w in rows) == [0, 1, 2]
    for w in rows:
        assert w["state"] == "ready", w
        assert w["last_exit"] == "none", w
        assert len(w["latency_us"]["counts"]) == len(w["latency_us"]["bounds"]) + 1
        assert sum(w["latency_us"]["counts"]) == w["requests"], w
    assert status["totals"]["requests"] == sum(w["requests"] for w in rows)
    # Its own connection is open while it is rendered.
    assert status["totals"]["connections"] >= 1


def test_ready_is_503_on_a_draining_worker(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=1))
    with Conn(ph.port) as c:
        c.send(build_request(path="/health/live"))
        pid = c.read_final().json()["pid"]
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.15)  # inside the drain grace of an idle keep-alive connection
        c.send(build_request(path="/health/ready"))
        r = c.read_final()
        assert r.status == 503, r
        assert r.json()["status"] == "draining"
        assert r.header("Connection") == "close"
        assert r.header("Cache-Control") == "no-store"
        assert c.wait_closed(3)[0]


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------

def test_metrics_count_exactly_the_requests_made(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=2))
    before = scrape(ph.port)
    n = 25
    # Spread over fresh connections, so both workers answer some: the sums cover all.
    for i in range(n):
        assert http_get(ph.port, "/").status == 200
    assert http_get(ph.port, "/nope").status == 404
    after = scrape(ph.port)

    # The first scrape was counted once answered, so it shows in the second.
    made = n + 1 + 1  # the requests, the 404, the first scrape
    requests = value(after, "phalanx_requests_total")
    assert requests - value(before, "phalanx_requests_total") == made
    assert (value(after, "phalanx_responses_total", code="2xx") -
            value(before, "phalanx_responses_total", code="2xx")) == n + 1
    assert (value(after, "phalanx_responses_total", code="4xx") -
            value(before, "phalanx_responses_total", code="4xx")) == 1
    assert sum(value(after, "phalanx_responses_total", code=c)
               for c in ("1xx", "2xx", "3xx", "4xx", "5xx")) == requests
    assert (value(after, "phalanx_connections_accepted_total") -
            value(before, "phalanx_connections_accepted_total")) == made
    assert value(after, "phalanx_bytes_sent_total") > value(before, "phalanx_bytes_sent_total")
    # Once the closed connections are reaped, only a scrape's own one is open.
    wait_for(lambda: value(scrape(ph.port), "phalanx_connections_open") == 1, 5,
             "phalanx_connections_open to come back to 1")

    # The histogram counts every request once, cumulatively.
    for samples in (before, after):
        bs = buckets(samples)
        assert bs[-1][0] == "+Inf"
        counts = [c for _, c in bs]
        assert counts == sorted(counts), bs
        total = value(samples, "phalanx_request_duration_seconds_count")
        assert counts[-1] == total == value(samples, "phalanx_requests_total")
        assert [float(le) for le, _ in bs[:-1]] == sorted(float(le) for le, _ in bs[:-1])
    assert (value(after, "phalanx_request_duration_seconds_count") -
            value(before, "phalanx_request_duration_seconds_count")) == made
    assert value(after, "phalanx_request_duration_seconds_sum") >= \
        value(before, "phalanx_request_duration_seconds_sum")


def test_metrics_per_worker_and_master_families(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=2))
    pids = ph.worker_pids()
    samples = scrape(ph.port)
    rss = {dict(k[1])["pid"]: dict(k[1]) for k in samples if k[0] == "phalanx_worker_rss_bytes"}
    assert {int(p) for p in rss} == pids
    assert sorted(int(l["slot"]) for l in rss.values()) == [0, 1]
    cpu = [k for k in samples if k[0] == "phalanx_worker_cpu_seconds_total"]
    assert len(cpu) == 2
    reasons = {dict(k[1])["reason"] for k in samples if k[0] == "phalanx_worker_restarts_total"}
    assert reasons == {"exit", "signal", "memory", "heartbeat", "max_requests", "reload", "scale",
                       "stop", "upgrade"}
    states = {dict(k[1])["state"]: v for k, v in samples.items() if k[0] == "phalanx_workers"}
    assert states["ready"] == 2, states
    assert value(samples, "phalanx_reloads_total", result="ok") == 0
    assert value(samples, "phalanx_reloads_total", result="failed") == 0
    assert value(samples, "phalanx_access_log_dropped_total", reason="queue_full") == 0
    assert value(samples, "phalanx_access_log_dropped_total", reason="write_error") == 0
    assert value(samples, "phalanx_accept_errors_total") == 0
    assert value(samples, "phalanx_master_uptime_seconds") >= 0


# --------------------------------------------------------------------------
# delay_ms
# --------------------------------------------------------------------------

def test_a_delayed_route_answers_after_its_delay(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=1))
    before = scrape(ph.port)
    t0 = time.monotonic()
    r = http_get(ph.port, "/slow")
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.body == b"slow", r
    assert elapsed >= SLOW_MS / 1000, f"answered after {elapsed:.3f}s"
    assert elapsed < SLOW_MS / 1000 + 1.0
    after = scrape(ph.port)
    # Its latency is measured: it lands above 0.25 s, and the fast scrape below.
    b0, b1 = dict(buckets(before)), dict(buckets(after))
    assert b1["0.25"] - b0["0.25"] == 1, (b0, b1)
    assert b1["0.5"] - b0["0.5"] == 2, (b0, b1)
    grew = (value(after, "phalanx_request_duration_seconds_sum") -
            value(before, "phalanx_request_duration_seconds_sum"))
    assert grew >= SLOW_MS / 1000


def test_pipelined_answers_keep_order_behind_a_delayed_one(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=1))
    with Conn(ph.port) as c:
        t0 = time.monotonic()
        c.send(build_request(path="/a") + build_request(path="/slow") +
               build_request(path="/b") + build_request(method="HEAD", path="/slow") +
               build_request(path="/c"))
        first = c.read_final()
        assert first.body == b"first"
        assert time.monotonic() - t0 < SLOW_MS / 1000, "the answer before the delayed one waited"
        slow = c.read_final(timeout=5)
        assert slow.body == b"slow"
        assert time.monotonic() - t0 >= SLOW_MS / 1000
        assert c.read_final().body == b"second"
        head = c.read_final(timeout=5, head=True)
        assert head.status == 200 and head.header("Content-Length") == "4"
        assert time.monotonic() - t0 >= 2 * SLOW_MS / 1000
        assert c.read_final().body == b"third"
        # Still a keep-alive connection.
        c.send(build_request(path="/a"))
        assert c.read_final().body == b"first"


def test_timeouts_do_not_fire_while_an_answer_is_delayed(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=1, limits={"header_timeout_ms": 150,
                                                           "idle_timeout_ms": 150}))
    with Conn(ph.port) as c:
        c.send(build_request(path="/slow"))
        r = c.read_final(timeout=5)
        assert r.status == 200 and r.body == b"slow", r
        # The idle timeout runs again once it is answered.
        assert c.wait_closed(2)[0]


def test_a_client_gone_while_waiting_costs_nothing(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=1))
    pids = ph.worker_pids()
    # One closes with a reset, one with a FIN, both while their answers wait.
    reset = socket.create_connection(("127.0.0.1", ph.port))
    reset.sendall(build_request(path="/slow"))
    fin = socket.create_connection(("127.0.0.1", ph.port))
    fin.sendall(build_request(path="/slow") + build_request(path="/slow"))
    time.sleep(0.1)
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.close()
    fin.close()
    time.sleep(3 * SLOW_MS / 1000)
    assert ph.worker_pids() == pids
    samples = wait_for(lambda: (lambda s: s if value(s, "phalanx_connections_open") == 1 else None)(
        scrape(ph.port)), 5, "the abandoned connections to close")
    assert value(samples, "phalanx_connections_open") == 1
    assert http_get(ph.port, "/").status == 200


def test_sigterm_during_a_delayed_request_still_answers_it(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=2))
    with Conn(ph.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(build_request(path="/slow2s"))
        time.sleep(0.3)
        os.kill(ph.pid, signal.SIGTERM)
        r = c.read_final(timeout=10)
        assert r.status == 200 and r.body == b"two seconds", r
        assert time.monotonic() - t0 >= 2.0
        assert r.header("Connection") == "close", r
        assert c.wait_closed(3)[0]
    assert ph.proc.wait(timeout=10) == 0


def test_a_draining_worker_closes_its_listening_sockets(phalanx_factory):
    ph = phalanx_factory(builtin_config(workers=2))
    with Conn(ph.port, timeout=10) as c:
        c.send(build_request(path="/health/live"))
        pid = c.read_final().json()["pid"]
        listening = listening_inodes(ph.port)
        assert socket_inodes(pid) & listening, "the worker should hold its slot's socket"
        c.send(build_request(path="/slow2s"))
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)  # drains, busy with the delayed request
        wait_for(lambda: not (socket_inodes(pid) & listening), 1.5,
                 "the draining worker to close its listening sockets")
        assert pid_alive(pid), "the worker should still be finishing its request"
        # The master still has them: the slot's socket lives on for the replacement.
        assert socket_inodes(ph.pid) & listening
        r = c.read_final(timeout=5)
        assert r.status == 200 and r.header("Connection") == "close", r
    wait_for(lambda: not pid_alive(pid), 5, "the drained worker to exit")
    ph.assert_serving()


# --------------------------------------------------------------------------
# USR1: reopen the access log
# --------------------------------------------------------------------------

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_usr1_reopens_the_access_log_after_rotation(phalanx_factory, tmp_path):
    log_path = str(tmp_path / "access.log")
    ph = phalanx_factory(builtin_config(workers=1, log={"level": "info", "access": log_path}))
    (pid,) = ph.worker_pids()
    assert http_get(ph.port, "/static/before-rotation").status == 201
    wait_for(lambda: "/static/before-rotation" in read(log_path), 5, "the first line")

    os.rename(log_path, log_path + ".1")
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: "reopened access log" in ph.log(), 5, "the worker to reopen its log")
    assert http_get(ph.port, "/static/after-rotation").status == 201
    wait_for(lambda: "/static/after-rotation" in read(log_path), 5, "a line in the new file")
    assert "/static/after-rotation" not in read(log_path + ".1")
    assert "/static/before-rotation" not in read(log_path)
    assert ph.worker_pids() == {pid}

    # The master forwards USR1 to every worker.
    os.rename(log_path, log_path + ".2")
    os.kill(ph.pid, signal.SIGUSR1)
    wait_for(lambda: ph.log().count("reopened access log") == 2, 5, "the forwarded USR1")
    assert http_get(ph.port, "/static/after-second").status == 201
    wait_for(lambda: "/static/after-second" in read(log_path), 5, "a line in the newest file")
    assert ph.worker_pids() == {pid}

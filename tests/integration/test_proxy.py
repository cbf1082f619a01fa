"""The reverse proxy against real upstreams: upstream_server.py (which can
misbehave on demand) and nginx. Correctness of what goes through: methods,
headers, bodies both ways and their memory, framing, keep-alive and its reuse
race, errors and their statuses."""

import hashlib
import http.client
import json
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import Conn, build_request, free_port, make_config, pattern_sha256, wait_until
from test_backpressure import without_asan_quarantine


def proxy_config(targets, workers=1, upstream=None, routes=None, limits=None, log=None, extra=None):
    """A phalanx whose every path goes to upstream "api" (targets: addresses)."""
    up = {"targets": [{"address": a} for a in targets]}
    up.update(upstream or {})
    routes = [{"path": "/health/live", "builtin": "live"}] + (
        routes or [{"prefix": "/", "upstream": "api"}])
    cfg = make_config(workers=workers, limits=limits, log=log, routes=routes)
    cfg["upstreams"] = {"api": up}
    if extra:
        cfg.update(extra)
    return cfg


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def get(port, path, method="GET", body=None, headers=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def curl(*args, timeout=60):
    """curl's stdout as bytes."""
    out = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


@pytest.fixture
def upstream(upstream_factory):
    return upstream_factory("u1")


@pytest.fixture
def proxy(phalanx_factory, upstream):
    return phalanx_factory(proxy_config([upstream.address], workers=1,
                                        limits={"max_body_bytes": 64 << 20}))


# --------------------------------------------------------------------------
# what goes through


def test_method_target_and_forwarding_headers(proxy, upstream):
    status, headers, body = get(proxy.port, "/echo?a=1&b=%41", method="POST", body=b"hello",
                                headers={"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https",
                                         "X-Forwarded-Host": "evil", "Connection": "X-Secret",
                                         "X-Secret": "hop", "Keep-Alive": "timeout=5",
                                         "Proxy-Connection": "keep-alive", "X-Custom": "kept"})
    assert status == 200, body
    echo = json.loads(body)
    names = {k.lower(): v for k, v in echo["headers"]}
    assert echo["method"] == "POST" and echo["target"] == "/echo?a=1&b=%41"
    assert echo["body_bytes"] == 5 and echo["version"] == "HTTP/1.1"
    assert names["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert names["x-forwarded-proto"] == "http"
    assert names["x-forwarded-host"] == f"127.0.0.1:{proxy.port}"
    assert names["x-custom"] == "kept" and names["host"] == f"127.0.0.1:{proxy.port}"
    for hop in ("connection", "x-secret", "keep-alive", "proxy-connection", "te", "upgrade"):
        assert hop not in names, (hop, echo["headers"])
    # one request id, generated, sent upstream and returned
    rid = header(headers, "X-Request-Id")
    assert re.fullmatch(r"[0-9a-f]{32}", rid) and names["x-request-id"] == rid
    assert header(headers, "X-Upstream") == "u1"


def test_request_id_kept_when_sane_and_replaced_when_not(proxy):
    status, headers, body = get(proxy.port, "/echo", headers={"X-Request-Id": "abc-123:x"})
    assert header(headers, "X-Request-Id") == "abc-123:x"
    assert ["X-Request-Id", "abc-123:x"] in json.loads(body)["headers"]
    status, headers, body = get(proxy.port, "/echo", headers={"X-Request-Id": "a" * 200})
    rid = header(headers, "X-Request-Id")
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid


def test_the_path_the_route_matched_is_the_path_the_upstream_sees(phalanx_factory, upstream):
    routes = [{"prefix": "/public/", "upstream": "api"},
              {"prefix": "/", "static": {"status": 403, "body": "no"}}]
    ph = phalanx_factory(proxy_config([upstream.address], routes=routes))
    # /public/../echo normalizes to /echo, which is not a public route
    with Conn(ph.port) as c:
        c.send(build_request("GET", "/public/%2e%2e/echo"))
        assert c.read_final().status == 403
    # dot-segments resolved, %7E decoded: the upstream's 404 names the path it saw
    status, _, body = get(ph.port, "/public/./x/../echo%7E?q")
    assert status == 404 and json.loads(body)["path"] == "/public/echo~", body


def sanitized(binary):
    """A make test SANITIZE=1 build: ASan's allocator adds its redzones and
    bookkeeping to every buffer, so RSS bounds get twice the room there."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def rss_bound_kb(ph):
    return 2048 if sanitized(ph.binary) else 1024


def memory_test_proxy(phalanx_factory, upstream, monkeypatch):
    without_asan_quarantine(monkeypatch)  # before phalanx starts: see there
    return phalanx_factory(proxy_config([upstream.address], workers=1,
                                        limits={"max_body_bytes": 64 << 20}))


def test_16_mib_both_ways_add_little_memory(phalanx_factory, upstream, tmp_path, monkeypatch):
    proxy = memory_test_proxy(phalanx_factory, upstream, monkeypatch)
    pid = next(iter(proxy.worker_pids()))
    get(proxy.port, "/bytes?n=100000")  # warm up: pools, buffers
    get(proxy.port, "/upload", method="PUT", body=b"x" * 100000)
    before = rss_kb(pid, "VmHWM")
    n = 16 << 20
    body = curl("-o", "-", f"http://127.0.0.1:{proxy.port}/bytes?n={n}")
    assert len(body) == n and hashlib.sha256(body).hexdigest() == pattern_sha256(n)
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * (n // 256))
    echo = json.loads(curl("-T", str(big), f"http://127.0.0.1:{proxy.port}/upload"))
    assert echo["body_bytes"] == n
    assert echo["body_sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    grown = rss_kb(pid, "VmHWM") - before
    assert grown <= rss_bound_kb(proxy), f"peak RSS grew by {grown} KiB for 16 MiB each way"


def test_a_slow_client_is_fed_as_it_reads(phalanx_factory, upstream, monkeypatch):
    """The upstream sends 16 MiB at once; the client reads 64 KiB every 5 ms:
    phalanx holds a bounded window, not the response."""
    proxy = memory_test_proxy(phalanx_factory, upstream, monkeypatch)
    pid = next(iter(proxy.worker_pids()))
    get(proxy.port, "/bytes?n=100000")
    before = rss_kb(pid, "VmHWM")
    n = 16 << 20
    with Conn(proxy.port, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(build_request("GET", f"/bytes?n={n}"))
        got = 0
        h = hashlib.sha256()
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.sock.recv(65536)
        head, rest = head.split(b"\r\n\r\n", 1)
        h.update(rest)
        got = len(rest)
        peak = 0
        while got < n:
            chunk = c.sock.recv(65536)
            assert chunk, f"closed after {got} bytes"
            h.update(chunk)
            got += len(chunk)
            time.sleep(0.005)
            peak = max(peak, rss_kb(pid, "VmRSS"))
    assert h.hexdigest() == pattern_sha256(n)
    grown = rss_kb(pid, "VmHWM") - before
    assert grown <= rss_bound_kb(proxy), f"peak RSS grew by {grown} KiB while a slow client read 16 MiB"


def test_chunked_both_ways(proxy):
    status, headers, body = get(proxy.port, "/bytes?n=100000&chunked=1&chunk=777")
    assert status == 200 and header(headers, "Transfer-Encoding") == "chunked"
    assert hashlib.sha256(body).hexdigest() == pattern_sha256(100000)
    with Conn(proxy.port) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_final()
        echo = json.loads(r.body)
        assert r.status == 200 and echo["body_bytes"] == 11 and echo["chunked"] is True
        assert echo["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
        assert echo["trailers"] == []  # trailers are not forwarded


def test_close_delimited_upstream_body(proxy):
    with Conn(proxy.port) as c:  # HTTP/1.1 client: re-chunked, connection kept
        c.send(build_request("GET", "/bytes?n=5000&close_delimited=1"))
        r = c.read_final()
        assert r.status == 200 and r.header("Transfer-Encoding") == "chunked"
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(5000)
        c.send(build_request("GET", "/echo"))
        assert c.read_final().status == 200
    with Conn(proxy.port) as c:  # HTTP/1.0 client: the body ends with the connection
        c.send(build_request("GET", "/bytes?n=5000&close_delimited=1", version="HTTP/1.0"))
        r = c.read_final()
        assert r.status == 200 and r.header("Content-Length") is None
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(5000)


def test_100_continue(proxy, upstream):
    with Conn(proxy.port) as c:
        c.send(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response()
        assert interim.status == 100
        c.send(b"hello")
        r = c.read_final()
        assert r.status == 200 and json.loads(r.body)["body_bytes"] == 5


def test_early_hints_are_relayed(proxy):
    with Conn(proxy.port) as c:
        c.send(build_request("GET", "/early-hints"))
        first = c.read_response()
        assert first.status == 103 and first.header("Link")
        assert c.read_response().status == 200


def test_head_204_304_have_no_body_and_keep_the_connection(proxy, upstream):
    upstream.reset_stats()
    with Conn(proxy.port) as c:
        c.send(build_request("HEAD", "/bytes?n=1234"))
        r = c.read_response(head=True)
        assert r.status == 200 and r.header("Content-Length") == "1234"
        for code in (204, 304):
            c.send(build_request("GET", f"/status/{code}"))
            r = c.read_final()
            assert r.status == code and r.body == b"" and r.header("Content-Length") is None
        c.send(build_request("GET", "/echo"))
        r = c.read_final()
        assert r.status == 200 and json.loads(r.body)["request_on_conn"] == 4
    assert upstream.stats()["connections"] == 1


def test_keep_alive_to_the_upstream(phalanx_factory, upstream):
    ph = phalanx_factory(proxy_config([upstream.address], workers=2))
    upstream.reset_stats()
    for _ in range(200):
        status, _, _ = get(ph.port, "/echo")  # a new client connection each time
        assert status == 200
    stats = upstream.stats()
    assert stats["requests"] == 200
    assert stats["connections"] <= 4, stats


def test_upstream_connection_close_is_honoured(proxy, upstream):
    upstream.reset_stats()
    for _ in range(3):
        assert get(proxy.port, "/close")[0] == 200
    assert upstream.stats()["connections"] == 3


def test_the_reuse_race_never_surfaces(phalanx_factory, upstream_factory):
    """The upstream closes idle connections after 1 s; phalanx would keep them
    10 s. A request every second finds a pooled connection just as it closes."""
    up = upstream_factory("racy", idle_close_ms=1000)
    ph = phalanx_factory(proxy_config([up.address], upstream={"idle_timeout_ms": 10000}))
    errors = []
    for i in range(8):
        status, _, body = get(ph.port, "/echo")
        if status != 200:
            errors.append((i, status, body))
        time.sleep(1.0)
    assert errors == []


def test_pipelined_requests_are_answered_in_order(proxy):
    with Conn(proxy.port) as c:
        c.send(build_request("GET", "/delay?ms=300") + build_request("GET", "/echo?second") +
               build_request("GET", "/health/live") + build_request("GET", "/echo?fourth"))
        first = c.read_final()
        assert first.status == 200 and json.loads(first.body)["delayed_ms"] == 300, first.body
        assert json.loads(c.read_final().body)["target"] == "/echo?second"
        assert json.loads(c.read_final().body)["status"] == "alive"
        assert json.loads(c.read_final().body)["target"] == "/echo?fourth"


def test_a_client_that_leaves_mid_response_frees_the_upstream_connection(proxy, upstream):
    upstream.reset_stats()
    with Conn(proxy.port) as c:
        c.send(build_request("GET", f"/bytes?n={256 << 20}"))
        c.sock.recv(65536)
    wait_until(lambda: upstream.stats()["open_connections"] == 0, 5.0,
               message="the upstream connection closed, not pooled")
    assert get(proxy.port, "/echo")[0] == 200


# --------------------------------------------------------------------------
# failures


def test_connect_refused_is_a_502_naming_the_upstream(phalanx_factory):
    ph = phalanx_factory(proxy_config([f"127.0.0.1:{free_port()}"], upstream={"retries": 0}))
    status, headers, body = get(ph.port, "/x")
    assert status == 502, body
    doc = json.loads(body)
    assert doc["status"] == 502 and "api" in doc["error"]
    assert "refused" not in body.decode().lower()  # never the internal error text
    assert header(headers, "X-Request-Id")


def test_timeout_is_a_504_within_timeout_ms(phalanx_factory, upstream):
    ph = phalanx_factory(proxy_config([upstream.address], upstream={"timeout_ms": 500}))
    t0 = time.monotonic()
    status, _, body = get(ph.port, "/hang")
    elapsed = time.monotonic() - t0
    assert status == 504, body
    assert 0.5 <= elapsed <= 0.5 + 0.1, elapsed  # timeout_ms + 100 ms


def test_a_reset_before_the_response_is_retried_on_another_target(phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(proxy_config([a.address, b.address],
                                      upstream={"retries": 1, "breaker": {"consecutive_failures": 0}}))
    # /reset resets on both: one retry, then 502
    status, _, _ = get(ph.port, "/reset")
    assert status == 502
    assert a.stats()["by_path"].get("/reset", 0) + b.stats()["by_path"].get("/reset", 0) == 2


def test_a_post_that_reached_the_upstream_is_not_retried(phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(proxy_config([a.address, b.address], upstream={"retries": 2}))
    status, _, _ = get(ph.port, "/reset", method="POST", body=b"pay once")
    assert status == 502
    assert a.stats()["by_path"].get("/reset", 0) + b.stats()["by_path"].get("/reset", 0) == 1


def test_retry_on_status_when_the_route_asks(phalanx_factory, upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    routes = [{"prefix": "/", "upstream": "api", "retry_on": [503]}]
    ph = phalanx_factory(proxy_config([a.address, b.address], routes=routes,
                                      upstream={"retries": 1}))
    status, _, _ = get(ph.port, "/status/503")
    assert status == 503  # both said 503: the second answer is relayed
    assert a.stats()["requests"] + b.stats()["requests"] == 2


def test_the_upstream_down_then_back(phalanx_factory, upstream_factory):
    up = upstream_factory("u")
    ph = phalanx_factory(proxy_config([up.address], upstream={"retries": 0}))
    assert get(ph.port, "/echo")[0] == 200
    up.kill()
    assert get(ph.port, "/echo")[0] == 502
    up.start()
    assert get(ph.port, "/echo")[0] == 200


# --------------------------------------------------------------------------
# nginx as the upstream


def test_through_nginx(phalanx_factory, nginx_upstream):
    ng = nginx_upstream()
    ph = phalanx_factory(proxy_config([ng.address]))
    status, headers, body = get(ph.port, "/echo/x?y=1", method="DELETE")
    assert status == 200 and body == b"DELETE /echo/x?y=1\n"
    assert header(headers, "X-Upstream") == "nginx"
    body = curl("-o", "-", f"http://127.0.0.1:{ph.port}/big")
    assert len(body) == 16 << 20
    assert hashlib.sha256(body).hexdigest() == pattern_sha256(16 << 20)


# --------------------------------------------------------------------------
# make run


def test_the_default_config_demonstrates_the_gateway(phalanx_factory):
    """etc/phalanx.json: 8080 proxies /api/ to the demo API on 8081 (here: free ports)."""
    import os
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "etc", "phalanx.json")) as f:
        text = f.read()
    gateway, demo = free_port(), free_port()
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{gateway}").replace(
        "127.0.0.1:8081", f"127.0.0.1:{demo}")
    cfg = json.loads(text)
    cfg["workers"] = 2
    cfg["log"]["access"] = "off"
    ph = phalanx_factory(cfg)
    status, headers, body = get(gateway, "/api/users")
    assert status == 200 and json.loads(body)[0]["name"] == "Ada"
    assert re.fullmatch(r"[0-9a-f]{32}", header(headers, "X-Request-Id"))
    t0 = time.monotonic()
    assert get(gateway, "/api/slow")[0] == 200 and time.monotonic() - t0 >= 0.3
    assert get(gateway, "/api/nothing")[0] == 404
    assert get(gateway, "/api/users", method="POST")[0] == 405
    assert get(demo, "/api/users")[0] == 200  # the demo API itself, on its own port
    assert header(get(gateway, "/api/users")[1], "RateLimit-Limit") == "1000"
    assert get(gateway, "/api/account")[0] == 401
    status, _, body = get(gateway, "/api/account", headers={"X-API-Key": "demo-free-key-change-me"})
    assert status == 200 and json.loads(body) == {"plan": "demo"}
    assert ph.running()


def test_the_access_log_names_the_request_id_and_the_upstream(phalanx_factory, upstream, tmp_path):
    log = tmp_path / "access.log"
    ph = phalanx_factory(proxy_config([upstream.address],
                                      log={"level": "info", "access": str(log)}))
    status, headers, _ = get(ph.port, "/status/201", headers={"X-Request-Id": "trace-42"})
    assert status == 201

    def line():
        for text in log.read_text().splitlines():
            entry = json.loads(text)
            if entry["path"] == "/status/201":
                return entry
        return None
    wait_until(lambda: line() is not None, 5.0, message="the access log line")
    entry = line()
    assert entry["request_id"] == "trace-42" and entry["status"] == 201
    assert entry["upstream"] == upstream.address and entry["upstream_status"] == 201
    assert 0 < entry["upstream_ms"] < 5000


def test_connect_timeout_is_a_504(phalanx_factory):
    """A listener whose accept queue is full drops new SYNs: connect() hangs
    until connect_timeout_ms."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue (and the SYN backlog behind it)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        ph = phalanx_factory(proxy_config([f"127.0.0.1:{port}"],
                                          upstream={"connect_timeout_ms": 300, "retries": 0}))
        t0 = time.monotonic()
        status, _, body = get(ph.port, "/x")
        elapsed = time.monotonic() - t0
        assert status == 504 and b"connect timed out" in body, (status, body)
        assert 0.3 <= elapsed <= 0.3 + 0.2, elapsed
    finally:
        for s in fillers:
            s.close()
        server.close()

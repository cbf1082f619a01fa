"""The proxy tests' upstreams, tested on their own (no phalanx binary needed):
upstream_server.py through upstream_factory, redis_factory and nginx_upstream."""

import hashlib
import http.client
import json
import signal
import socket
import subprocess
import time

import pytest

from conftest import (Conn, RedisError, build_request, pattern_bytes, pattern_sha256, run,
                      wait_until)

MIB16 = 16 * 1024 * 1024


def request(port, method, path, body=None, headers=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def sha_of_response(resp):
    h = hashlib.sha256()
    n = 0
    while True:
        piece = resp.read(1 << 20)
        if not piece:
            return n, h.hexdigest()
        h.update(piece)
        n += len(piece)


def generated_body(n, piece=1 << 20):
    """The pattern bytes in pieces, for streaming uploads."""
    off = 0
    while off < n:
        k = min(piece, n - off)
        yield pattern_bytes(k, off)
        off += k


@pytest.fixture
def up(upstream_factory):
    return upstream_factory("u1")


# --------------------------------------------------------------------------
# upstream_server.py
# --------------------------------------------------------------------------

def test_echo_reports_request_in_received_order(up):
    with Conn(up.port) as c:
        c.send(b"POST /echo?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n"
               b"Content-Length: 5\r\n\r\nhello")
        r = c.read_final()
        assert r.status == 200 and r.header("X-Upstream") == "u1"
        assert r.header("Connection") == "keep-alive"
        e = r.json()
        assert e["method"] == "POST" and e["target"] == "/echo?x=1&y=%20"
        assert e["version"] == "HTTP/1.1" and e["server"] == "u1"
        assert e["headers"] == [["Host", "h"], ["X-B", "2"], ["x-a", "1"], ["X-B", "3"],
                                ["Content-Length", "5"]]
        assert e["body_bytes"] == 5 and e["body_sha256"] == hashlib.sha256(b"hello").hexdigest()
        assert e["request_on_conn"] == 1
        # pipelined: two requests in one write, answered in order on the same connection
        c.send(build_request("GET", "/echo") + build_request("GET", "/echo?second"))
        r2, r3 = c.read_final().json(), c.read_final().json()
        assert (r2["request_on_conn"], r3["request_on_conn"]) == (2, 3)
        assert r2["conn_id"] == r3["conn_id"] == e["conn_id"]
        assert r3["target"] == "/echo?second"
        c.send(build_request("HEAD", "/echo"))
        h = c.read_final(head=True)
        assert h.status == 200 and int(h.header("Content-Length")) > 0
        assert not c.readable_within(0.1), "HEAD got a body"
    with Conn(up.port) as c:
        c.send(build_request("GET", "/echo"))
        assert c.read_final().json()["conn_id"] != e["conn_id"]


def test_bytes_content_length_chunked_and_close_delimited(up):
    want = pattern_sha256(MIB16)
    c = http.client.HTTPConnection("127.0.0.1", up.port, timeout=10)
    c.request("GET", f"/bytes?n={MIB16}")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Length") == str(MIB16)
    assert sha_of_response(r) == (MIB16, want)
    c.request("GET", f"/bytes?n={MIB16}&chunked=1&chunk=100000")  # same connection
    r = c.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked" and r.getheader("Content-Length") is None
    assert sha_of_response(r) == (MIB16, want)
    c.close()

    with Conn(up.port) as c:  # chunk sizes on the wire
        c.send(build_request("GET", "/bytes?n=10&chunked=1&chunk=4"))
        deadline = time.monotonic() + 5
        while not c.buf.endswith(b"0\r\n\r\n"):
            c._fill(deadline)
        assert c.buf.split(b"\r\n\r\n", 1)[1] == (b"4\r\n\x00\x01\x02\x03\r\n4\r\n\x04\x05\x06\x07\r\n"
                                                  b"2\r\n\x08\x09\r\n0\r\n\r\n")
        c.buf = b""
        c.send(build_request("GET", "/bytes?n=300&close_delimited=1"))
        r = c.read_final()
        assert r.header("Content-Length") is None and r.header("Connection") == "close"
        assert r.body == pattern_bytes(300) and c.eof

    t0 = time.monotonic()
    r, body = request(up.port, "GET", "/bytes?n=3&delay_ms=300")
    assert time.monotonic() - t0 >= 0.29 and body == b"\x00\x01\x02"
    r, body = request(up.port, "HEAD", "/bytes?n=1000")
    assert r.getheader("Content-Length") == "1000" and body == b""


def test_bytes_with_curl(up):
    out = subprocess.run(["curl", "-sS", "--fail", up.url(f"/bytes?n={MIB16}&chunked=1")],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256(out.stdout).hexdigest() == pattern_sha256(MIB16)


def test_upload_content_length_and_chunked(up):
    want = pattern_sha256(MIB16)
    r, body = request(up.port, "POST", "/upload", body=generated_body(MIB16),
                      headers={"Content-Length": str(MIB16)})
    assert r.status == 200
    assert json.loads(body) == {"body_bytes": MIB16, "body_sha256": want, "chunked": False,
                                "trailers": []}
    c = http.client.HTTPConnection("127.0.0.1", up.port, timeout=10)
    c.request("PUT", "/upload", body=generated_body(MIB16, 100003), encode_chunked=True)
    r = c.getresponse()
    got = json.loads(r.read())
    assert got["chunked"] is True and got["body_bytes"] == MIB16 and got["body_sha256"] == want
    c.close()
    # chunk extensions and trailers
    with Conn(up.port) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 13\r\n\r\n")
        got = c.read_final().json()
        assert got["body_bytes"] == 13 and got["trailers"] == [["X-Sum", "13"]]
        assert got["body_sha256"] == hashlib.sha256(b"abc0123456789").hexdigest()


def test_upload_slow_read_applies_backpressure(up):
    n = 4 * 65536
    t0 = time.monotonic()
    r, body = request(up.port, "POST", "/upload?slow_read_ms=100", body=pattern_bytes(n))
    assert json.loads(body)["body_bytes"] == n
    assert time.monotonic() - t0 >= 0.3


def test_expect_100_continue(up):
    with Conn(up.port) as c:
        c.send(b"POST /continue HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
               b"Content-Length: 4\r\n\r\n")
        interim = c.read_response()
        assert interim.status == 100
        assert not c.readable_within(0.1), "answered before the body was sent"
        c.send(b"data")
        r = c.read_response()
        assert r.status == 200 and r.json()["expect"] is True and r.json()["body_bytes"] == 4
        c.send(build_request("POST", "/continue", body=b"xy"))  # without Expect: no 100
        r = c.read_response()
        assert r.status == 200 and r.json()["expect"] is False
    # rejecting instead of continuing: the final status at once, then close
    with Conn(up.port) as c:
        c.send(b"PUT /continue?status=417 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
               b"Content-Length: 100\r\n\r\n")
        r = c.read_response()
        assert r.status == 417 and r.header("Connection") == "close"
        assert c.wait_closed(2)[0]
    # curl sends the body only after the 100 (it would wait 1 s otherwise)
    t0 = time.monotonic()
    out = run(["curl", "-sS", "-H", "Expect: 100-continue", "--data-binary", "x" * 2000,
               up.url("/upload")])
    assert json.loads(out.stdout)["body_bytes"] == 2000 and time.monotonic() - t0 < 0.9
    assert up.stats()["expect_seen"] == 3


def test_early_hints_then_200(up):
    with Conn(up.port) as c:
        c.send(build_request("GET", "/early-hints"))
        first = c.read_response()
        assert first.status == 103 and "preload" in first.header("Link")
        assert c.read_response().status == 200
    # curl shows the interim head, then the final one (http.client in 3.11 skips
    # only 100 Continue and would take the 103 for the answer)
    out = run(["curl", "-sS", "-i", up.url("/early-hints")])
    assert out.returncode == 0, out.stderr
    heads = [line for line in out.stdout.splitlines() if line.startswith("HTTP/1.1 ")]
    assert heads == ["HTTP/1.1 103 Early Hints", "HTTP/1.1 200 OK"]
    assert out.stdout.rstrip().endswith('{"early_hints": true}')


def test_status_codes_and_bodyless_ones(up):
    with Conn(up.port) as c:
        for status in (200, 201, 404, 503):
            c.send(build_request("GET", f"/status/{status}"))
            r = c.read_final()
            assert r.status == status and r.json() == {"status": status}
        c.send(build_request("GET", "/status/204"))
        r = c.read_final()
        assert r.status == 204 and r.header("Content-Length") is None
        assert r.header("Transfer-Encoding") is None
        c.send(build_request("GET", "/status/304"))
        r = c.read_final()
        assert r.status == 304 and r.header("ETag") and r.header("Content-Length") is None
        c.send(build_request("HEAD", "/status/503"))
        r = c.read_final(head=True)
        assert r.status == 503 and r.header("Content-Length") == "16"
        # nothing stray after the bodyless answers: the next response parses cleanly
        c.send(build_request("GET", "/status/202"))
        assert c.read_final().status == 202
        c.send(build_request("GET", "/status/101"))
        assert c.read_final().status == 400
        c.send(build_request("GET", "/nope"))
        r = c.read_final()
        assert r.status == 404 and r.json()["error"] == "not found"


def test_delay_and_close(up):
    t0 = time.monotonic()
    r, body = request(up.port, "GET", "/delay?ms=200")
    assert r.status == 200 and json.loads(body) == {"delayed_ms": 200}
    assert time.monotonic() - t0 >= 0.19
    with Conn(up.port) as c:
        c.send(build_request("GET", "/close"))
        r = c.read_final()
        assert r.status == 200 and r.header("Connection") == "close"
        assert c.wait_closed(2) == (True, b"")


def test_reset_before_any_byte(up):
    with Conn(up.port) as c:
        c.send(build_request("GET", "/reset"))
        c.sock.settimeout(5)
        try:
            data = c.sock.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b""


def test_reset_mid_body(up):
    s = socket.create_connection(("127.0.0.1", up.port), timeout=5)
    s.sendall(build_request("GET", "/reset-mid-body"))
    time.sleep(0.2)  # let the RST arrive after the bytes
    got, reset = b"", False
    while True:
        try:
            piece = s.recv(65536)
        except ConnectionResetError:
            reset = True
            break
        if not piece:
            break
        got += piece
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Content-Length: 100000" in head
    assert body == pattern_bytes(1000) and reset


def test_hang_never_answers(up):
    with Conn(up.port) as c:
        c.send(build_request("GET", "/hang"))
        assert not c.readable_within(0.3)
        assert up.stats()["open_connections"] == 1
    wait_until(lambda: up.stats()["open_connections"] == 0, 3, message="hung connection closed")


def test_idle_close(upstream_factory):
    up = upstream_factory("idle", idle_close_ms=200)
    with Conn(up.port) as c:
        for _ in range(3):  # requests closer together than 200 ms keep it open
            c.send(build_request("GET", "/echo"))
            assert c.read_final().header("Connection") == "keep-alive"
            time.sleep(0.05)
        t0 = time.monotonic()
        closed, extra = c.wait_closed(3)
        elapsed = time.monotonic() - t0
        assert closed and extra == b""
        assert 0.15 <= elapsed <= 1.0, elapsed
    assert up.stats()["connections"] == 1


def test_stats_count_connections_and_requests(up):
    assert up.stats() == {"connections": 0, "requests": 0, "open_connections": 0,
                          "by_path": {}, "expect_seen": 0}
    with Conn(up.port) as c:
        for path in ("/echo", "/echo", "/status/201"):
            c.send(build_request("GET", path))
            c.read_final()
        s = up.stats()
        assert (s["connections"], s["requests"], s["open_connections"]) == (1, 3, 1)
    for _ in range(2):
        request(up.port, "GET", "/health")
    wait_until(lambda: up.stats()["open_connections"] == 0, 3, message="connections closed")
    s = up.stats()
    assert s["connections"] == 3 and s["requests"] == 5
    assert s["by_path"] == {"/echo": 2, "/status/201": 1, "/health": 2}
    up.reset_stats()
    assert up.stats()["requests"] == 0 and up.stats()["connections"] == 0


def test_health_toggle(up):
    r, body = request(up.port, "GET", "/health")
    assert r.status == 200 and json.loads(body) == {"status": "ok"}
    up.set_health(503)
    r, body = request(up.port, "GET", "/health")
    assert r.status == 503
    up.set_health(200)
    assert request(up.port, "GET", "/health")[0].status == 200


def test_connection_persistence_rules(up):
    with Conn(up.port) as c:  # HTTP/1.0 closes by default
        c.send(b"GET /echo HTTP/1.0\r\n\r\n")
        r = c.read_final()
        assert r.header("Connection") == "close" and r.json()["version"] == "HTTP/1.0"
        assert c.wait_closed(2)[0]
    with Conn(up.port) as c:  # ... unless keep-alive
        for i in (1, 2):
            c.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_final()
            assert r.header("Connection") == "keep-alive" and r.json()["request_on_conn"] == i
    with Conn(up.port) as c:  # HTTP/1.1 Connection: close honoured
        c.send(build_request("GET", "/echo", headers={"Connection": "close"}))
        assert c.read_final().header("Connection") == "close"
        assert c.wait_closed(2)[0]


@pytest.mark.parametrize("raw", [
    b"GET /echo HTTP/1.1\nHost: h\n\n",                                               # bare LF
    b"GET /echo HTTP/1.1\r\n\r\n",                                                    # no Host
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_requests_get_400_and_close(up, raw):
    with Conn(up.port) as c:
        c.send(raw)
        r = c.read_final()
        assert r.status == 400 and r.header("Connection") == "close", r
        assert c.wait_closed(2)[0]


def test_sigterm_restart_and_kill(upstream_factory):
    up = upstream_factory("life")
    port = up.port
    with Conn(port) as idle:
        idle.send(build_request("GET", "/echo"))
        idle.read_final()
        assert up.stop() == 0  # with an idle keep-alive connection open
        assert idle.wait_closed(2)[0]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    up.restart()
    assert up.port == port and request(port, "GET", "/health")[0].status == 200
    assert up.kill() == -signal.SIGKILL
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_two_upstreams_have_their_names(upstream_factory):
    a, b = upstream_factory("a"), upstream_factory("b")
    assert a.port != b.port and a.address == f"127.0.0.1:{a.port}"
    assert json.loads(request(a.port, "GET", "/echo")[1])["server"] == "a"
    assert request(b.port, "GET", "/echo")[0].getheader("X-Upstream") == "b"


# --------------------------------------------------------------------------
# redis_factory
# --------------------------------------------------------------------------

def test_redis_commands_stop_and_start(redis_factory):
    r = redis_factory()
    assert r.address == f"127.0.0.1:{r.port}"
    assert r.command("PING") == "PONG"
    assert r.command("SET", "k", "v") == "OK"
    assert r.command("GET", "k") == b"v"
    assert r.command("GET", "missing") is None
    assert r.command("INCRBY", "n", 5) == 5
    assert r.command("RPUSH", "l", "a", "b") == 2 and r.command("LRANGE", "l", 0, -1) == [b"a", b"b"]
    with pytest.raises(RedisError):
        r.command("NOSUCHCOMMAND")
    with r.client() as c:  # one connection, several commands
        assert c.command("SELECT", 0) == "OK" and c.command("EXISTS", "k") == 1
    r.stop()
    with pytest.raises(ConnectionRefusedError):
        r.command("PING")
    r.start()
    assert r.command("PING") == "PONG" and r.command("GET", "k") is None  # nothing saved


# --------------------------------------------------------------------------
# nginx_upstream
# --------------------------------------------------------------------------

def test_nginx_echo_and_big(nginx_upstream):
    n = nginx_upstream()
    assert n.address == f"127.0.0.1:{n.port}"
    c = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    c.request("POST", "/echo?x=1")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("X-Upstream") == "nginx"
    assert r.read() == b"POST /echo?x=1\n"
    c.request("GET", "/big")  # same keep-alive connection
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Length") == str(MIB16)
    assert sha_of_response(r) == (MIB16, pattern_sha256(MIB16))
    c.close()
    n.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", n.port), timeout=1).close()


"""Bad input, limits and timeouts: each gets its status, closes, and no worker dies."""

import threading
import time

import pytest

from conftest import Conn, assert_common_headers, build_request, http_get, module_server

MAX_HEADER = 4096
MAX_BODY = 1024
HEADER_TIMEOUT_MS = 1500
IDLE_TIMEOUT_MS = 1000

LIMITS = {"max_header_bytes": MAX_HEADER, "max_body_bytes": MAX_BODY,
          "header_timeout_ms": HEADER_TIMEOUT_MS, "idle_timeout_ms": IDLE_TIMEOUT_MS}


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return module_server(request, tmp_path_factory, "limits", workers=2, limits=LIMITS)


@pytest.fixture
def workers_before(server):
    """Worker pids at the start of a test; afterwards they must be the same and serving."""
    before = server.worker_pids()
    assert len(before) == 2
    yield before
    server.assert_workers_survived(before)


def assert_error_and_close(conn, status, timeout=5.0):
    r = conn.read_response(timeout=timeout)
    assert r.status == status, f"expected {status}, got {r.status}: {r!r}"
    assert_common_headers(r)
    assert (r.header("Connection") or "").lower() == "close", f"{status} without Connection: close: {r!r}"
    closed, extra = conn.wait_closed(3)
    assert closed, f"server did not close the connection after {status}"
    assert extra == b"", f"bytes after the {status} response: {extra[:200]!r}"
    return r


BAD_REQUESTS = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "binary-junk": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n",
    "bad-method-chars": b"G(ET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-version": b"GET / HTTP/9.Z\r\nHost: x\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\nHost: x\r\nThis Is Not A Header\r\n\r\n",
    "header-name-with-space": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    # RFC 9112 5.1: a server MUST reject whitespace between field name and colon with 400
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: x\r\nX-Name : v\r\n\r\n",
    "header-name-with-slash": b"GET / HTTP/1.1\r\nHost: x\r\nBad/Name: v\r\n\r\n",
    "bare-cr-in-header-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "content-length-not-number": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "content-length-twice-different": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "content-length-and-chunked": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked-and-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                  b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "nul-in-header-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "negative-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host,
    # or with more than one Host (routing and, later, caching depend on it)
    "http11-without-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-host-headers": b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "huge-chunk-size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"ffffffffffffffffffff\r\n",
    "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_request_gets_400(server, workers_before, name):
    with Conn(server.port) as c:
        c.send(BAD_REQUESTS[name])
        assert_error_and_close(c, 400)


def test_error_after_good_pipelined_request(server, workers_before):
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a") + b"GARBAGE\r\n\r\n" + build_request("GET", "/b"))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"first"), r
        assert_error_and_close(c, 400)


def test_oversized_headers_get_431(server, workers_before):
    with Conn(server.port) as c:
        c.send(build_request("GET", "/", headers={"X-Big": "a" * (MAX_HEADER * 2)}))
        assert_error_and_close(c, 431)


def test_many_headers_over_the_limit_get_431(server, workers_before):
    headers = [(f"X-H{i}", "v" * 50) for i in range(MAX_HEADER // 50 + 10)]
    with Conn(server.port) as c:
        c.send(build_request("GET", "/", headers=headers))
        assert_error_and_close(c, 431)


def test_oversized_headers_without_end_get_431(server, workers_before):
    """Headers that never end must not be buffered forever: 431 once past the limit."""
    with Conn(server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER * 2))
        assert_error_and_close(c, 431, timeout=1.0)


def test_oversized_request_line_gets_431_or_414(server, workers_before):
    with Conn(server.port) as c:
        c.send(b"GET /" + b"u" * (MAX_HEADER * 2) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status in (414, 431), f"a request line over max_header_bytes got {r.status}"
        assert (r.header("Connection") or "").lower() == "close", r
        assert c.wait_closed(3)[0], "not closed after refusing an oversized request line"


def test_headers_just_under_the_limit_are_fine(server, workers_before):
    r = http_get(server.port, "/a", headers={"X-Pad": "p" * (MAX_HEADER // 2)})
    assert (r.status, r.body) == (200, b"first"), r


def test_oversized_body_by_content_length_gets_413(server, workers_before):
    with Conn(server.port) as c:
        # only the head: the answer must not wait for a body it will refuse
        c.send(build_request("POST", "/", headers={"Content-Length": str(MAX_BODY * 4)}))
        assert_error_and_close(c, 413, timeout=2.0)


def test_oversized_body_with_expect_gets_413_without_100(server, workers_before):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/", headers={"Content-Length": str(MAX_BODY * 4),
                                                   "Expect": "100-continue"}))
        r = c.read_response(timeout=2.0)
        assert r.status == 413, f"expected a final 413 instead of {r.status} (100 Continue for a body to refuse?)"
        assert (r.header("Connection") or "").lower() == "close"


def test_oversized_body_by_chunks_gets_413(server, workers_before):
    chunk = b"x" * 600
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    with Conn(server.port) as c:
        c.send(build_request("POST", "/", headers={"Transfer-Encoding": "chunked"}) + body)
        assert_error_and_close(c, 413)


def test_body_at_the_limit_is_accepted(server, workers_before):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/a", body=b"b" * MAX_BODY))
        assert c.read_response().status == 200
        c.send(build_request("POST", "/b", headers={"Transfer-Encoding": "chunked"}) +
               b"%x\r\n" % MAX_BODY + b"c" * MAX_BODY + b"\r\n0\r\n\r\n")
        assert c.read_response().body == b"second"


def test_header_timeout_gets_408(server, workers_before):
    with Conn(server.port) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        r = assert_error_and_close(c, 408, timeout=HEADER_TIMEOUT_MS / 1000 + 3)
        elapsed = time.monotonic() - t0
    assert HEADER_TIMEOUT_MS / 1000 * 0.8 <= elapsed <= HEADER_TIMEOUT_MS / 1000 + 2.0, \
        f"408 after {elapsed:.2f}s, header_timeout_ms is {HEADER_TIMEOUT_MS}"
    assert r


def test_idle_keepalive_connection_is_closed(server, workers_before):
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        closed, extra = c.wait_closed(IDLE_TIMEOUT_MS / 1000 + 4)
        elapsed = time.monotonic() - t0
    assert closed, f"idle keep-alive connection still open after {elapsed:.1f}s (idle_timeout_ms {IDLE_TIMEOUT_MS})"
    assert extra == b"", f"idle close should send nothing, got {extra[:200]!r}"
    assert IDLE_TIMEOUT_MS / 1000 * 0.7 <= elapsed <= IDLE_TIMEOUT_MS / 1000 + 2.0, \
        f"idle connection closed after {elapsed:.2f}s, idle_timeout_ms is {IDLE_TIMEOUT_MS}"


def test_active_keepalive_connection_is_not_cut(server, workers_before):
    """Requests every 0.4 s keep a connection alive well past idle_timeout_ms."""
    with Conn(server.port) as c:
        t0 = time.monotonic()
        for i in range(6):
            c.send(build_request("GET", "/c"))
            r = c.read_response()
            assert r.body == b"third", f"request {i} at {time.monotonic() - t0:.1f}s: {r!r}"
            time.sleep(0.4)


def test_slow_client_is_cut_while_others_are_served(phalanx_factory):
    """One header byte a second: cut with 408 at the header timeout; the same worker keeps serving."""
    ph = phalanx_factory(workers=1, limits=LIMITS)
    before = ph.worker_pids()
    request = build_request("GET", "/", headers={"User-Agent": "slowloris", "X-Pad": "p" * 20})
    result = {}

    def trickle():
        c = Conn(ph.port, timeout=10)
        t0 = time.monotonic()
        try:
            for i in range(len(request)):
                try:
                    c.send(request[i:i + 1])
                except OSError:
                    break
                if c.readable_within(1.0):
                    break
            result["elapsed"] = time.monotonic() - t0
            result["cut_at"] = time.monotonic()
            try:
                result["response"] = c.read_response(timeout=3)
                result["closed"] = c.wait_closed(3)[0]
            except Exception as e:  # noqa: BLE001 - report whatever happened
                result["error"] = repr(e)
        finally:
            c.close()

    th = threading.Thread(target=trickle, daemon=True)
    th.start()
    time.sleep(0.2)
    fast = []
    for _ in range(5):
        t = time.monotonic()
        r = http_get(ph.port, "/a", timeout=2)
        fast.append((time.monotonic() - t, r.status, time.monotonic()))
        time.sleep(0.15)
    th.join(timeout=HEADER_TIMEOUT_MS / 1000 + 10)
    assert not th.is_alive(), "slow client was never cut"
    assert "error" not in result, f"slow client: {result.get('error')}"
    for took, status, _ in fast:
        assert status == 200 and took < 0.5, f"other client served in {took:.2f}s with {status} during the trickle"
    assert max(done for _, _, done in fast) < result["cut_at"], \
        "the other requests were not served while the slow client was still connected"
    assert HEADER_TIMEOUT_MS / 1000 * 0.8 <= result["elapsed"] <= HEADER_TIMEOUT_MS / 1000 + 2.0, \
        f"slow client cut after {result['elapsed']:.2f}s, header_timeout_ms is {HEADER_TIMEOUT_MS}"
    assert result["response"].status == 408, result["response"]
    assert result["closed"], "connection not closed after 408"
    assert ph.worker_pids() == before
    ph.assert_serving()


def test_max_connections_defers_accept(phalanx_factory):
    """At max_connections the worker stops accepting; the next connection waits, then is served."""
    ph = phalanx_factory(workers=1, limits={"max_connections": 2})
    c1, c2 = Conn(ph.port), Conn(ph.port)
    c3 = None
    try:
        for c in (c1, c2):
            c.send(build_request("GET", "/a"))
            assert c.read_response().status == 200
        c3 = Conn(ph.port)  # completes in the kernel backlog
        c3.send(build_request("GET", "/b"))
        assert not c3.readable_within(1.0), \
            "a third connection was answered (or refused) while max_connections=2 were open"
        c1.close()
        r = c3.read_response(timeout=3)
        assert (r.status, r.body) == (200, b"second"), r
        c2.send(build_request("GET", "/c"))
        assert c2.read_response().body == b"third", "an open connection stopped working"
    finally:
        for c in (c1, c2, c3):
            if c:
                c.close()
    ph.assert_serving()

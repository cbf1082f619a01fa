"""What a gateway forwards, it must read exactly as its upstream would: every
request that could be framed or routed two ways is refused, with its status, a
closed connection, and no second request smuggled in its bytes answered."""

import pytest

from conftest import DEFAULT_ROUTES, Conn, assert_common_headers, build_request, module_server
from test_limits import BAD_REQUESTS

MAX_HEADER = 4096
ROUTES = DEFAULT_ROUTES + [
    {"prefix": "/admin", "static": {"status": 403, "body": "guarded"}},
    {"prefix": "/public/", "static": {"status": 200, "body": "public"}},
    {"path": "/get-only", "methods": ["GET"], "static": {"status": 200, "body": "got"}},
    {"path": "/trace", "methods": ["TRACE"], "static": {"status": 200, "body": "traced"}},
]

# A complete request that must never be answered when it rides inside a refused one.
HIDDEN = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return module_server(request, tmp_path_factory, "strict", workers=2, routes=ROUTES,
                         limits={"max_header_bytes": MAX_HEADER})


def refused(port, data, status, pieces=None):
    """Sends `data` (+ a hidden request) and checks: one answer with `status`,
    Connection: close, the connection closed, and nothing else answered."""
    with Conn(port) as c:
        payload = data + HIDDEN
        if pieces:
            for i in range(0, len(payload), pieces):
                c.send(payload[i:i + pieces])
        else:
            c.send(payload)
        r = c.read_response()
        assert r.status == status, f"expected {status}, got {r.status}: {r!r}"
        assert_common_headers(r)
        assert (r.header("Connection") or "").lower() == "close", r
        closed, extra = c.wait_closed(3)
        assert closed, f"server did not close the connection after {status}"
        assert extra == b"", f"bytes after the {status} answer (a smuggled request answered?): {extra[:200]!r}"
        return r


POST = b"POST /a HTTP/1.1\r\nHost: x\r\n"
# Each body would frame HIDDEN as a second request if the framing were guessed.
REFUSED = {
    "te-gzip": (501, POST + b"Transfer-Encoding: gzip\r\n\r\nabc"),
    "te-gzip-chunked": (501, POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    "te-foo-chunked": (501, POST + b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n"),
    "te-two-headers": (501, POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te-chunked-twice": (501, POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te-chunked-chunked": (501, POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    "te-on-http10": (400, b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "obs-fold": (400, b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    "obs-fold-tab": (400, b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"),
    "obs-fold-te": (400, POST + b"Transfer-Encoding: gzip,\r\n chunked\r\n\r\n0\r\n\r\n"),
    "obs-fold-cl": (400, POST + b"Content-Length:\r\n 0\r\n\r\n"),
    "obs-fold-host": (400, b"GET /a HTTP/1.1\r\nHost: x\r\n .evil\r\n\r\n"),
    "host-empty": (400, b"GET /a HTTP/1.1\r\nHost: \r\n\r\n"),
    "host-space": (400, b"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n"),
    "host-slash": (400, b"GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n"),
    "host-userinfo": (400, b"GET /a HTTP/1.1\r\nHost: user@a\r\n\r\n"),
    "host-bad-port": (400, b"GET /a HTTP/1.1\r\nHost: a:99999\r\n\r\n"),
    "target-userinfo": (400, b"GET http://user@a/a HTTP/1.1\r\nHost: a\r\n\r\n"),
    "target-other-scheme": (400, b"GET ftp://a/a HTTP/1.1\r\nHost: a\r\n\r\n"),
    "target-fragment": (400, b"GET /a#x HTTP/1.1\r\nHost: x\r\n\r\n"),
    "asterisk-not-options": (400, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
    "path-dotdot-encoded": (400, b"GET /%2e%2e/admin HTTP/1.1\r\nHost: x\r\n\r\n"),
    "path-climbs": (400, b"GET /a/../../admin HTTP/1.1\r\nHost: x\r\n\r\n"),
    "path-nul": (400, b"GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    "path-encoded-ctl": (400, b"GET /a%0d%0aX: y HTTP/1.1\r\nHost: x\r\n\r\n"),
    "path-bad-escape": (400, b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
    "target-too-long": (414, b"GET /" + b"u" * (MAX_HEADER + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    "too-many-headers": (431, b"GET /a HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"),
    "tiny-headers-flood": (431, b"GET /a HTTP/1.1\r\nHost: x\r\n" + b"a:\r\n" * 5000 + b"\r\n"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused(server, name):
    status, data = REFUSED[name]
    refused(server.port, data, status)


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_existing_strictness_still_refuses_and_smuggles_nothing(server, name):
    """The refusals issue 2 built (test_limits.BAD_REQUESTS) with a request hidden behind."""
    refused(server.port, BAD_REQUESTS[name], 400)


@pytest.mark.parametrize("name", ["te-gzip-chunked", "obs-fold-te", "tiny-headers-flood",
                                  "target-too-long", "path-dotdot-encoded"])
def test_same_status_however_the_bytes_arrive(server, name):
    status, data = REFUSED[name]
    for pieces in (1, 3, 64):
        refused(server.port, data, status, pieces=pieces)


def test_malformed_and_too_large_gets_one_status_however_split(server):
    """The differential fuzzer's find: a bad byte past the header limit was a 400
    when read at once and a 431 when read in small pieces."""
    data = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEADER + b"\x01\r\n\r\n"
    for pieces in (None, 1000, 7):
        refused(server.port, data, 431, pieces=pieces)


def test_hundred_headers_are_fine(server):
    headers = [(f"X-{i}", "v") for i in range(99)]  # + Host = 100
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a", headers=headers))
        assert c.read_response().status == 200


@pytest.mark.parametrize("target,status,body", [
    (b"/public/../admin", 403, b"guarded"),
    (b"/public/%2e%2e/admin", 403, b"guarded"),
    (b"//admin", 403, b"guarded"),
    (b"/public//../admin", 403, b"guarded"),
    (b"/public/./x", 200, b"public"),
    (b"/%61dmin", 403, b"guarded"),
    (b"/public/a%2F..%2F..%2Fadmin", 200, b"public"),  # %2F is no separator
    (b"http://other.example/public/../admin?x=1", 403, b"guarded"),
])
def test_routes_match_the_normalized_path(server, target, status, body):
    with Conn(server.port) as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (status, body), f"{target!r}: {r!r}"


def test_trace_is_405_with_allow_and_keeps_the_connection(server):
    with Conn(server.port) as c:
        c.send(b"TRACE /a HTTP/1.1\r\nHost: x\r\nCookie: secret\r\n\r\n" + build_request("GET", "/a"))
        r = c.read_response()
        assert r.status == 405, r
        assert r.header("Allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
        assert b"secret" not in r.body
        assert r.json()["error"] == "method not allowed"
        assert c.read_response().status == 200, "the connection is kept after a 405"


def test_route_methods(server):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/get-only", body=b"x"))
        r = c.read_response()
        assert r.status == 405 and r.header("Allow") == "GET, HEAD", r
        c.send(build_request("HEAD", "/get-only"))
        assert c.read_response(head=True).status == 200
        c.send(build_request("TRACE", "/trace"))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"traced")
        c.send(build_request("GET", "/trace"))
        assert c.read_response().header("Allow") == "TRACE"


def test_options_asterisk(server):
    with Conn(server.port) as c:
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.header("Allow"), r
        assert r.body == b""

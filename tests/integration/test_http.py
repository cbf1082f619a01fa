"""The HTTP/1.1 core as clients see it: curl, and raw sockets for the protocol corners."""

import datetime
import email.utils
import json
import time

import pytest

from conftest import (Conn, assert_common_headers, build_request, http_get, module_server, run)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return module_server(request, tmp_path_factory, "http", workers=2)


# --------------------------------------------------------------------------
# curl
# --------------------------------------------------------------------------

def curl(url, *args, tmp_path):
    hdr, body = tmp_path / "curl.headers", tmp_path / "curl.body"
    res = run(["curl", "-sS", "--max-time", "10", "-D", str(hdr), "-o", str(body),
               "-w", "%{http_code}", *args, url], timeout=20)
    assert res.returncode == 0, f"curl failed ({res.returncode}): {res.stderr}"
    blocks = [b for b in hdr.read_bytes().decode("latin-1").split("\r\n\r\n") if b.strip()]
    final = blocks[-1].split("\r\n")
    headers = {}
    for line in final[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(res.stdout.strip()), headers, body.read_bytes(), res


def test_curl_static_route(server, tmp_path):
    status, headers, body, _ = curl(f"http://127.0.0.1:{server.port}/", tmp_path=tmp_path)
    assert status == 200
    assert body == b"ok\n"
    assert headers.get("content-type") == "text/plain", headers
    assert headers.get("content-length") == "3", headers
    assert headers.get("server") == "phalanx", headers
    assert "date" in headers, headers


def test_curl_health_live(server, tmp_path):
    status, headers, body, _ = curl(f"http://127.0.0.1:{server.port}/health/live", tmp_path=tmp_path)
    assert status == 200
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert json.loads(body).get("status") == "alive", body


def test_curl_prefix_route(server, tmp_path):
    status, _, body, _ = curl(f"http://127.0.0.1:{server.port}/static/x/y.css", tmp_path=tmp_path)
    assert (status, body) == (201, b"prefixed")


def test_curl_not_found_is_json(server, tmp_path):
    status, headers, body, _ = curl(f"http://127.0.0.1:{server.port}/no/such/thing", tmp_path=tmp_path)
    assert status == 404
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc = json.loads(body)
    assert "not found" in json.dumps(doc).lower(), f"404 body does not say 'not found': {body!r}"


def test_curl_head(server, tmp_path):
    status, headers, body, _ = curl(f"http://127.0.0.1:{server.port}/", "-I", tmp_path=tmp_path)
    assert status == 200
    assert headers.get("content-length") == "3", headers
    # with -I curl writes the head to the output file; nothing may follow it
    assert body.startswith(b"HTTP/1.1 200") and body.endswith(b"\r\n\r\n") and \
        body.count(b"\r\n\r\n") == 1, f"HEAD output has more than a head: {body!r}"


def test_curl_reuses_keepalive_connection(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}/a"
    res = run(["curl", "-sS", "-v", "--max-time", "10", url, url, url], timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "firstfirstfirst", res.stdout
    assert res.stderr.count("Re-using existing connection") == 2, \
        f"curl did not reuse the keep-alive connection:\n{res.stderr}"


def test_curl_chunked_upload(server, tmp_path):
    data = tmp_path / "upload.bin"
    data.write_bytes(b"x" * 20000)
    status, _, body, res = curl(f"http://127.0.0.1:{server.port}/", "-H", "Transfer-Encoding: chunked",
                                "--data-binary", f"@{data}", "-v", tmp_path=tmp_path)
    assert "chunked" in res.stderr.lower()
    assert (status, body) == (200, b"ok\n")


def test_curl_expect_100_continue(server, tmp_path):
    data = tmp_path / "upload.bin"
    data.write_bytes(b"y" * 5000)
    status, _, body, res = curl(f"http://127.0.0.1:{server.port}/", "-H", "Expect: 100-continue",
                                "--expect100-timeout", "5", "--data-binary", f"@{data}", "-v",
                                tmp_path=tmp_path)
    assert "100 Continue" in res.stderr, f"no interim 100 Continue seen by curl:\n{res.stderr}"
    assert (status, body) == (200, b"ok\n")


# --------------------------------------------------------------------------
# headers every response carries
# --------------------------------------------------------------------------

@pytest.mark.parametrize("path,status", [("/", 200), ("/health/live", 200), ("/nope", 404),
                                         ("/static/z", 201)])
def test_common_headers(server, path, status):
    r = http_get(server.port, path)
    assert r.status == status, r
    assert_common_headers(r)
    assert int(r.header("Content-Length")) == len(r.body)
    date = email.utils.parsedate_to_datetime(r.header("Date"))
    assert r.header("Date").endswith(" GMT"), f"Date is not an IMF-fixdate: {r.header('Date')!r}"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - date).total_seconds()) < 60, f"Date {r.header('Date')!r} is far from now"


def test_routing(server):
    assert http_get(server.port, "/a").body == b"first"
    assert http_get(server.port, "/a?x=1&y=2").body == b"first", "query string broke exact path match"
    assert http_get(server.port, "/a/").status == 404, "exact path matched with a trailing slash"
    assert http_get(server.port, "/static").status == 404, "prefix /static/ matched /static"
    assert http_get(server.port, "/static/").status == 201


def test_health_live_json(server):
    r = http_get(server.port, "/health/live")
    assert r.status == 200
    assert r.header("Content-Type", "").startswith("application/json"), r
    assert r.json()["status"] == "alive", r.body


def test_not_found_json(server):
    r = http_get(server.port, "/definitely/not/here")
    assert r.status == 404
    assert r.header("Content-Type", "").startswith("application/json"), r
    assert "not found" in r.body.decode().lower(), r.body
    r.json()  # valid JSON


# --------------------------------------------------------------------------
# keep-alive and connection handling
# --------------------------------------------------------------------------

def test_http11_keepalive_by_default(server):
    with Conn(server.port) as c:
        for path, body in [("/a", b"first"), ("/b", b"second"), ("/", b"ok\n")]:
            c.send(build_request("GET", path))
            r = c.read_response()
            assert (r.status, r.body) == (200, body)
            assert (r.header("Connection") or "").lower() != "close", r
        assert not c.readable_within(0.3), "server closed (or sent extra bytes on) a keep-alive connection"


def test_http11_connection_close(server):
    with Conn(server.port) as c:
        c.send(build_request("GET", "/", headers={"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200
        assert (r.header("Connection") or "").lower() == "close", r
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", f"connection not closed after Connection: close (extra {extra!r})"


def test_http10_closes_by_default(server):
    with Conn(server.port) as c:
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"ok\n")
        assert (r.header("Connection") or "").lower() != "keep-alive", r
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", "HTTP/1.0 request without keep-alive: connection not closed"


def test_http10_keepalive(server):
    with Conn(server.port) as c:
        for path, body in [("/a", b"first"), ("/b", b"second")]:
            c.send(f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            r = c.read_response()
            assert (r.status, r.body) == (200, body)
            assert (r.header("Connection") or "").lower() == "keep-alive", \
                f"HTTP/1.0 keep-alive response lacks Connection: keep-alive: {r!r}"
        assert not c.readable_within(0.3), "HTTP/1.0 keep-alive connection was closed"


# --------------------------------------------------------------------------
# pipelining
# --------------------------------------------------------------------------

def test_three_pipelined_requests_answered_in_order(server):
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a") + build_request("GET", "/b") + build_request("GET", "/c"))
        bodies = [c.read_response().body for _ in range(3)]
        assert bodies == [b"first", b"second", b"third"], f"pipelined responses out of order: {bodies}"
        assert not c.readable_within(0.3), "extra bytes after three pipelined responses"


def test_pipelined_mixed_methods(server):
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a") + build_request("HEAD", "/b") +
               build_request("POST", "/c", body=b"hello") + build_request("GET", "/nope") +
               build_request("GET", "/", headers={"Connection": "close"}))
        r1 = c.read_response()
        r2 = c.read_response(head=True)
        r3 = c.read_response()
        r4 = c.read_response()
        r5 = c.read_response()
        assert (r1.status, r1.body) == (200, b"first"), r1
        assert (r2.status, r2.header("Content-Length")) == (200, "6"), r2
        assert (r3.status, r3.body) == (200, b"third"), r3
        assert r4.status == 404, r4
        assert (r5.status, r5.body) == (200, b"ok\n"), r5
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", f"bytes after the last response: {extra!r}"


def test_many_pipelined_requests(server):
    paths = ["/a", "/b", "/c"] * 40
    expect = {"/a": b"first", "/b": b"second", "/c": b"third"}
    with Conn(server.port) as c:
        c.send(b"".join(build_request("GET", p) for p in paths))
        got = [c.read_response().body for _ in paths]
    assert got == [expect[p] for p in paths], "120 pipelined responses not in request order"


def test_request_in_small_fragments(server):
    raw = build_request("POST", "/b", headers={"X-Test": "fragmented"}, body=b"0123456789")
    with Conn(server.port) as c:
        for i in range(0, len(raw), 7):
            c.send(raw[i:i + 7])
            time.sleep(0.005)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"second"), r


# --------------------------------------------------------------------------
# HEAD, bodies, Expect
# --------------------------------------------------------------------------

def test_head_has_length_but_no_body(server):
    with Conn(server.port) as c:
        c.send(build_request("HEAD", "/"))
        r = c.read_response(head=True)
        assert r.status == 200
        assert r.header("Content-Length") == "3", r
        assert_common_headers(r)
        # if a body had been sent, it would sit in front of the next response
        c.send(build_request("GET", "/a"))
        r2 = c.read_response()
        assert r2.raw_head.startswith(b"HTTP/1.1 200"), \
            f"HEAD response was followed by body bytes: {r2.raw_head[:60]!r}"
        assert r2.body == b"first"


def test_head_not_found_has_no_body(server):
    with Conn(server.port) as c:
        c.send(build_request("HEAD", "/nope") + build_request("GET", "/a"))
        r = c.read_response(head=True)
        assert r.status == 404 and int(r.header("Content-Length")) > 0, r
        r2 = c.read_response()
        assert r2.raw_head.startswith(b"HTTP/1.1 200") and r2.body == b"first", \
            f"HEAD 404 was followed by body bytes: {r2.raw_head[:60]!r}"


def test_content_length_body_then_next_request(server):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/a", body=b"x" * 3000))
        assert c.read_response().body == b"first"
        c.send(build_request("GET", "/b"))
        assert c.read_response().body == b"second"


@pytest.mark.parametrize("chunks", [
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n",
    b"400\r\n" + b"z" * 1024 + b"\r\n" + b"A\r\n" + b"q" * 10 + b"\r\n0\r\n\r\n",
], ids=["plain", "extension-and-trailer", "hex-sizes"])
def test_chunked_body_accepted(server, chunks):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/a", headers={"Transfer-Encoding": "chunked"}) + chunks)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"first"), r
        c.send(build_request("GET", "/b"))
        r2 = c.read_response()
        assert (r2.status, r2.body) == (200, b"second"), "chunked body not fully consumed"


def test_chunked_body_sent_slowly(server):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/c", headers={"Transfer-Encoding": "chunked"}))
        for part in (b"3\r\nabc\r\n", b"4\r\ndefg\r\n", b"0\r\n\r\n"):
            time.sleep(0.1)
            assert not c.readable_within(0), "answered before the chunked body was complete"
            c.send(part)
        assert c.read_response().body == b"third"


def test_expect_100_continue(server):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/a", headers={"Content-Length": "5", "Expect": "100-continue"}))
        deadline = time.monotonic() + 3
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        while len(c.buf) < len(interim) and time.monotonic() < deadline:
            if not c._fill(deadline):
                break
        assert c.buf.startswith(interim), f"expected an interim 100 Continue first, got {c.buf[:100]!r}"
        c.buf = c.buf[len(interim):]
        c.send(b"hello")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"first"), r
        c.send(build_request("GET", "/b"))
        assert c.read_response().body == b"second"


def test_no_100_continue_without_expect(server):
    with Conn(server.port) as c:
        c.send(build_request("POST", "/a", headers={"Content-Length": "5"}))
        assert not c.readable_within(0.3), "server answered before the body arrived"
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200, f"got {r.status} (interim 100 without Expect?)"


# --------------------------------------------------------------------------
# access log
# --------------------------------------------------------------------------

def test_access_log(phalanx_factory, tmp_path):
    log_path = tmp_path / "access.log"
    ph = phalanx_factory(workers=2, log={"level": "info", "access": str(log_path)})
    assert http_get(ph.port, "/a").status == 200
    assert http_get(ph.port, "/nope").status == 404
    with Conn(ph.port) as c:
        c.send(build_request("POST", "/b", body=b"12345"))
        assert c.read_response().status == 200
        c.send(build_request("HEAD", "/c"))
        assert c.read_response(head=True).status == 200

    deadline = time.monotonic() + 5
    entries = []
    while time.monotonic() < deadline:
        if log_path.exists():
            lines = [l for l in log_path.read_text().splitlines() if l.strip()]
            entries = lines
            # The lines come from an async queue, each worker's at its own pace;
            # the readiness probe's health checks are logged too.
            if all(f'"path":"{p}"' in "".join(lines) for p in ("/a", "/nope", "/b", "/c")):
                break
        time.sleep(0.1)
    assert len(entries) >= 4, f"expected at least 4 access log lines within 5s, got {entries}"
    docs = []
    for line in entries:
        try:
            docs.append(json.loads(line))
        except ValueError:
            pytest.fail(f"access log line is not JSON: {line!r}")
    keys = {"time", "worker", "method", "path", "status", "bytes", "duration_ms", "client"}
    for d in docs:
        assert keys <= set(d), f"access log entry misses {keys - set(d)}: {d}"
        assert isinstance(d["status"], int) and isinstance(d["bytes"], int), d
        assert isinstance(d["duration_ms"], (int, float)) and d["duration_ms"] >= 0, d
        assert "127.0.0.1" in str(d["client"]), d

    def find(method, path):
        hits = [d for d in docs if d["method"] == method and d["path"] == path]
        assert hits, f"no access log entry for {method} {path}: {docs}"
        return hits[0]

    assert find("GET", "/a")["status"] == 200
    assert find("GET", "/a")["bytes"] >= len(b"first")
    assert find("GET", "/nope")["status"] == 404
    assert find("POST", "/b")["status"] == 200
    assert find("HEAD", "/c")["status"] == 200
    slots = {d["worker"] for d in docs}
    assert all(isinstance(w, int) for w in slots), f"worker field should be the slot number: {slots}"


def test_h2c_upgrade_request_is_answered_as_http1_and_the_connection_stays_usable(server):
    """Bug: a request with Upgrade (curl --http2 on http://) left the connection
    deaf; phalanx speaks HTTP/1.1 only and answers such requests as plain ones."""
    res = run(["curl", "-s", "--http2", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{http_version}\\n",
               f"http://127.0.0.1:{server.port}/a", f"http://127.0.0.1:{server.port}/b"], timeout=15)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["200 1.1", "200 1.1"], res.stdout


def test_connect_is_405_and_closes(server):
    with Conn(server.port) as c:
        c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        r = c.read_response()
        assert r.status == 405
        assert (r.header("Connection") or "").lower() == "close"
        assert c.wait_closed()[0]

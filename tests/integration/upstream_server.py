#!/usr/bin/env python3
"""A test origin server for phalanx's proxy tests: HTTP/1.1 over raw sockets, one
thread per connection, standard library only, misbehaving on demand.

    python3 upstream_server.py --port P [--idle-close-ms N] [--name NAME]

Prints "ready PORT" on stdout once it listens on 127.0.0.1 (``--port 0`` picks a
free port and prints it).  SIGTERM closes the listener and every connection and
exits 0.

Parsing is strict: CRLF line ends, token methods and header names, no obs-fold, no
space before the colon, Host required in HTTP/1.1, Content-Length digits only (a
list of equal values is accepted), Transfer-Encoding must end in chunked and must
not come with Content-Length.  Anything else gets a 400 (501 for an unknown
transfer coding, 505 for a version other than 1.0/1.1, 431 for a head over 64 KiB)
with Connection: close.  Bodies (Content-Length or chunked, trailers read) are
always streamed, never held whole; so are generated responses.

Every response carries ``X-Upstream: NAME``, ``Date`` and ``Connection:
keep-alive`` or ``close``.  A request with ``Expect: 100-continue`` and a body gets
"100 Continue" before its body is read (on every endpoint; ``?no_continue=1``
suppresses it).  Endpoints (any method unless noted; HEAD never gets a body):

  /echo                 200 JSON {method, target, version, headers: [[name, value]...]
                        in received order, body_bytes, body_sha256, chunked, trailers,
                        conn_id, request_on_conn, server}
  /bytes?n=N            N bytes, byte i = i % 251, with Content-Length; &chunked=1
                        (chunks of &chunk=SIZE, default 16384), &close_delimited=1 (no
                        length, close after the body), &delay_ms=D (before the response
                        head), &body_delay_ms=D (after the head, before the body),
                        &chunk_delay_ms=D (between chunks / 64 KiB writes)
  /upload               reads the body streaming; JSON {body_bytes, body_sha256,
                        chunked, trailers}; &slow_read_ms=D sleeps D ms between 64 KiB reads
  /status/N             status N (200..599) with a small JSON body; 204 without body or
                        Content-Length, 304 without body but with an ETag
  /delay?ms=D           waits D ms, then 200 JSON
  /cacheable/...        200 JSON {n: requests to this target so far, target, method}, with
                        &cc=VALUE as Cache-Control, &vary=NAMES as Vary, &cookie=1 (a
                        Set-Cookie), &ms=D (waits D ms first), &status=N (instead of 200)
  /continue             100 Continue if Expect: 100-continue, then like /upload plus
                        "expect": bool; &status=N with Expect: answers N at once without
                        reading the body, and closes
  /early-hints          103 Early Hints (Link header), then 200 JSON
  /close                200 with Connection: close, then closes
  /reset                reads the request, then RST (SO_LINGER 0) before any byte
  /reset-mid-body       head with Content-Length 100000, 1000 body bytes, then RST
  /hang                 reads the request, never answers (until the client closes)
  /health               200 {"status": "ok"} or the status set by /admin/health
  /admin/health?status=N    sets /health's status
  /admin/stats          JSON {connections, requests, open_connections, by_path, expect_seen}
  /admin/reset-stats    zeroes them
  anything else         404 JSON

/admin/* requests are not counted, and neither is a connection whose first request
is an /admin/* one (so a test's stats() call does not change what it reads).

``--idle-close-ms N``: a keep-alive connection idle for N ms after a response is
closed by the server (FIN), as Node's keepAliveTimeout does: the reuse race a
proxy's connection pool must survive.
"""

import argparse
import email.utils
import fcntl
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import termios
import threading
import time
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024
READ_SIZE = 64 * 1024
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
REQUEST_LINE = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/(\d)\.(\d)$")
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
CHUNK_SIZE_LINE = re.compile(rb"^([0-9A-Fa-f]{1,15})[ \t]*(;.*)?$")

# Bytes i % 251 for any offset: PATTERN[o % 251 : o % 251 + n] for n <= READ_SIZE.
PATTERN = bytes(range(251)) * (READ_SIZE // 251 + 2)
PATTERN_VIEW = memoryview(PATTERN)

REASONS = {
    100: "Continue", 103: "Early Hints", 200: "OK", 201: "Created", 202: "Accepted",
    204: "No Content", 206: "Partial Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
    417: "Expectation Failed", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


class ClientGone(Exception):
    """The peer closed (or reset) the connection."""


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------
# shared state
# --------------------------------------------------------------------------

class State:
    def __init__(self, name, idle_close_ms):
        self.name = name
        self.idle_close = None if idle_close_ms is None else idle_close_ms / 1000.0
        self.lock = threading.Lock()
        self.next_conn_id = 0
        self.health = 200
        self.open_socks = set()
        self.open_connections = 0
        self.reset_stats()

    def reset_stats(self):
        with self.lock:
            self.connections = 0
            self.requests = 0
            self.by_path = {}
            self.expect_seen = 0  # open_connections is a gauge: never reset

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "requests": self.requests,
                    "open_connections": self.open_connections, "by_path": dict(self.by_path),
                    "expect_seen": self.expect_seen}


STATE = None


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------

class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self, n=READ_SIZE):
        try:
            data = self.sock.recv(n)
        except (ConnectionResetError, BrokenPipeError, TimeoutError, OSError) as e:
            raise ClientGone(str(e))
        if not data:
            raise ClientGone("eof")
        self.buf += data

    def wait_readable(self, timeout):
        """True if bytes (or EOF) arrive within timeout (None: wait forever)."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def line(self, limit, what):
        """One CRLF-terminated line (without CRLF); a bare LF is a 400."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                break
            if len(self.buf) > limit:
                raise BadRequest(431 if what == "header" else 400, f"{what} line too long")
            start = len(self.buf)
            self.fill()
        if i > limit:
            raise BadRequest(431 if what == "header" else 400, f"{what} line too long")
        if i == 0 or self.buf[i - 1] != 0x0D:
            raise BadRequest(400, f"bare LF in {what} line")
        out = bytes(self.buf[:i - 1])
        del self.buf[:i + 1]
        return out

    def some(self, n):
        """Up to n bytes (at least 1)."""
        if not self.buf:
            try:
                data = self.sock.recv(min(n, READ_SIZE))
            except (ConnectionResetError, OSError) as e:
                raise ClientGone(str(e))
            if not data:
                raise ClientGone("eof in body")
            return data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Request:
    def __init__(self):
        self.method = self.target = self.version = None
        self.headers = []  # [(name, value)] as str (latin-1), received order
        self.path = ""
        self.query = {}
        self.chunked = False
        self.length = 0
        self.trailers = []
        self.body_done = True
        self.expect_continue = False
        self.continue_sent = False

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def tokens(self, name):
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default

    def qint(self, name, default=0):
        v = self.q(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise BadRequest(400, f"query parameter {name} is not an integer: {v!r}")

    @property
    def has_body(self):
        return self.chunked or self.length > 0


def read_head(reader):
    req = Request()
    total = 0
    while True:  # RFC 9112 2.2: ignore empty lines before the request line
        line = reader.line(MAX_HEAD, "request")
        if line:
            break
        total += 2
        if total > 1024:
            raise BadRequest(400, "too many empty lines")
    m = REQUEST_LINE.match(line)
    if not m:
        raise BadRequest(400, f"bad request line {line[:200]!r}")
    req.method = m.group(1).decode()
    req.target = m.group(2).decode("latin-1")
    major, minor = int(m.group(3)), int(m.group(4))
    if (major, minor) not in ((1, 0), (1, 1)):
        raise BadRequest(505, f"unsupported version HTTP/{major}.{minor}")
    req.version = f"HTTP/{major}.{minor}"
    total += len(line) + 2
    while True:
        line = reader.line(MAX_HEAD - total, "header")
        total += len(line) + 2
        if total > MAX_HEAD:
            raise BadRequest(431, "request head too large")
        if not line:
            break
        if line[0] in b" \t":
            raise BadRequest(400, "obs-fold in headers")
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN.match(name):
            raise BadRequest(400, f"bad header line {line[:200]!r}")
        value = value.strip(b" \t")
        if BAD_VALUE.search(value):
            raise BadRequest(400, f"control character in header {name!r}")
        req.headers.append((name.decode(), value.decode("latin-1")))

    split = urlsplit(req.target)
    if req.target.startswith("/"):
        req.path = split.path
    elif req.target == "*" or re.match(r"^https?://", req.target, re.I):
        req.path = split.path or "/"
    else:
        raise BadRequest(400, f"bad request target {req.target!r}")
    req.query = parse_qs(split.query, keep_blank_values=True)

    hosts = req.header_all("Host")
    if len(hosts) > 1 or (req.version == "HTTP/1.1" and not hosts):
        raise BadRequest(400, "HTTP/1.1 needs exactly one Host header")

    te = req.tokens("Transfer-Encoding")
    cls = req.header_all("Content-Length")
    if req.header_all("Transfer-Encoding"):
        if cls:
            raise BadRequest(400, "both Transfer-Encoding and Content-Length")
        if req.version == "HTTP/1.0":
            raise BadRequest(400, "Transfer-Encoding in HTTP/1.0")
        if not te or te[-1] != "chunked":
            raise BadRequest(400, "Transfer-Encoding does not end in chunked")
        if te != ["chunked"]:
            raise BadRequest(501, f"unsupported transfer coding {te!r}")
        req.chunked = True
        req.body_done = False
    elif cls:
        values = set()
        for v in cls:
            for part in v.split(","):
                part = part.strip()
                if not part.isdigit() or not part.isascii() or len(part) > 18:
                    raise BadRequest(400, f"bad Content-Length {v!r}")
                values.add(int(part))
        if len(values) != 1:
            raise BadRequest(400, f"conflicting Content-Length {cls!r}")
        req.length = values.pop()
        req.body_done = req.length == 0
    expect = req.header("Expect")
    if expect is not None:
        if expect.strip().lower() != "100-continue":
            raise BadRequest(417, f"unsupported Expect {expect!r}")
        req.expect_continue = True
    return req


def body_chunks(reader, req):
    """Yields the request body in pieces of at most 64 KiB (de-chunked)."""
    if req.body_done:
        return
    if not req.chunked:
        left = req.length
        while left:
            data = reader.some(min(left, READ_SIZE))
            left -= len(data)
            yield data
        req.body_done = True
        return
    while True:
        line = reader.line(4096, "chunk size")
        m = CHUNK_SIZE_LINE.match(line)
        if not m:
            raise BadRequest(400, f"bad chunk size line {line[:100]!r}")
        size = int(m.group(1), 16)
        if size == 0:
            break
        left = size
        while left:
            data = reader.some(min(left, READ_SIZE))
            left -= len(data)
            yield data
        if reader.exact(2) != b"\r\n":
            raise BadRequest(400, "chunk data not followed by CRLF")
    total = 0
    while True:
        line = reader.line(MAX_HEAD, "trailer")
        total += len(line) + 2
        if total > MAX_HEAD:
            raise BadRequest(431, "trailers too large")
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN.match(name) or BAD_VALUE.search(value.strip(b" \t")):
            raise BadRequest(400, f"bad trailer line {line[:200]!r}")
        req.trailers.append((name.decode(), value.strip(b" \t").decode("latin-1")))
    req.body_done = True


def consume_body(reader, req, slow_read=0.0):
    h = hashlib.sha256()
    n = 0
    for piece in body_chunks(reader, req):
        h.update(piece)
        n += len(piece)
        if slow_read:
            time.sleep(slow_read)
    return n, h.hexdigest()


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

class Conn:
    def __init__(self, sock, conn_id):
        self.sock = sock
        self.id = conn_id
        self.reader = Reader(sock)
        self.requests = 0
        self.admin = False
        self.counted = True

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, OSError) as e:
            raise ClientGone(str(e))

    def head(self, status, headers=(), keep_alive=True, reason=None):
        lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}",
                 f"X-Upstream: {STATE.name}",
                 f"Date: {email.utils.formatdate(usegmt=True)}"]
        for k, v in headers:
            lines.append(f"{k}: {v}")
        if status >= 200:
            lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(self, req, status, body=b"", headers=(), keep_alive=True, content_type="application/json"):
        hdrs = list(headers)
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            hdrs = [("Content-Type", content_type), ("Content-Length", str(len(body)))] + hdrs
        self.send(self.head(status, hdrs, keep_alive) +
                  (b"" if no_body or (req is not None and req.method == "HEAD") else body))

    def respond_json(self, req, status, obj, headers=(), keep_alive=True):
        self.respond(req, status, (json.dumps(obj) + "\n").encode(), headers, keep_alive)

    def rst(self):
        """Closes with RST: SO_LINGER on with a zero timeout."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def wait_sent(self, timeout=2.0):
        """Waits until the peer acknowledged everything sent (SIOCOUTQ == 0), so an
        RST that follows does not throw away data still queued."""
        deadline = time.monotonic() + timeout
        buf = bytearray(4)
        while time.monotonic() < deadline:
            try:
                fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, buf)
            except OSError:
                return
            if struct.unpack("i", buf)[0] == 0:
                return
            time.sleep(0.002)


def generated(offset, length):
    """Yields memoryviews of the deterministic bytes [offset, offset + length)."""
    while length:
        n = min(length, READ_SIZE)
        s = offset % 251
        yield PATTERN_VIEW[s:s + n]
        offset += n
        length -= n


# --------------------------------------------------------------------------
# endpoints
# --------------------------------------------------------------------------

def wants_keep_alive(req):
    tokens = req.tokens("Connection")
    if req.version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens and "close" not in tokens


def send_continue(conn, req):
    if req.expect_continue and req.has_body and not req.body_done and not req.continue_sent \
            and req.q("no_continue") != "1":
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.continue_sent = True


CACHEABLE_COUNTS = {}  # /cacheable targets: requests seen, for the cache tests


def handle(conn, req, keep):
    """Answers one request; returns whether the connection stays open."""
    path = req.path
    reader = conn.reader

    if path == "/continue":
        reject = req.qint("status", 0)
        if reject and req.expect_continue:
            conn.respond_json(req, reject, {"expect": True, "rejected": reject}, keep_alive=False)
            return False
        send_continue(conn, req)
        n, digest = consume_body(reader, req)
        conn.respond_json(req, 200, {"body_bytes": n, "body_sha256": digest, "chunked": req.chunked,
                                     "trailers": req.trailers, "expect": req.expect_continue},
                          keep_alive=keep)
        return keep

    send_continue(conn, req)
    if path == "/upload":
        slow = req.qint("slow_read_ms", 0) / 1000.0
        n, digest = consume_body(reader, req, slow)
        conn.respond_json(req, 200, {"body_bytes": n, "body_sha256": digest, "chunked": req.chunked,
                                     "trailers": req.trailers}, keep_alive=keep)
        return keep

    # Every other endpoint reads the whole body first.
    n, digest = consume_body(reader, req)

    if path == "/echo":
        body = (json.dumps({
            "method": req.method, "target": req.target, "version": req.version,
            "headers": [[k, v] for k, v in req.headers], "body_bytes": n, "body_sha256": digest,
            "chunked": req.chunked, "trailers": [[k, v] for k, v in req.trailers],
            "conn_id": conn.id, "request_on_conn": conn.requests, "server": STATE.name,
        }) + "\n").encode()
        conn.respond(req, 200, body, keep_alive=keep)
        return keep

    if path == "/bytes":
        return send_bytes(conn, req, keep)

    m = re.match(r"^/status/(\d{3})$", path)
    if m:
        status = int(m.group(1))
        if not 200 <= status <= 599:
            conn.respond_json(req, 400, {"error": "status must be 200..599"}, keep_alive=keep)
            return keep
        headers = [("ETag", '"phalanx-test"')] if status == 304 else []
        conn.respond_json(req, status, {"status": status}, headers=headers, keep_alive=keep)
        return keep

    if path.startswith("/cacheable"):
        time.sleep(req.qint("ms", 0) / 1000.0)
        with STATE.lock:
            CACHEABLE_COUNTS[req.target] = CACHEABLE_COUNTS.get(req.target, 0) + 1
            n = CACHEABLE_COUNTS[req.target]
        headers = []
        if req.q("cc") is not None:
            headers.append(("Cache-Control", req.q("cc")))
        if req.q("vary") is not None:
            headers.append(("Vary", req.q("vary")))
        if req.qint("cookie", 0):
            headers.append(("Set-Cookie", "session=secret; Path=/"))
        conn.respond_json(req, req.qint("status", 200),
                          {"n": n, "target": req.target, "method": req.method,
                           "accept": req.header("Accept")}, headers=headers, keep_alive=keep)
        return keep

    if path == "/delay":
        ms = req.qint("ms", 0)
        time.sleep(ms / 1000.0)
        conn.respond_json(req, 200, {"delayed_ms": ms}, keep_alive=keep)
        return keep

    if path == "/early-hints":
        conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
                  + f"X-Upstream: {STATE.name}\r\n\r\n".encode())
        conn.respond_json(req, 200, {"early_hints": True}, keep_alive=keep)
        return keep

    if path == "/close":
        conn.respond_json(req, 200, {"closing": True}, keep_alive=False)
        return False

    if path == "/reset":
        conn.rst()
        raise ClientGone("reset on purpose")

    if path == "/reset-mid-body":
        conn.send(conn.head(200, [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", "100000")], keep))
        conn.send(bytes(next(generated(0, 1000))))
        conn.wait_sent()
        conn.rst()
        raise ClientGone("reset on purpose")

    if path == "/hang":
        while True:
            try:
                data = conn.sock.recv(READ_SIZE)
            except OSError:
                data = b""
            if not data:
                raise ClientGone("hang ended by the client")

    if path == "/health":
        status = STATE.health
        conn.respond_json(req, status, {"status": "ok" if status == 200 else "unhealthy"},
                          keep_alive=keep)
        return keep

    if path == "/admin/health":
        status = req.qint("status", 200)
        if not 200 <= status <= 599:
            conn.respond_json(req, 400, {"error": "status must be 200..599"}, keep_alive=keep)
            return keep
        STATE.health = status
        conn.respond_json(req, 200, {"health": status}, keep_alive=keep)
        return keep

    if path == "/admin/stats":
        conn.respond_json(req, 200, STATE.stats(), keep_alive=keep)
        return keep

    if path == "/admin/reset-stats":
        STATE.reset_stats()
        conn.respond_json(req, 200, {"reset": True}, keep_alive=keep)
        return keep

    conn.respond_json(req, 404, {"error": "not found", "path": path}, keep_alive=keep)
    return keep


def send_bytes(conn, req, keep):
    n = req.qint("n", 0)
    chunked = req.q("chunked") == "1"
    close_delimited = req.q("close_delimited") == "1"
    chunk = req.qint("chunk", 16384)
    delay = req.qint("delay_ms", 0) / 1000.0
    body_delay = req.qint("body_delay_ms", 0) / 1000.0
    chunk_delay = req.qint("chunk_delay_ms", 0) / 1000.0
    if n < 0 or chunk <= 0:
        conn.respond_json(req, 400, {"error": "n >= 0 and chunk > 0"}, keep_alive=keep)
        return keep
    if delay:
        time.sleep(delay)
    headers = [("Content-Type", "application/octet-stream")]
    if close_delimited:
        keep = False
    elif chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(n)))
    conn.send(conn.head(200, headers, keep))
    if req.method == "HEAD":
        return keep
    if body_delay:
        time.sleep(body_delay)
    if chunked and not close_delimited:
        off = 0
        while off < n:
            size = min(chunk, n - off)
            if off and chunk_delay:
                time.sleep(chunk_delay)
            prefix = f"{size:x}\r\n".encode()
            if size <= READ_SIZE:
                conn.send(prefix + bytes(next(generated(off, size))) + b"\r\n")
            else:
                conn.send(prefix)
                for piece in generated(off, size):
                    conn.send(piece)
                conn.send(b"\r\n")
            off += size
        conn.send(b"0\r\n\r\n")
    else:
        first = True
        for piece in generated(0, n):
            if not first and chunk_delay:
                time.sleep(chunk_delay)
            first = False
            conn.send(piece)
    return keep


# --------------------------------------------------------------------------
# connections
# --------------------------------------------------------------------------

def lingering_close(sock, timeout=1.0):
    """FIN, then read what the client still sends (so it is not answered with RST)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if not r or not sock.recv(READ_SIZE):
                break
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def serve_connection(sock, conn_id):
    conn = Conn(sock, conn_id)
    closed = False
    try:
        while True:
            if conn.requests and STATE.idle_close is not None:
                if not conn.reader.wait_readable(STATE.idle_close):
                    break  # idle too long: close with FIN
            try:
                req = read_head(conn.reader)
            except ClientGone:
                break
            conn.requests += 1
            admin = req.path.startswith("/admin/")
            with STATE.lock:
                if admin:
                    if conn.requests == 1 and conn.counted:
                        conn.counted = False
                        STATE.connections -= 1
                        STATE.open_connections -= 1
                else:
                    STATE.requests += 1
                    STATE.by_path[req.path] = STATE.by_path.get(req.path, 0) + 1
                    if req.expect_continue:
                        STATE.expect_seen += 1
            keep = wants_keep_alive(req)
            if not handle(conn, req, keep):
                break
    except BadRequest as e:
        try:
            conn.respond_json(None, e.status, {"error": str(e)}, keep_alive=False)
        except ClientGone:
            pass
    except ClientGone as e:
        closed = "reset on purpose" in str(e)
    except Exception as e:  # noqa: BLE001 - a bug here must not kill the server
        print(f"upstream {STATE.name}: connection {conn_id}: {e!r}", file=sys.stderr, flush=True)
    finally:
        with STATE.lock:
            STATE.open_socks.discard(sock)
            if conn.counted:
                STATE.open_connections -= 1
        if not closed:
            lingering_close(sock)


def main():
    global STATE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle-close-ms", type=int, default=None)
    ap.add_argument("--name", default="upstream")
    args = ap.parse_args()
    STATE = State(args.name, args.idle_close_ms)
    threading.stack_size(512 * 1024)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)

    # The handler only wakes the accept loop up (through the wakeup fd): raising
    # from it could leave STATE.lock held by the main thread.
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    print(f"ready {listener.getsockname()[1]}", flush=True)
    listener.setblocking(False)
    while not stopping:
        try:
            r, _, _ = select.select([listener, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in r:
            try:
                wake_r.recv(4096)
            except BlockingIOError:
                pass
        if listener not in r:
            continue
        while not stopping:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # EMFILE, ECONNABORTED: keep serving
                print(f"upstream {STATE.name}: accept: {e!r}", file=sys.stderr, flush=True)
                time.sleep(0.01)
                break
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with STATE.lock:
                STATE.next_conn_id += 1
                conn_id = STATE.next_conn_id
                STATE.connections += 1
                STATE.open_connections += 1
                STATE.open_socks.add(sock)
            threading.Thread(target=serve_connection, args=(sock, conn_id), daemon=True).start()
    listener.close()
    with STATE.lock:
        socks = list(STATE.open_socks)
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

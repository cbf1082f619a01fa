"""What a connection costs, and the closes that must not get cheaper.

A one-request connection (HTTP/1.0 or Connection: close, as `ab` without -k)
is answered and closed at once: no shutdown, no wait for the client's FIN. A
close lingers (FIN, then read and discard until the client closes) only when
unread input may follow, because a close() over unread input sends a reset that
destroys the part of the answer the client has not read yet. Keep-alive
connections get TCP_NODELAY with their first answer, so answers written back to
back are not held by Nagle's algorithm for the client's delayed ACK."""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (DEFAULT_ROUTES, Conn, build_request, module_server, socket_inodes,
                      wait_until)
from test_load import ab_field, run_ab

MAX_BODY = 1024
BIG = 2 * 1024 * 1024  # far more than a small client window plus socket buffers hold
ROUTES = DEFAULT_ROUTES + [
    {"path": "/big", "static": {"status": 200, "body": "z" * BIG}},
    # Answered on a timer: a request pipelined behind it is answered by a second write.
    {"path": "/later", "static": {"status": 200, "body": "later", "delay_ms": 1}},
]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return module_server(request, tmp_path_factory, "connection_cost", workers=2,
                         routes=ROUTES, limits={"max_body_bytes": MAX_BODY})


# --------------------------------------------------------------------------
# the server's side of a connection, seen from /proc
# --------------------------------------------------------------------------

def server_side_inode(server_port, client_port):
    """Inode of the server's socket for the connection from client_port: 0 once
    no process holds it (closed, the kernel finishing its FIN), None if gone."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                cols = line.split()
                local, remote = cols[1], cols[2]
                if (int(local.rsplit(":", 1)[1], 16) == server_port
                        and int(remote.rsplit(":", 1)[1], 16) == client_port):
                    return int(cols[9])
    return None


def holding_worker(server, conn):
    """(pid, fd) of the worker holding the server side of `conn`, or None."""
    inode = server_side_inode(server.port, conn.sock.getsockname()[1])
    if not inode:
        return None
    for pid in server.worker_pids():
        if inode not in socket_inodes(pid):
            continue
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid, int(fd)
            except OSError:
                continue
    return None


def server_nodelay(pid, fd):
    """TCP_NODELAY of a worker's socket, read through a copy of its fd (pidfd_getfd)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd_getfd = 438  # x86_64 and aarch64
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError) as e:
        pytest.skip(f"pidfd_open: {e}")
    try:
        copy = libc.syscall(pidfd_getfd, pidfd, fd, 0)
        if copy < 0:
            pytest.skip(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(pidfd)
    with socket.socket(fileno=copy) as s:  # closes the copy only
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def small_window_conn(port, rcvbuf=16 * 1024):
    """A Conn whose receive buffer is set small before connecting, so what the
    client has not read yet stays in the server's socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    c = Conn.__new__(Conn)
    c.sock, c.buf, c.eof = s, b"", False
    return c


# --------------------------------------------------------------------------
# closing
# --------------------------------------------------------------------------

@pytest.mark.parametrize("version,headers", [("HTTP/1.1", {"Connection": "close"}),
                                             ("HTTP/1.0", {})],
                         ids=["connection-close", "http10"])
def test_close_request_is_closed_without_waiting_for_the_client(server, version, headers):
    """Bug: every close lingered (shutdown, then wait up to 2 s for the client's
    FIN), costing a one-request connection a shutdown, an epoll round and a read.
    A client that asked to close and sent nothing more gets the whole answer and
    our FIN, and no worker holds the socket while the client keeps its end open."""
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a", version=version, headers=headers))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"first"), r
        assert (r.header("Connection") or "").lower() == "close", r
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", f"no clean FIN after the answer (extra {extra[:100]!r})"
        # The client sends nothing and keeps its socket open.
        wait_until(lambda: holding_worker(server, c) is None, 0.5,
                   message="the worker to let go of a connection whose client asked to close")


def test_pipelined_requests_after_close_do_not_reset_the_answer(server):
    """Requests pipelined behind Connection: close are never answered, and more of
    them may still be on their way: had the server closed without lingering, the
    next one to arrive would draw a reset that destroys the part of the 2 MB
    answer still in the server's socket. The close lingers instead."""
    c = small_window_conn(server.port)
    try:
        c.send(build_request("GET", "/big", headers={"Connection": "close"})
               + build_request("GET", "/a"))
        time.sleep(0.5)  # the server has written the answer into its socket and closed
        c.send(build_request("GET", "/b"))  # the rest of the client's pipeline
        time.sleep(0.2)
        r = c.read_response(timeout=20)
        assert r.status == 200 and len(r.body) == BIG, f"answer cut at {len(r.body)} of {BIG} bytes"
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", f"not closed cleanly after the answer (extra {extra[:100]!r})"
        # Lingering: the worker holds its socket until the client closes (or 2 s).
        assert holding_worker(server, c) is not None, "the close did not linger"
    finally:
        c.close()


def test_error_mid_body_reaches_the_client_behind_queued_answers(server):
    """A 413 refused by chunk size while the client keeps sending its body, behind
    a 2 MB answer the client is still reading: the close lingers (reading and
    discarding the body) so both answers arrive whole, where a bare close() over
    the unread body would reset them."""
    c = small_window_conn(server.port)
    stop = threading.Event()
    sender = c.sock.dup()
    sender.settimeout(0.2)

    def keep_sending():
        while not stop.is_set():
            try:
                sender.send(b"x" * 4096)
            except socket.timeout:
                continue
            except OSError:
                return

    head = (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % (MAX_BODY * 4))
    th = threading.Thread(target=keep_sending, daemon=True)
    try:
        c.send(build_request("GET", "/big") + head)
        th.start()
        time.sleep(0.5)
        big = c.read_response(timeout=20)
        assert big.status == 200 and len(big.body) == BIG, \
            f"first answer cut at {len(big.body)} of {BIG} bytes"
        refused = c.read_response(timeout=5)
        assert refused.status == 413, refused
        assert (refused.header("Connection") or "").lower() == "close", refused
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", f"not closed cleanly after the 413 (extra {extra[:100]!r})"
    finally:
        stop.set()
        th.join(timeout=5)
        sender.close()
        c.close()
    server.assert_serving()


def test_keepalive_client_closed_by_a_draining_worker_gets_a_lingering_close(phalanx_factory):
    """A client that asked to keep the connection may have sent its next request
    already when the draining worker answers Connection: close: that close
    lingers, where a client that asked to close is let go at once."""
    routes = DEFAULT_ROUTES + [{"path": "/slow", "static": {"status": 200, "body": "slow",
                                                           "delay_ms": 300}}]
    ph = phalanx_factory(workers=1, routes=routes)
    worker = next(iter(ph.worker_pids()))
    with Conn(ph.port) as c:
        c.send(build_request("GET", "/slow"))  # keep-alive
        time.sleep(0.1)
        os.kill(worker, signal.SIGTERM)  # drain: the answer will say Connection: close
        r = c.read_response()
        assert r.body == b"slow" and (r.header("Connection") or "").lower() == "close", r
        closed, _ = c.wait_closed(3)
        assert closed, "not closed after Connection: close"
        assert holding_worker(ph, c) is not None, "the close did not linger"


# --------------------------------------------------------------------------
# TCP_NODELAY
# --------------------------------------------------------------------------

def test_tcp_nodelay_comes_with_the_first_keepalive_answer(server):
    """Set once per connection, when an answer keeps it open: a connection whose
    first request has not been answered yet (and a one-request connection) does
    not pay the setsockopt."""
    with Conn(server.port) as c:
        c.send(b"GET /a HTTP/1.1\r\nHost: x\r\n")  # not complete: nothing answered yet
        held = wait_until(lambda: holding_worker(server, c), 2, message="the worker's socket")
        assert server_nodelay(*held) == 0, "TCP_NODELAY set before any answer"
        c.send(b"\r\n")
        assert c.read_response().body == b"first"
        assert server_nodelay(*held) != 0, "keep-alive connection without TCP_NODELAY"


def test_answers_written_back_to_back_are_not_held_by_nagle(server):
    """A delayed answer and the request pipelined behind it go out in two writes;
    without TCP_NODELAY the second waits for the client's delayed ACK of the first
    (40 ms on Linux) every time."""
    rounds = 25
    with Conn(server.port) as c:
        c.send(build_request("GET", "/a"))
        assert c.read_response().body == b"first"
        t0 = time.monotonic()
        for i in range(rounds):
            c.send(build_request("GET", "/later") + build_request("GET", "/b"))
            assert c.read_response().body == b"later", f"round {i}"
            assert c.read_response().body == b"second", f"round {i}"
        took = time.monotonic() - t0
    # With Nagle: >= 25 x 40 ms = 1 s. Without: a few ms per round.
    assert took < 0.6, f"{rounds} rounds of two back-to-back answers took {took:.2f} s"


# --------------------------------------------------------------------------
# accepting
# --------------------------------------------------------------------------

def test_one_accept_call_per_connection(server, tmp_path):
    """A worker accepts one connection per readiness of its listener, as nginx
    does without multi_accept: accepting until EAGAIN cost a failed accept4 per
    wakeup, about one a connection under `ab` without keep-alive, and doubled the
    wakeups (see Worker::onAcceptable)."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    pids = server.worker_pids()
    trace = tmp_path / "accept.strace"
    args = ["strace", "-f", "-qq", "-e", "trace=accept4", "-o", str(trace)]
    for pid in pids:
        args += ["-p", str(pid)]
    tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def traced():
            for pid in pids:
                with open(f"/proc/{pid}/status") as f:
                    if "TracerPid:\t0\n" in f.read():
                        return False
            return True
        wait_until(traced, 10, message="strace attached to every worker")
        requests = 2000
        out = run_ab(["-n", str(requests), "-c", "8"], f"http://127.0.0.1:{server.port}/a")
        assert ab_field(out, "Complete requests") == requests, out
        assert ab_field(out, "Failed requests") == 0, out
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    # A call the other worker interrupted is split: "accept4(... <unfinished ...>"
    # then "<... accept4 resumed> ...) = 12"; the result is on the second line.
    results = [m for m in (re.search(r"accept4.*\) += (-?\d+)", line)
                           for line in trace.read_text().splitlines()) if m]
    accepted = sum(1 for m in results if int(m.group(1)) >= 0)
    failed = [m.group(0) for m in results if int(m.group(1)) < 0]
    assert accepted >= requests, f"{accepted} accepts traced for {requests} connections"
    # A failed accept needs a connection gone between readiness and accept (a reset).
    assert len(failed) <= requests // 100, f"{len(failed)} failed accept4 calls: {failed[:3]}"

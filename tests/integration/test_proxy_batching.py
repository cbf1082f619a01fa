"""What one wakeup of a worker brought leaves together.

A worker that finds several proxied requests ready in one wakeup reads them
all, then sends them upstream; one that finds several upstream responses ready
reads them all, then answers the clients. Sending each as soon as it is read
would wake the peer once per request and let it preempt the worker between
two of them, which costs more CPU per request than the reads and writes do.
The sends of a batch go in one io_uring_enter (a send() each where io_uring
is unavailable).

The worker is held with SIGSTOP while the bytes arrive, so the batch is known,
and traced with strace, whose -yy names each socket's two ends."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import Conn, build_request, wait_until
from test_proxy import proxy_config

CLIENTS = 4
DELAY_MS = 1000  # the upstream's answer time: long enough to hold the worker meanwhile

SYSCALL = re.compile(r"^(read|write|writev|readv|recvfrom|sendto)\((\d+)<TCP:\["
                     r"[\d.]+:(\d+)->[\d.]+:(\d+)\]>")
# io_uring_enter(fd<anon_inode:[io_uring]>, to_submit, ...)
ENTER = re.compile(r"^io_uring_enter\(\d+<anon_inode:\[io_uring\]>, (\d+),")


def classify(trace, phalanx_port, upstream_port):
    """The trace's socket reads and writes as (direction, side, fd): side is
    "client" or "upstream" by the socket's ports; an io_uring submit as
    ("write", "batch", sends submitted)."""
    events = []
    for line in trace.splitlines():
        m = ENTER.match(line)
        if m and int(m.group(1)) > 0:
            events.append(("write", "batch", int(m.group(1))))
            continue
        m = SYSCALL.match(line)
        if not m or "= -1" in line:
            continue
        call, fd, local, remote = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        side = ("client" if local == phalanx_port else
                "upstream" if remote == upstream_port else None)
        if side:
            events.append(("write" if call in ("write", "writev", "sendto") else "read", side, fd))
    return events


def test_a_wakeups_requests_and_answers_leave_after_its_reads(phalanx_factory, upstream_factory,
                                                              tmp_path):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    up = upstream_factory("u1")
    ph = phalanx_factory(proxy_config([up.address], workers=1))
    upstream_port = int(up.address.rsplit(":", 1)[1])
    (worker,) = ph.worker_pids()
    conns = [Conn(ph.port, timeout=10) for _ in range(CLIENTS)]
    try:
        # Each client's first request at once: the pool then holds CLIENTS
        # connections, so the traced requests go out on pooled ones (no connect).
        for c in conns:
            c.send(build_request("GET", "/delay?ms=300"))
        for c in conns:
            assert c.read_final().status == 200

        trace_path = tmp_path / "batch.strace"
        tracer = subprocess.Popen(["strace", "-qq", "-yy", "-s", "0", "-e",
                                   "trace=read,write,writev,readv,recvfrom,sendto,io_uring_enter",
                                   "-o", str(trace_path), "-p", str(worker)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def traced():
                with open(f"/proc/{worker}/status") as f:
                    return "TracerPid:\t0\n" not in f.read()
            wait_until(traced, 10, message="strace attached to the worker")

            os.kill(worker, signal.SIGSTOP)
            for i, c in enumerate(conns):
                c.send(build_request("GET", f"/delay?ms={DELAY_MS}&client={i}"))
            time.sleep(0.3)  # every request is in the worker's socket buffers
            os.kill(worker, signal.SIGCONT)
            # The worker sends the requests, then waits; held again before the
            # upstream answers, it finds every answer ready when let go.
            time.sleep(DELAY_MS / 1000 * 0.3)
            os.kill(worker, signal.SIGSTOP)
            time.sleep(DELAY_MS / 1000 + 0.3)
            os.kill(worker, signal.SIGCONT)
            for i, c in enumerate(conns):
                r = c.read_final()
                assert r.status == 200, r
                assert json.loads(r.body)["delayed_ms"] == DELAY_MS
        finally:
            os.kill(worker, signal.SIGCONT)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(10)
        events = classify(trace_path.read_text(), ph.port, upstream_port)
    finally:
        for c in conns:
            c.close()

    client_reads = [i for i, e in enumerate(events) if e[:2] == ("read", "client")]
    upstream_writes = [i for i, e in enumerate(events) if e[:2] == ("write", "upstream")]
    upstream_reads = [i for i, e in enumerate(events) if e[:2] == ("read", "upstream")]
    client_writes = [i for i, e in enumerate(events) if e[:2] == ("write", "client")]
    batches = [i for i, e in enumerate(events) if e[1] == "batch"]
    assert len(client_reads) >= CLIENTS and len(upstream_reads) >= CLIENTS, events
    if batches:
        # io_uring: the requests in one submit, the answers in another, and
        # no socket written to by a system call of its own.
        assert not upstream_writes and not client_writes, events
        assert [events[i][2] for i in batches] == [CLIENTS, CLIENTS], events
        assert client_reads[CLIENTS - 1] < batches[0] < upstream_reads[0], events
        assert upstream_reads[CLIENTS - 1] < batches[1], events
        return
    assert "sends: send() per socket" in ph.log(), "neither io_uring nor send() per socket"
    assert len(upstream_writes) == CLIENTS and len(client_writes) == CLIENTS, events
    # The requests: every client read before the first upstream write.
    assert client_reads[CLIENTS - 1] < upstream_writes[0], events
    # The answers: every upstream read before the first client write.
    assert upstream_reads[CLIENTS - 1] < client_writes[0], events
    assert upstream_writes[-1] < upstream_reads[0], events

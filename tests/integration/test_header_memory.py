"""What a client can make a worker hold per connection: header storage follows the
bytes received, and what a large request needed is given back once answered, so
thousands of connections that each sent 100 headers in 16 KB cost the workers
little (bug: 1,800 such connections per worker grew each past 500 MB and both
were recycled by the memory cap at once)."""

import socket
import time

from conftest import wait_until
from test_backpressure import without_asan_quarantine


def big_request(i):
    """100 header fields (Host included) in just under 16 KB."""
    head = [b"GET /a?c=%d HTTP/1.1" % i, b"Host: x"]
    head += [b"X-Pad-%02d: %s" % (n, b"v" * 148) for n in range(99)]
    return b"\r\n".join(head) + b"\r\n\r\n"


def rss_by_pid(ph):
    """Worker RSS as the master last sampled it into shared memory."""
    return {w["pid"]: w["rss_bytes"] for w in ph.status()["workers"] if w["pid"]}


def settled_rss(ph):
    """RSS after the master sampled it twice more (it samples every 500 ms)."""
    time.sleep(1.2)
    return rss_by_pid(ph)


def open_and_ask(ph, count):
    """`count` keep-alive connections, each answered once and left open."""
    request_bytes = 0
    conns = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", ph.port), timeout=10)
        data = big_request(i)
        request_bytes += len(data)
        s.sendall(data)
        conns.append(s)
    for s in conns:
        got = b""
        while b"\r\n\r\nfirst" not in got:
            chunk = s.recv(4096)
            assert chunk, "connection closed before its answer"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 "), got[:100]
    return conns, request_bytes


def test_big_header_requests_add_at_most_twice_their_bytes(phalanx_factory, monkeypatch):
    assert len(big_request(0)) <= 16384
    without_asan_quarantine(monkeypatch)
    ph = phalanx_factory(workers=2)
    before = settled_rss(ph)
    conns, wire = open_and_ask(ph, 200)
    try:
        after = settled_rss(ph)
        assert set(after) == set(before), "a worker was replaced"
        grown = sum(after[pid] - before[pid] for pid in before)
        assert grown <= 2 * wire, f"workers grew {grown} bytes for {wire} bytes of requests"
    finally:
        for s in conns:
            s.close()


def test_thousands_of_such_connections_do_not_trip_max_memory(phalanx_factory, monkeypatch):
    without_asan_quarantine(monkeypatch)
    ph = phalanx_factory(workers=2, extra={"supervisor": {"max_memory": "128M"}})
    before = settled_rss(ph)
    conns, wire = open_and_ask(ph, 3600)
    try:
        after = settled_rss(ph)
        assert set(after) == set(before), f"a worker was recycled:\n{ph.log()[-2000:]}"
        restarts = [w["restarts"] for w in ph.status()["workers"] if w["pid"]]
        assert all(r == 0 for r in restarts), restarts
        grown = max(after[pid] - before[pid] for pid in before)
        assert grown < 32 << 20, f"a worker grew {grown >> 20} MB"
    finally:
        for s in conns:
            s.close()
    # Both still serve, and the connections closed cleanly.
    wait_until(lambda: sum(w["connections"] for w in ph.status()["workers"] if w["pid"]) == 0, 10,
               message="connections closed")
    ph.assert_serving("/a")

"""Graceful stop as clients see it: busy keep-alive connections are told to
close (Connection: close) or closed with a FIN between requests, never reset."""

import signal
import socket
import threading
import time

from conftest import build_request


def keepalive_client(port, stop_at, outcome):
    """Sends requests back to back on one connection until it is closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    request = build_request(path="/")
    answered, closing_answers = 0, 0
    try:
        while time.monotonic() < stop_at:
            s.sendall(request)
            data = b""
            while b"\r\n\r\nok\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    outcome.append(("fin", answered, closing_answers))
                    return
                data += chunk
            answered += 1
            if b"Connection: close" in data:
                closing_answers += 1
                rest = s.recv(4096)  # the server closes after a Connection: close answer
                outcome.append(("closed-after-close" if not rest else "data-after-close",
                                answered, closing_answers))
                return
        outcome.append(("still-open", answered, closing_answers))
    except ConnectionResetError:
        outcome.append(("reset", answered, closing_answers))
    except OSError as e:
        outcome.append((f"error {e}", answered, closing_answers))
    finally:
        s.close()


def test_sigterm_under_keepalive_load_resets_nobody(phalanx_factory):
    """Bug: drain closed connections between requests with close(), so a request
    already in flight turned into ECONNRESET for every busy client."""
    ph = phalanx_factory(workers=2)
    outcome = []
    stop_at = time.monotonic() + 8
    threads = [threading.Thread(target=keepalive_client, args=(ph.port, stop_at, outcome))
               for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    ph.stop(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert len(outcome) == 16, outcome
    bad = [o for o in outcome if o[0] not in ("closed-after-close", "fin")]
    assert not bad, f"clients saw: {bad}"
    assert all(o[1] > 0 for o in outcome), f"some clients were never served: {outcome}"
    told = sum(1 for o in outcome if o[0] == "closed-after-close")
    assert told >= 12, f"only {told}/16 busy clients got a Connection: close answer: {outcome}"


def test_idle_keepalive_connection_gets_a_fin_on_drain(phalanx_factory):
    ph = phalanx_factory(workers=1)
    s = socket.create_connection(("127.0.0.1", ph.port), timeout=5)
    s.sendall(build_request(path="/"))
    assert b"200 OK" in s.recv(4096)
    t0 = time.monotonic()
    ph.stop(signal.SIGTERM)
    assert s.recv(4096) == b"", "expected a clean EOF"
    assert time.monotonic() - t0 < 3
    s.close()

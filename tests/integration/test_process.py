"""Master and workers: titles, per-slot SO_REUSEPORT sockets, signals, respawn."""

import os
import signal
import time

import pytest

from conftest import (MASTER_TITLE_PREFIX, Conn, build_request, children_of, free_port,
                      http_get, listening_inodes, pid_alive, proc_title, run, socket_inodes)


def test_worker_count_and_titles(phalanx_factory):
    ph = phalanx_factory(workers=3)
    master_title = proc_title(ph.pid)
    assert master_title.startswith(MASTER_TITLE_PREFIX), f"master title is {master_title!r}"
    workers = ph.workers()
    assert len(workers) == 3, f"expected 3 workers, got {workers}"
    assert sorted(slot for slot, _ in workers.values()) == [0, 1, 2], f"slots: {workers}"
    assert all(gen == 1 for _, gen in workers.values()), f"generation at start must be 1: {workers}"
    others = [p for p in children_of(ph.pid) if p not in workers]
    assert not others, f"master has children that are not workers: {[(p, proc_title(p)) for p in others]}"
    # ps shows the same titles
    ps = run(["ps", "-o", "pid=,args=", "-p", ",".join(str(p) for p in [ph.pid, *workers])], timeout=10)
    for pid, (slot, gen) in workers.items():
        assert f"phalanx: worker {slot} gen {gen}" in ps.stdout, f"ps does not show worker {pid}: {ps.stdout}"
    assert MASTER_TITLE_PREFIX in ps.stdout, f"ps does not show the master title: {ps.stdout}"


def test_workers_auto_is_one_per_core(phalanx_factory):
    ph = phalanx_factory(workers="auto")
    allowed = {os.cpu_count(), len(os.sched_getaffinity(0))}
    deadline = time.monotonic() + 5
    while len(ph.workers()) not in allowed and time.monotonic() < deadline:
        time.sleep(0.05)
    got = len(ph.workers())
    assert got in allowed, f'"workers": "auto" started {got} workers, expected one per core ({allowed})'


def _listen_holders(ph, port):
    inodes = listening_inodes(port)
    workers = ph.workers()
    held = {pid: socket_inodes(pid) & inodes for pid in workers}
    return inodes, workers, held


@pytest.mark.parametrize("nworkers", [1, 3])
def test_each_worker_holds_its_own_listening_socket(phalanx_factory, nworkers):
    ph = phalanx_factory(workers=nworkers)
    inodes, workers, held = _listen_holders(ph, ph.port)
    assert len(inodes) == nworkers, (f"expected {nworkers} listening sockets on port {ph.port} "
                                     f"(one SO_REUSEPORT socket per slot), /proc/net/tcp has {len(inodes)}")
    for pid, mine in held.items():
        assert len(mine) == 1, f"worker {pid} {workers[pid]} holds {len(mine)} listening sockets of the port, want 1"
    union = set().union(*held.values())
    assert union == inodes, f"listening sockets held by workers {held} != all sockets {inodes}"
    assert len(union) == nworkers, f"two workers share a listening socket: {held}"

    # cross-check with ss: N lines for the port, each held by a different worker pid
    ss = run(["ss", "-ltnpH", f"sport = :{ph.port}"], timeout=10)
    assert ss.returncode == 0, ss.stderr
    lines = [l for l in ss.stdout.splitlines() if l.strip()]
    assert len(lines) == nworkers, f"ss shows {len(lines)} listening sockets, want {nworkers}:\n{ss.stdout}"
    for pid in workers:
        assert f"pid={pid}," in ss.stdout, f"worker {pid} is not a holder in ss output:\n{ss.stdout}"


def test_master_keeps_every_listening_socket(phalanx_factory):
    ph = phalanx_factory(workers=2)
    inodes = listening_inodes(ph.port)
    assert inodes, "no listening socket"
    mine = socket_inodes(ph.pid) & inodes
    assert mine == inodes, f"the master should keep every slot's socket open; it holds {mine} of {inodes}"


def test_one_socket_per_slot_and_address(phalanx_factory):
    p1, p2 = free_port(), free_port()
    ph = phalanx_factory(workers=2, listen=[f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"])
    for port in (p1, p2):
        inodes, workers, held = _listen_holders(ph, port)
        assert len(inodes) == 2, f"port {port}: {len(inodes)} listening sockets, want 2"
        assert all(len(v) == 1 for v in held.values()), f"port {port}: holders {held}"
        assert set().union(*held.values()) == inodes, f"port {port}: holders {held}, sockets {inodes}"
        r = http_get(port, "/")
        assert r.status == 200 and r.body == b"ok\n", f"port {port}: {r!r}"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGINT-to-group"])
def test_signal_stops_everything(phalanx_factory, how):
    ph = phalanx_factory(workers=3)
    workers = ph.worker_pids()
    assert len(workers) == 3
    t0 = time.monotonic()
    if how == "SIGINT-to-group":  # what Ctrl-C in a terminal does
        os.killpg(ph.pid, signal.SIGINT)
        rc = ph.proc.wait(timeout=10)
    else:
        rc = ph.stop(getattr(signal, how), timeout=10)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"master exited with {rc} after {how}, want 0"
    assert elapsed < 5, f"idle shutdown took {elapsed:.1f}s"
    left = ph.leftovers()
    assert not left, f"processes left behind after {how}: {left}"
    for pid in workers:
        assert not pid_alive(pid), f"worker {pid} still alive after {how}"
    with pytest.raises(OSError):
        Conn(ph.port, timeout=1).close()


def test_sigterm_with_idle_keepalive_connection(phalanx_factory):
    """An idle keep-alive connection must not hold the shutdown back."""
    ph = phalanx_factory(workers=1)
    c = Conn(ph.port)
    c.send(build_request("GET", "/"))
    assert c.read_response().status == 200
    t0 = time.monotonic()
    rc = ph.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, f"master exited {rc}"
    assert time.monotonic() - t0 < 5, "an idle keep-alive connection delayed shutdown by 5s or more"
    closed, extra = c.wait_closed(2)
    assert closed, "idle connection still open after the server exited"
    c.close()
    assert not ph.leftovers(), f"leftovers: {ph.leftovers()}"


def test_sigterm_finishes_inflight_request(phalanx_factory):
    """A request whose body is still arriving when SIGTERM comes is answered, then all exit 0."""
    ph = phalanx_factory(workers=1)
    c = Conn(ph.port)
    c.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhello")
    time.sleep(0.2)
    os.kill(ph.pid, signal.SIGTERM)
    time.sleep(0.5)
    try:
        c.send(b"world")
        r = c.read_response(timeout=5)
    except OSError as e:
        pytest.fail(f"in-flight request was cut by SIGTERM: {e!r}")
    assert r.status == 200 and r.body == b"ok\n", f"in-flight request got {r!r}"
    c.close()
    rc = ph.proc.wait(timeout=10)
    assert rc == 0, f"master exited {rc}"
    assert not ph.leftovers(), f"leftovers: {ph.leftovers()}"


def test_killed_worker_is_respawned(phalanx_factory):
    ph = phalanx_factory(workers=2)
    by_slot = ph.worker_by_slot()
    victim, survivor = by_slot[0], by_slot[1]
    victim_sock = socket_inodes(victim) & listening_inodes(ph.port)
    all_socks = listening_inodes(ph.port)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 3
    new = None
    while time.monotonic() < deadline:
        slots = ph.worker_by_slot()
        if slots.get(0) not in (None, victim):
            new = slots[0]
            break
        time.sleep(0.05)
    assert new is not None, f"slot 0 not respawned within 3s after kill -9 of {victim}; workers {ph.workers()}"
    assert ph.worker_by_slot().get(1) == survivor, "the other worker was replaced too"
    assert victim not in ph.worker_pids()
    log = ph.log()
    assert str(victim) in log or "signal 9" in log or "SIGKILL" in log, \
        f"the master did not log the death of worker {victim}:\n{log}"
    # the replacement serves on the same slot socket, which was never closed
    deadline = time.monotonic() + 3
    while not (socket_inodes(new) & all_socks) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listening_inodes(ph.port) == all_socks, "the set of listening sockets changed across a respawn"
    assert socket_inodes(new) & all_socks == victim_sock, \
        "the replacement worker does not hold the slot's original listening socket"
    ph.assert_serving(tries=8)


def test_connection_queued_while_worker_is_dead_is_served(phalanx_factory):
    """The slot socket outlives its worker: a connection made while the slot has no
    worker waits in the backlog and the replacement answers it (it is not reset)."""
    ph = phalanx_factory(workers=1)
    victim = ph.worker_by_slot()[0]
    os.kill(victim, signal.SIGKILL)
    c = Conn(ph.port)  # lands in the backlog of the slot socket the master keeps open
    try:
        c.send(build_request("GET", "/a"))
        try:
            r = c.read_response(timeout=5)
        except OSError as e:
            pytest.fail(f"queued connection was reset/closed across the respawn: {e!r}")
        assert (r.status, r.body) == (200, b"first"), r
    finally:
        c.close()
    assert ph.worker_by_slot().get(0) not in (None, victim)

"""Supervision: respawn and its backoff, crash loops, memory caps, heartbeats,
max_requests. The real master and workers, real clients on loopback; every
bound is a deadline that is polled, never a sleep that hopes."""

import json
import os
import signal
import time

from conftest import (Conn, RequestLoop, build_request, conn_to_slot, ctl, listening_inodes, live_identity,
                      pid_alive, proc_stat, rows_of, supervised_config, wait_until)


def serving_pid(ph, slot):
    """The pid of the process serving `slot` in status (ready or errored, not
    draining), or None."""
    row = ph.serving_rows().get(slot)
    return row["pid"] if row else None


def new_pid_in_slot(ph, slot, known):
    """Polled: the pid of a process of `slot` that status lists and that is not in `known`."""
    for row in rows_of(ph.status(), slot):
        if row["pid"] and row["pid"] not in known:
            return row["pid"]
    return None


def slot_row_without_process(ph, slot):
    """Polled: `slot`'s status row with pid 0 (waiting to restart, errored), or None."""
    return next((r for r in rows_of(ph.status(), slot) if r["pid"] == 0), None)


def answer_from_slot(ph, slot, timeout=5.0):
    """/health/live over fresh connections until `slot` answers; returns its JSON."""
    def ask():
        ident = live_identity(ph.port)
        return ident if ident["worker"] == slot else None
    return wait_until(ask, timeout, interval=0, message=f"an answer from slot {slot}")


def wait_ready_row(ph, slot, pid, timeout=5.0):
    """Waits until status shows `pid` as `slot`'s worker in a serving state."""
    def ready():
        row = ph.serving_rows().get(slot)
        return row if row and row["pid"] == pid and row["state"] in ("ready", "errored") else None
    return wait_until(ready, timeout, message=lambda: f"pid {pid} serving slot {slot}: {ph.status()['workers']}")


# --------------------------------------------------------------------------


def test_killed_worker_is_replaced_and_the_new_pid_serves_within_500ms(phalanx_factory):
    ph = phalanx_factory(workers=2)
    by_slot = ph.worker_by_slot()
    victim, survivor = by_slot[0], by_slot[1]

    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    # Fresh connections land on either slot's socket; one that lands on slot 0
    # waits in its backlog (the master keeps the socket) and is answered by the
    # replacement. Ask until the replacement has answered.
    seen = []
    new = None
    while time.monotonic() - t0 < 0.5:
        try:
            ident = live_identity(ph.port, timeout=max(0.05, 0.5 - (time.monotonic() - t0)))
        except OSError as e:
            seen.append(repr(e))
            continue
        seen.append((ident["worker"], ident["pid"]))
        if ident["worker"] == 0:
            new = ident["pid"]
            break
    elapsed = time.monotonic() - t0
    assert new is not None, (f"no answer from slot 0 within 500 ms of kill -9 of its worker {victim} "
                             f"(answers: {seen}, status: {ph.status()['workers']})")
    assert new != victim, f"slot 0 answered from the killed pid {victim}"
    assert elapsed <= 0.5, f"the replacement answered {elapsed * 1000:.0f} ms after the kill, bound 500 ms"
    assert ph.worker_by_slot() == {0: new, 1: survivor}, \
        f"after the respawn: {ph.workers()}, want slot 0 = {new}, slot 1 = {survivor} (untouched)"
    assert not pid_alive(victim)
    row = wait_ready_row(ph, 0, new)
    assert row["restarts"] == 1 and row["last_exit"] == "signal 9 (Killed)", row
    assert ph.serving_rows()[1]["restarts"] == 0


def test_repeated_kills_back_off_exponentially_and_mark_the_slot_errored(phalanx_factory, phalanxctl_bin):
    base, factor, cap, max_unstable = 200, 2, 2000, 3
    ph = phalanx_factory(supervised_config(workers=2, supervisor={
        "restart_base_ms": base, "restart_factor": factor, "restart_max_ms": cap,
        "max_unstable_restarts": max_unstable, "min_uptime_ms": 60000}))
    by_slot = ph.worker_by_slot()
    survivor = by_slot[1]
    pid = by_slot[0]
    known = {pid}
    delays = []
    for kill in range(1, 6):
        wait_ready_row(ph, 0, pid)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        if kill == 4:
            # Four fast exits in a row, more than max_unstable_restarts: while it
            # waits, the slot shows errored with the time to its next try.
            row = wait_until(lambda: slot_row_without_process(ph, 0), 1.0, interval=0.005,
                             message="slot 0's row without a process")
            assert row["state"] == "errored", f"after {kill} fast kills: {row}"
            assert row["unstable_restarts"] > max_unstable and row["restarts"] == kill, row
            assert 0 < row["restart_in_ms"] <= cap, row
            table = ctl(phalanxctl_bin, ph, "status")
            assert table.returncode == 0, table.stderr
            line = next((l for l in table.stdout.splitlines() if l.split()[:2] == ["0", "-"]), "")
            assert "errored" in line, f"phalanxctl status does not show slot 0 errored:\n{table.stdout}"
        new = wait_until(lambda: new_pid_in_slot(ph, 0, known), cap / 1000 + 2.0, interval=0.005,
                         message=f"a new worker in slot 0 after kill #{kill}")
        delays.append(time.monotonic() - t0)
        known.add(new)
        pid = new

    # min(base * factor^n, cap) with n the fast exits before; past
    # max_unstable_restarts the slot is errored and retried at the cap.
    expected = [0.2, 0.4, 0.8, 2.0, 2.0]
    got = ", ".join(f"{d * 1000:.0f}" for d in delays)
    for i, (d, e) in enumerate(zip(delays, expected)):
        what = f"respawn #{i + 1} came after {d * 1000:.0f} ms (all: {got} ms)"
        assert d >= e - 0.01, f"{what}, before its {e * 1000:.0f} ms backoff"
        assert d <= e * 1.5 + 0.3, f"{what}, expected ~{e * 1000:.0f}"
    for i in range(3):
        assert delays[i + 1] >= delays[i] * 1.6, f"backoff does not grow by ~{factor}x: {got} ms"
    assert delays[4] < 3.2 - 0.3, f"the errored slot is retried past restart_max_ms: {got} ms"

    # The errored slot's new worker serves, and the slot stays errored until it
    # has been up min_uptime_ms.
    row = wait_ready_row(ph, 0, pid)
    assert row["state"] == "errored" and row["unstable_restarts"] == 5 and row["restarts"] == 5, row
    ident = answer_from_slot(ph, 0)
    assert ident["pid"] == pid, ident
    table = ctl(phalanxctl_bin, ph, "status")
    line = next((l for l in table.stdout.splitlines() if l.split()[:2] == ["0", str(pid)]), "")
    assert line.split()[3:4] == ["errored"], f"phalanxctl status, slot 0 pid {pid}:\n{table.stdout}"
    assert ph.worker_by_slot()[1] == survivor and ph.serving_rows()[1]["state"] == "ready", \
        f"slot 1 was disturbed: {ph.status()['workers']}"


def test_new_connections_never_hang_while_a_slot_waits_a_long_backoff(phalanx_factory):
    ph = phalanx_factory(supervised_config(workers=2, supervisor={"restart_base_ms": 3000}))
    assert len(listening_inodes(ph.port)) == 2
    victim = ph.worker_by_slot()[0]
    os.kill(victim, signal.SIGKILL)
    t_kill = time.monotonic()
    row = wait_until(lambda: slot_row_without_process(ph, 0), 2.0, message="slot 0 waiting to restart")
    assert row["state"] == "waiting-restart" and row["restart_in_ms"] > 2000, row
    # The waiting slot's socket is closed: the kernel hands new connections to slot 1.
    assert len(listening_inodes(ph.port)) == 1, \
        f"slot 0 still has a listening socket while it waits 3 s: {listening_inodes(ph.port)}"

    slow = []
    for i in range(50):
        t0 = time.monotonic()
        ident = live_identity(ph.port, timeout=1.0)
        took = time.monotonic() - t0
        assert ident["worker"] == 1, ident
        if took > 1.0:
            slow.append((i, took))
    assert not slow, f"requests over 1 s while slot 0 waits: {slow}"
    # All 50 ran during the wait (else this test proved nothing).
    still = rows_of(ph.status(), 0)
    assert [r["pid"] for r in still] == [0] and still[0]["restart_in_ms"] > 0, \
        f"slot 0 was respawned before the 50 requests were done: {still}"

    # Then its sockets are reopened and the respawned worker serves.
    new = wait_until(lambda: new_pid_in_slot(ph, 0, {victim}), 5.0, message="slot 0 respawned")
    assert time.monotonic() - t_kill >= 2.9
    wait_until(lambda: len(listening_inodes(ph.port)) == 2, 3.0, message="slot 0's socket reopened")
    wait_ready_row(ph, 0, new)
    assert answer_from_slot(ph, 0)["pid"] == new


def test_connections_queued_on_a_slot_that_starts_a_long_wait_are_served_by_the_others(
        phalanx_factory):
    """The master turns on net.ipv4.tcp_migrate_req (we run as root): when a
    waiting slot's socket closes, what was queued on it moves to the others."""
    ph = phalanx_factory(supervised_config(workers=2, supervisor={"restart_base_ms": 3000}))
    with open("/proc/sys/net/ipv4/tcp_migrate_req") as f:
        assert f.read().strip() == "1", "the master did not turn on tcp_migrate_req"
    victim = ph.worker_by_slot()[0]
    os.kill(victim, signal.SIGSTOP)  # it stops accepting: its socket's queue fills
    conns = []
    try:
        for _ in range(40):
            c = Conn(ph.port, timeout=5.0)
            c.send(build_request("GET", "/health/live"))
            conns.append(c)
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        answered = {}
        for c in conns:
            r = c.read_response()
            assert r.status == 200, r.status
            answered[json.loads(r.body)["worker"]] = answered.get(json.loads(r.body)["worker"], 0) + 1
        took = time.monotonic() - t0
    finally:
        for c in conns:
            c.close()
    # Every request came back from slot 1, well before slot 0's 3 s respawn.
    assert set(answered) == {1}, answered
    assert took < 1.0, f"the queued connections took {took:.2f}s"


def test_memory_cap_recycles_workers_gracefully(phalanx_factory):
    # Measure a worker's RSS here, then run with a cap just below it.
    probe = phalanx_factory(workers=2, extra={"supervisor": {"max_memory": "off"}})
    for _ in range(20):
        live_identity(probe.port)
    def sampled_rss():
        rss = [r["rss_bytes"] for r in probe.serving_rows().values()]
        return rss if len(rss) == 2 and all(rss) else None
    rss = wait_until(sampled_rss, 5.0, message="RSS samples in status")
    assert probe.stop() == 0
    # RSS differs by a hundred KiB or so from one worker to the next (file
    # pages of the binary): 512 KiB below the smallest is below every one.
    cap_k = min(rss) // 1024 - 512
    assert cap_k > 1024, f"implausible worker RSS {rss}"
    ph = phalanx_factory(supervised_config(workers=2, supervisor={
        "max_memory": f"{cap_k}K", "restart_base_ms": 200, "restart_factor": 1.5,
        "restart_max_ms": 1000}))
    first = ph.worker_pids()

    with RequestLoop(ph.port, keepalive=2, fresh=1) as load:
        # Every worker is over the cap: each slot is replaced over and over,
        # with growing delays (not in a tight loop).
        def recycled_twice():
            st = ph.status()
            rows = {w["slot"]: w for w in st["workers"] if w["pid"] and w["state"] != "draining"}
            return st if len(rows) == 2 and all(r["restarts"] >= 2 for r in rows.values()) else None
        st = wait_until(recycled_twice, 20.0, interval=0.1,
                        message=lambda: f"two memory recycles per slot: {ph.status()['workers']}")
    assert load.ok > 100, f"the client loop made only {load.ok} requests"
    assert not load.failures, f"{len(load.failures)} failed requests while recycling: {load.failures[:10]}"
    for w in st["workers"]:
        assert w["last_exit"] == "memory", f"last_exit of a recycled slot: {w}"
    assert not (first & ph.worker_pids()), "the first workers were never replaced"
    assert st["totals"]["restarts"] >= 4, st["totals"]
    # Growing delays: a few recycles in this time, not hundreds.
    assert st["totals"]["restarts"] < 40, f"recycled in a tight loop: {st['totals']}"
    assert ph.running()


def test_stopped_worker_is_replaced_after_the_heartbeat_timeout(phalanx_factory):
    ph = phalanx_factory(supervised_config(workers=2, supervisor={"heartbeat_timeout_ms": 1500}))
    by_slot = ph.worker_by_slot()
    victim, survivor = by_slot[0], by_slot[1]
    other = conn_to_slot(ph.port, 1)
    try:
        os.kill(victim, signal.SIGSTOP)
        t0 = time.monotonic()
        wait_until(lambda: (proc_stat(victim) or ("?",))[0] == "T", 2.0, interval=0.005,
                   message=f"worker {victim} stopped")
        # From now on: the keep-alive connection to slot 1 must keep answering
        # promptly, and fresh connections must all be answered (those queued on
        # slot 0's socket by its replacement).
        with RequestLoop(ph.port, path="/health/live", keepalive=0, fresh=1, timeout=10.0) as fresh:
            slow = []
            settled = None
            while time.monotonic() - t0 < 6.0:
                t1 = time.monotonic()
                ident = live_identity(ph.port, timeout=2.0, conn=other)
                if time.monotonic() - t1 > 0.5:
                    slow.append(round(time.monotonic() - t1, 3))
                assert ident["pid"] == survivor, ident
                # Replaced: the stopped process is gone and slot 0 has one ready
                # worker, a new one, whose slot says why the last one left.
                rows = rows_of(ph.status(), 0)
                if (not pid_alive(victim) and len(rows) == 1 and rows[0]["pid"] not in (0, victim)
                        and rows[0]["state"] == "ready" and rows[0]["last_exit"] == "heartbeat"):
                    settled = rows[0]
                    break
                time.sleep(0.02)
            replaced_after = time.monotonic() - t0
            assert settled is not None, (f"stopped worker {victim} not replaced within 6 s (alive: "
                                         f"{pid_alive(victim)}): {ph.status()['workers']}")
            # ~1.5 s to notice, SIGABRT, SIGKILL 1 s later if it is still there.
            assert 1.0 <= replaced_after <= 1.5 + 1.0 + 1.0, f"replaced after {replaced_after:.2f} s"
            assert not slow, f"slot 1 answered slowly while slot 0 was stopped: {slow}"
            assert settled["restarts"] == 1, settled
            assert ph.worker_by_slot() == {0: settled["pid"], 1: survivor}, ph.workers()
            wait_until(lambda: fresh.ok >= 5, 5.0, message="fresh requests after the replacement")
        assert not fresh.failures, f"fresh requests failed: {fresh.failures[:10]}"
        for _ in range(3):
            assert live_identity(ph.port, conn=other)["pid"] == survivor
    finally:
        other.close()
        if pid_alive(victim):
            os.kill(victim, signal.SIGKILL)
    assert "heartbeat" in ph.log()


def test_max_requests_recycles_one_slot_at_a_time(phalanx_factory):
    ph = phalanx_factory(supervised_config(workers=2, supervisor={
        "max_requests": 200, "max_requests_jitter": 50}))
    first = ph.worker_by_slot()
    samples = []
    problems = []
    with RequestLoop(ph.port, keepalive=1, fresh=1) as load:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = ph.status()
            samples.append(st)
            starting = {w["slot"] for w in st["workers"] if w["pid"] and w["state"] == "starting"}
            ready = {w["slot"] for w in st["workers"] if w["pid"] and w["state"] == "ready"}
            if len(starting) > 1:
                problems.append(f"both slots have a replacement starting: {st['workers']}")
            if ready != {0, 1}:
                problems.append(f"a slot without a ready worker: {st['workers']}")
            both = all(w["last_exit"] == "max_requests" for w in st["workers"] if w["pid"])
            if load.count >= 1000 and both and st["totals"]["restarts"] >= 3:
                break
            time.sleep(0.01)
    assert not problems, f"{len(problems)} bad samples of {len(samples)}, first: {problems[:3]}"
    assert load.count >= 1000, f"only {load.count} requests within 60 s"
    assert not load.failures, f"{len(load.failures)} failed requests: {load.failures[:10]}"
    st = ph.status()
    assert {w["slot"]: w["last_exit"] for w in st["workers"] if w["state"] != "draining"} == \
        {0: "max_requests", 1: "max_requests"}, st["workers"]
    assert st["totals"]["restarts"] >= 3
    now = ph.worker_by_slot()
    assert now[0] != first[0] and now[1] != first[1], f"workers {first} -> {now}"

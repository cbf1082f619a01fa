"""Reload: SIGHUP and `reload` under load cost no request; a bad config, a
worker that cannot start, or a changed listen address leave the running
generation serving; the worker count set at run time survives."""

import copy
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import (DEFAULT_ROUTES, Conn, Phalanx, deploy, ab_field, build_request, children_of, ctl, free_port,
                      http_get,
                      listening_inodes, live_identity, parse_wrk, pid_alive, rewrite_config,
                      socket_inodes,
                      supervised_config, wait_until)


def generation(ph):
    return ph.status()["master"]["generation"]


def wait_generation(ph, gen, timeout=15.0):
    """Waits until the master serves generation `gen` with every slot's worker of it ready."""
    def done():
        st = ph.status()
        rows = [w for w in st["workers"] if w["pid"] and w["state"] != "draining"]
        return (st if st["master"]["generation"] == gen and len(rows) == st["master"]["workers"]
                and all(w["generation"] == gen and w["state"] == "ready" for w in rows) else None)
    return wait_until(done, timeout, message=lambda: f"generation {gen} serving: {ph.status()}")


def serving_pids(ph):
    return {w["pid"] for w in ph.serving_rows().values()}


def hup_reloads(ph, count, until_alive, gap=0.3):
    """SIGHUP `count` times, each once the previous reload is done, while
    `until_alive()` holds; returns how many completed."""
    done = 0
    gen = generation(ph)
    for _ in range(count):
        if not until_alive():
            break
        time.sleep(gap)
        os.kill(ph.pid, signal.SIGHUP)
        gen += 1
        wait_generation(ph, gen)
        done += 1
    return done


# --------------------------------------------------------------------------
# under load


def five_reloads_while(ph, client, gap):
    """Five HUP reloads while `client` (a Popen) runs; returns its output once
    it exited 0, having run through all five."""
    try:
        done = hup_reloads(ph, 5, lambda: client.poll() is None, gap=gap)
        still_running = client.poll() is None
        out, _ = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert done == 5 and still_running, f"only {done} reloads finished while the client ran:\n{out}"
    assert client.returncode == 0, f"the client exited {client.returncode}:\n{out}"
    return out


def test_five_sighups_under_wrk_keepalive_load_lose_nothing(phalanx_factory):
    ph = phalanx_factory(workers=2)
    wrk = subprocess.Popen(["wrk", "-t2", "-c64", "-d8s", "--timeout", "5s",
                            f"http://127.0.0.1:{ph.port}/"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)  # load first, then the reloads in the middle of it
    out = five_reloads_while(ph, wrk, gap=0.6)
    res = parse_wrk(out)
    assert res["requests"] and res["requests"] > 5000, f"wrk made too few requests:\n{out}"
    assert res["socket_errors"] == (0, 0, 0, 0), \
        f"socket errors (connect, read, write, timeout) during reloads:\n{out}"
    assert res["non2xx"] == 0, f"non-2xx answers during reloads:\n{out}"
    st = ph.status()
    assert st["master"]["generation"] == 6 and st["master"]["reloads"] == {"ok": 5, "failed": 0}, st["master"]
    assert st["master"]["last_reload"]["result"] == "ok"


def test_five_sighups_under_ab_without_keepalive_lose_nothing(phalanx_factory):
    # Each answer takes 5 ms: 32 requests are always in flight, and the run lasts
    # at least 20000 / 32 * 5 ms = 3.1 s, whatever the machine's speed.
    routes = [{"path": "/paced", "static": {"status": 200, "body": "paced", "delay_ms": 5}}]
    ph = phalanx_factory(supervised_config(workers=2, routes=DEFAULT_ROUTES + routes))
    ab = subprocess.Popen(["ab", "-q", "-s", "10", "-n", "20000", "-c", "32", f"http://127.0.0.1:{ph.port}/paced"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # ab has no duration: start the reloads as soon as it has made some requests.
    try:
        wait_until(lambda: ph.status()["totals"]["requests"] > 500 or ab.poll() is not None, 10.0,
                   interval=0.01, message="ab under way")
    except AssertionError:
        ab.kill()
        ab.wait()
        raise
    out = five_reloads_while(ph, ab, gap=0.2)
    assert ab_field(out, "Complete requests") == 20000, out
    assert ab_field(out, "Failed requests") == 0, f"failed requests during reloads:\n{out}"
    assert "Non-2xx" not in out, f"non-2xx answers during reloads:\n{out}"
    assert ab_field(out, "Document Length") == 5, out
    assert generation(ph) == 6


def test_old_generations_drain_and_exit_on_their_own(phalanx_factory):
    """Bug: the check that reloads also SIGKILLed the old workers it had just told
    to drain ("still draining past drain_timeout_ms" with a 30 s drain timeout)
    whenever the clock ticked a millisecond within that check: `now` was read
    before the drain stamped its own, later time, and now - signaled_ms wrapped
    around. Every connection of those workers was reset."""
    ph = phalanx_factory(workers=4)  # more to drain per reload: more chances to hit it
    for gen in range(2, 22):
        answer = ph.control("reload")
        assert answer["ok"] and answer["generation"] == gen, answer
    wait_generation(ph, 21)
    wait_until(lambda: len(ph.workers()) == 4, 10.0, message="the old generations gone")
    log = ph.log()
    drained = [l for l in log.splitlines() if "drained (reload" in l]
    killed = [l for l in log.splitlines() if "SIGKILL" in l or "signal Killed" in l]
    assert not killed, "old workers were killed instead of draining:\n" + "\n".join(killed)
    assert len(drained) == 80 and all("code 0" in l for l in drained), "\n".join(drained)


def test_a_reload_is_answered_once_the_old_workers_closed_their_sockets(phalanx_factory):
    """Bug: the answer went out as the old workers were sent SIGTERM. An old
    worker shares its slot's socket with the new one until it closes its copy,
    so a client that connected right after `reload` returned could still be
    accepted by the old generation (a 404 for a route the reload added). An old
    worker held in SIGSTOP for 0.5 s makes that window wide: the answer has to
    wait for it."""
    import threading
    ph = phalanx_factory()
    port = ph.port
    old = sorted(serving_pids(ph))
    listening = listening_inodes(port)
    held = old[0]
    assert listening & socket_inodes(held), "the worker holds its slot's socket"
    os.kill(held, signal.SIGSTOP)
    resume = threading.Timer(0.5, os.kill, (held, signal.SIGCONT))
    resume.start()
    try:
        started = time.monotonic()
        answer = ph.control("reload")
        waited = time.monotonic() - started
        assert answer["ok"] and answer["generation"] == 2, answer
        for pid in old:
            assert not (listening & socket_inodes(pid)), \
                f"old worker {pid} still holds the listening socket after the reload answered"
        assert waited >= 0.4, f"answered {waited:.3f} s after, while an old worker was stopped"
    finally:
        resume.cancel()
        if pid_alive(held):
            os.kill(held, signal.SIGCONT)
    wait_generation(ph, 2)


# --------------------------------------------------------------------------
# what a reload refuses, and what survives it


@pytest.mark.parametrize("breakage", ["invalid-json", "field-error"])
def test_broken_config_keeps_the_workers_then_the_fixed_one_reloads(phalanx_factory, phalanxctl_bin, breakage):
    ph = phalanx_factory(workers=2)
    good = copy.deepcopy(ph.config)
    before = ph.worker_pids()
    if breakage == "invalid-json":
        rewrite_config(ph, '{"listen": ["127.0.0.1:1"], "workers": 2,')
        expect = os.path.basename(ph.config_path)
    else:
        bad = copy.deepcopy(good)
        bad["limits"] = {"max_header_bytes": "big"}
        rewrite_config(ph, bad)
        expect = "limits.max_header_bytes"

    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 1, f"phalanxctl reload of a broken config exited {res.returncode}: {res.stderr}"
    assert expect in res.stderr and ph.config_path in res.stderr, \
        f"the config error (naming {ph.config_path} and {expect!r}) is not on stderr: {res.stderr!r}"
    error = ph.control("reload")
    assert error["ok"] is False and expect in error["error"], error
    # SIGHUP takes the same path.
    os.kill(ph.pid, signal.SIGHUP)
    def third_failure():
        st = ph.status()
        return st if st["master"]["reloads"]["failed"] == 3 else None
    st = wait_until(third_failure, 5.0, message="the third failed reload in status")
    assert st["master"]["generation"] == 1 and st["master"]["reloads"]["ok"] == 0, st["master"]
    last = st["master"]["last_reload"]
    assert last["result"] == "failed" and expect in last["error"] and last["at_ms"] > 0, last
    assert ph.worker_pids() == before, "a failed reload touched the workers"
    assert {w["pid"] for w in st["workers"]} == before and all(w["state"] == "ready" for w in st["workers"])
    ph.assert_serving(tries=6)
    assert "reload failed" in ph.log()

    rewrite_config(ph, good)
    res = ctl(phalanxctl_bin, ph, "reload", "--json")
    assert res.returncode == 0, f"reload of the fixed config: {res.returncode} {res.stdout} {res.stderr}"
    st = wait_generation(ph, 2)
    assert st["master"]["last_reload"]["result"] == "ok" and st["master"]["last_reload"]["error"] == ""
    assert st["master"]["reloads"] == {"ok": 1, "failed": 3}
    new = serving_pids(ph)
    assert len(new) == 2 and not (new & before), f"old {before}, new {new}"
    wait_until(lambda: not any(pid_alive(p) for p in before), 5.0, message="the old generation gone")
    for _ in range(6):
        ident = live_identity(ph.port)
        assert ident["generation"] == 2 and ident["pid"] in new, ident


def test_slow_request_in_flight_across_a_reload_completes(phalanx_factory):
    ph = phalanx_factory(supervised_config(workers=1))
    old = ph.worker_by_slot()[0]
    with Conn(ph.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(build_request("GET", "/slow"))
        wait_until(lambda: ph.serving_rows()[0]["connections"] >= 1, 2.0, message="the slow request accepted")
        answer = ph.control("reload")
        reload_took = time.monotonic() - t0
        assert answer["ok"] and answer["generation"] == 2, answer
        assert reload_took < 1.8, f"the reload waited {reload_took:.2f}s for the in-flight request"
        assert pid_alive(old), "the old worker left with a request in flight"
        r = c.read_response(timeout=10)
        took = time.monotonic() - t0
        assert (r.status, r.body) == (200, b"slow"), r
        assert took >= 1.95, f"the 2 s route answered after {took:.2f}s"
        assert (r.header("Connection") or "").lower() == "close", f"a draining worker must close: {r!r}"
        closed, extra = c.wait_closed(3)
        assert closed and not extra, (closed, extra)
    wait_until(lambda: not pid_alive(old), 5.0, message=f"old worker {old} gone after its last request")
    assert live_identity(ph.port)["generation"] == 2


def test_slow_request_in_flight_at_sigterm_completes_and_the_master_exits_0(phalanx_factory):
    ph = phalanx_factory(supervised_config(workers=1))
    with Conn(ph.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(build_request("GET", "/slow"))
        wait_until(lambda: ph.serving_rows()[0]["connections"] >= 1, 2.0, message="the slow request accepted")
        os.kill(ph.pid, signal.SIGTERM)
        r = c.read_response(timeout=10)
        took = time.monotonic() - t0
        assert (r.status, r.body) == (200, b"slow"), r
        assert took >= 1.95, took
        assert (r.header("Connection") or "").lower() == "close", r
    assert ph.proc.wait(timeout=10) == 0
    assert not ph.leftovers()


# --------------------------------------------------------------------------
# a new generation that cannot start


@pytest.mark.parametrize("how", ["exits", "never-ready"])
def test_new_generation_that_cannot_get_ready_aborts_the_reload(own_binary_phalanx, phalanx_bin,
                                                                phalanxctl_bin, how):
    cfg = supervised_config(workers=2, supervisor={"ready_timeout_ms": 1500})
    ph = own_binary_phalanx(cfg)
    before = ph.worker_by_slot()
    if how == "exits":
        deploy(ph.binary, "#!/bin/sh\necho 'broken build' >&2\nexit 1\n")
        expect = "before it was ready"
    else:
        deploy(ph.binary, "#!/bin/sh\nexec sleep 30\n")
        expect = "ready_timeout_ms"

    t0 = time.monotonic()
    res = ctl(phalanxctl_bin, ph, "reload")
    took = time.monotonic() - t0
    assert res.returncode == 1, f"reload with workers that cannot start: exit {res.returncode} {res.stdout}"
    assert expect in res.stderr, f"the reason ({expect!r}) is not on stderr: {res.stderr!r}"
    if how == "never-ready":
        assert 1.4 <= took <= 5, f"ready_timeout_ms is 1500 ms; the reload failed after {took:.2f}s"
    st = ph.status()
    assert st["master"]["generation"] == 1 and st["master"]["last_reload"]["result"] == "failed", st["master"]
    assert expect in st["master"]["last_reload"]["error"], st["master"]
    assert ph.worker_by_slot() == before, f"old generation changed: {before} -> {ph.workers()}"
    # The failed new workers are gone (killed), not left behind.
    wait_until(lambda: len(children_of(ph.pid)) == 2 and
               sorted((w["slot"], w["pid"], w["state"]) for w in ph.status()["workers"]) ==
               [(0, before[0], "ready"), (1, before[1], "ready")], 5.0,
               message=lambda: f"only the old workers left: {children_of(ph.pid)}, {ph.status()['workers']}")
    for _ in range(6):
        ident = live_identity(ph.port)
        assert ident["generation"] == 1 and ident["pid"] in before.values(), ident

    # Deploy a working binary again: the reload goes through.
    deploy(ph.binary, source=phalanx_bin)
    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 0, res.stderr
    wait_generation(ph, 3)


# --------------------------------------------------------------------------
# the worker count


def test_scaled_count_survives_a_reload_unless_the_reload_changes_workers(phalanx_factory):
    ph = phalanx_factory(workers=2)
    assert ph.control("scale 3") == {"version": 1, "ok": True, "workers": 3}
    wait_generation(ph, 1)
    assert len(ph.wait_workers(3)) == 3

    os.kill(ph.pid, signal.SIGHUP)
    st = wait_generation(ph, 2)
    assert st["master"]["workers"] == 3
    ws = ph.wait_workers(3)
    wait_until(lambda: set(ph.workers().values()) == {(0, 2), (1, 2), (2, 2)}, 5.0,
               message=lambda: f"three workers of generation 2: {ph.workers()}")
    assert len(listening_inodes(ph.port)) == 3

    cfg = copy.deepcopy(ph.config)
    cfg["workers"] = 1
    rewrite_config(ph, cfg)
    answer = ph.control("reload")
    assert answer == {"version": 1, "ok": True, "generation": 3, "workers": 1}, answer
    st = wait_generation(ph, 3)
    assert st["master"]["workers"] == 1
    wait_until(lambda: set(ph.workers().values()) == {(0, 3)}, 5.0,
               message=lambda: f"one worker of generation 3: {ph.workers()}")
    assert not any(pid_alive(p) for p in ws), "workers of generation 2 left behind"
    wait_until(lambda: len(listening_inodes(ph.port)) == 1, 3.0, message="the sockets of slots 1 and 2 closed")
    ph.assert_serving()


# --------------------------------------------------------------------------
# regressions found in review


def test_failed_reload_that_adds_workers_leaves_no_socket_nobody_accepts_on(
        own_binary_phalanx, phalanx_bin, phalanxctl_bin):
    """The reload opened sockets for slots 1 and 2, then failed: they must be
    closed again, or the kernel queues a share of new connections where no
    worker will ever accept them."""
    cfg = supervised_config(workers=1, supervisor={"ready_timeout_ms": 1000})
    ph = own_binary_phalanx(cfg)
    assert len(listening_inodes(ph.port)) == 1
    rewrite_config(ph, dict(ph.config, workers=3))
    deploy(ph.binary, "#!/bin/sh\nexec sleep 30\n")
    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 1 and "ready_timeout_ms" in res.stderr, (res.returncode, res.stderr)
    # The master closed its copies before answering; the SIGKILLed workers'
    # copies go when the kernel has finished them, a few ms later.
    wait_until(lambda: len(listening_inodes(ph.port)) == 1, 3.0, message="orphan sockets closed")
    for _ in range(20):  # fresh connections: none may land on an orphan socket
        assert http_get(ph.port, "/", timeout=2.0).status == 200


def test_a_reload_asked_for_during_another_applies_the_file_as_it_is_then(
        own_binary_phalanx, phalanx_bin, phalanxctl_bin):
    """The second `reload` used to get the first one's answer, and its config
    (3 workers) was never applied."""
    ph = own_binary_phalanx(supervised_config(workers=1))
    # New workers take a second to start: the first reload is still running
    # when the second is asked for.
    slow = ph.binary + ".real"
    shutil.copy2(phalanx_bin, slow)
    deploy(ph.binary, f"#!/bin/sh\nsleep 1\nexec {slow} \"$@\"\n")
    first = subprocess.Popen([phalanxctl_bin, "-s", ph.control_path, "reload"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: any(w["generation"] == 2 for w in ph.status()["workers"]), 5.0,
               message="the first reload's workers starting")
    rewrite_config(ph, dict(ph.config, workers=3))
    second = ctl(phalanxctl_bin, ph, "reload", "--json")
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    answer = json.loads(second.stdout)
    assert answer["workers"] == 3 and answer["generation"] == 3, answer
    wait_generation(ph, 3)


def test_stop_refuses_new_connections_at_once_and_ignores_ttin(phalanx_factory):
    """During a graceful stop the master's copies of the listening sockets used
    to accept (and later reset) new connections, and a TTIN started a worker
    that never got SIGTERM, holding the stop until shutdown_timeout_ms."""
    ph = phalanx_factory(supervised_config(workers=2, supervisor={"shutdown_timeout_ms": 20000}))
    c = Conn(ph.port, timeout=10.0)
    c.send(build_request("GET", "/slow"))
    wait_until(lambda: sum(w["connections"] for w in ph.status()["workers"]) >= 1, 3.0,
               message="the slow request in flight")
    t0 = time.monotonic()
    os.kill(ph.pid, signal.SIGTERM)
    wait_until(lambda: not listening_inodes(ph.port), 2.0,
               message=lambda: f"no listening socket left: {listening_inodes(ph.port)}")
    os.kill(ph.pid, signal.SIGTTIN)
    with pytest.raises(ConnectionRefusedError):
        http_get(ph.port, "/", timeout=2.0)
    assert c.read_response(timeout=10.0).status == 200
    assert ph.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5.0, "the stop waited for something besides the slow request"


def test_at_most_three_old_generations_drain_at_once(phalanx_factory, phalanxctl_bin):
    """Each old generation keeps a slow request in flight, so it drains for a
    while: the fourth reload waits until one of them is done."""
    # 6 s: three reloads must start while the first slow request is in flight,
    # even on a loaded machine.
    routes = DEFAULT_ROUTES + [{"path": "/slow", "static": {"status": 200, "body": "slow",
                                                            "delay_ms": 6000}}]
    ph = phalanx_factory(supervised_config(workers=1, routes=routes))
    conns = []
    try:
        for gen in range(1, 4):
            c = Conn(ph.port, timeout=15.0)
            c.send(build_request("GET", "/slow"))
            conns.append(c)
            wait_until(lambda: ph.status()["totals"]["connections"] >= gen, 3.0,
                       message="the slow request in flight")
            assert ctl(phalanxctl_bin, ph, "reload").returncode == 0
            # The old worker shares the slot's socket until it has begun to
            # drain: the next slow request must not land on it.
            wait_until(lambda: all(w["state"] == "draining" for w in ph.status()["workers"]
                                   if w["generation"] <= gen), 3.0,
                       message="the old generations draining")
        draining = {w["generation"] for w in ph.status()["workers"] if w["state"] == "draining"}
        assert draining == {1, 2, 3}, ph.status()["workers"]
        t0 = time.monotonic()
        res = ctl(phalanxctl_bin, ph, "reload", "--json")
        took = time.monotonic() - t0
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["generation"] == 5
        # It waited for generation 1's slow request (sent first, 6 s) to finish.
        assert took > 0.5, f"the fourth reload did not wait ({took:.2f}s)"
        assert "waiting until one of 3 old generations has drained" in ph.log()
        for c in conns:
            assert c.read_response(timeout=15.0).status == 200
    finally:
        for c in conns:
            c.close()


def test_replacements_by_reload_and_scale_are_counted_under_their_reasons(phalanx_factory,
                                                                           phalanxctl_bin):
    routes = DEFAULT_ROUTES + [{"path": "/metrics", "builtin": "metrics"}]
    ph = phalanx_factory(supervised_config(workers=2, routes=routes))

    def restarts():
        text = http_get(ph.port, "/metrics").body.decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("phalanx_worker_restarts_total{"):
                out[line.split('reason="')[1].split('"')[0]] = int(line.split()[-1])
        return out

    assert restarts()["reload"] == 0
    for _ in range(3):
        assert ctl(phalanxctl_bin, ph, "reload").returncode == 0
    # Each reload replaced both workers, once they had drained.
    wait_until(lambda: restarts()["reload"] == 6, 15, message="6 replacements by reload")
    assert ctl(phalanxctl_bin, ph, "scale", "1").returncode == 0
    wait_until(lambda: restarts()["scale"] == 1, 15, message="1 replacement by scale")
    counts = restarts()
    assert counts["exit"] == counts["signal"] == 0, counts
    # status' "restarts" counts only the replacements nobody asked for.
    assert ph.status()["totals"]["restarts"] == 0

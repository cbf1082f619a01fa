"""Binary upgrade of the master itself (USR2, `phalanxctl upgrade`): the new
master inherits the listening sockets and the shm region, starts its workers,
takes the control socket over, and the old one drains and exits; a new master
that fails leaves the old one serving, with the reason in status."""

import os
import signal
import subprocess
import time

import pytest

from conftest import (DEFAULT_ROUTES, ctl, deploy, http_get, parse_wrk, pid_alive, supervised_config,
                      wait_until)


def master_of(ph):
    return ph.status()["master"]


def worker_rows(ph):
    return [w for w in ph.status()["workers"] if w["pid"]]


def test_upgrade_under_wrk_loses_nothing_and_the_new_master_takes_over(own_binary_phalanx,
                                                                      phalanx_bin, phalanxctl_bin):
    ph = own_binary_phalanx(supervised_config(
        workers=2, routes=DEFAULT_ROUTES + [{"path": "/metrics", "builtin": "metrics"}]))
    old_pid = ph.pid
    old_workers = {w["pid"] for w in worker_rows(ph)}
    deploy(ph.binary, source=phalanx_bin)  # the "new" build, by rename
    wrk = subprocess.Popen(["wrk", "-t2", "-c64", "-d6s", "--timeout", "5s",
                            f"http://127.0.0.1:{ph.port}/"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        res = ctl(phalanxctl_bin, ph, "upgrade")
        assert res.returncode == 0, f"upgrade failed: {res.stdout} {res.stderr}\n{ph.log()[-3000:]}"
        out, _ = wrk.communicate(timeout=60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    assert "upgrade ok: master pid" in res.stdout, res.stdout
    new_pid = int(res.stdout.split("master pid ")[1].split()[0])
    ph.seen_pids.add(new_pid)
    assert new_pid != old_pid and pid_alive(new_pid)

    # The old master drains its workers and exits 0; the new one answers.
    assert ph.proc.wait(timeout=15) == 0, ph.log()[-3000:]
    wait_until(lambda: not any(pid_alive(p) for p in old_workers), 10,
               message="the old master's workers exited")
    master = master_of(ph)
    assert master["pid"] == new_pid, master
    assert master["generation"] == 2, master
    rows = worker_rows(ph)
    assert len(rows) == 2 and all(w["generation"] == 2 and w["state"] == "ready" for w in rows), rows
    assert not {w["pid"] for w in rows} & old_workers
    st = ph.status()
    assert st["upgrade"]["upgraded_from"] == old_pid, st["upgrade"]

    result = parse_wrk(out)
    assert result["requests"] and result["requests"] > 2000, out
    assert result["socket_errors"] == (0, 0, 0, 0), f"socket errors across the upgrade:\n{out}"
    assert result["non2xx"] == 0, f"non-2xx answers across the upgrade:\n{out}"
    assert http_get(ph.port, "/").status == 200

    # The replaced workers are counted under their reason; the counters carried on.
    metrics = http_get(ph.port, "/metrics").body.decode()
    line = next(l for l in metrics.splitlines()
                if l.startswith('phalanx_worker_restarts_total{reason="upgrade"}'))
    assert int(line.split()[-1]) == 2, line

    # A second upgrade, by signal this time, from the new master.
    os.kill(new_pid, signal.SIGUSR2)
    third = wait_until(lambda: (m := master_of(ph))["pid"] not in (new_pid, 0) and m["pid"],
                       20, message="a third master")
    ph.seen_pids.add(third)
    wait_until(lambda: not pid_alive(new_pid), 15, message="the second master exited")
    assert master_of(ph)["generation"] == 3
    assert http_get(ph.port, "/").status == 200


@pytest.mark.parametrize("how", ["exits", "never-ready"])
def test_a_new_master_that_fails_leaves_the_old_one_serving(own_binary_phalanx, phalanx_bin,
                                                            phalanxctl_bin, how):
    cfg = supervised_config(workers=2, supervisor={"ready_timeout_ms": 1000})
    ph = own_binary_phalanx(cfg)
    before = {w["pid"] for w in worker_rows(ph)}
    if how == "exits":
        deploy(ph.binary, "#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
        expect = "exited with code 3"
    else:
        deploy(ph.binary, "#!/bin/sh\nexec sleep 30\n")
        expect = "not ready within"
    t0 = time.monotonic()
    res = ctl(phalanxctl_bin, ph, "upgrade")
    took = time.monotonic() - t0
    assert res.returncode == 1, f"a broken upgrade: exit {res.returncode} {res.stdout}"
    assert expect in res.stderr, res.stderr
    if how == "never-ready":
        assert 5.5 <= took <= 10, f"the upgrade gave up after {took:.1f}s"

    assert ph.running()
    st = ph.status()
    assert st["upgrade"]["state"] == "failed" and expect in st["upgrade"]["error"], st["upgrade"]
    assert st["master"]["pid"] == ph.pid and st["master"]["generation"] == 1, st["master"]
    assert {w["pid"] for w in worker_rows(ph)} == before
    assert os.path.exists(ph.control_path) and not os.path.exists(ph.control_path + ".upgrade")
    table = ctl(phalanxctl_bin, ph, "status").stdout
    assert "last upgrade FAILED" in table and expect in table, table
    ph.assert_serving()

    # Fixed: the next upgrade works.
    deploy(ph.binary, source=phalanx_bin)
    res = ctl(phalanxctl_bin, ph, "upgrade")
    assert res.returncode == 0, res.stderr
    new_pid = int(res.stdout.split("master pid ")[1].split()[0])
    ph.seen_pids.add(new_pid)
    assert ph.proc.wait(timeout=15) == 0
    assert master_of(ph)["pid"] == new_pid
    assert http_get(ph.port, "/").status == 200


def test_upgrade_with_a_broken_config_keeps_the_old_master(own_binary_phalanx, phalanxctl_bin):
    ph = own_binary_phalanx(supervised_config(workers=1))
    with open(ph.config_path, "w") as f:
        f.write('{"listen": ["127.0.0.1:1"], "workers": "many"}')
    res = ctl(phalanxctl_bin, ph, "upgrade")
    assert res.returncode == 1 and "exited with code 1" in res.stderr, res.stderr
    assert "workers" in ph.log(), "the new master does not say what is wrong with the config"
    assert ph.running() and master_of(ph)["pid"] == ph.pid
    ph.assert_serving()

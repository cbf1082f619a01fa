"""Workers hold no capability; only the master keeps what it was given.

* Run as root (as the tests are): every worker's /proc/<pid>/status shows
  CapEff, CapPrm, CapInh, CapAmb and CapBnd all zero and NoNewPrivs 1, the
  master's CapEff is not zero; the workers still serve, reopen their access
  log on USR1 (the file is root's, in a root-owned directory), and the
  workers of a reload drop theirs too.
* Run as a user with only CAP_NET_BIND_SERVICE, ambient (what systemd's
  AmbientCapabilities= gives; here by setpriv, skipped if it is missing): the
  master binds a port below 1024, the workers serve on it with nothing left.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import Phalanx, PHALANX_BIN, http_get, make_config, pid_alive, wait_until

CAP_NET_BIND_SERVICE = 10
NOBODY = 65534


def proc_caps(pid):
    """{field: int} of the capability lines and NoNewPrivs in /proc/<pid>/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Cap"):
                fields[key] = int(value.strip(), 16)
            elif key == "NoNewPrivs":
                fields[key] = int(value.strip())
    return fields


def worker_pids(ph):
    return sorted(w["pid"] for w in ph.status()["workers"] if w["pid"] and w["state"] == "ready")


def assert_no_capabilities(pids):
    for pid in pids:
        caps = proc_caps(pid)
        assert caps == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0,
                        "NoNewPrivs": 1}, f"worker {pid}: " + ", ".join(
                            f"{k} {v:016x}" for k, v in caps.items())


def access_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


@pytest.mark.skipif(os.geteuid() != 0, reason="the master needs capabilities to drop")
def test_workers_drop_every_capability_the_master_keeps_its_own(phalanx_factory, tmp_path):
    log_path = str(tmp_path / "access.log")
    ph = phalanx_factory(workers=2, log={"level": "info", "access": log_path})
    workers = worker_pids(ph)
    assert len(workers) == 2, ph.status()
    assert_no_capabilities(workers)
    assert proc_caps(ph.pid)["CapEff"] != 0, "the master lost its capabilities"
    assert "capabilit" not in ph.log().lower(), ph.log()  # nothing to warn about
    ph.assert_serving("/health/live")

    # USR1: the workers reopen the access log at its path, without privileges.
    wait_until(lambda: access_lines(log_path), 5.0, message="access log lines")
    os.rename(log_path, log_path + ".1")
    os.kill(ph.pid, signal.SIGUSR1)
    wait_until(lambda: ph.log().count("reopened access log") == 2, 5.0,
               message=lambda: f"both workers reopen the access log\n{ph.log()[-2000:]}")
    for _ in range(4):
        assert http_get(ph.port, "/health/live").status == 200
    wait_until(lambda: any("/health/live" in l for l in access_lines(log_path)), 5.0,
               message="requests logged to the reopened file")
    assert worker_pids(ph) == workers

    # A reload: the new generation's workers drop theirs too, and serve.
    answer = ph.control("reload")
    assert answer["ok"], answer
    fresh = wait_until(lambda: (lambda p: p if p and not set(p) & set(workers) else None)(
        worker_pids(ph)), 10.0, message="the new generation's workers")
    assert_no_capabilities(fresh)
    ph.assert_serving("/health/live")
    assert proc_caps(ph.pid)["CapEff"] != 0


def free_low_port():
    """A port below 1024 nothing listens on (we are root: we may try)."""
    ports = list(range(600, 1024))
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start phalanx as another user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_a_user_with_only_net_bind_service_binds_a_low_port(tmp_path):
    # A directory nobody may use: config, control socket, logs.
    home = tempfile.mkdtemp(prefix="phx-caps-")
    ph = None
    try:
        os.chmod(home, 0o755)
        os.chown(home, NOBODY, NOBODY)
        wrapper = os.path.join(home, "phalanx-as-nobody")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d --clear-groups "
                    "--inh-caps=-all,+net_bind_service --ambient-caps=+net_bind_service "
                    "-- %s \"$@\"\n" % (NOBODY, NOBODY, PHALANX_BIN))
        os.chmod(wrapper, 0o755)
        port = free_low_port()
        config = make_config(workers=2, listen=[f"127.0.0.1:{port}"],
                             extra={"control_socket": os.path.join(home, "ctl.sock")})
        ph = Phalanx(wrapper, home, config)
        ph.start()
        master = proc_caps(ph.pid)
        assert master["CapEff"] == 1 << CAP_NET_BIND_SERVICE, f"{master['CapEff']:016x}"
        assert master["CapAmb"] == 1 << CAP_NET_BIND_SERVICE, f"{master['CapAmb']:016x}"
        workers = worker_pids(ph)
        assert len(workers) == 2
        for pid in workers:
            assert os.stat(f"/proc/{pid}").st_uid == NOBODY
            caps = proc_caps(pid)
            # Without CAP_SETPCAP the bounding set stays as it was; with nothing
            # permitted and no_new_privs it grants nothing.
            assert (caps["CapInh"], caps["CapPrm"], caps["CapEff"], caps["CapAmb"],
                    caps["NoNewPrivs"]) == (0, 0, 0, 0, 1), (pid, caps)
        ph.assert_serving("/health/live")
    finally:
        if ph is not None:
            ph.cleanup()
            assert not pid_alive(ph.pid)
        shutil.rmtree(home, ignore_errors=True)

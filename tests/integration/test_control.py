"""The control socket and phalanxctl: status, scale, show info/stat, stop,
errors, and who may ask."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import shutil
import tempfile

import pytest

from conftest import (ctl, http_get, listening_inodes, live_identity, make_config, pid_alive,
                      wait_until)

STATES = {"starting", "ready", "draining", "errored", "fatal", "waiting-restart"}


def ready_rows(ph):
    return [w for w in ph.status()["workers"] if w["pid"] and w["state"] == "ready"]


def wait_ready_count(ph, n, timeout=10.0):
    """Waits until status shows exactly n processes, all ready, in slots 0..n-1."""
    def done():
        rows = ph.status()["workers"]
        ok = (len(rows) == n and all(w["pid"] and w["state"] == "ready" for w in rows)
              and sorted(w["slot"] for w in rows) == list(range(n)))
        return rows if ok else None
    return wait_until(done, timeout, message=lambda: f"{n} ready workers: {ph.status()['workers']}")


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# --------------------------------------------------------------------------


def test_status_lists_every_worker_with_every_field(phalanx_factory):
    ph = phalanx_factory(workers=2)
    by_slot = ph.worker_by_slot()
    before = ph.status()
    n = 10
    for _ in range(n):
        assert http_get(ph.port, "/").status == 200
    r = http_get(ph.port, "/nope")
    assert r.status == 404
    # RSS and CPU are sampled every 500 ms; uptimes are whole seconds.
    def settled():
        st = ph.status()
        return st if st["master"]["uptime_s"] >= 1 and all(w["rss_bytes"] for w in st["workers"]) else None
    st = wait_until(settled, 5.0, message="uptime 1 s and RSS sampled")

    assert st["version"] == 1 and st["ok"] is True
    m = st["master"]
    assert m["pid"] == ph.pid, m
    assert isinstance(m["version"], str) and m["version"], m
    assert is_uint(m["uptime_s"]) and m["uptime_s"] >= 1, m
    assert m["generation"] == 1 and m["workers"] == 2, m
    assert m["reloads"] == {"ok": 0, "failed": 0}, m
    assert m["last_reload"] == {"result": "none", "at_ms": 0, "error": ""}, m

    t = st["totals"]
    assert set(t) >= {"requests", "connections", "restarts", "rss_bytes"}, t
    assert all(is_uint(v) for v in t.values()), t
    assert t["restarts"] == 0
    assert t["requests"] - before["totals"]["requests"] == n + 1, (before["totals"], t)
    assert t["rss_bytes"] == sum(w["rss_bytes"] for w in st["workers"]), st

    rows = st["workers"]
    assert len(rows) == 2 and {w["slot"]: w["pid"] for w in rows} == by_slot, rows
    for w in rows:
        for key in ("slot", "pid", "generation", "uptime_s", "restarts", "unstable_restarts",
                    "rss_bytes", "cpu_ms", "connections", "requests"):
            assert is_uint(w[key]), (key, w)
        assert w["state"] == "ready" and w["state"] in STATES, w
        assert w["generation"] == 1 and w["restarts"] == 0 and w["unstable_restarts"] == 0, w
        assert w["last_exit"] == "none", w
        assert w["rss_bytes"] > 1 << 20, w
        assert "restart_in_ms" not in w, w
        assert set(w["responses"]) == {"1xx", "2xx", "3xx", "4xx", "5xx"}, w
        assert all(is_uint(v) for v in w["responses"].values()), w
        lat = w["latency_us"]
        assert all(is_uint(b) for b in lat["bounds"]) and lat["bounds"] == sorted(set(lat["bounds"])), lat
        assert len(lat["counts"]) == len(lat["bounds"]) + 1 and all(is_uint(c) for c in lat["counts"]), lat
        assert is_uint(lat["sum"]), lat
        assert sum(lat["counts"]) == w["requests"], w
        assert sum(w["responses"].values()) == w["requests"], w
    old = {w["slot"]: w["responses"] for w in before["workers"]}
    delta = {k: sum(w["responses"][k] - old[w["slot"]][k] for w in rows) for k in ("2xx", "4xx")}
    assert delta == {"2xx": n, "4xx": 1}, rows


def test_phalanxctl_status_json_and_table_against_the_real_master(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(workers=2)
    wait_until(lambda: all(w["rss_bytes"] for w in ph.status()["workers"]), 5.0,
               message="RSS sampled")
    res = ctl(phalanxctl_bin, ph, "status", "--json")
    assert res.returncode == 0, res.stderr
    answer = json.loads(res.stdout)
    assert answer["ok"] is True and answer["master"]["pid"] == ph.pid
    rows = answer["workers"]
    assert {w["slot"]: w["pid"] for w in rows} == ph.worker_by_slot(), rows
    for w in rows:
        assert {"slot", "pid", "generation", "state", "uptime_s", "restarts", "unstable_restarts",
                "last_exit", "rss_bytes", "cpu_ms", "connections", "requests", "responses",
                "latency_us"} <= set(w), w
    table = ctl(phalanxctl_bin, ph, "status")
    assert table.returncode == 0, table.stderr
    for pid in ph.worker_pids():
        line = next((l for l in table.stdout.splitlines() if f" {pid} " in f" {l} "), None)
        assert line is not None and "ready" in line, table.stdout


def test_scale_up_and_down_and_ttin_ttou(phalanx_factory):
    ph = phalanx_factory(workers=2)
    assert ph.control("scale 3") == {"version": 1, "ok": True, "workers": 3}
    rows = wait_ready_count(ph, 3)
    assert ph.status()["master"]["workers"] == 3
    assert len(listening_inodes(ph.port)) == 3
    three = {w["pid"] for w in rows}
    wait_until(lambda: {i["worker"] for i in (live_identity(ph.port) for _ in range(30))} == {0, 1, 2}, 10.0,
               interval=0, message="answers from all three slots")

    assert ph.control("scale 1") == {"version": 1, "ok": True, "workers": 1}
    rows = wait_ready_count(ph, 1)
    assert rows[0]["slot"] == 0 and rows[0]["pid"] in three
    gone = three - {rows[0]["pid"]}
    wait_until(lambda: not any(pid_alive(p) for p in gone), 5.0, message=f"scaled-away workers {gone} gone")
    assert len(listening_inodes(ph.port)) == 1, "the scaled-away slots' sockets are still open"
    assert ph.status()["master"]["workers"] == 1
    for _ in range(10):
        assert live_identity(ph.port)["worker"] == 0

    os.kill(ph.pid, signal.SIGTTIN)
    wait_ready_count(ph, 2)
    wait_until(lambda: len(listening_inodes(ph.port)) == 2, 3.0, message="two listening sockets")
    os.kill(ph.pid, signal.SIGTTOU)
    wait_ready_count(ph, 1)
    wait_until(lambda: len(ph.workers()) == 1 and len(listening_inodes(ph.port)) == 1, 5.0,
               message="one worker, one socket")

    for bad in ("scale 0", "scale x", "scale", "scale 2 3", "scale 100000"):
        answer = ph.control(bad)
        assert answer["ok"] is False and answer["error"], (bad, answer)
    assert ph.status()["master"]["workers"] == 1


def test_show_info_and_show_stat(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(workers=2)
    info = ph.control("show info")
    assert info["ok"], info
    lines = info["text"].splitlines()
    assert f"Pid: {ph.pid}" in lines, info["text"]
    assert any(l.startswith("Workers:") for l in lines), info["text"]
    assert all(": " in l for l in lines if l), info["text"]

    res = ctl(phalanxctl_bin, ph, "show", "info")
    assert res.returncode == 0 and f"Pid: {ph.pid}" in res.stdout.splitlines(), \
        (res.returncode, res.stdout, res.stderr)

    res = ctl(phalanxctl_bin, ph, "show", "stat")
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if l]
    assert lines[0].startswith("# "), res.stdout
    columns = lines[0][2:].split(",")
    assert columns[:4] == ["slot", "pid", "generation", "state"], columns
    body = lines[1:]
    assert len(body) == 2, f"want one CSV row per worker:\n{res.stdout}"
    by_slot = ph.worker_by_slot()
    for line in body:
        cells = line.split(",")
        assert len(cells) == len(columns), line
        row = dict(zip(columns, cells))
        assert by_slot[int(row["slot"])] == int(row["pid"]) and row["state"] == "ready", row
    assert ph.control("show stat")["text"].splitlines()[0] == lines[0]


def test_unknown_command_and_stop(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(workers=2)
    for line in ("frobnicate", "show", "show nothing", "statuses", "reload2"):
        answer = ph.control(line)
        assert answer["version"] == 1 and answer["ok"] is False and answer["error"], (line, answer)
    assert ph.status()["ok"]  # still answering
    workers = ph.worker_pids()

    res = ctl(phalanxctl_bin, ph, "stop")
    assert res.returncode == 0, (res.returncode, res.stderr)
    assert ph.proc.wait(timeout=10) == 0
    assert not any(pid_alive(p) for p in workers)
    assert not ph.leftovers()


def test_control_socket_mode_and_removal(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(workers=1)
    st = os.stat(ph.control_path)
    assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert ph.stop() == 0
    assert not os.path.exists(ph.control_path), "the control socket file outlives the master"
    res = ctl(phalanxctl_bin, ph, "status")
    assert res.returncode == 3, (res.returncode, res.stdout, res.stderr)
    assert "no control socket" in res.stderr, res.stderr


NOBODY = 65534


def _as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


# Asks for status; prints {"connect_errno": N or null, "answer": what came back}.
# A refused peer may be answered and closed before its line is read, so a
# failed write or a reset after the answer is no error here.
CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
out = {"connect_errno": None, "answer": ""}
try:
    s.connect(sys.argv[1])
except OSError as e:
    out["connect_errno"] = e.errno
else:
    try:
        s.sendall(b"status\n")
    except OSError:
        pass
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    out["answer"] = data.decode("utf-8", "replace")
print(json.dumps(out))
"""


def ask_as_nobody(path):
    res = subprocess.run([sys.executable, "-c", CLIENT, path], capture_output=True, text=True,
                         timeout=20, preexec_fn=_as_nobody)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_other_users_get_no_answer(phalanx_factory, phalanxctl_bin):
    # A directory anyone may traverse, so only the socket's own mode and the
    # master's peer check stand in the way.
    sockdir = tempfile.mkdtemp(prefix="phx-ctl-")
    try:
        os.chmod(sockdir, 0o755)
        path = os.path.join(sockdir, "ctl.sock")
        ph = phalanx_factory(make_config(workers=1, extra={"control_socket": path}))
        assert ph.control_path == path and ph.status()["ok"]

        # Mode 0600: the kernel refuses the connect.
        got = ask_as_nobody(path)
        assert got == {"connect_errno": errno.EACCES, "answer": ""}, got
        res = subprocess.run([phalanxctl_bin, "-s", path, "status"], capture_output=True, text=True,
                             timeout=20, preexec_fn=_as_nobody)
        assert res.returncode != 0 and "workers" not in res.stdout.lower() and str(ph.pid) not in res.stdout, \
            (res.returncode, res.stdout, res.stderr)

        # Even with the socket opened up by mistake, the master checks who asks.
        os.chmod(path, 0o666)
        got = ask_as_nobody(path)
        assert got["connect_errno"] is None, got
        answer = got["answer"]
        assert '"workers"' not in answer and str(ph.pid) not in answer, f"nobody got an answer: {answer}"
        assert '"ok":false' in answer.replace(" ", "") and "permission denied" in answer, answer
        assert f"refused a client (uid {NOBODY}" in ph.log()
        assert ph.status()["ok"]  # root still may
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)

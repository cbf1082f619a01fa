"""`make install` and running under systemd.

* `make install DESTDIR=...` stages the binaries, the unit and the config with
  the right modes, keeps an existing config, and the installed config and unit
  agree with each other and pass `phalanx -t` and `systemd-analyze verify`.
* The sd_notify protocol, with a datagram socket standing in for systemd:
  READY=1 once the workers are up, RELOADING=1 with MONOTONIC_USEC and then
  READY=1 around a reload (also a failed one), STOPPING=1 on SIGTERM, WATCHDOG=1
  pings, and every datagram sent by the master, never by a worker (the sender's
  pid comes from SCM_CREDENTIALS, as systemd checks it for NotifyAccess=main).
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import time

import pytest

from conftest import PHALANX_BIN, REPO, pid_alive, run, wait_until

UNIT_NAME = "phalanx.service"


# --------------------------------------------------------------------------
# make install
# --------------------------------------------------------------------------

def build_dir():
    """The cmake build directory PHALANX_BIN was built in: make install uses it."""
    d = os.path.dirname(os.path.abspath(PHALANX_BIN))
    if not os.path.isfile(os.path.join(d, "CMakeCache.txt")):
        pytest.fail(f"{PHALANX_BIN} is not in a cmake build directory (no CMakeCache.txt in {d}); "
                    f"make install needs BUILD=<that directory>", pytrace=False)
    return d


def make(*targets, **variables):
    cmd = ["make", "-C", REPO, *targets, f"BUILD={build_dir()}"]
    cmd += [f"{k}={v}" for k, v in variables.items()]
    r = run(cmd, timeout=900)
    assert r.returncode == 0, (f"{' '.join(cmd)} failed ({r.returncode}):\n"
                               f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def unit_settings(path):
    """{key: [values]} of a unit file (all sections; keys are unique enough here)."""
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """One `make install DESTDIR=...` for the module: (destdir, unit path, config path)."""
    dest = tmp_path_factory.mktemp("destdir")
    make("install", DESTDIR=dest)
    return (str(dest), os.path.join(dest, "usr/local/lib/systemd/system", UNIT_NAME),
            os.path.join(dest, "etc/phalanx/phalanx.json"))


def test_install_stages_files_with_modes(staged):
    dest, unit, config = staged
    for name in ("phalanx", "phalanxctl"):
        path = os.path.join(dest, "usr/local/bin", name)
        assert os.path.isfile(path), f"{path} not installed"
        assert mode(path) == 0o755, f"{path} has mode {oct(mode(path))}"
    assert mode(unit) == 0o644, f"{unit} has mode {oct(mode(unit))}"
    # The config may hold API keys: not world-readable.
    assert mode(config) == 0o640, f"{config} has mode {oct(mode(config))}"
    r = run([os.path.join(dest, "usr/local/bin/phalanx"), "-v"])
    assert r.returncode == 0 and r.stdout.startswith("phalanx "), r


def test_installed_config_passes_check_and_fits_the_unit(staged):
    dest, unit, config = staged
    r = run([os.path.join(dest, "usr/local/bin/phalanx"), "-t", "-c", config])
    assert r.returncode == 0, f"installed config refused:\n{r.stdout}{r.stderr}"

    with open(config) as f:
        cfg = json.load(f)
    with open(os.path.join(REPO, "etc/phalanx.json")) as f:
        dev = json.load(f)
    # The same gateway as `make run`, with the paths systemd provides.
    assert cfg["listen"] == dev["listen"] and cfg["routes"] == dev["routes"]
    settings = unit_settings(unit)
    run_dir = "/run/" + settings["RuntimeDirectory"][0]
    log_dir = "/var/log/" + settings["LogsDirectory"][0]
    assert cfg["control_socket"] == "/run/phalanx/phalanx.sock"
    assert os.path.dirname(cfg["control_socket"]) == run_dir, (
        "control_socket must be in the unit's RuntimeDirectory (the only writable place for it)")
    access = cfg["log"]["access"]
    assert os.path.dirname(access) == log_dir, (
        f"access log {access} must be in the unit's LogsDirectory {log_dir}")
    # ExecReload talks to the same socket, ExecStart runs the installed binary on it.
    assert f"-s {cfg['control_socket']} reload" in settings["ExecReload"][0]
    assert settings["ExecStart"] == ["/usr/local/bin/phalanx -c /etc/phalanx/phalanx.json"]
    assert settings["ExecStartPre"][0] == "/usr/local/bin/phalanx -t -c /etc/phalanx/phalanx.json"
    assert any("tcp_migrate_req" in line and line.startswith("-+")
               for line in settings["ExecStartPre"][1:]), settings["ExecStartPre"]
    assert settings["ExecReload"][0].startswith("/usr/local/bin/phalanxctl ")
    assert settings["Type"] == ["notify"] and settings["KillMode"] == ["mixed"]
    # Above the default drain and shutdown timeouts (30 s each).
    assert int(settings["TimeoutStopSec"][0]) > 30


def test_install_keeps_an_existing_config_and_follows_prefix(tmp_path):
    dest = tmp_path / "dest"
    make("install", DESTDIR=dest)
    config = dest / "etc/phalanx/phalanx.json"
    edited = '{"listen": ["127.0.0.1:1"], "routes": []}\n'
    config.write_text(edited)
    r = make("install", DESTDIR=dest)
    assert config.read_text() == edited, "make install overwrote an operator's config"
    assert "kept" in r.stdout

    # Another PREFIX: the unit names the binaries where they went.
    make("install", DESTDIR=dest, PREFIX="/opt/phalanx")
    unit = dest / "opt/phalanx/lib/systemd/system" / UNIT_NAME
    settings = unit_settings(unit)
    assert settings["ExecStart"] == ["/opt/phalanx/bin/phalanx -c /etc/phalanx/phalanx.json"]
    assert settings["ExecReload"][0].startswith("/opt/phalanx/bin/phalanxctl ")
    assert (dest / "opt/phalanx/bin/phalanx").is_file()

    # uninstall removes the programs and the unit, never the config.
    make("uninstall", DESTDIR=dest)
    assert not (dest / "usr/local/bin/phalanx").exists()
    assert not (dest / "usr/local/bin/phalanxctl").exists()
    assert not (dest / "usr/local/lib/systemd/system" / UNIT_NAME).exists()
    assert config.read_text() == edited


def verify_unit(path):
    """systemd-analyze verify: (returncode, lines of its output about phalanx)."""
    r = run(["systemd-analyze", "verify", "--man=no", str(path)])
    # verify exits 0 even on an unknown key or an unparsable value: it only
    # says so, naming the unit file. Other lines are about the host's units.
    lines = [l for l in (r.stdout + r.stderr).splitlines() if "phalanx" in l]
    return r.returncode, lines


def test_systemd_analyze_verifies_the_unit(staged, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    dest, unit, _config = staged
    # verify checks that every Exec*= program exists: point them at the staged
    # copies (only the paths change).
    text = open(unit).read().replace("/usr/local/bin/", f"{dest}/usr/local/bin/")
    copy = tmp_path / UNIT_NAME
    copy.write_text(text)
    rc, lines = verify_unit(copy)
    assert rc == 0 and not lines, f"systemd-analyze verify {copy}: rc {rc}\n" + "\n".join(lines)

    # The check can fail: a misspelt key and a bad value are reported.
    broken = tmp_path / "broken" / UNIT_NAME
    broken.parent.mkdir()
    broken.write_text(text.replace("KillMode=mixed", "KillMode=mixd\nRestartSecs=2"))
    rc, lines = verify_unit(broken)
    assert rc != 0 or len(lines) >= 2, f"verify accepted a broken unit: {lines}"


# --------------------------------------------------------------------------
# sd_notify
# --------------------------------------------------------------------------

class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: datagrams with the sender's credentials."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # As systemd does: the kernel attaches the sender's pid/uid/gid to
        # every datagram, whatever the sender does.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.seen = []  # (pid, {key: value}, raw text), in arrival order

    def close(self):
        self.sock.close()

    def _receive(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("iII", payload[:12])
        text = data.decode("utf-8", "replace")
        fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
        self.seen.append((pid, fields, text))
        return self.seen[-1]

    def expect(self, key, value="1", timeout=10.0):
        """Waits for a datagram with key=value; returns it as (pid, fields, text)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self._receive(deadline - time.monotonic())
            if got is None:
                got = [t for _, _, t in self.seen]
                raise AssertionError(f"no {key}={value} within {timeout}s; got {got}")
            if got[1].get(key) == value:
                return got

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._receive(deadline - time.monotonic())


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)


def test_notify_protocol(phalanx_factory, tmp_path, monkeypatch):
    systemd = FakeSystemd(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.path)
        monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        inst = phalanx_factory(workers=2)
        master = inst.pid

        pid, fields, _ = systemd.expect("READY", timeout=10)
        assert pid == master
        assert "MAINPID" not in fields, "the master is the main process already"
        workers = inst.worker_pids()
        assert len(workers) == 2
        for w in workers:
            env = environ_of(w)
            assert b"NOTIFY_SOCKET" not in env and b"WATCHDOG_USEC" not in env, (
                f"worker {w} inherited the notify environment")

        pid, _, _ = systemd.expect("WATCHDOG", timeout=3)
        assert pid == master

        # A reload: RELOADING=1 with this moment's CLOCK_MONOTONIC, then READY=1.
        os.kill(master, signal.SIGHUP)
        pid, fields, text = systemd.expect("RELOADING", timeout=10)
        assert pid == master
        assert re.fullmatch(r"\d+", fields.get("MONOTONIC_USEC", "")), (
            f"no MONOTONIC_USEC in {text!r}")
        now_usec = time.monotonic_ns() // 1000
        assert abs(now_usec - int(fields["MONOTONIC_USEC"])) < 10_000_000, (
            f"MONOTONIC_USEC={fields['MONOTONIC_USEC']} is not CLOCK_MONOTONIC (now {now_usec})")
        pid, _, _ = systemd.expect("READY", timeout=15)
        assert pid == master
        inst.wait_workers(2, timeout=10)
        assert not (inst.worker_pids() & workers), "the reload did not replace the workers"

        # A failed reload ends with READY=1 as well (else systemd stays in
        # "reloading"), saying why in STATUS.
        with open(inst.config_path, "w") as f:
            f.write('{"listen": 5}')
        os.kill(master, signal.SIGHUP)
        systemd.expect("RELOADING", timeout=10)
        pid, fields, text = systemd.expect("READY", timeout=15)
        assert pid == master
        assert "fail" in fields.get("STATUS", ""), (
            f"a failed reload's READY=1 has no reason: {text!r}")
        inst.assert_serving()

        inst.workers()  # remembered in seen_pids for the report below
        os.kill(master, signal.SIGTERM)
        pid, _, _ = systemd.expect("STOPPING", timeout=10)
        assert pid == master
        assert inst.proc.wait(timeout=40) == 0
        systemd.drain(0.3)

        senders = {p for p, _, _ in systemd.seen}
        assert senders == {master}, (
            f"only the master ({master}) may notify; datagrams came from {senders} "
            f"(workers seen: {sorted(inst.seen_pids - {master})})")
    finally:
        systemd.close()


def test_watchdog_for_another_pid_is_not_fed(phalanx_factory, tmp_path, monkeypatch):
    """WATCHDOG_PID naming another process (variables inherited from a parent):
    the master notifies READY=1 but sends no WATCHDOG=1."""
    systemd = FakeSystemd(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.path)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")  # would be a ping every 0.2 s
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        inst = phalanx_factory(workers=1)
        pid, _, _ = systemd.expect("READY", timeout=10)
        assert pid == inst.pid
        systemd.drain(1.0)
        pings = [t for _, f, t in systemd.seen if "WATCHDOG" in f]
        assert not pings, f"watchdog pings for a watchdog armed for pid {os.getpid()}: {pings}"
    finally:
        systemd.close()


def test_upgrade_hands_the_main_pid_to_the_new_master(phalanx_factory, tmp_path, monkeypatch):
    """The old master, still the main process (NotifyAccess=main), tells systemd
    MAINPID= the new one with READY=1 and never STOPPING=1; the new master says
    nothing before that, and everything after it."""
    systemd = FakeSystemd(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", systemd.path)
        monkeypatch.setenv("WATCHDOG_USEC", "1000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        inst = phalanx_factory(workers=2)
        old = inst.pid
        systemd.expect("READY", timeout=10)
        answer = inst.control("upgrade")
        assert answer["ok"], answer
        new = answer["new_master"]
        inst.seen_pids.add(new)
        handover = [(p, f) for p, f, _ in systemd.seen if "MAINPID" in f]
        if not handover:
            pid, fields, _ = systemd.expect("MAINPID", str(new), timeout=5)
            handover = [(pid, fields)]
        pid, fields = handover[0]
        assert pid == old and fields.get("MAINPID") == str(new) and fields.get("READY") == "1", \
            handover
        assert inst.proc.wait(timeout=15) == 0
        # From the new master: watchdog pings (the first after one interval),
        # then a reload's RELOADING/READY.
        pid, _, _ = systemd.expect("WATCHDOG", timeout=3)
        assert pid == new
        os.kill(new, signal.SIGHUP)
        pid, _, _ = systemd.expect("RELOADING", timeout=10)
        assert pid == new
        systemd.drain(0.3)
        before = [(p, t) for p, f, t in systemd.seen if p == new]
        first_new = next(i for i, (p, _, _) in enumerate(systemd.seen) if p == new)
        mainpid_at = next(i for i, (_, f, _) in enumerate(systemd.seen) if "MAINPID" in f)
        assert first_new > mainpid_at, f"the new master spoke before it was main: {before[:3]}"
        assert not any(p == old and "STOPPING" in f for p, f, _ in systemd.seen), \
            "the old master said STOPPING=1 after handing over"
        os.kill(new, signal.SIGTERM)
        pid, _, _ = systemd.expect("STOPPING", timeout=10)
        assert pid == new
        wait_until(lambda: not pid_alive(new), 40, message="the new master stopped")
    finally:
        systemd.close()

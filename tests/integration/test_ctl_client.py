"""phalanxctl against a fake control server: the line it sends, what it prints, its exit codes.

The fake master is a ``socketserver`` on a Unix socket in ``tmp_path`` that answers canned JSON
(or misbehaves on purpose), so these tests check the client alone, without a running phalanx.
Exit codes: 0 ok, 1 the master said ok:false, 2 usage, 3 unreachable or no usable answer.
"""

import json
import os
import re
import socket
import socketserver
import subprocess
import threading
import time

import pytest

NOBODY = 65534


def status_answer():
    """A status answer as the master writes it, its last reload five minutes before now."""
    return {
        "version": 1, "ok": True,
        "master": {"pid": 4242, "version": "0.1.0", "uptime_s": 7980, "generation": 3,
                   "workers": 2, "reloads": {"ok": 1, "failed": 0},
                   "last_reload": {"result": "ok", "at_ms": int(time.time() * 1000) - 300_000,
                                   "error": ""}},
        "totals": {"requests": 1234567, "connections": 12, "restarts": 5, "rss_bytes": 19293798},
        "workers": [
            {"slot": 0, "pid": 4243, "generation": 3, "state": "ready", "uptime_s": 7900,
             "restarts": 0, "unstable_restarts": 0, "last_exit": "none", "rss_bytes": 4823449,
             "cpu_ms": 12345, "connections": 3, "requests": 1200,
             "responses": {"1xx": 0, "2xx": 1200, "3xx": 0, "4xx": 0, "5xx": 0}},
            {"slot": 1, "pid": 0, "generation": 3, "state": "errored", "uptime_s": 0,
             "restarts": 17, "unstable_restarts": 16, "last_exit": "exit 3", "rss_bytes": 0,
             "cpu_ms": 0, "connections": 0, "requests": 0, "restart_in_ms": 15000},
        ],
    }


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(65536)
        self.server.received.append(line)
        self.server.behaviour(self, line)


class FakeControl(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One fake control socket; `behaviour(handler, line)` answers each connection."""

    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, path, behaviour):
        self.received = []
        self.behaviour = behaviour
        self.release = threading.Event()  # ends handlers that hold a connection open
        super().__init__(path, _Handler)
        self.path = path
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def stop(self):
        self.release.set()
        self.shutdown()
        self.thread.join()
        self.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def answering(obj_or_text):
    """A behaviour that writes one answer line and closes."""
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)

    def behave(handler, _line):
        handler.wfile.write(text.encode() + b"\n")
    return behave


@pytest.fixture
def control(tmp_path):
    """Start fake control servers in tmp_path; all of them are stopped afterwards."""
    servers = []

    def start(behaviour, name="ctl.sock"):
        path = str(tmp_path / name)
        assert len(path) < 108, f"tmp_path too long for a unix socket: {path}"
        server = FakeControl(path, behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ctl(binary, *args, env=None, cwd=None, timeout=30, **kwargs):
    full_env = {k: v for k, v in os.environ.items() if k != "PHALANX_SOCKET"}
    full_env.update(env or {})
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd, **kwargs)


def one_error_line(res):
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"want exactly one stderr line, got {lines!r}"
    return lines[0]


# --------------------------------------------------------------------------
# answers, as people and scripts see them
# --------------------------------------------------------------------------

def test_status_prints_a_table(phalanxctl_bin, control):
    server = control(answering(status_answer()))
    res = ctl(phalanxctl_bin, "-s", server.path, "status")
    assert res.returncode == 0, res.stderr
    assert server.received == [b"status\n"]
    lines = res.stdout.splitlines()
    # (a slow machine may take a second between the answer and the print)
    assert re.fullmatch(r"phalanx 0\.1\.0  master 4242  generation 3  up 2h13m  workers 2 "
                        r"\(1 ready\)  last reload ok 5m0\ds ago", lines[0]), lines[0]
    assert lines[1].split() == ["SLOT", "PID", "GEN", "STATE", "UPTIME", "RESTARTS", "LAST-EXIT",
                                "RSS", "CPU", "CONN", "REQS"]
    assert lines[2].split() == ["0", "4243", "3", "ready", "2h11m", "0/0", "-", "4.6M", "12.3s",
                                "3", "1.2k"]
    assert lines[3].split() == ["1", "-", "3", "errored", "(restart", "in", "15.0s)", "-", "17/16",
                                "exit", "3", "-", "-", "-", "-"]
    assert lines[4] == "total: 12 connections, 1.2M requests, 18.4M RSS, 5 restarts"
    assert res.stderr == ""


def test_json_prints_the_raw_answer_line(phalanxctl_bin, control):
    raw = json.dumps(status_answer(), separators=(",", ":"))
    server = control(answering(raw))
    res = ctl(phalanxctl_bin, "-s", server.path, "--json", "status")
    assert res.returncode == 0, res.stderr
    assert res.stdout == raw + "\n"
    json.loads(res.stdout)


def test_json_with_options_after_the_command(phalanxctl_bin, control):
    server = control(answering({"version": 1, "ok": True, "workers": 4}))
    res = ctl(phalanxctl_bin, "scale", "4", "--json", "-s", server.path)
    assert res.returncode == 0, res.stderr
    assert server.received == [b"scale 4\n"]
    assert json.loads(res.stdout) == {"version": 1, "ok": True, "workers": 4}


@pytest.mark.parametrize("args,line,answer,out", [
    (["reload"], b"reload\n", {"version": 1, "ok": True, "generation": 4, "workers": 2},
     "reload ok: generation 4, 2 workers\n"),
    (["scale", "8"], b"scale 8\n", {"version": 1, "ok": True, "workers": 8},
     "scale ok: 8 workers\n"),
    (["stop"], b"stop\n", {"version": 1, "ok": True}, "stop ok: phalanx is stopping\n"),
    (["show", "info"], b"show info\n",
     {"version": 1, "ok": True, "text": "Name: phalanx\nPid: 7\n"}, "Name: phalanx\nPid: 7\n"),
    (["show", "stat"], b"show stat\n",
     {"version": 1, "ok": True, "text": "# pxname,svname,pid\nphalanx,worker0,7"},
     "# pxname,svname,pid\nphalanx,worker0,7\n"),
    (["help"], b"help\n", {"version": 1, "ok": True, "text": "  status   workers\n"},
     "  status   workers\n"),
])
def test_each_command_sends_its_line_and_prints_its_outcome(phalanxctl_bin, control, args, line, answer,
                                                            out):
    server = control(answering(answer))
    res = ctl(phalanxctl_bin, "-s", server.path, *args)
    assert res.returncode == 0, res.stderr
    assert server.received == [line]
    assert res.stdout == out


def test_refusal_exits_1_with_the_error_on_stderr(phalanxctl_bin, control):
    error = 'etc/phalanx.json: routes[2].upstream: no upstream named "api"'
    server = control(answering({"version": 1, "ok": False, "error": error}))
    res = ctl(phalanxctl_bin, "-s", server.path, "reload")
    assert res.returncode == 1
    assert res.stdout == ""
    assert one_error_line(res) == f"phalanxctl: {error}"


def test_refusal_with_json_still_prints_the_answer(phalanxctl_bin, control):
    answer = {"version": 1, "ok": False, "error": "permission denied"}
    server = control(answering(answer))
    res = ctl(phalanxctl_bin, "-s", server.path, "--json", "stop")
    assert res.returncode == 1
    assert json.loads(res.stdout) == answer
    assert one_error_line(res) == "phalanxctl: permission denied"


def test_answer_without_trailing_newline(phalanxctl_bin, control):
    def behave(handler, _line):
        handler.wfile.write(b'{"version":1,"ok":true,')
        handler.wfile.flush()
        time.sleep(0.1)
        handler.wfile.write(b'"workers":3}')
    server = control(behave)
    res = ctl(phalanxctl_bin, "-s", server.path, "scale", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "scale ok: 3 workers\n"


# --------------------------------------------------------------------------
# usage errors: exit 2, nothing sent
# --------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    ([], "no command given"),
    (["restart"], "unknown command 'restart'"),
    (["scale", "0"], "scale: N must be a whole number from 1 to 256, got '0'"),
    (["scale", "257"], "got '257'"),
    (["scale", "two"], "got 'two'"),
    (["scale"], "usage: scale N"),
    (["show", "errors"], "usage: show info | show stat"),
    (["status", "now"], "'status' takes no arguments"),
    (["--timeout", "0", "status"], "--timeout needs a number of seconds"),
    (["--bogus", "status"], "unknown option '--bogus'"),
])
def test_usage_errors_exit_2_and_send_nothing(phalanxctl_bin, control, args, needle):
    server = control(answering({"version": 1, "ok": True}))
    res = ctl(phalanxctl_bin, "-s", server.path, *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    first = res.stderr.splitlines()[0]
    assert first.startswith("phalanxctl: ") and needle in first, res.stderr
    assert res.stdout == ""
    time.sleep(0.05)
    assert server.received == []


def test_help_and_version(phalanxctl_bin):
    res = ctl(phalanxctl_bin, "--help")
    assert res.returncode == 0
    assert res.stdout.startswith("usage: phalanxctl ")
    for word in ("status", "reload", "scale N", "stop", "show info", "show stat", "--json",
                 "--timeout", "PHALANX_SOCKET", "/run/phalanx/phalanx.sock"):
        assert word in res.stdout
    res = ctl(phalanxctl_bin, "-v")
    assert res.returncode == 0
    assert res.stdout.startswith("phalanxctl ") and res.stdout.split()[1][0].isdigit()


# --------------------------------------------------------------------------
# unreachable: exit 3, one line
# --------------------------------------------------------------------------

def test_missing_socket(phalanxctl_bin, tmp_path):
    path = str(tmp_path / "none.sock")
    res = ctl(phalanxctl_bin, "-s", path, "status")
    assert res.returncode == 3
    assert res.stdout == ""
    assert one_error_line(res) == (f"phalanxctl: no control socket at {path} (is phalanx running? "
                                   f"check control_socket in its config)")


def test_stale_socket(phalanxctl_bin, tmp_path):
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens: a master that died
    res = ctl(phalanxctl_bin, "-s", path, "status")
    assert res.returncode == 3
    assert one_error_line(res) == (f"phalanxctl: stale control socket {path}: nothing is "
                                   f"listening (phalanx is not running)")


def test_no_answer_times_out(phalanxctl_bin, control):
    server = control(lambda handler, _line: handler.server.release.wait(30))
    started = time.monotonic()
    res = ctl(phalanxctl_bin, "-s", server.path, "--timeout", "1", "status")
    took = time.monotonic() - started
    assert res.returncode == 3
    assert one_error_line(res) == f"phalanxctl: no answer from {server.path} within 1 s"
    assert 0.9 <= took < 5, f"took {took:.2f}s for a 1 s timeout"


def test_closed_without_an_answer(phalanxctl_bin, control):
    server = control(lambda handler, _line: None)
    res = ctl(phalanxctl_bin, "-s", server.path, "status")
    assert res.returncode == 3
    assert "connection closed without an answer" in one_error_line(res)


def test_invalid_answer(phalanxctl_bin, control):
    server = control(answering("<html>500</html>"))
    res = ctl(phalanxctl_bin, "-s", server.path, "status")
    assert res.returncode == 3
    line = one_error_line(res)
    assert line.startswith("phalanxctl: invalid answer: not JSON")
    assert line.endswith("<html>500</html>")


def test_an_answer_missing_what_the_command_needs_is_invalid(phalanxctl_bin, control):
    server = control(answering({"version": 1, "ok": True}))
    res = ctl(phalanxctl_bin, "-s", server.path, "status")
    assert res.returncode == 3
    assert one_error_line(res) == 'phalanxctl: invalid answer: status without a "master" object'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to ask as another user")
def test_permission_denied(phalanxctl_bin, control):
    server = control(answering({"version": 1, "ok": True}))
    os.chmod(server.path, 0o600)
    res = ctl(phalanxctl_bin, "-s", server.path, "status",
              preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)))
    assert res.returncode == 3
    assert one_error_line(res) == (f"phalanxctl: permission denied on {server.path} (run as the "
                                   f"user phalanx runs as, or root)")


# --------------------------------------------------------------------------
# where the socket is: -s, -c CONFIG, $PHALANX_SOCKET
# --------------------------------------------------------------------------

def test_socket_from_config_relative_to_the_current_directory(phalanxctl_bin, control, tmp_path):
    server = control(answering({"version": 1, "ok": True}), name="cfg.sock")
    config = tmp_path / "phalanx.json"
    config.write_text(json.dumps({"listen": ["127.0.0.1:8080"], "control_socket": "cfg.sock",
                                  "routes": [{"path": "/", "builtin": "live"}]}))
    res = ctl(phalanxctl_bin, "-c", str(config), "stop", cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert server.received == [b"stop\n"]


def test_a_config_with_errors_still_names_its_socket(phalanxctl_bin, control, tmp_path):
    error = "config: routes: required"
    server = control(answering({"version": 1, "ok": False, "error": error}), name="cfg.sock")
    config = tmp_path / "broken.json"
    config.write_text(json.dumps({"listen": ["127.0.0.1:8080"], "control_socket": server.path}))
    res = ctl(phalanxctl_bin, "-c", str(config), "reload")
    assert res.returncode == 1
    assert server.received == [b"reload\n"]
    assert one_error_line(res) == f"phalanxctl: {error}"


def test_unreadable_config_is_a_usage_error(phalanxctl_bin, tmp_path):
    path = str(tmp_path / "missing.json")
    res = ctl(phalanxctl_bin, "-c", path, "status")
    assert res.returncode == 2
    assert one_error_line(res) == f"phalanxctl: {path}: cannot read: No such file or directory"


def test_socket_from_environment_and_s_wins(phalanxctl_bin, control, tmp_path):
    env_server = control(answering({"version": 1, "ok": True, "workers": 1}), name="env.sock")
    flag_server = control(answering({"version": 1, "ok": True, "workers": 2}), name="flag.sock")
    res = ctl(phalanxctl_bin, "scale", "1", env={"PHALANX_SOCKET": env_server.path})
    assert res.returncode == 0, res.stderr
    assert env_server.received == [b"scale 1\n"]
    res = ctl(phalanxctl_bin, "-s", flag_server.path, "scale", "2",
              env={"PHALANX_SOCKET": env_server.path})
    assert res.returncode == 0, res.stderr
    assert flag_server.received == [b"scale 2\n"]
    assert len(env_server.received) == 1

"""Integration-test harness for phalanx.

Starts the real binary (``PHALANX_BIN``, default ``<repo>/build/phalanx``) with a
temporary JSON config on a free loopback port, waits until the master has forked
its workers and ``/health/live`` answers, and always tears everything down again
(SIGTERM to the master, then SIGKILL to the whole session).  Everything here uses
the Python standard library and pytest only.

Helpers:
  * ``Phalanx``      one running master + workers, with /proc introspection
  * ``Conn``         a raw keep-alive HTTP/1.x client over a plain socket
  * ``build_request`` / ``http_get`` small conveniences on top of ``Conn``
  * ``listening_inodes`` / ``socket_inodes`` map listening sockets to processes
"""

import copy
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PHALANX_BIN = os.environ.get("PHALANX_BIN") or os.path.join(REPO, "build", "phalanx")

WORKER_TITLE = re.compile(r"^phalanx: worker (\d+) gen (\d+)")
# What ASan, LSan and UBSan print when they find something (make test SANITIZE=1).
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error: |"
                              r"SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer")
MASTER_TITLE_PREFIX = "phalanx: master"

# Every Phalanx instance started by the suite; used to attach logs to failures.
_INSTANCES = []


# --------------------------------------------------------------------------
# pytest plumbing
# --------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failing test, append the stderr of every phalanx started for it."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    started = getattr(item, "_phalanx_started_at", None)
    for inst in _INSTANCES:
        relevant = inst.running() or (started is not None and inst.started_at >= started)
        if relevant:
            rep.sections.append((f"phalanx master stderr ({inst.workdir})", inst.log()[-20000:]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._phalanx_started_at = time.monotonic()


@pytest.fixture(scope="session")
def phalanx_bin():
    if not (os.path.isfile(PHALANX_BIN) and os.access(PHALANX_BIN, os.X_OK)):
        pytest.fail(f"phalanx binary not found at {PHALANX_BIN} (build it with `make build` "
                    f"or set PHALANX_BIN)", pytrace=False)
    return PHALANX_BIN


@pytest.fixture
def phalanx_factory(phalanx_bin, tmp_path):
    """Start phalanx instances for one test; all of them are stopped afterwards."""
    made = []

    def start(config=None, workers=2, wait=True, **overrides):
        idx = len(made)
        workdir = tmp_path / f"phalanx{idx}"
        workdir.mkdir()
        cfg = config if config is not None else make_config(workers=workers, **overrides)
        inst = Phalanx(phalanx_bin, str(workdir), cfg)
        made.append(inst)
        inst.start(wait=wait)
        return inst

    yield start
    reports = []
    for inst in made:
        try:
            inst.cleanup()
        except AssertionError as e:  # a sanitizer report: clean up the others first
            reports.append(str(e))
    assert not reports, "\n".join(reports)


@pytest.fixture
def own_binary_phalanx(tmp_path, phalanx_bin):
    """A Phalanx run from a private copy of the binary, which the test may
    replace (a deploy, see `deploy`): respawns, reloads and upgrades exec what
    is then at that path."""
    made = []

    def start(config):
        bindir = tmp_path / "bin"
        bindir.mkdir()
        binary = str(bindir / "phalanx")
        shutil.copy2(phalanx_bin, binary)
        workdir = tmp_path / "run"
        workdir.mkdir()
        inst = Phalanx(binary, str(workdir), config)
        made.append(inst)
        inst.start()
        return inst

    yield start
    for inst in made:
        inst.cleanup()  # kills its session: an upgrade's new master is in it too


def deploy(path, content=None, source=None):
    """Replaces the file at `path` by rename, as a package manager does: with a
    copy of `source`, or with the script `content`."""
    tmp = path + ".new"
    if source:
        shutil.copy2(source, tmp)
    else:
        with open(tmp, "w") as f:
            f.write(content)
        os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def module_server(request, tmp_path_factory, name, **config_kw):
    """Start one shared phalanx for a test module; registers its cleanup."""
    if not (os.path.isfile(PHALANX_BIN) and os.access(PHALANX_BIN, os.X_OK)):
        pytest.fail(f"phalanx binary not found at {PHALANX_BIN}", pytrace=False)
    workdir = tmp_path_factory.mktemp(name)
    inst = Phalanx(PHALANX_BIN, str(workdir), make_config(**config_kw))
    request.addfinalizer(inst.cleanup)
    inst.start()
    return inst


# --------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------

DEFAULT_ROUTES = [
    {"path": "/health/live", "builtin": "live"},
    {"path": "/", "static": {"status": 200, "body": "ok\n",
                             "headers": {"Content-Type": "text/plain"}}},
    {"path": "/a", "static": {"status": 200, "body": "first"}},
    {"path": "/b", "static": {"status": 200, "body": "second"}},
    {"path": "/c", "static": {"status": 200, "body": "third"}},
    {"prefix": "/static/", "static": {"status": 201, "body": "prefixed"}},
]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(workers=2, limits=None, log=None, listen=None, routes=None, extra=None):
    cfg = {
        "listen": listen or [f"127.0.0.1:{free_port()}"],
        "workers": workers,
        "log": log or {"level": "info", "access": "off"},
        "routes": copy.deepcopy(routes if routes is not None else DEFAULT_ROUTES),
    }
    if limits:
        cfg["limits"] = dict(limits)
    if extra:
        cfg.update(extra)
    return cfg


# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, pgrp, session) of pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2]), int(rest[3])


def proc_title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(ppid):
    """Live (non-zombie) children of ppid."""
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[1] == ppid and st[0] != "Z":
            out.append(pid)
    return out


def session_members(sid):
    """Every process (including zombies) whose session id is sid: (pid, state, title)."""
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[3] == sid:
            out.append((pid, st[0], proc_title(pid)))
    return out


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def listening_inodes(port):
    """Inodes of TCP sockets in LISTEN state on the given local port (v4 and v6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(int(inode))
    return inodes


def socket_inodes(pid):
    """Inodes of every socket fd held by pid."""
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            out.add(int(m.group(1)))
    return out


# --------------------------------------------------------------------------
# the server under test
# --------------------------------------------------------------------------

class Phalanx:
    def __init__(self, binary, workdir, config):
        self.binary = binary
        self.workdir = workdir
        self.config = config
        self.config_path = os.path.join(workdir, "phalanx.json")
        self.stderr_path = os.path.join(workdir, "master.stderr")
        self.stdout_path = os.path.join(workdir, "master.stdout")
        self.proc = None
        self.started_at = time.monotonic()
        self.seen_pids = set()
        self.returncode = None
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)

    # -- facts from the config
    @property
    def ports(self):
        return [int(a.rsplit(":", 1)[1]) for a in self.config["listen"]]

    @property
    def port(self):
        return self.ports[0]

    @property
    def nworkers(self):
        return self.config["workers"]

    @property
    def pid(self):
        return self.proc.pid

    # -- life cycle
    def start(self, wait=True, timeout=10.0):
        self.started_at = time.monotonic()
        _INSTANCES.append(self)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, start_new_session=True,
                                     cwd=self.workdir)
        self.seen_pids.add(self.proc.pid)
        if wait:
            self.wait_ready(timeout)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                err = f.read().decode("utf-8", "replace")
            with open(self.stdout_path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return err + (("\n--- stdout ---\n" + out) if out else "")

    def workers(self):
        """{pid: (slot, generation)} of live children titled as workers."""
        out = {}
        for pid in children_of(self.proc.pid):
            title = proc_title(pid) or ""
            m = WORKER_TITLE.match(title)
            if m:
                out[pid] = (int(m.group(1)), int(m.group(2)))
        self.seen_pids.update(out)
        return out

    def worker_pids(self):
        return set(self.workers())

    def worker_by_slot(self):
        return {slot: pid for pid, (slot, _gen) in self.workers().items()}

    def wait_workers(self, n=None, timeout=10.0):
        n = self.nworkers if n is None else n
        deadline = time.monotonic() + timeout
        ws = {}
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"phalanx master exited early with {self.proc.returncode}:\n{self.log()}")
            ws = self.workers()
            if len(ws) == n and sorted(s for s, _ in ws.values()) == list(range(n)):
                return ws
            time.sleep(0.05)
        titles = {p: proc_title(p) for p in children_of(self.proc.pid)}
        raise AssertionError(f"expected {n} workers (slots 0..{n - 1}) under master {self.pid}, "
                             f"children are {titles}\n{self.log()}")

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        n = self.nworkers if isinstance(self.nworkers, int) else None
        if n is not None:
            self.wait_workers(n, timeout)
        # /health/live must answer on every port; several connections land on
        # different SO_REUSEPORT sockets, so ask a few times.
        for port in self.ports:
            ok = 0
            last = None
            while ok < 2 * (n or 2):
                if time.monotonic() > deadline:
                    raise AssertionError(f"/health/live on port {port} not ready within {timeout}s "
                                         f"(last: {last!r})\n{self.log()}")
                if not self.running():
                    raise AssertionError(f"phalanx master exited early with {self.proc.returncode}:\n{self.log()}")
                try:
                    r = http_get(port, "/health/live", timeout=1.0)
                    last = r.status
                    ok = ok + 1 if r.status == 200 else 0
                except OSError as e:
                    last = e
                    ok = 0
                    time.sleep(0.05)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig to the master and wait for it; returns its exit status."""
        self.workers()  # remember the pids for the leftover check
        os.kill(self.proc.pid, sig)
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def leftovers(self, timeout=3.0):
        """Processes of this instance still present after the master exited."""
        deadline = time.monotonic() + timeout
        while True:
            left = session_members(self.proc.pid)
            known = {x[0] for x in left}
            for p in self.seen_pids - known - {self.proc.pid}:
                st = proc_stat(p)
                if st:
                    left.append((p, st[0], proc_title(p)))
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def cleanup(self):
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.workers()
                try:
                    os.kill(self.proc.pid, signal.SIGTERM)
                    self.proc.wait(timeout=10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in list(self.seen_pids):
                if pid != self.proc.pid and pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
                if f:
                    f.close()
        self.assert_no_sanitizer_report()

    def assert_no_sanitizer_report(self):
        """A sanitized build (make test SANITIZE=1) reports on stderr, which the workers
        share with the master; a worker that died of it is replaced and the test might
        pass without this check."""
        log = self.log()
        m = SANITIZER_REPORT.search(log)
        assert m is None, (f"a sanitizer report in the log of phalanx ({self.workdir}):\n"
                           f"{log[max(0, m.start() - 2000):m.start() + 8000]}")

    # -- the control socket
    @property
    def control_path(self):
        path = self.config.get("control_socket", "run/phalanx.sock")
        return path if os.path.isabs(path) else os.path.join(self.workdir, path)

    def control(self, command, timeout=30.0):
        """Sends one command line to the control socket; returns the parsed JSON answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control_path)
            s.sendall(command.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert data.endswith(b"\n"), f"control answer without a newline: {data!r}"
        return json.loads(data)

    def status(self):
        answer = self.control("status")
        assert answer["ok"], answer
        return answer

    def serving_rows(self):
        """Status rows of processes that serve (not draining), by slot."""
        return {w["slot"]: w for w in self.status()["workers"]
                if w["pid"] and w["state"] != "draining"}

    # -- checks shared by several tests
    def assert_serving(self, path="/", expect=200, tries=None):
        """Several fresh connections (spread over the SO_REUSEPORT sockets) all answer."""
        n = self.nworkers if isinstance(self.nworkers, int) else 2
        for i in range(tries or 2 * n):
            r = http_get(self.port, path, timeout=3.0)
            assert r.status == expect, f"follow-up request #{i} to {path} got {r.status}, wanted {expect}"

    def assert_workers_survived(self, before):
        after = self.worker_pids()
        assert after == before, (f"worker pids changed: before {sorted(before)}, after {sorted(after)}"
                                 f" (a worker died?)\n{self.log()[-3000:]}")
        self.assert_serving()


# --------------------------------------------------------------------------
# raw HTTP client
# --------------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in wire order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class Closed(Exception):
    """The peer closed before a complete response arrived."""


class Conn:
    def __init__(self, port, timeout=5.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes into buf. False on EOF; raises socket.timeout past deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for response bytes")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed(f"connection closed with {len(self.buf)}/{n} bytes buffered: {self.buf[:300]!r}")

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                raise Closed(f"connection closed mid-line: {self.buf[:300]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, timeout=5.0, head=False):
        """Read one response (an interim 1xx is returned as is, without body)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise Closed(f"connection closed before a complete response head: {self.buf[:300]!r}")
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            assert sep, f"bad response header line {line!r}"
            headers.append((k.strip(), v.strip()))
        resp = Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, b"", raw_head)
        if head or resp.status < 200 or resp.status in (204, 304):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                size = int(self._line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._line(deadline) != b"":
                        pass
                    break
                self._need(size + 2, deadline)
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
            resp.body = body
        elif resp.header("Content-Length") is not None:
            n = int(resp.header("Content-Length"))
            self._need(n, deadline)
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def read_final(self, timeout=5.0, head=False):
        """Read a response, skipping interim 1xx responses."""
        while True:
            r = self.read_response(timeout, head)
            if r.status >= 200:
                return r

    def wait_closed(self, timeout=5.0):
        """Wait for EOF. Returns (closed, extra_bytes_received)."""
        deadline = time.monotonic() + timeout
        extra = self.buf
        self.buf = b""
        if self.eof:
            return True, extra
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False, extra
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False, extra
            except ConnectionResetError:
                return True, extra
            if not chunk:
                self.eof = True
                return True, extra
            extra += chunk

    def readable_within(self, timeout):
        """True if any byte (or EOF) arrives within timeout, without consuming it."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_request(method="GET", path="/", version="HTTP/1.1", headers=None, body=b"", host=True):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} {version}"]
    hdrs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    if host and not any(k.lower() == "host" for k, _ in hdrs):
        lines.append("Host: localhost")
    for k, v in hdrs:
        lines.append(f"{k}: {v}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_get(port, path="/", timeout=5.0, method="GET", headers=None):
    """One request on a fresh connection with Connection: close."""
    hdrs = {"Connection": "close"}
    hdrs.update(headers or {})
    with Conn(port, timeout=timeout) as c:
        c.send(build_request(method, path, headers=hdrs))
        return c.read_final(timeout, head=(method == "HEAD"))


def assert_common_headers(resp):
    """Every phalanx response carries Date, Content-Length (or chunked) and Server: phalanx."""
    assert resp.header("Server") == "phalanx", f"Server header is {resp.header('Server')!r}: {resp!r}"
    assert resp.header("Date"), f"no Date header: {resp!r}"
    assert resp.header("Content-Length") is not None or \
        "chunked" in (resp.header("Transfer-Encoding") or "").lower(), f"no Content-Length: {resp!r}"


def run(cmd, timeout=60, **kw):
    """Run a command, returning CompletedProcess with text output."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# --------------------------------------------------------------------------
# supervision, reload and control: shared by test_supervision, test_reload,
# test_control
# --------------------------------------------------------------------------

import threading  # noqa: E402

PHALANXCTL_BIN = os.environ.get("PHALANXCTL_BIN") or os.path.join(REPO, "build", "phalanxctl")


@pytest.fixture(scope="session")
def phalanxctl_bin():
    if not (os.path.isfile(PHALANXCTL_BIN) and os.access(PHALANXCTL_BIN, os.X_OK)):
        pytest.fail(f"phalanxctl binary not found at {PHALANXCTL_BIN} (set PHALANXCTL_BIN)",
                    pytrace=False)
    return PHALANXCTL_BIN


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Polls predicate() until it returns something truthy, which is returned.
    Past the deadline raises AssertionError naming `message` (a str, or a
    callable giving one, evaluated then) and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {text} (last: {value!r})")
        time.sleep(interval)


def supervised_config(workers=2, supervisor=None, routes=None, **kw):
    """make_config with a "supervisor" section (and the default routes plus /slow
    unless `routes` is given)."""
    if routes is None:
        routes = DEFAULT_ROUTES + [{"path": "/slow",
                                    "static": {"status": 200, "body": "slow", "delay_ms": 2000}}]
    extra = dict(kw.pop("extra", None) or {})
    if supervisor is not None:
        extra["supervisor"] = dict(supervisor)
    return make_config(workers=workers, routes=routes, extra=extra or None, **kw)


def rewrite_config(ph, config, remember=True):
    """Replaces the config file of a running Phalanx (atomically: a reload never
    reads half a file) and, with `remember`, makes it ph.config (whose listen
    the helpers connect to)."""
    tmp = ph.config_path + ".tmp"
    with open(tmp, "w") as f:
        if isinstance(config, str):
            f.write(config)
        else:
            json.dump(config, f, indent=2)
    os.replace(tmp, ph.config_path)
    if remember and not isinstance(config, str):
        ph.config = config


def rows_of(status, slot=None):
    """The status rows, optionally only those of one slot."""
    return [w for w in status["workers"] if slot is None or w["slot"] == slot]


def live_identity(port, timeout=3.0, conn=None):
    """GET /health/live; returns its JSON ({"worker": slot, "pid": ..., ...}).
    On a fresh connection (Connection: close) unless `conn` is given."""
    if conn is None:
        r = http_get(port, "/health/live", timeout=timeout)
    else:
        conn.send(build_request("GET", "/health/live"))
        r = conn.read_final(timeout)
    assert r.status == 200, f"/health/live answered {r!r}"
    return r.json()


def conn_to_slot(port, slot, tries=200, timeout=3.0):
    """A keep-alive Conn that the kernel gave to `slot`'s socket (fresh
    connections until one lands there)."""
    for _ in range(tries):
        c = Conn(port, timeout=timeout)
        try:
            if live_identity(port, timeout, conn=c)["worker"] == slot:
                return c
        except Exception:
            c.close()
            raise
        c.close()
    raise AssertionError(f"no connection to port {port} landed on slot {slot} in {tries} tries")


def ctl(phalanxctl, ph_or_path, *args, timeout=60):
    """Runs phalanxctl -s <control socket> args...; returns the CompletedProcess."""
    path = ph_or_path if isinstance(ph_or_path, str) else ph_or_path.control_path
    return run([phalanxctl, "-s", path, *args], timeout=timeout)


def parse_wrk(out):
    """wrk's summary: {"requests", "socket_errors": (connect, read, write, timeout), "non2xx"}."""
    m = re.search(r"(\d+) requests in", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(m.group(1)) if m else None,
            "socket_errors": tuple(int(x) for x in sock.groups()) if sock else (0, 0, 0, 0),
            "non2xx": int(non.group(1)) if non else 0}


def ab_field(out, name):
    """An integer field of ab's report ("Failed requests"), or None when absent."""
    m = re.search(rf"^{re.escape(name)}:\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else None


class RequestLoop:
    """Background clients that GET `path` until stopped and count the outcomes.

    `keepalive` threads each reuse one connection, and open a new one after an
    answer that carries `Connection: close` (as any HTTP client does); `fresh`
    threads open a connection per request. Anything but a complete `expect`
    answer within `timeout` is a failure, recorded with when and what."""

    def __init__(self, port, path="/", keepalive=1, fresh=1, timeout=5.0, expect=200):
        self.port, self.path, self.timeout, self.expect = port, path, timeout, expect
        self.ok = 0
        self.failures = []  # (seconds since start, kind, detail)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._keepalive, daemon=True) for _ in range(keepalive)]
        self._threads += [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]

    @property
    def count(self):
        with self._lock:
            return self.ok + len(self.failures)

    def _record(self, resp=None, error=None, kind=""):
        with self._lock:
            if error is None and resp.status == self.expect:
                self.ok += 1
            else:
                self.failures.append((round(time.monotonic() - self._t0, 3), kind,
                                      repr(error) if error is not None else repr(resp)))

    def _keepalive(self):
        c = None
        while not self._stop.is_set():
            try:
                if c is None:
                    c = Conn(self.port, timeout=self.timeout)
                c.send(build_request("GET", self.path))
                r = c.read_final(self.timeout)
                self._record(r, kind="keep-alive")
                if (r.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
            except Exception as e:  # noqa: BLE001 - every failure counts
                self._record(error=e, kind="keep-alive")
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    def _fresh(self):
        while not self._stop.is_set():
            try:
                self._record(http_get(self.port, self.path, timeout=self.timeout), kind="fresh")
            except Exception as e:  # noqa: BLE001
                self._record(error=e, kind="fresh")

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# upstreams for the proxy tests: the test origin (upstream_server.py), a real
# redis-server and a real nginx, each on a free loopback port
# --------------------------------------------------------------------------

import hashlib  # noqa: E402
import http.client  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

UPSTREAM_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upstream_server.py")
REDIS_SERVER_BIN = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or "/usr/bin/redis-server"
NGINX_BIN = os.environ.get("NGINX_BIN") or "/usr/sbin/nginx"


def pattern_bytes(n, offset=0):
    """The deterministic bytes upstream_server's /bytes and nginx_upstream's /big
    serve: byte i is i % 251."""
    block = bytes(range(251)) * (n // 251 + 2)
    s = offset % 251
    return block[s:s + n]


def pattern_sha256(n):
    """sha256 hex of pattern_bytes(n), computed in 1 MiB pieces."""
    h = hashlib.sha256()
    piece = 251 * 4096  # a multiple of 251: every piece starts at offset 0
    block = pattern_bytes(piece)
    left = n
    while left:
        k = min(left, piece)
        h.update(block[:k])
        left -= k
    return h.hexdigest()


def _stop_process(proc, sig=signal.SIGTERM, timeout=5.0, group=False):
    """Signal proc (its process group with `group`), wait, SIGKILL after timeout.
    Returns the exit status (None if it was not running)."""
    if proc is None:
        return None
    if proc.poll() is not None:
        if group:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
            except (ProcessLookupError, PermissionError):
                pass
        return proc.returncode
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
    if group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return proc.returncode


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class Upstream:
    """One upstream_server.py process; see upstream_factory."""

    def __init__(self, workdir, name="u1", idle_close_ms=None, port=None):
        self.workdir = workdir
        self.name = name
        self.idle_close_ms = idle_close_ms
        self.port = port or free_port()
        self.proc = None
        self.starts = 0

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout=10.0):
        assert not self.running(), f"upstream {self.name} is already running"
        self.starts += 1
        stem = os.path.join(self.workdir, f"{self.name}.{self.starts}")
        self.stdout_path, self.stderr_path = stem + ".out", stem + ".err"
        cmd = [sys.executable, UPSTREAM_SERVER, "--port", str(self.port), "--name", self.name]
        if self.idle_close_ms is not None:
            cmd += ["--idle-close-ms", str(self.idle_close_ms)]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"upstream {self.name} exited with {self.proc.returncode}:\n"
                                     f"{self.log()}")
            return f"ready {self.port}" in _read_text(self.stdout_path)
        wait_until(ready, timeout, message=lambda: f"upstream {self.name} ready on {self.port}")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return _read_text(self.stderr_path) if self.proc else ""

    def stop(self, timeout=5.0):
        """SIGTERM and wait (SIGKILL after timeout); returns the exit status."""
        return _stop_process(self.proc, signal.SIGTERM, timeout)

    def kill(self):
        """SIGKILL: the target dies without closing anything itself."""
        return _stop_process(self.proc, signal.SIGKILL, 5.0)

    def restart(self, timeout=10.0):
        """Stops it if running and starts it again on the same port."""
        self.stop()
        return self.start(timeout)

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a fresh http.client connection: (status, headers dict, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def stats(self):
        """GET /admin/stats: {"connections", "requests", "open_connections", "by_path",
        "expect_seen"} (admin requests and connections are not counted)."""
        status, _, body = self.request("GET", "/admin/stats", headers={"Connection": "close"})
        assert status == 200, (status, body)
        return json.loads(body)

    def reset_stats(self):
        status, _, body = self.request("GET", "/admin/reset-stats", headers={"Connection": "close"})
        assert status == 200, (status, body)

    def set_health(self, status):
        """What /health answers from now on (200, 503, ...)."""
        code, _, body = self.request("GET", f"/admin/health?status={int(status)}",
                                     headers={"Connection": "close"})
        assert code == 200, (code, body)

    def __repr__(self):
        return f"<Upstream {self.name} {self.address} pid={self.proc.pid if self.proc else None}>"


@pytest.fixture
def upstream_factory(tmp_path):
    """start(name="u1", idle_close_ms=None, port=None) -> Upstream (running, "ready"
    seen). Every upstream started is stopped at teardown."""
    made = []
    workdir = tmp_path / "upstreams"
    workdir.mkdir(exist_ok=True)

    def start(name="u1", idle_close_ms=None, port=None):
        up = Upstream(str(workdir), name=name, idle_close_ms=idle_close_ms, port=port)
        made.append(up)
        return up.start()

    yield start
    for up in made:
        _stop_process(up.proc, signal.SIGTERM, 5.0)


# ---- redis

class RedisError(Exception):
    """An error reply (-ERR ...) from redis."""


class RespClient:
    """A tiny RESP2 client over one socket: command(*args) sends one command and
    returns its parsed reply (str for +simple, int, bytes or None for bulk, list or
    None for arrays); an error reply raises RedisError."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("redis closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise ConnectionError(f"bad RESP line {line!r}")

    def command(self, *args):
        self.sock.sendall(self.encode(*args))
        reply = self.read_reply()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Redis:
    """One redis-server process; see redis_factory."""

    def __init__(self, workdir, port=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.proc = None
        self.starts = 0

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=10.0):
        assert not self.running(), "redis is already running"
        self.starts += 1
        self.log_path = os.path.join(self.workdir, f"redis.{self.starts}.log")
        cmd = [REDIS_SERVER_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", self.workdir, "--logfile", ""]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

        def pong():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n"
                                     f"{_read_text(self.log_path)}")
            try:
                return self.command("PING") == "PONG"
            except (OSError, RedisError):  # not listening yet, or LOADING
                return False
        wait_until(pong, timeout, message=lambda: f"redis PING on {self.port}")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM (redis exits without saving: --save '') and wait."""
        return _stop_process(self.proc, signal.SIGTERM, timeout)

    def kill(self):
        return _stop_process(self.proc, signal.SIGKILL, 5.0)

    def client(self, timeout=5.0):
        """A persistent RespClient (for MONITOR, SUBSCRIBE, pipelines); close it."""
        return RespClient(self.port, timeout=timeout)

    def command(self, *args, timeout=5.0):
        """One command on a fresh connection; the parsed reply (see RespClient)."""
        with RespClient(self.port, timeout=timeout) as c:
            return c.command(*args)

    def log(self):
        return _read_text(self.log_path) if self.proc else ""


@pytest.fixture
def redis_factory(tmp_path):
    """redis_factory(port=None) -> Redis (running, PING answered). Killed at teardown."""
    if not os.access(REDIS_SERVER_BIN, os.X_OK):
        pytest.fail(f"redis-server not found at {REDIS_SERVER_BIN} (scripts/install-deps.sh)",
                    pytrace=False)
    made = []

    def start(port=None):
        workdir = tmp_path / f"redis{len(made)}"
        workdir.mkdir()
        r = Redis(str(workdir), port=port)
        made.append(r)
        return r.start()

    yield start
    for r in made:
        _stop_process(r.proc, signal.SIGKILL, 5.0)


# ---- nginx

NGINX_BIG_BYTES = 16 * 1024 * 1024

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr;
{user}
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    default_type application/octet-stream;
{temp_paths}
    keepalive_timeout 60s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location /echo {{
            add_header X-Upstream nginx;
            return 200 "$request_method $request_uri\\n";
        }}
        location /big {{
            add_header X-Upstream nginx;
            root {prefix}/www;
        }}
    }}
}}
"""


class Nginx:
    """One nginx (master + 1 worker); see nginx_upstream."""

    def __init__(self, prefix, port=None):
        self.prefix = prefix
        self.port = port or free_port()
        self.proc = None
        self.conf_path = os.path.join(prefix, "nginx.conf")
        self.log_path = os.path.join(prefix, "nginx.stderr")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def write_config(self, temp_kinds):
        temp_paths = []
        for kind in temp_kinds:
            d = os.path.join(self.prefix, "tmp", kind)
            os.makedirs(d, exist_ok=True)
            temp_paths.append(f"    {kind}_temp_path {d};")
        # As root the worker would switch to nobody, who cannot enter pytest's
        # 0700 tmp_path (nor read the big file there).
        user = "user root root;" if os.geteuid() == 0 else ""
        with open(self.conf_path, "w") as f:
            f.write(NGINX_CONF.format(prefix=self.prefix, port=self.port, user=user,
                                      temp_paths="\n".join(temp_paths)))

    def cmd(self, *extra):
        # -e stderr: nginx opens its compiled-in error log before reading the config
        # (harmless in this build, whose default is stderr, but not in every build).
        return [NGINX_BIN, "-p", self.prefix, "-c", self.conf_path, "-e", "stderr", *extra]

    def configure(self):
        """Writes the config, dropping temp-path directives of modules this nginx
        was built without, until `nginx -t` accepts it."""
        kinds = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        while True:
            self.write_config(kinds)
            r = run(self.cmd("-t"), timeout=30)
            if r.returncode == 0:
                return
            m = re.search(r'unknown directive "(\w+)_temp_path"', r.stderr)
            if not m or m.group(1) not in kinds:
                raise AssertionError(f"nginx -t rejected {self.conf_path}:\n{r.stderr}")
            kinds.remove(m.group(1))

    def start(self, timeout=10.0):
        assert not self.running(), "nginx is already running"
        www = os.path.join(self.prefix, "www")
        os.makedirs(www, exist_ok=True)
        big = os.path.join(www, "big")
        if not os.path.exists(big):
            with open(big, "wb") as f:
                f.write(pattern_bytes(NGINX_BIG_BYTES))
        self.configure()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return http_get(self.port, "/echo", timeout=1.0).status == 200
            except OSError:
                return False
        wait_until(answers, timeout, interval=0.05, message=lambda: f"nginx /echo on {self.port}")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM to the master (fast shutdown), then SIGKILL to its whole group."""
        return _stop_process(self.proc, signal.SIGTERM, timeout, group=True)

    def log(self):
        return _read_text(self.log_path)


@pytest.fixture
def nginx_upstream(tmp_path):
    """nginx_upstream(port=None) -> Nginx (running): /echo answers 200
    "$request_method $request_uri\\n" with X-Upstream: nginx; /big is a 16 MiB
    static file of pattern_bytes; keepalive_timeout 60s, keepalive_requests 100000.
    Stopped (with its worker) at teardown."""
    if not os.access(NGINX_BIN, os.X_OK):
        pytest.fail(f"nginx not found at {NGINX_BIN} (nginx-light, scripts/install-deps.sh)",
                    pytrace=False)
    made = []

    def start(port=None):
        prefix = tmp_path / f"nginx{len(made)}"
        prefix.mkdir()
        n = Nginx(str(prefix), port=port)
        made.append(n)
        return n.start()

    yield start
    for n in made:
        _stop_process(n.proc, signal.SIGTERM, 5.0, group=True)


import struct  # noqa: E402
import zlib  # noqa: E402


def assert_png(path):
    """A PNG file that decodes: signature, IHDR with its CRC, over 100×100 pixels, not blank."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > 33, f"{path}: {len(data)} bytes"
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, f"{path}: first chunk is {kind!r}, not IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100, f"{path}: {width}x{height}"
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29]) & 0xFFFFFFFF, f"{path}: IHDR CRC mismatch"
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.size > 0 and img.shape[0] == height and img.shape[1] == width
    # not a blank canvas
    assert float(img.min()) < float(img.max()), f"{path}: a uniform image"

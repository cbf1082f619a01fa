"""A complete local deployment for the load scenarios, on free loopback ports.

    redis-server                      (cluster-mode limit of the gateway: every /api/
                                       request is one EVALSHA there)
    upstream-a, upstream-b            two phalanx processes with static routes and
                                       delay_ms: the "API", one target each, so one
                                       target can be killed or reloaded alone
    gateway                           phalanx, 2 workers, pool "api" over both targets
                                       (health checks, breaker), auth api_key with tiers
                                       free/standard/premium, the rate-limited /limited/,
                                       /health/live, /health/status, /metrics, a control
                                       socket

Every process is started in its own session and stopped (TERM, then KILL to the
whole group) by stop(), which is idempotent; run.py calls it from a finally
block and from its signal handlers, so Ctrl-C or an exception leaves nothing.
"""

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

# The API behind the gateway: path -> (delay_ms, body size in bytes).
ENDPOINTS = {
    "/api/users": (1, 300),
    "/api/users/1": (1, 120),
    "/api/search": (30, 8 * 1024),
    "/api/orders": (10, 600),
    "/api/slow": (150, 1024),
    "/limited/item": (0, 64),
}

TIERS = ("free", "standard", "premium")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_keys(per_tier=4):
    """Deterministic keys: [{"key", "tier", "id"}], per_tier of each tier."""
    return [{"key": f"loadtest-{tier}-key-{i:04d}-0123456789", "tier": tier, "id": f"{tier}-{i}"}
            for tier in TIERS for i in range(per_tier)]


def _body(size, path):
    head = json.dumps({"path": path, "data": ""})
    pad = max(0, size - len(head))
    return json.dumps({"path": path, "data": "x" * pad})


def upstream_config(port, mode="ok", slow_ms=700):
    """One API target. mode: "ok", "error" (every route answers 500) or "slow"
    (every route slow_ms later than usual). /health follows the mode too, as a
    real broken service's health endpoint would."""
    routes = [{"path": "/health/live", "builtin": "live"}]
    for path, (delay, size) in [("/health", (0, 16))] + list(ENDPOINTS.items()):
        static = {"status": 200, "body": _body(size, path),
                  "headers": {"Content-Type": "application/json"}}
        if mode == "error":
            static = {"status": 500, "body": '{"error":"injected failure"}',
                      "headers": {"Content-Type": "application/json"}}
        if mode == "slow":
            delay += slow_ms
        if delay:
            static["delay_ms"] = delay
        routes.append({"path": path, "static": static})
    routes.append({"prefix": "/limited/", "static": {"status": 200, "body": "{}\n"}})
    return {"listen": [f"127.0.0.1:{port}"], "workers": 1,
            "log": {"level": "warn", "access": "off"},
            "control_socket": "run/phalanx.sock",
            "supervisor": {"drain_timeout_ms": 3000, "shutdown_timeout_ms": 3000},
            "routes": routes}


def gateway_config(port, targets, redis_port, limited, keys):
    """limited: {"rate": "20/s", "burst": 20 or absent, "key": "ip"} (what the
    gateway really enforces on /limited/, from [deployment] in scenarios.toml)."""
    lim = {"key": limited.get("key", "ip"), "rate": limited["rate"]}
    if limited.get("burst"):
        lim["burst"] = int(limited["burst"])
    return {
        "listen": [f"127.0.0.1:{port}"],
        "workers": 2,
        "control_socket": "run/phalanx.sock",
        "log": {"level": "warn", "access": "off"},
        "limits": {"max_connections": 20000},
        "supervisor": {"drain_timeout_ms": 5000, "shutdown_timeout_ms": 5000,
                       "restart_base_ms": 100},
        "redis": {"address": f"127.0.0.1:{redis_port}", "timeout_ms": 50},
        "trusted_proxies": ["127.0.0.0/8"],
        "upstreams": {"api": {
            "targets": [{"address": f"127.0.0.1:{p}", "weight": 1} for p in targets],
            "balance": "round_robin", "connect_timeout_ms": 500, "timeout_ms": 1000,
            "retries": 1,
            "health_check": {"path": "/health", "interval_ms": 500, "timeout_ms": 400,
                             "healthy_threshold": 2, "unhealthy_threshold": 2},
            "breaker": {"consecutive_failures": 5, "failure_rate": 0.5, "minimum_calls": 10,
                        "window_ms": 5000, "open_ms": 2000, "half_open_calls": 2,
                        "slow_call_ms": 500, "slow_call_rate": 0.5}}},
        # Rates far above what any scenario sends per key: tiers are exercised
        # (every /api/ request is checked against its key's tier) but not refusing.
        "tiers": {"free": {"rate": "100000/m"}, "standard": {"rate": "200000/m"},
                  "premium": {"rate": "1000000/m"}},
        "api_keys": [{"key": k["key"], "tier": k["tier"], "id": k["id"]} for k in keys],
        "rate_limits": {
            "limited": lim,
            # One bucket for the whole route in Redis (EVALSHA per request), never refusing.
            "fleet": {"key": "route", "rate": "10000000/m", "mode": "cluster",
                      "on_redis_error": "local"}},
        "routes": [
            {"path": "/health/live", "builtin": "live"},
            {"path": "/health/ready", "builtin": "ready"},
            {"path": "/health/status", "builtin": "status"},
            {"path": "/metrics", "builtin": "metrics"},
            dict({"prefix": "/limited/", "upstream": "api", "rate_limit": "limited"},
                 **({"auth": "api_key"} if lim["key"] == "api_key" else {})),
            {"prefix": "/api/", "upstream": "api", "auth": "api_key",
             "tiers": list(TIERS), "rate_limit": "fleet"},
        ],
    }


def http_ok(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


class Proc:
    """One process in its own session, output to a log file."""

    def __init__(self, name, cmd, workdir):
        self.name, self.cmd, self.workdir = name, cmd, workdir
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.workdir)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=6.0, sig=signal.SIGTERM):
        """sig, wait up to timeout, then SIGKILL to the whole session's group."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # workers left behind by a master that was killed
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except FileNotFoundError:
            return ""


class Upstream:
    """One API target: its own phalanx master, so it can be killed or reloaded alone."""

    def __init__(self, name, binary, workdir):
        self.name, self.binary = name, binary
        self.workdir = os.path.join(workdir, name)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.config_path = os.path.join(self.workdir, "phalanx.json")
        self.proc = None
        self.mode = "ok"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def write(self, mode):
        self.mode = mode
        with open(self.config_path, "w") as f:
            json.dump(upstream_config(self.port, mode), f, indent=1)

    def start(self, timeout=10.0):
        self.write(self.mode)
        self.proc = Proc(self.name, [self.binary, "-c", self.config_path], self.workdir).start()
        wait_for(lambda: http_ok(f"http://{self.address}/health"), timeout,
                 lambda: f"{self.name} did not answer /health:\n{self.proc.log_tail()}",
                 alive=self.proc)
        return self

    def kill(self):
        self.proc.stop(timeout=0.5, sig=signal.SIGKILL)

    def reload(self, mode):
        """Rewrites the config and SIGHUPs the master (a new worker generation)."""
        self.write(mode)
        self.proc.send(signal.SIGHUP)


def wait_for(pred, timeout, message, alive=None, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive.running():
            raise RuntimeError(f"{alive.name} exited with {alive.proc.returncode}:\n{alive.log_tail()}")
        if pred():
            return
        time.sleep(interval)
    raise RuntimeError(message() if callable(message) else message)


class Deployment:
    """start() brings everything up (or raises, having stopped what it started);
    stop() tears everything down. Attributes for the scenarios: base_url,
    metrics_url, ctl, ctl_socket, keys, upstreams, gateway (Proc), pids()."""

    local = True

    def __init__(self, phalanx_bin, ctl_bin, limited, keep=False, workdir=None):
        self.bin, self.ctl = os.path.abspath(phalanx_bin), os.path.abspath(ctl_bin)
        self.limited = limited
        self.keep = keep
        self.workdir = workdir or tempfile.mkdtemp(prefix="phalanx-loadtest-")
        self.keys = api_keys()
        self.redis = None
        self.gateway = None
        self.upstreams = []
        self.port = None

    # -- facts for the scenarios
    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self):
        return self.base_url + "/metrics"

    @property
    def ctl_socket(self):
        return os.path.join(self.workdir, "gateway", "run", "phalanx.sock")

    def pids(self):
        out = {"redis-server": self.redis.pid}
        out.update({u.name: u.proc.pid for u in self.upstreams if u.proc and u.proc.running()})
        return out

    def gateway_config(self):
        return gateway_config(self.port, [u.port for u in self.upstreams], self.redis_port,
                              self.limited, self.keys)

    # -- life cycle
    def start(self):
        for b in (self.bin, self.ctl):
            if not os.access(b, os.X_OK):
                raise RuntimeError(f"{b} is not an executable (build it, or pass --bin/--ctl)")
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        try:
            self.redis_port = free_port()
            rdir = os.path.join(self.workdir, "redis")
            os.makedirs(rdir, exist_ok=True)
            self.redis = Proc("redis-server", [redis, "--port", str(self.redis_port),
                                               "--bind", "127.0.0.1", "--save", "",
                                               "--appendonly", "no", "--dir", rdir], rdir).start()
            wait_for(lambda: _redis_ping(self.redis_port), 10, "redis-server did not answer PING",
                     alive=self.redis)
            self.upstreams = [Upstream(n, self.bin, self.workdir).start()
                              for n in ("upstream-a", "upstream-b")]
            self.port = free_port()
            gdir = os.path.join(self.workdir, "gateway")
            os.makedirs(os.path.join(gdir, "run"), exist_ok=True)
            self.gateway_config_path = os.path.join(gdir, "phalanx.json")
            with open(self.gateway_config_path, "w") as f:
                json.dump(self.gateway_config(), f, indent=1)
            check = subprocess.run([self.bin, "-t", "-c", self.gateway_config_path],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode != 0:
                raise RuntimeError(f"phalanx -t refused the gateway config:\n{check.stdout}{check.stderr}")
            self.gateway = Proc("gateway", [self.bin, "-c", self.gateway_config_path], gdir).start()
            wait_for(lambda: http_ok(self.base_url + "/health/live") and os.path.exists(self.ctl_socket),
                     15, lambda: f"gateway not live:\n{self.gateway.log_tail()}", alive=self.gateway)
            wait_for(lambda: self.both_targets_up(), 15,
                     lambda: f"gateway does not see both targets up:\n{self.gateway.log_tail()}",
                     alive=self.gateway)
        except BaseException:
            self.stop()
            raise
        return self

    def both_targets_up(self):
        key = self.keys[-1]["key"]
        seen = set()
        for _ in range(8):
            try:
                req = urllib.request.Request(self.base_url + "/api/users", headers={"X-API-Key": key})
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status != 200:
                        return False
                    seen.add(json.loads(r.read()).get("path"))
            except Exception:
                return False
        return True

    def stop(self):
        for p in [self.gateway] + [u.proc for u in self.upstreams] + [self.redis]:
            if p is not None:
                try:
                    p.stop()
                except Exception:
                    pass
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- control
    def ctl_json(self, *args, timeout=30):
        r = subprocess.run([self.ctl, "-s", self.ctl_socket, *args, "--json"],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"phalanxctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def status(self):
        return self.ctl_json("status")

    def reload_gateway(self):
        """phalanxctl reload: waits until the new generation serves."""
        r = subprocess.run([self.ctl, "-s", self.ctl_socket, "reload"], capture_output=True,
                           text=True, timeout=60)
        return r.returncode == 0, (r.stdout + r.stderr).strip()

    def upstream(self, name):
        return next(u for u in self.upstreams if u.name == name)


def _redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Remote:
    """--target URL: an existing deployment; nothing is started or stopped."""

    local = False

    def __init__(self, url, keys=None):
        self.base_url = url.rstrip("/")
        self.keys = keys or api_keys()
        self.ctl = None
        self.ctl_socket = None
        self.upstreams = []

    @property
    def metrics_url(self):
        return self.base_url + "/metrics"

    def pids(self):
        return {}

    def start(self):
        return self

    def stop(self):
        pass


def with_overrides(cfg, **kw):
    out = copy.deepcopy(cfg)
    out.update(kw)
    return out

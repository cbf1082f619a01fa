"""Resource monitor of the load-scenario harness.

A background thread samples, every ``interval_s``:

* the host: CPU % (100 = every core busy), memory %, memory used, network bytes
  (every interface summed, loopback included: the harness's traffic is on lo);
* per process: the phalanx master and every worker (from ``phalanxctl -s SOCK
  status --json``, keyed ``worker<slot>``: the key stays when the slot's worker is
  replaced), plus the extra processes the runner names (redis-server, the
  upstreams, ...): CPU % from /proc/PID/stat deltas (100 = one core), RSS, TCP
  connections (the pid's socket fds that are TCP sockets not in LISTEN state),
  open fds and the fd limit. An extra process counts with its descendants (an
  upstream that is itself a phalanx master does its work in its workers): CPU
  and RSS summed, "cpu_pct_max" the busiest single process, "tree" their number;
* phalanx's own ``/metrics`` (a handful of summed families, see promtext.py).

Nothing here raises into the caller: a failed phalanxctl, scrape or /proc read is
recorded as a gap (``sample["gaps"]`` and the ``gaps`` list of ``stop()``).

Alerts: every threshold crossing (value > threshold) is recorded; consecutive
samples above the same threshold are one alert with start, end and peak.
Thresholds (all optional but the two defaults):

    cpu_pct          host CPU % (default 80)
    mem_pct          host memory % (default 85)
    process_cpu_pct  any monitored process's CPU % (100 = one core)
    process_rss_bytes  any monitored process's RSS
    connections      any monitored process's TCP connections

Other keys (a scenario's latency limits, say) are ignored.
"""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

try:
    import psutil
except ImportError:  # pragma: no cover - the harness installs python3-psutil
    psutil = None

if __package__:
    from . import promtext
else:  # run as a script or imported with scripts/loadtest on sys.path
    import promtext

DEFAULT_THRESHOLDS = {"cpu_pct": 80.0, "mem_pct": 85.0}
MONITOR_THRESHOLD_KEYS = ("cpu_pct", "mem_pct", "process_cpu_pct", "process_rss_bytes",
                          "connections")

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TCP_LISTEN = "0A"


# --------------------------------------------------------------------------
# /proc readers (each returns None when the process is gone or unreadable)
# --------------------------------------------------------------------------

def proc_cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    if rest[0] == "Z":
        return None
    return int(rest[11]) + int(rest[12])


def proc_rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def proc_socket_inodes(pid):
    """(number of open fds, set of socket inodes) of pid."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, set()
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return len(fds), inodes


def proc_fd_limit(pid):
    """Soft RLIMIT_NOFILE of pid."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    v = line.split()[3]
                    return None if v == "unlimited" else int(v)
    except (OSError, IndexError, ValueError):
        pass
    return None


def children_map():
    """{ppid: [pid, ...]} of every live process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if rest[0] != "Z":
            out.setdefault(int(rest[1]), []).append(int(d))
    return out


def process_tree(pid, children):
    """pid and its descendants (breadth first)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tcp_socket_states():
    """{inode: state hex} of every TCP socket (v4 and v6) in our network namespace."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    cols = line.split(None, 10)
                    if len(cols) > 9:
                        out[int(cols[9])] = cols[3]
        except OSError:
            continue
    return out


def host_cpu_times():
    """(busy, total) jiffies summed over every core, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    vals = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal guest guest_nice;
    # guest time is already counted in user.
    total = sum(vals[:8])
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return total - idle, total


def host_memory():
    """(mem_pct, used bytes, total bytes): used = total - available."""
    if psutil is not None:
        vm = psutil.virtual_memory()
        return vm.percent, vm.total - vm.available, vm.total
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            info[k] = int(v.split()[0]) * 1024
    total, avail = info["MemTotal"], info.get("MemAvailable", info["MemFree"])
    return 100.0 * (total - avail) / total, total - avail, total


def host_net_bytes():
    """(rx, tx) bytes summed over every interface, loopback included."""
    if psutil is not None:
        c = psutil.net_io_counters()
        return c.bytes_recv, c.bytes_sent
    rx = tx = 0
    with open("/proc/net/dev") as f:
        for line in list(f)[2:]:
            cols = line.split(":", 1)[1].split()
            rx += int(cols[0])
            tx += int(cols[8])
    return rx, tx


# --------------------------------------------------------------------------
# phalanx status
# --------------------------------------------------------------------------

def status_via_ctl(ctl, sock, timeout):
    r = subprocess.run([ctl, "-s", sock, "status", "--json"], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).decode("utf-8", "replace").strip()
        raise RuntimeError(f"phalanxctl exited {r.returncode}: {msg[:200]}")
    return json.loads(r.stdout)


def status_via_socket(sock, timeout):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(b"status\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def worker_rows(status):
    """[(key, row)] from a status answer: the serving row of each slot is
    "worker<slot>"; a draining one beside it is "worker<slot>-draining"."""
    out = []
    seen = set()
    rows = sorted(status.get("workers") or [],
                  key=lambda w: (w.get("slot", 0), w.get("state") == "draining"))
    for row in rows:
        slot = row.get("slot")
        if slot is None:
            continue
        key = f"worker{slot}"
        if key in seen:
            key = f"worker{slot}-draining"
            if key in seen:
                key = f"worker{slot}-draining-{row.get('pid')}"
        seen.add(key)
        out.append((key, row))
    return out


# --------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------

class AlertTracker:
    """Turns samples into alerts: value > threshold; consecutive samples over the
    same threshold are one alert {"t", "what", "value" (= peak), "threshold",
    "start", "end", "peak", "samples", "duration_s"}. A sample without the value
    (a gap) neither extends nor ends an open alert."""

    def __init__(self, thresholds, interval_s=1.0):
        self.thresholds = thresholds
        self.interval_s = interval_s
        self.open = {}
        self.closed = []

    def checks(self, sample):
        th = self.thresholds
        out = []
        for k in ("cpu_pct", "mem_pct"):
            if th.get(k) is not None:
                out.append((f"host {k}", (sample.get("host") or {}).get(k), th[k]))
        for name, proc in (sample.get("processes") or {}).items():
            for tkey, field in (("process_cpu_pct", "cpu_pct"),
                                ("process_rss_bytes", "rss_bytes"),
                                ("connections", "connections")):
                if th.get(tkey) is not None:
                    out.append((f"{name} {field}", proc.get(field), th[tkey]))
        return out

    def add(self, sample):
        seen = set()
        for what, value, limit in self.checks(sample):
            if value is None:
                if what in self.open:
                    seen.add(what)
                continue
            if value > limit:
                seen.add(what)
                a = self.open.get(what)
                if a is None:
                    self.open[what] = {"t": sample["t"], "what": what, "value": value,
                                       "threshold": limit, "start": sample["t"],
                                       "end": sample["t"], "peak": value, "samples": 1}
                else:
                    a["end"] = sample["t"]
                    a["samples"] += 1
                    if value > a["peak"]:
                        a["peak"] = a["value"] = value
        for what in list(self.open):
            if what not in seen:
                self._close(what)

    def _close(self, what):
        a = self.open.pop(what)
        a["duration_s"] = round(a["end"] - a["start"] + self.interval_s, 3)
        self.closed.append(a)

    def finish(self):
        """Closes the open alerts; every alert, by start time."""
        for what in list(self.open):
            self._close(what)
        return sorted(self.closed, key=lambda a: a["t"])


def alerts_from_samples(samples, thresholds, interval_s=1.0):
    """The alerts a Monitor with these thresholds would have raised on these samples."""
    th = dict(DEFAULT_THRESHOLDS)
    for k, v in (thresholds or {}).items():
        if k in MONITOR_THRESHOLD_KEYS:
            th[k] = None if v is None else float(v)
    tracker = AlertTracker(th, interval_s)
    for s in sorted(samples, key=lambda s: s["t"]):
        tracker.add(s)
    return tracker.finish()


# --------------------------------------------------------------------------
# the monitor
# --------------------------------------------------------------------------

class Monitor:
    def __init__(self, *, interval_s=1.0, ctl=None, ctl_socket=None, metrics_url=None,
                 processes=None, thresholds=None):
        self.interval_s = float(interval_s)
        self.ctl = ctl
        self.ctl_socket = ctl_socket
        self.metrics_url = metrics_url
        self.processes = dict(processes or {})
        self.thresholds = dict(DEFAULT_THRESHOLDS)
        for k, v in (thresholds or {}).items():
            if k in MONITOR_THRESHOLD_KEYS:
                self.thresholds[k] = None if v is None else float(v)
        self.cores = os.cpu_count() or 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._samples = []
        self._events = []
        self._alert_tracker = AlertTracker(self.thresholds, self.interval_s)
        self._gaps = []
        self._open_gaps = {}
        self._prev_cpu = {}      # pid -> (ticks, monotonic)
        self._prev_host = None   # (busy, total)
        self._prev_net = None    # (rx, tx, monotonic)
        self._fd_limits = {}
        self.started_at = None
        self.stopped_at = None

    # -- the runner's side
    def add_process(self, name, pid):
        """Monitor one more process from the next sample on (e.g. a restarted upstream)."""
        with self._lock:
            self.processes[name] = pid

    def mark(self, label):
        ev = {"t": time.time(), "label": str(label)}
        with self._lock:
            self._events.append(ev)
        return ev

    def start(self):
        if self._thread is not None:
            return self
        self.started_at = time.time()
        try:
            self._prev_host = host_cpu_times()
        except Exception:
            self._prev_host = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="loadtest-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 10.0)
            self._thread = None
        self.stopped_at = time.time()
        with self._lock:
            for key in list(self._open_gaps):
                self._close_gap(key)
            return {
                "samples": list(self._samples),
                "alerts": self._alert_tracker.finish(),
                "events": list(self._events),
                "gaps": sorted(self._gaps, key=lambda g: g["start"]),
                "interval_s": self.interval_s,
                "thresholds": dict(self.thresholds),
                "cores": self.cores,
                "started_at": self.started_at,
                "stopped_at": self.stopped_at,
            }

    # -- the sampling thread
    def _run(self):
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self._sample_once()
            except Exception as e:  # never let the thread die
                with self._lock:
                    self._gap("sample", time.time(), f"{type(e).__name__}: {e}")
            next_t += self.interval_s
            now = time.monotonic()
            if next_t < now:  # a slow sample: skip the missed ticks, keep the cadence
                next_t = now + self.interval_s - ((now - next_t) % self.interval_s)
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _sample_once(self):
        t = time.time()
        mono = time.monotonic()
        gaps = {}
        sample = {"t": t, "host": self._sample_host(mono, gaps), "processes": {}, "metrics": None}

        status = None
        if self.ctl_socket:
            timeout = max(2.0, self.interval_s * 2)
            try:
                if self.ctl:
                    status = status_via_ctl(self.ctl, self.ctl_socket, timeout)
                else:
                    status = status_via_socket(self.ctl_socket, timeout)
                if not isinstance(status, dict) or status.get("ok") is False:
                    raise RuntimeError(f"status answer not ok: {str(status)[:200]}")
            except Exception as e:
                status = None
                gaps["ctl"] = f"{type(e).__name__}: {e}"

        with self._lock:
            extra = dict(self.processes)
        targets = []  # (key, pid, extra fields)
        if status is not None:
            mpid = (status.get("master") or {}).get("pid")
            if mpid:
                targets.append(("master", int(mpid), {}))
            for key, row in worker_rows(status):
                fields = {"slot": row.get("slot"), "state": row.get("state"),
                          "generation": row.get("generation"),
                          "client_connections": row.get("connections"),
                          "requests": row.get("requests"),
                          "status_rss_bytes": row.get("rss_bytes"),
                          "cpu_ms": row.get("cpu_ms")}
                targets.append((key, int(row.get("pid") or 0), fields))
        for name, pid in extra.items():
            if pid:
                targets.append((name, int(pid), {}))

        tcp = tcp_socket_states() if targets else {}
        children = children_map() if extra else {}
        live_pids = set()
        for key, pid, fields in targets:
            entry = {"pid": pid or None}
            entry.update(fields)
            if pid and key in extra and not fields:
                got = self._sample_tree(pid, mono, tcp, children, live_pids)
                if got is None:
                    gaps[f"process {key}"] = f"pid {pid} is gone"
                    continue
                entry.update(got)
            elif pid:
                live_pids.add(pid)
                got = self._sample_process(pid, mono, tcp)
                if got is None:
                    entry.update({"cpu_pct": None, "rss_bytes": fields.get("status_rss_bytes"),
                                  "connections": None})
                else:
                    got.pop("_inodes")
                    entry.update(got)
            else:
                entry.update({"cpu_pct": None, "rss_bytes": None, "connections": None})
            sample["processes"][key] = entry
        for pid in list(self._prev_cpu):
            if pid not in live_pids:
                del self._prev_cpu[pid]

        if self.metrics_url:
            try:
                with urllib.request.urlopen(self.metrics_url,
                                            timeout=max(2.0, self.interval_s * 2)) as r:
                    text = r.read().decode("utf-8", "replace")
                sample["metrics"] = promtext.summarize(text)
            except Exception as e:
                gaps["metrics"] = f"{type(e).__name__}: {e}"

        if gaps:
            sample["gaps"] = gaps
        with self._lock:
            self._samples.append(sample)
            for source in list(self._open_gaps):
                if source not in gaps:
                    self._close_gap(source)
            for source, err in gaps.items():
                self._gap(source, t, err)
            self._check_alerts(sample)

    def _sample_host(self, mono, gaps):
        host = {"cpu_pct": None, "mem_pct": None, "mem_used_bytes": None,
                "net_rx_bytes": None, "net_tx_bytes": None, "cores": self.cores}
        try:
            busy, total = host_cpu_times()
            if self._prev_host is not None and total > self._prev_host[1]:
                host["cpu_pct"] = round(100.0 * (busy - self._prev_host[0]) /
                                        (total - self._prev_host[1]), 2)
            self._prev_host = (busy, total)
        except Exception as e:
            gaps["host cpu"] = str(e)
        try:
            pct, used, total_mem = host_memory()
            host.update(mem_pct=round(pct, 2), mem_used_bytes=int(used), mem_total_bytes=int(total_mem))
        except Exception as e:
            gaps["host memory"] = str(e)
        try:
            rx, tx = host_net_bytes()
            host.update(net_rx_bytes=rx, net_tx_bytes=tx)
            if self._prev_net is not None and mono > self._prev_net[2]:
                dt = mono - self._prev_net[2]
                host["net_rx_bps"] = round((rx - self._prev_net[0]) / dt, 1)
                host["net_tx_bps"] = round((tx - self._prev_net[1]) / dt, 1)
            self._prev_net = (rx, tx, mono)
        except Exception as e:
            gaps["host net"] = str(e)
        return host

    def _sample_process(self, pid, mono, tcp):
        ticks = proc_cpu_ticks(pid)
        if ticks is None:
            return None
        cpu = None
        prev = self._prev_cpu.get(pid)
        if prev is not None and mono > prev[1]:
            cpu = round(100.0 * (ticks - prev[0]) / CLK_TCK / (mono - prev[1]), 2)
        self._prev_cpu[pid] = (ticks, mono)
        nfds, inodes = proc_socket_inodes(pid)
        conns = sum(1 for i in inodes if i in tcp and tcp[i] != TCP_LISTEN)
        if pid not in self._fd_limits:
            self._fd_limits[pid] = proc_fd_limit(pid)
        return {"cpu_pct": cpu, "rss_bytes": proc_rss_bytes(pid), "connections": conns,
                "fds": nfds, "fd_limit": self._fd_limits[pid], "_inodes": inodes}

    def _sample_tree(self, pid, mono, tcp, children, live_pids):
        """An extra process with its descendants (an upstream phalanx and its workers):
        CPU and RSS summed, TCP connections counted once; cpu_pct_max is the busiest
        single process. None when pid is gone."""
        root = self._sample_process(pid, mono, tcp)
        if root is None:
            return None
        live_pids.add(pid)
        members = [root]
        for child in process_tree(pid, children)[1:]:
            got = self._sample_process(child, mono, tcp)
            if got is not None:
                live_pids.add(child)
                members.append(got)
        cpus = [m["cpu_pct"] for m in members if m["cpu_pct"] is not None]
        inodes = set().union(*(m["_inodes"] for m in members))
        limits = [m["fd_limit"] for m in members if m["fd_limit"]]
        return {
            "cpu_pct": round(sum(cpus), 2) if cpus else None,
            "cpu_pct_max": max(cpus) if cpus else None,
            "rss_bytes": sum(m["rss_bytes"] or 0 for m in members),
            "connections": sum(1 for i in inodes if i in tcp and tcp[i] != TCP_LISTEN),
            "fds": max((m["fds"] or 0) for m in members),
            "fd_limit": min(limits) if limits else None,
            "tree": len(members),
        }

    # -- alerts and gaps (called with the lock held)
    def _check_alerts(self, sample):
        self._alert_tracker.add(sample)

    def _gap(self, source, t, error):
        g = self._open_gaps.get(source)
        if g is None:
            self._open_gaps[source] = {"source": source, "start": t, "end": t, "count": 1,
                                       "error": error}
        else:
            g["end"] = t
            g["count"] += 1
            g["error"] = error

    def _close_gap(self, source):
        self._gaps.append(self._open_gaps.pop(source))

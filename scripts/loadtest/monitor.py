"""STAND-IN for the resource monitor (written in another worktree; replaced at
merge). Same interface: Monitor(...).start(), mark(label), stop() -> dict.
Samples system CPU / memory and the CPU / RSS of the given processes with psutil."""

import threading
import time

import psutil


class Monitor:
    def __init__(self, *, interval_s=1.0, ctl=None, ctl_socket=None, metrics_url=None,
                 processes=None, thresholds=None):
        self.interval_s = interval_s
        self.processes = dict(processes or {})
        self.thresholds = dict(thresholds or {})
        self.samples, self.alerts, self.events = [], [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._procs = {}
        for name, pid in self.processes.items():
            try:
                self._procs[name] = psutil.Process(pid)
            except psutil.Error:
                pass

    def start(self):
        psutil.cpu_percent(None)
        self._thread.start()

    def mark(self, label):
        self.events.append({"t": time.time(), "label": label})

    def _loop(self):
        while not self._stop.wait(self.interval_s):
            s = {"t": time.time(), "cpu_pct": psutil.cpu_percent(None),
                 "mem_pct": psutil.virtual_memory().percent, "processes": {}}
            for name, p in self._procs.items():
                try:
                    s["processes"][name] = {"cpu_pct": p.cpu_percent(None), "rss_bytes": p.memory_info().rss}
                except psutil.Error:
                    pass
            self.samples.append(s)
            for k in ("cpu_pct", "mem_pct"):
                if k in self.thresholds and s[k] > self.thresholds[k]:
                    self.alerts.append({"t": s["t"], "metric": k, "value": s[k], "limit": self.thresholds[k]})

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return {"samples": self.samples, "alerts": self.alerts, "events": self.events}

"""What every scenario shares: the context it runs in, the result dict (the shape
report.py expects), and turning records into phases/timeline/endpoints/checks."""

import time

import stats


class Context:
    """deployment: deployment.Deployment or deployment.Remote (.local tells which);
    workdir: scratch files; monitor: has mark(label); log: print-like."""

    def __init__(self, deployment, workdir, monitor, log, quick):
        self.dep = deployment
        self.workdir = workdir
        self.monitor = monitor
        self.log = log
        self.quick = quick

    @property
    def local(self):
        return self.dep.local

    def mark(self, label):
        if self.monitor is not None:
            try:
                self.monitor.mark(label)
            except Exception as e:  # the monitor must never stop a scenario
                self.log(f"monitor.mark({label!r}) failed: {e}")

    def restarted(self, name, pid):
        """A deployment process came back under a new pid: the monitor follows it."""
        if self.monitor is not None and hasattr(self.monitor, "add_process"):
            try:
                self.monitor.add_process(name, pid)
            except Exception as e:
                self.log(f"monitor.add_process({name!r}) failed: {e}")

    def key(self, tier="premium"):
        return next(k["key"] for k in self.dep.keys if k["tier"] == tier)


def new_result(name, sc, tool):
    return {"name": name, "description": sc.get("description", "").strip(), "tool": tool,
            "started_at": time.time(), "ended_at": None, "skipped": None,
            "thresholds": dict(sc.get("thresholds", {})),
            "tolerance": float(sc.get("tolerance", 0.2)),
            "phases": [], "timeline": [], "endpoints": [], "measures": {}, "checks": [],
            "passed": False}


def skipped(name, sc, tool, reason):
    r = new_result(name, sc, tool)
    r["skipped"] = reason
    r["ended_at"] = r["started_at"]
    r["passed"] = False  # not run: read "skipped" first
    return r


def fill_from_records(res, records, phases, start=None, end=None):
    """phases: [(name, start, end, users, connections)]."""
    res["phases"] = [stats.phase_summary(n, s, e, records, users=u, connections=c)
                     for n, s, e, u, c in phases]
    start = start if start is not None else (phases[0][1] if phases else time.time())
    end = end if end is not None else (phases[-1][2] if phases else start)
    res["timeline"] = stats.timeline(records, start, end)
    res["endpoints"] = stats.endpoints(records)


def totals(records):
    errors = {}
    for r in records:
        if r[4] and r[4] != "rate_limited":
            errors[r[4]] = errors.get(r[4], 0) + 1
    n = len(records)
    return {"requests": n, "errors": sum(errors.values()), "errors_by_cause": errors,
            "error_rate_pct": round(100.0 * sum(errors.values()) / n, 3) if n else None,
            "rate_limited": sum(1 for r in records if r[4] == "rate_limited")}


def finish(res, extra_checks=(), not_applicable=()):
    """Checks from the thresholds (max_/min_/eq_ on measures) plus extra ones;
    passed = every check passed (and at least one check ran). Checks on the
    measures named in not_applicable (e.g. restarts without a control socket)
    are left out, and listed in measures["not_checked"]."""
    checks = stats.checks_from_thresholds(res["thresholds"], res["measures"])
    dropped = [c["name"] for c in checks if c["name"] in not_applicable]
    if dropped:
        res["measures"]["not_checked"] = dropped
    res["checks"] = [c for c in checks if c["name"] not in not_applicable] + list(extra_checks)
    res["passed"] = bool(res["checks"]) and all(c["passed"] for c in res["checks"])
    res["ended_at"] = time.time()
    return res


def worker_restarts(ctx):
    """Sum of restarts over the gateway's worker slots, or None without a control socket."""
    if not ctx.local:
        return None
    st = ctx.dep.status()
    return sum(w.get("restarts", 0) for w in st.get("workers", []))

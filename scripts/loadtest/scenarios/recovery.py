"""recovery: under a steady load, one upstream target fails (killed, then
answering 500, then slow) and comes back, one fault after the other.

Per fault:
  errors_before_open  errors the clients saw from the failure until the gateway
                      stopped using the target (its breaker open or its health
                      check down, whichever came first; the whole fault window
                      if neither happened)
  failover_s          from the failure to the first whole second (1 s buckets
                      from the failure) without a bad request: an error, or for
                      the slow fault a request slower than slow_ms
  return_to_full_s    from the target's return to the first moment its share of
                      the upstream requests over the last second (from /metrics
                      phalanx_upstream_requests_total per target) reaches full_share
The headline measures are the worst over the faults.
"""

import re
import threading
import time
import urllib.request

from client import Background
from scenarios.common import fill_from_records, finish, new_result, skipped, totals

LINE = re.compile(r'^(phalanx_upstream_requests_total|phalanx_breaker_state|phalanx_upstream_healthy)'
                  r'\{upstream="([^"]*)",target="([^"]*)"\} (\S+)$', re.M)


class TargetPoller:
    """Polls /metrics: samples (t, {target: (requests, breaker_state, healthy)})."""

    def __init__(self, url, upstream="api", interval=0.2):
        self.url, self.upstream, self.interval = url, upstream, interval
        self.samples = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop_event.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=1) as r:
                    text = r.read().decode()
                row = {}
                for name, up, target, value in LINE.findall(text):
                    if up != self.upstream:
                        continue
                    cur = row.setdefault(target, [0, 0, 1])
                    idx = {"phalanx_upstream_requests_total": 0, "phalanx_breaker_state": 1,
                           "phalanx_upstream_healthy": 2}[name]
                    cur[idx] = float(value)
                self.samples.append((time.time(), row))
            except Exception:
                pass
            self.stop_event.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)
        return self.samples

    def share(self, target, at, window=1.0):
        """target's share of all targets' request deltas over [at - window, at]."""
        past = [s for s in self.samples if s[0] <= at - window]
        now = [s for s in self.samples if s[0] <= at]
        if not past or not now:
            return None
        a, b = past[-1][1], now[-1][1]
        total = sum(b[t][0] - a.get(t, [0])[0] for t in b)
        if total <= 0:
            return None
        return (b.get(target, [0])[0] - a.get(target, [0])[0]) / total


def _fault_measures(records, poller, target, fault, t_f, t_r, t_end, sc):
    slow_ms = float(sc.get("slow_ms", 500))

    def bad(r):
        return (r[4] and r[4] != "rate_limited") or (fault == "slow" and r[2] > slow_ms)

    out_at = next((t for t, row in poller.samples
                   if t >= t_f and target in row and (row[target][1] == 1 or row[target][2] == 0)), None)
    stop = min(out_at, t_r) if out_at else t_r
    errors_before = sum(1 for r in records if t_f <= r[0] < stop and r[4] and r[4] != "rate_limited")
    failover = None
    i = 0
    while t_f + i + 1 <= t_r + 1e-6:
        b = [r for r in records if t_f + i <= r[0] < t_f + i + 1]
        if b and not any(bad(r) for r in b):
            failover = float(i)
            break
        i += 1
    back = None
    full = float(sc.get("full_share", 0.4))
    for t, _ in poller.samples:
        if t >= t_r + 0.5:
            s = poller.share(target, t)
            if s is not None and s >= full:
                back = round(t - t_r, 2)
                break
    return {"fault": fault, "target_out_after_s": None if out_at is None else round(out_at - t_f, 2),
            "errors_during_fault": sum(1 for r in records if t_f <= r[0] < t_r and r[4]
                                       and r[4] != "rate_limited"),
            "errors_before_open": errors_before, "failover_s": failover, "return_to_full_s": back}


def run(ctx, name, sc):
    if not ctx.local:
        return skipped(name, sc, "python", "needs local control of an upstream target "
                                           "(kill / reload it): not possible with --target")
    res = new_result(name, sc, "python")
    dep = ctx.dep
    up = dep.upstreams[-1]
    headers = {"X-API-Key": ctx.key("premium")}
    paths = sc.get("paths", ["/api/users", "/api/users/1", "/api/search"])
    plan = lambda i: ("GET", paths[i % len(paths)], headers, None)  # noqa: E731
    horizon = 600.0
    bg = Background(dep.base_url, plan, float(sc["rps"]), horizon, int(sc.get("threads", 8)),
                    timeout=float(sc.get("request_timeout_s", 5))).start()
    poller = TargetPoller(dep.metrics_url).start()
    start = time.time()
    phases, windows = [], []
    try:
        time.sleep(float(sc["settle_s"]))
        phases.append(("baseline", start, time.time(), None, None))
        for fault in sc.get("faults", ["kill", "error", "slow"]):
            t_f = time.time()
            ctx.mark(f"{fault} {up.name}")
            ctx.log(f"  {fault} {up.name}")
            if fault == "kill":
                up.kill()
            else:
                up.reload(fault)
            time.sleep(float(sc["down_s"]))
            t_r = time.time()
            ctx.mark(f"restore {up.name}")
            if fault == "kill":
                up.start()
                ctx.restarted(up.name, up.proc.pid)
            else:
                up.reload("ok")
            # wait until the target has its share back (plus a second), at most back_s
            deadline = t_r + float(sc["back_s"])
            while time.time() < deadline:
                s = poller.share(up.address, time.time())
                if time.time() > t_r + 1.5 and s is not None and s >= float(sc.get("full_share", 0.4)):
                    time.sleep(0.5)
                    break
                time.sleep(0.2)
            t_end = time.time()
            phases += [(f"{fault}", t_f, t_r, None, None), (f"{fault}-return", t_r, t_end, None, None)]
            windows.append((fault, t_f, t_r, t_end))
    finally:
        records = bg.stop()
        poller.stop()
        if up.mode != "ok" or not up.proc.running():
            try:
                up.reload("ok") if up.proc.running() else up.start()
            except Exception as e:
                ctx.log(f"  could not restore {up.name}: {e}")
    fill_from_records(res, records, phases)
    per = [_fault_measures(records, poller, up.address, f, a, b, c, sc) for f, a, b, c in windows]
    t = totals(records)

    def worst(k):
        vals = [p[k] for p in per]
        return None if any(v is None for v in vals) or not vals else max(vals)

    m = {"target": f"{up.name} {up.address}", "requests": t["requests"], "errors": t["errors"],
         "errors_by_cause": t["errors_by_cause"], "faults": per,
         "errors_before_open": worst("errors_before_open"), "failover_s": worst("failover_s"),
         "return_to_full_s": worst("return_to_full_s")}
    for p in per:
        for k in ("errors_before_open", "failover_s", "return_to_full_s"):
            m[f"{p['fault']}_{k}"] = p[k]
    res["measures"] = m
    return finish(res)

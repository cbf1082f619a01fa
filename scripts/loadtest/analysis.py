"""Analysis of the load-scenario harness's results: the numbers report.py puts
into report.json and report_markdown.py renders.

scenario_summary() and resource_summary() sum up a scenario's phases and the
monitor samples of its time window; find_degradations(), find_bottleneck() and
compare_baseline() apply the rules below.

Rules (also stated in report.md):
* degradation: a phase's p95 above the previous phase's by more than the
  scenario's tolerance (and by more than 1 ms), or its throughput below the
  previous phase's by more than the tolerance while the offered load (users or
  connections) did not go down;
* bottleneck: in the breaking-point phase (measures["breaking_point_phase"], a
  name or an index) or else the phase of highest rps, the monitored resource
  closest to its limit: host CPU (100% = every core), the CPU of one process
  (100% = one core: a phalanx worker, the master, redis, an upstream, the load
  generator if the runner named it; for a process tree such as an upstream
  phalanx, its busiest process), host memory, a process's fds against its
  RLIMIT_NOFILE. At or above 85% of its limit it is "the" bottleneck;
* alerts of a scenario: the monitor's alerts overlapping its time window; when
  the scenario's thresholds name resource thresholds (cpu_pct, mem_pct,
  process_cpu_pct, process_rss_bytes, connections), those are applied to the
  window's samples instead (over the monitor's own);
* baseline regression: p95 (worst phase) up by more than the tolerance and
  1 ms, throughput (requests over the phases' time) down by more than the
  tolerance, error rate up by more than the tolerance and 0.1 point.
"""

import json
import math
import os

BOTTLENECK_AT = 0.85
P95_FLOOR_MS = 1.0
ERROR_RATE_FLOOR = 0.001


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def _round(v, nd=2):
    if not _num(v):
        return None
    r = round(float(v), nd)
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


def _stats(values, nd=2):
    vals = [v for v in values if _num(v)]
    if not vals:
        return {"avg": None, "peak": None}
    return {"avg": _round(sum(vals) / len(vals), nd), "peak": _round(max(vals), nd)}


def _pct_change(before, after):
    if not _num(before) or not _num(after):
        return None
    if before == 0:
        return None if after == 0 else math.inf
    return (after - before) / before * 100.0


def _load_of(phase):
    for k in ("users", "connections"):
        if _num(phase.get(k)):
            return phase[k]
    return None


def _window_samples(samples, t0, t1):
    if t0 is None or t1 is None:
        return []
    return [s for s in samples if _num(s.get("t")) and t0 <= s["t"] <= t1]


def _overlaps(item, t0, t1):
    start = item.get("start", item.get("t"))
    end = item.get("end", start)
    return _num(start) and _num(t0) and _num(t1) and start <= t1 and end >= t0


# --------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------

def resource_summary(samples):
    """({process: {cpu_pct, rss_bytes, connections: {avg, peak}}, ...}, host stats)."""
    procs = {}
    for s in samples:
        for name, p in (s.get("processes") or {}).items():
            procs.setdefault(name, []).append(p)
    out = {}
    for name, rows in procs.items():
        out[name] = {
            "cpu_pct": _stats(r.get("cpu_pct") for r in rows),
            "rss_bytes": _stats((r.get("rss_bytes") for r in rows), 0),
            "connections": _stats(r.get("connections") for r in rows),
        }
        pids = sorted({r.get("pid") for r in rows if r.get("pid")})
        out[name]["pids"] = pids
    hosts = [s.get("host") or {} for s in samples]
    host = {k: _stats((h.get(k) for h in hosts), 0 if k.endswith(("bytes", "bps")) else 2)
            for k in ("cpu_pct", "mem_pct", "mem_used_bytes", "net_rx_bps", "net_tx_bps")}
    host["samples"] = len(samples)
    return out, host


def scenario_summary(result):
    phases = result.get("phases") or []
    requests = sum(p.get("requests") or 0 for p in phases)
    duration = sum(max(0.0, p["end"] - p["start"]) for p in phases
                   if _num(p.get("start")) and _num(p.get("end")))
    errors_by_cause = {}
    for p in phases:
        for cause, n in (p.get("errors") or {}).items():
            if _num(n):
                errors_by_cause[cause] = errors_by_cause.get(cause, 0) + n
    errors = sum(errors_by_cause.values())
    rate_limited = sum(p.get("rate_limited") or 0 for p in phases)
    rpss = [p.get("rps") for p in phases if _num(p.get("rps"))]

    def worst(key):
        vals = [p.get(key) for p in phases if _num(p.get(key))]
        return _round(max(vals)) if vals else None

    return {
        "requests": requests,
        "duration_s": _round(duration, 1),
        "rps": _round(requests / duration) if duration > 0 else None,
        "peak_rps": _round(max(rpss)) if rpss else None,
        "p50_ms": worst("p50_ms"), "p95_ms": worst("p95_ms"), "p99_ms": worst("p99_ms"),
        "max_ms": worst("max_ms"),
        "errors": errors,
        "errors_by_cause": errors_by_cause,
        "error_rate": _round(errors / requests, 6) if requests else None,
        "rate_limited": rate_limited,
    }


def find_degradations(result, tolerance):
    """Phases worse than the previous one by more than the tolerance (see the module doc)."""
    out = []
    phases = result.get("phases") or []
    for prev, cur in zip(phases, phases[1:]):
        p0, p1 = prev.get("p95_ms"), cur.get("p95_ms")
        if _num(p0) and _num(p1) and p1 > p0 * (1 + tolerance) and p1 - p0 > P95_FLOOR_MS:
            out.append({"phase": cur.get("name"), "previous_phase": prev.get("name"),
                        "metric": "p95_ms", "previous": _round(p0), "value": _round(p1),
                        "change_pct": _round(_pct_change(p0, p1), 1),
                        "tolerance_pct": _round(tolerance * 100, 1)})
        r0, r1 = prev.get("rps"), cur.get("rps")
        l0, l1 = _load_of(prev), _load_of(cur)
        load_fell = l0 is not None and l1 is not None and l1 < l0
        if _num(r0) and _num(r1) and r0 > 0 and r1 < r0 * (1 - tolerance) and not load_fell:
            out.append({"phase": cur.get("name"), "previous_phase": prev.get("name"),
                        "metric": "rps", "previous": _round(r0), "value": _round(r1),
                        "change_pct": _round(_pct_change(r0, r1), 1),
                        "tolerance_pct": _round(tolerance * 100, 1)})
    return out


def _pick_phase(result):
    phases = result.get("phases") or []
    if not phases:
        return None, None
    bp = (result.get("measures") or {}).get("breaking_point_phase")
    if isinstance(bp, str):
        for p in phases:
            if p.get("name") == bp:
                return p, "breaking point"
    elif isinstance(bp, int) and not isinstance(bp, bool) and 0 <= bp < len(phases):
        return phases[bp], "breaking point"
    with_rps = [p for p in phases if _num(p.get("rps"))]
    if not with_rps:
        return None, None
    return max(with_rps, key=lambda p: p["rps"]), "highest throughput"


def _process_kind(name):
    low = name.lower()
    if name == "master":
        return "master"
    if low.startswith("worker"):
        return "worker"
    if "redis" in low:
        return "redis"
    if "upstream" in low:
        return "upstream"
    return "process"


def find_bottleneck(result, samples, cores):
    """The resource nearest its limit in the breaking-point (or busiest) phase."""
    phase, why = _pick_phase(result)
    if phase is None or not _num(phase.get("start")) or not _num(phase.get("end")):
        return None
    window = _window_samples(samples, phase["start"], phase["end"])
    base = {"phase": phase.get("name"), "phase_chosen_as": why, "phase_rps": _round(phase.get("rps")),
            "samples": len(window)}
    if not window:
        return dict(base, resource=None, process=None, kind=None, value=None, limit=None,
                    utilization=None, at_limit=False, also_at_limit=[],
                    summary="no resource samples during this phase")
    cands = []
    host_cpu = _stats((s.get("host") or {}).get("cpu_pct") for s in window)
    if host_cpu["avg"] is not None:
        cands.append({"resource": "host CPU", "kind": "host_cpu", "process": None,
                      "value": host_cpu["avg"], "peak": host_cpu["peak"], "limit": 100,
                      "unit": f"% of {cores} cores"})
    mem = _stats((s.get("host") or {}).get("mem_pct") for s in window)
    if mem["avg"] is not None:
        cands.append({"resource": "host memory", "kind": "memory", "process": None,
                      "value": mem["avg"], "peak": mem["peak"], "limit": 100, "unit": "%"})
    procs = {}
    for s in window:
        for name, p in (s.get("processes") or {}).items():
            procs.setdefault(name, []).append(p)
    for name, rows in procs.items():
        kind = _process_kind(name)
        cpu = _stats(r.get("cpu_pct") for r in rows)
        busiest = _stats(r.get("cpu_pct_max") for r in rows)
        if busiest["avg"] is not None and any((r.get("tree") or 1) > 1 for r in rows):
            # a process tree (an upstream phalanx and its workers): its busiest process
            # against one core, and the whole tree against the host's cores
            cands.append({"resource": f"{name} CPU (busiest process)", "kind": f"{kind}_cpu",
                          "process": name, "value": busiest["avg"], "peak": busiest["peak"],
                          "limit": 100, "unit": "% of one core"})
            cands.append({"resource": f"{name} CPU (all its processes)", "kind": f"{kind}_cpu",
                          "process": name, "value": cpu["avg"], "peak": cpu["peak"],
                          "limit": 100 * cores, "unit": f"% of one core, of {100 * cores}"})
        elif cpu["avg"] is not None:
            cands.append({"resource": f"{name} CPU", "kind": f"{kind}_cpu", "process": name,
                          "value": cpu["avg"], "peak": cpu["peak"], "limit": 100,
                          "unit": "% of one core"})
        fds = [(r.get("fds"), r.get("fd_limit")) for r in rows]
        fds = [(a, b) for a, b in fds if _num(a) and _num(b) and b > 0]
        if fds:
            used, lim = max(fds, key=lambda x: x[0] / x[1])
            conns = _stats(r.get("connections") for r in rows)
            cands.append({"resource": f"{name} connections (fds)", "kind": "connections",
                          "process": name, "value": used, "peak": used, "limit": lim,
                          "unit": "fds", "connections_peak": conns["peak"]})
    if not cands:
        return dict(base, resource=None, process=None, kind=None, value=None, limit=None,
                    utilization=None, at_limit=False, also_at_limit=[],
                    summary="no resource values during this phase")
    for c in cands:
        c["utilization"] = _round(c["value"] / c["limit"], 3)
    cands.sort(key=lambda c: c["utilization"], reverse=True)
    top = cands[0]
    at_limit = top["utilization"] >= BOTTLENECK_AT
    also = [c["resource"] for c in cands[1:] if c["utilization"] >= BOTTLENECK_AT]
    if at_limit:
        sep = "" if top["unit"].startswith("%") else " "
        summary = (f"{top['resource']} at {top['value']:g}{sep}{top['unit']} "
                   f"(avg over phase {phase.get('name')}, peak {top['peak']:g})")
        if top["kind"] == "host_cpu":
            summary += ": the machine (gateway, upstreams and load generator together) is out of CPU"
        elif top["kind"] == "worker_cpu":
            summary += ": a worker's event loop is saturated; more workers or cheaper requests"
        elif top["kind"] == "upstream_cpu":
            summary += ": the upstream, not the gateway, limits throughput"
        elif top["kind"] == "redis_cpu":
            summary += ": Redis is saturated"
        elif top["kind"] == "connections":
            summary += f" of {top['limit']}: the fd limit caps connections"
    else:
        summary = (f"no monitored resource at its limit; the highest is {top['resource']} at "
                   f"{top['utilization'] * 100:.0f}% of its limit. Throughput is then bounded by "
                   f"the offered load, latency (concurrency / response time) or the load generator")
    return dict(base, resource=top["resource"] if at_limit else None, process=top["process"],
                kind=top["kind"], value=top["value"], peak=top["peak"], limit=top["limit"],
                unit=top["unit"], utilization=top["utilization"], at_limit=at_limit,
                also_at_limit=also, summary=summary,
                candidates=[{k: c[k] for k in ("resource", "value", "peak", "limit", "unit",
                                                 "utilization")} for c in cands[:6]])


def compare_baseline(scenarios, baseline_dir, tolerance):
    """The "baseline" member: per scenario deltas against baseline_dir/report.json."""
    path = os.path.join(baseline_dir, "report.json")
    out = {"dir": os.path.abspath(baseline_dir), "started_at": None, "tolerance": tolerance,
           "scenarios": [], "regressions": [], "missing": [], "error": None}
    try:
        with open(path) as f:
            base = json.load(f)
    except (OSError, ValueError) as e:
        out["error"] = f"cannot read {path}: {e}"
        return out
    out["started_at"] = base.get("started_at")
    by_name = {s.get("name"): s for s in base.get("scenarios") or [] if isinstance(s, dict)}
    current_names = set()
    for sc in scenarios:
        name = sc["name"]
        current_names.add(name)
        b = by_name.get(name)
        row = {"name": name, "status": "compared", "regressions": []}
        if b is None:
            row["status"] = "not in baseline"
        elif sc.get("skipped") or b.get("skipped"):
            row["status"] = "skipped"
        if row["status"] != "compared":
            out["scenarios"].append(row)
            continue
        cur_sum = sc["summary"]
        base_sum = b.get("summary") or scenario_summary(b)
        for key in ("p95_ms", "rps", "error_rate"):
            v0, v1 = base_sum.get(key), cur_sum.get(key)
            delta = v1 - v0 if _num(v0) and _num(v1) else None
            ch = _pct_change(v0, v1)
            row[key] = {"baseline": v0, "current": v1,
                        "delta": _round(delta, 6 if key == "error_rate" else 2),
                        "change_pct": _round(ch, 1) if ch is None or math.isfinite(ch) else None}
            if delta is None:
                continue
            if key == "p95_ms":
                bad = v1 > v0 * (1 + tolerance) and delta > P95_FLOOR_MS
            elif key == "rps":
                bad = v0 > 0 and v1 < v0 * (1 - tolerance)
            else:
                bad = v1 > v0 * (1 + tolerance) and delta > ERROR_RATE_FLOOR
            if bad:
                row["regressions"].append(key)
                out["regressions"].append({"scenario": name, "metric": key, "baseline": v0,
                                           "current": v1, "change_pct": row[key]["change_pct"]})
        out["scenarios"].append(row)
    out["missing"] = sorted(n for n in by_name if n not in current_names and n)
    return out


"""Report writer of the load-scenario harness.

write_report(out_dir, results, monitor_data, options=...) writes

  out_dir/report.json         machine-readable (schema: report_schema.py)
  out_dir/report.md           a person's summary
  out_dir/plots/*.png         per scenario: <name>-traffic.png and
                              <name>-workers.png (or <name>-host.png)
  out_dir/raw/monitor.jsonl   every monitor sample, one JSON object a line
  out_dir/raw/monitor-events.json  the monitor's events, alerts and gaps
  out_dir/raw/results.json    the runner's results as given

and returns the report dict. options may also say "plots": False (no PNGs). ``python3 report.py OUT_DIR [--baseline DIR]``
rebuilds the report of OUT_DIR from its raw/ files.

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
import platform
import sys
import time

if __package__:
    from . import plots
    from .monitor import MONITOR_THRESHOLD_KEYS, alerts_from_samples
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import plots
    from monitor import MONITOR_THRESHOLD_KEYS, alerts_from_samples

VERSION = 1
BOTTLENECK_AT = 0.85
P95_FLOOR_MS = 1.0
ERROR_RATE_FLOOR = 0.001
RESULT_FIELDS = ("name", "description", "tool", "started_at", "ended_at", "skipped",
                 "thresholds", "tolerance", "phases", "timeline", "endpoints", "measures",
                 "checks", "passed")


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


def _json_safe(obj):
    """inf/nan are not JSON: None for nan, a large finite sentinel never; we use None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _errors_total(errors):
    if isinstance(errors, dict):
        return sum(v for v in errors.values() if _num(v))
    return errors if _num(errors) else 0


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


def host_info():
    info = {"cores": os.cpu_count() or 1, "memory": None, "kernel": platform.release(),
            "python": platform.python_version(), "hostname": platform.node(), "cpu_model": None}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory"] = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


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


# --------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------

def _fmt(v, nd=1, unit=""):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v}{unit}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "∞"
        return f"{v:.{nd}f}{unit}"
    return str(v)


def _g(v):
    """A number people read: 4 significant digits, no trailing zeros."""
    if not _num(v):
        return "–" if v is None else str(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _bytes(v):
    if not _num(v):
        return "–"
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= div:
            return f"{v / div:.1f} {unit}"
    return f"{int(v)} B"


def _cell(v):
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(c) for c in r) + " |")
    return "\n".join(lines)


def _when(t):
    if not _num(t):
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _status(sc):
    if sc.get("skipped"):
        return "SKIPPED"
    return "PASS" if sc.get("passed") else "FAIL"


def _errors_text(errs):
    if not errs:
        return "0"
    return f"{_errors_total(errs)} (" + ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())) + ")"


def render_markdown(report):
    L = []
    host = report["host"]
    L.append("# phalanx load test report")
    L.append("")
    verdict = "PASSED" if report["passed"] else "FAILED"
    L.append(f"**Result: {verdict}** — {_when(report['started_at'])} to {_when(report['ended_at'])}"
             f" ({_fmt((report['ended_at'] or 0) - (report['started_at'] or 0), 0)} s)"
             + (" · quick mode" if report["quick"] else "")
             + (f" · target {report['target']}" if report["target"] else " · local deployment"))
    L.append("")
    L.append(f"Host: {host.get('cores')} cores ({host.get('cpu_model') or 'unknown CPU'}), "
             f"{_bytes(host.get('memory'))} memory, kernel {host.get('kernel')}, "
             f"Python {host.get('python')}.")
    if report.get("scenario_file"):
        L.append(f"Scenarios: `{report['scenario_file']}`.")
    L.append("")
    L.append("## Summary")
    L.append("")
    rows = []
    for sc in report["scenarios"]:
        s = sc["summary"]
        checks = sc.get("checks") or []
        ok = sum(1 for c in checks if c.get("passed"))
        if sc.get("skipped"):
            rows.append([sc["name"], "SKIPPED: " + str(sc["skipped"])] + ["–"] * 8)
            continue
        rows.append([sc["name"], _status(sc), s["requests"], _fmt(s["rps"]), _fmt(s["peak_rps"]),
                     _fmt(s["p95_ms"], 2), _fmt(s["p99_ms"], 2),
                     f"{s['errors']} ({_fmt((s['error_rate'] or 0) * 100, 2)}%)",
                     s["rate_limited"], f"{ok}/{len(checks)}"])
    header = ["scenario", "result", "requests", "rps (avg)", "rps (best phase)",
              "p95 ms (worst phase)", "p99 ms (worst phase)", "errors", "429s", "checks passed"]
    L.append(_table(header, rows))
    L.append("")

    failed = [(sc["name"], c) for sc in report["scenarios"] for c in sc.get("checks") or []
              if not c.get("passed")]
    if failed:
        L.append("### Failed checks")
        L.append("")
        L.append(_table(["scenario", "check", "wanted", "got"],
                        [[n, c.get("name"), f"{c.get('op')} {c.get('limit')}", _g(c.get("value"))]
                         for n, c in failed]))
        L.append("")

    degr = [(sc["name"], d) for sc in report["scenarios"] for d in sc.get("degradations") or []]
    L.append("## Degradations")
    L.append("")
    if degr:
        L.append(_table(["scenario", "phase", "vs phase", "metric", "before", "after", "change", "tolerance"],
                        [[n, d["phase"], d["previous_phase"], "p95 latency (ms)" if d["metric"] == "p95_ms"
                          else "throughput (rps)", _fmt(d["previous"], 2), _fmt(d["value"], 2),
                          f"{_fmt(d['change_pct'], 1)}%", f"{_fmt(d['tolerance_pct'], 0)}%"]
                         for n, d in degr]))
    else:
        L.append("None: no phase's p95 or throughput was worse than the previous phase's by more "
                 "than the scenario's tolerance.")
    L.append("")

    L.append("## Bottlenecks")
    L.append("")
    brows = []
    for sc in report["scenarios"]:
        b = sc.get("bottleneck")
        if b:
            brows.append([sc["name"], f"{b['phase']} ({b['phase_chosen_as']}, {_fmt(b.get('phase_rps'))} rps)",
                          b.get("resource") or "none at its limit", b["summary"]])
    L.append(_table(["scenario", "phase", "limiting resource", "detail"], brows) if brows
             else "No phase with resource samples.")
    L.append("")

    eps = []
    for sc in report["scenarios"]:
        for e in sc.get("endpoints") or []:
            if (e.get("requests") or 0) > 0:
                eps.append((sc["name"], e))
    eps.sort(key=lambda x: (x[1].get("p95_ms") if _num(x[1].get("p95_ms")) else -1), reverse=True)
    L.append("## Slowest endpoints (by p95)")
    L.append("")
    if eps:
        L.append(_table(["scenario", "endpoint", "requests", "errors", "429s", "avg ms", "p50 ms",
                         "p95 ms", "p99 ms", "max ms"],
                        [[n, e.get("name"), e.get("requests"), e.get("errors", 0), e.get("rate_limited", 0),
                          _fmt(e.get("avg_ms"), 2), _fmt(e.get("p50_ms"), 2), _fmt(e.get("p95_ms"), 2),
                          _fmt(e.get("p99_ms"), 2), _fmt(e.get("max_ms"), 2)] for n, e in eps[:10]]))
    else:
        L.append("No endpoint data.")
    L.append("")

    b = report.get("baseline")
    if b is not None:
        L.append("## Compared with the baseline")
        L.append("")
        L.append(f"Baseline: `{b['dir']}` (run of {_when(b.get('started_at'))}), tolerance "
                 f"{_fmt(b['tolerance'] * 100, 0)}%.")
        L.append("")
        if b.get("error"):
            L.append(f"Not compared: {b['error']}")
        else:
            rows = []
            for r in b["scenarios"]:
                if r["status"] != "compared":
                    rows.append([r["name"], r["status"]] + ["–"] * 3)
                    continue

                def cell(key, nd, scale=1.0, unit=""):
                    m = r[key]
                    v0 = None if m["baseline"] is None else m["baseline"] * scale
                    v1 = None if m["current"] is None else m["current"] * scale
                    flag = " **REGRESSION**" if key in r["regressions"] else ""
                    return (f"{_fmt(v0, nd)} → {_fmt(v1, nd)}{unit} "
                            f"({'+' if (m['change_pct'] or 0) > 0 else ''}{_fmt(m['change_pct'], 1)}%)" + flag)
                rows.append([r["name"], "regressed" if r["regressions"] else "ok",
                             cell("p95_ms", 2, unit=" ms"), cell("rps", 1),
                             cell("error_rate", 3, 100.0, "%")])
            L.append(_table(["scenario", "verdict", "p95 (worst phase)", "throughput (rps)",
                             "error rate"], rows))
            if b.get("missing"):
                L.append("")
                L.append("In the baseline but not in this run: " + ", ".join(b["missing"]) + ".")
        L.append("")

    for sc in report["scenarios"]:
        L.extend(_render_scenario(sc))

    if report["alerts"]:
        L.append("## All resource alerts")
        L.append("")
        L.append(_alert_table(report["alerts"], report["started_at"]))
        L.append("")
    mon = report.get("monitor") or {}
    if mon.get("gaps"):
        L.append("## Monitoring gaps")
        L.append("")
        L.append(_table(["source", "from", "to", "samples", "last error"],
                        [[g["source"], _when(g["start"]), _when(g["end"]), g["count"], g["error"]]
                         for g in mon["gaps"]]))
        L.append("")
    L.append("## How to read this")
    L.append("")
    L.append("- CPU of a process: 100% = one core; host CPU: 100% = every core. RSS is resident memory.")
    L.append("- Degradation: a phase's p95 more than the scenario's tolerance (and 1 ms) above the previous "
             "phase's, or its throughput more than the tolerance below while the offered load did not drop.")
    L.append(f"- Bottleneck: in the breaking-point phase (else the phase of highest throughput), the "
             f"monitored resource closest to its limit; it counts as the bottleneck at "
             f"{BOTTLENECK_AT * 100:.0f}% of its limit or more.")
    L.append("- Raw monitor samples: `raw/monitor.jsonl`; runner results as given: `raw/results.json`.")
    L.append("")
    return "\n".join(L)


def _alert_table(alerts, t0):
    rows = []
    for a in alerts:
        rows.append([a.get("what"), _when(a.get("start", a.get("t"))),
                     _fmt(a.get("duration_s"), 0, " s"), _fmt(a.get("peak", a.get("value")), 1),
                     _fmt(a.get("threshold"), 0)])
    return _table(["what", "from", "lasted", "peak", "threshold"], rows)


def _render_scenario(sc):
    L = [f"## Scenario `{sc['name']}` — {_status(sc)}", ""]
    if sc.get("description"):
        L.append(sc["description"])
        L.append("")
    if sc.get("skipped"):
        L.append(f"Skipped: {sc['skipped']}")
        L.append("")
        return L
    L.append(f"Tool: {sc.get('tool')} · {_when(sc.get('started_at'))} to {_when(sc.get('ended_at'))}"
             f" · tolerance {_fmt((sc.get('tolerance') or 0) * 100, 0)}%")
    L.append("")
    rows = []
    for p in sc.get("phases") or []:
        dur = p["end"] - p["start"] if _num(p.get("start")) and _num(p.get("end")) else None
        load = p.get("users") if p.get("users") is not None else p.get("connections")
        kind = "users" if p.get("users") is not None else ("conns" if p.get("connections") is not None else "")
        rows.append([p.get("name"), f"{load} {kind}".strip() if load is not None else "–", _fmt(dur, 0),
                     p.get("requests"), _fmt(p.get("rps")), _fmt(p.get("p50_ms"), 2), _fmt(p.get("p95_ms"), 2),
                     _fmt(p.get("p99_ms"), 2), _fmt(p.get("max_ms"), 2), _errors_text(p.get("errors")),
                     p.get("rate_limited", 0)])
    if rows:
        L.append(_table(["phase", "load", "s", "requests", "rps", "p50 ms", "p95 ms", "p99 ms", "max ms",
                         "errors", "429s"], rows))
        L.append("")
    checks = sc.get("checks") or []
    if checks:
        L.append(_table(["check", "wanted", "got", "result"],
                        [[c.get("name"), f"{c.get('op')} {c.get('limit')}", _g(c.get("value")),
                          "pass" if c.get("passed") else "**FAIL**"] for c in checks]))
        L.append("")
    measures = sc.get("measures") or {}
    if measures:
        L.append("Measures: " + ", ".join(f"{k} = {_g(v)}"
                                           for k, v in sorted(measures.items())) + ".")
        L.append("")
    for d in sc.get("degradations") or []:
        what = "p95 latency" if d["metric"] == "p95_ms" else "throughput"
        L.append(f"- **Degradation** in phase `{d['phase']}`: {what} {_fmt(d['previous'], 2)} → "
                 f"{_fmt(d['value'], 2)} ({_fmt(d['change_pct'], 1)}% vs `{d['previous_phase']}`, "
                 f"tolerance {_fmt(d['tolerance_pct'], 0)}%)")
    if sc.get("degradations"):
        L.append("")
    b = sc.get("bottleneck")
    if b:
        L.append(f"Likely bottleneck (phase `{b['phase']}`, {b['phase_chosen_as']}): {b['summary']}.")
        L.append("")
    res = sc.get("resources") or {}
    if res:
        rows = [[name, _fmt(r["cpu_pct"]["avg"]), _fmt(r["cpu_pct"]["peak"]), _bytes(r["rss_bytes"]["avg"]),
                 _bytes(r["rss_bytes"]["peak"]), _fmt(r["connections"]["avg"]), _fmt(r["connections"]["peak"], 0)]
                for name, r in res.items()]
        L.append(_table(["process", "CPU % avg", "CPU % peak", "RSS avg", "RSS peak", "conns avg",
                         "conns peak"], rows))
        L.append("")
    h = sc.get("host") or {}
    if h.get("samples"):
        L.append(f"Host: CPU {_fmt(h['cpu_pct']['avg'])}% avg / {_fmt(h['cpu_pct']['peak'])}% peak, memory "
                 f"{_fmt(h['mem_pct']['avg'])}% avg / {_fmt(h['mem_pct']['peak'])}% peak, network "
                 f"{_bytes(h['net_rx_bps']['avg'])}/s in avg ({h['samples']} samples).")
        L.append("")
    if sc.get("alerts"):
        L.append("Alerts:")
        L.append("")
        L.append(_alert_table(sc["alerts"], sc.get("started_at")))
        L.append("")
    for p in sc.get("plots") or []:
        L.append(f"![{os.path.basename(p)}]({p})")
        L.append("")
    return L


# --------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------

def _write_raw(out_dir, results, monitor_data):
    raw = os.path.join(out_dir, "raw")
    os.makedirs(raw, exist_ok=True)
    with open(os.path.join(raw, "monitor.jsonl"), "w") as f:
        for s in monitor_data.get("samples") or []:
            f.write(json.dumps(_json_safe(s), separators=(",", ":")) + "\n")
    meta = {k: v for k, v in monitor_data.items() if k != "samples"}
    with open(os.path.join(raw, "monitor-events.json"), "w") as f:
        json.dump(_json_safe(meta), f, indent=1)
    with open(os.path.join(raw, "results.json"), "w") as f:
        json.dump(_json_safe(results), f, indent=1)


def write_report(out_dir, results, monitor_data, *, options):
    options = dict(options or {})
    os.makedirs(out_dir, exist_ok=True)
    monitor_data = monitor_data or {}
    samples = sorted((s for s in monitor_data.get("samples") or [] if _num(s.get("t"))),
                     key=lambda s: s["t"])
    alerts = list(monitor_data.get("alerts") or [])
    events = list(monitor_data.get("events") or [])
    tolerance = options.get("tolerance")
    tolerance = 0.2 if tolerance is None else float(tolerance)
    host = host_info()
    cores = monitor_data.get("cores") or host["cores"]
    _write_raw(out_dir, results, monitor_data)

    scenarios = []
    for result in results or []:
        sc = {k: result.get(k) for k in RESULT_FIELDS}
        sc.update({k: v for k, v in result.items() if k not in sc})
        for k, default in (("phases", []), ("timeline", []), ("endpoints", []), ("measures", {}),
                           ("checks", []), ("thresholds", {})):
            if sc.get(k) is None:
                sc[k] = default
        sc["passed"] = bool(sc.get("passed")) and not sc.get("skipped")
        sc_tol = sc.get("tolerance")
        sc_tol = tolerance if not _num(sc_tol) else float(sc_tol)
        sc["summary"] = scenario_summary(sc)
        t0, t1 = sc.get("started_at"), sc.get("ended_at")
        window = [] if sc.get("skipped") else _window_samples(samples, t0, t1)
        sc["resources"], sc["host"] = resource_summary(window)
        sc["alerts"] = [] if sc.get("skipped") else [a for a in alerts if _overlaps(a, t0, t1)]
        own = {k: v for k, v in sc["thresholds"].items() if k in MONITOR_THRESHOLD_KEYS}
        if own and window:
            # the scenario sets its own resource thresholds: its alerts are those
            th = dict(monitor_data.get("thresholds") or {})
            th.update(own)
            sc["alerts"] = alerts_from_samples(window, th, monitor_data.get("interval_s") or 1.0)
        sc["degradations"] = [] if sc.get("skipped") else find_degradations(sc, sc_tol)
        sc["bottleneck"] = None if sc.get("skipped") else find_bottleneck(sc, samples, cores)
        sc["plots"] = []
        if not sc.get("skipped") and options.get("plots", True):
            try:
                sc["plots"] = plots.plot_scenario(
                    out_dir, sc, window,
                    [e for e in events if _num(e.get("t")) and _num(t0) and _num(t1) and t0 <= e["t"] <= t1])
            except Exception as e:  # a plot must not cost the whole report
                sc["plot_error"] = f"{type(e).__name__}: {e}"
        scenarios.append(sc)

    ran = [sc for sc in scenarios if not sc.get("skipped")]
    report = {
        "version": VERSION,
        "started_at": options.get("started_at"),
        "ended_at": options.get("ended_at"),
        "quick": bool(options.get("quick")),
        "target": options.get("target"),
        "scenario_file": options.get("scenario_file"),
        "tolerance": tolerance,
        "host": host,
        "passed": all(sc["passed"] for sc in ran),
        "scenarios": scenarios,
        "alerts": alerts,
        "baseline": None,
        "monitor": {"samples": len(samples), "interval_s": monitor_data.get("interval_s"),
                    "thresholds": monitor_data.get("thresholds"), "events": events,
                    "gaps": monitor_data.get("gaps") or []},
    }
    if report["started_at"] is None:
        report["started_at"] = min((sc["started_at"] for sc in scenarios if _num(sc.get("started_at"))),
                                   default=None)
    if report["ended_at"] is None:
        report["ended_at"] = max((sc["ended_at"] for sc in scenarios if _num(sc.get("ended_at"))),
                                 default=None)
    if options.get("baseline"):
        report["baseline"] = compare_baseline(scenarios, options["baseline"], tolerance)

    report = _json_safe(report)
    tmp = os.path.join(out_dir, "report.json.tmp")
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "report.json"))
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(render_markdown(report))
    return report


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Rebuild report.json, report.md and plots of a "
                                             "load-test output directory from its raw/ files.")
    ap.add_argument("out_dir")
    ap.add_argument("--baseline", help="directory of an earlier run (its report.json)")
    ap.add_argument("--tolerance", type=float, default=None)
    ap.add_argument("--no-plots", action="store_true", help="leave the PNGs out")
    args = ap.parse_args(argv)
    raw = os.path.join(args.out_dir, "raw")
    with open(os.path.join(raw, "results.json")) as f:
        results = json.load(f)
    monitor_data = {}
    try:
        with open(os.path.join(raw, "monitor-events.json")) as f:
            monitor_data = json.load(f)
        with open(os.path.join(raw, "monitor.jsonl")) as f:
            monitor_data["samples"] = [json.loads(line) for line in f if line.strip()]
    except OSError:
        pass
    old = {}
    try:
        with open(os.path.join(args.out_dir, "report.json")) as f:
            old = json.load(f)
    except (OSError, ValueError):
        pass
    options = {k: old.get(k) for k in ("quick", "target", "scenario_file", "started_at", "ended_at")}
    options["plots"] = not args.no_plots
    options["tolerance"] = args.tolerance if args.tolerance is not None else old.get("tolerance", 0.2)
    options["baseline"] = args.baseline
    report = write_report(args.out_dir, results, monitor_data, options=options)
    print(os.path.join(args.out_dir, "report.md"))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

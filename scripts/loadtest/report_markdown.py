"""Markdown rendering of the load-scenario harness's report: render_markdown(report)
turns the report dict that report.write_report() builds (and writes as report.json)
into the text of report.md. Pure formatting; the numbers come from analysis.py."""

import math
import os
import time

if __package__:
    from .analysis import BOTTLENECK_AT, _num
else:  # run as a script or imported with scripts/loadtest on sys.path
    from analysis import BOTTLENECK_AT, _num


# --------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------

def _errors_total(errors):
    if isinstance(errors, dict):
        return sum(v for v in errors.values() if _num(v))
    return errors if _num(errors) else 0


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


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------

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


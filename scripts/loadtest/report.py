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

The analysis (summaries, degradations, bottleneck, baseline comparison; its
rules are in the docstring of analysis.py, and stated in report.md) lives in
analysis.py, the rendering of report.md in report_markdown.py.
"""

import json
import math
import os
import platform
import sys

if __package__:
    from . import plots
    from .analysis import (_num, _overlaps, _window_samples, compare_baseline, find_bottleneck,
                           find_degradations, resource_summary, scenario_summary)
    from .monitor import MONITOR_THRESHOLD_KEYS, alerts_from_samples
    from .report_markdown import render_markdown
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import plots
    from analysis import (_num, _overlaps, _window_samples, compare_baseline, find_bottleneck,
                          find_degradations, resource_summary, scenario_summary)
    from monitor import MONITOR_THRESHOLD_KEYS, alerts_from_samples
    from report_markdown import render_markdown

VERSION = 1
RESULT_FIELDS = ("name", "description", "tool", "started_at", "ended_at", "skipped",
                 "thresholds", "tolerance", "phases", "timeline", "endpoints", "measures",
                 "checks", "passed")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _json_safe(obj):
    """inf/nan are not JSON: None for nan, a large finite sentinel never; we use None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


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

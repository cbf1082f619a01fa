"""check_report_schema(report): asserts that a report dict (report.json loaded)
has the shape report.py promises; raises AssertionError naming the first missing
or mistyped key by its path (e.g. "scenarios[1].phases[0].p95_ms").

Extra keys are allowed everywhere. Standard library only, so the runner's
end-to-end test can import it as well.
"""

NUM = (int, float)
NONE = type(None)


def _type_names(types):
    return "/".join("None" if t is NONE else t.__name__ for t in types)


def _is(value, types):
    if isinstance(value, bool) and bool not in types:
        return False  # a bool is an int to isinstance; never a number here
    return isinstance(value, types)


def _need(obj, key, types, path):
    assert isinstance(obj, dict), f"{path or 'report'}: expected an object, got {type(obj).__name__}"
    where = f"{path}.{key}" if path else key
    assert key in obj, f"missing key {where}"
    value = obj[key]
    assert _is(value, types), (f"{where}: expected {_type_names(types)}, "
                               f"got {type(value).__name__} {value!r:.80}")
    return value


def _stats(obj, path):
    _need(obj, "avg", NUM + (NONE,), path)
    _need(obj, "peak", NUM + (NONE,), path)


def check_phase(p, path):
    _need(p, "name", (str,), path)
    _need(p, "start", NUM, path)
    _need(p, "end", NUM, path)
    for k in ("users", "connections"):
        _need(p, k, (int, NONE), path)
    _need(p, "requests", (int,), path)
    _need(p, "rps", NUM, path)
    for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        _need(p, k, NUM + (NONE,), path)
    errors = _need(p, "errors", (dict,), path)
    for cause, n in errors.items():
        assert _is(n, (int,)), f"{path}.errors.{cause}: expected int, got {n!r}"
    _need(p, "rate_limited", (int,), path)


def check_timeline_point(x, path):
    _need(x, "t", NUM, path)
    for k in ("requests", "errors", "rate_limited"):
        _need(x, k, (int,), path)
    for k in ("p50_ms", "p95_ms", "p99_ms"):
        _need(x, k, NUM + (NONE,), path)


def check_endpoint(e, path):
    _need(e, "name", (str,), path)
    for k in ("requests", "errors", "rate_limited"):
        _need(e, k, (int,), path)
    for k in ("avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        _need(e, k, NUM + (NONE,), path)


def check_check(c, path):
    _need(c, "name", (str,), path)
    op = _need(c, "op", (str,), path)
    assert op in ("<", "<=", ">", ">=", "=="), f"{path}.op: unknown operator {op!r}"
    _need(c, "limit", NUM, path)
    _need(c, "value", NUM + (NONE,), path)
    _need(c, "passed", (bool,), path)


def check_alert(a, path):
    _need(a, "t", NUM, path)
    _need(a, "what", (str,), path)
    _need(a, "value", NUM, path)
    _need(a, "threshold", NUM, path)
    _need(a, "start", NUM, path)
    _need(a, "end", NUM, path)
    _need(a, "peak", NUM, path)


def check_summary(s, path):
    for k in ("requests", "errors", "rate_limited"):
        _need(s, k, (int,), path)
    for k in ("duration_s", "rps", "peak_rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "error_rate"):
        _need(s, k, NUM + (NONE,), path)
    _need(s, "errors_by_cause", (dict,), path)


def check_degradation(d, path):
    _need(d, "phase", (str,), path)
    _need(d, "previous_phase", (str,), path)
    metric = _need(d, "metric", (str,), path)
    assert metric in ("p95_ms", "rps"), f"{path}.metric: unknown {metric!r}"
    for k in ("previous", "value", "tolerance_pct"):
        _need(d, k, NUM, path)
    _need(d, "change_pct", NUM + (NONE,), path)


def check_bottleneck(b, path):
    _need(b, "phase", (str,), path)
    _need(b, "phase_chosen_as", (str,), path)
    _need(b, "resource", (str, NONE), path)
    _need(b, "process", (str, NONE), path)
    _need(b, "kind", (str, NONE), path)
    _need(b, "value", NUM + (NONE,), path)
    _need(b, "limit", NUM + (NONE,), path)
    _need(b, "utilization", NUM + (NONE,), path)
    _need(b, "at_limit", (bool,), path)
    _need(b, "also_at_limit", (list,), path)
    _need(b, "summary", (str,), path)


def check_scenario(sc, path):
    _need(sc, "name", (str,), path)
    _need(sc, "description", (str, NONE), path)
    _need(sc, "tool", (str, NONE), path)
    _need(sc, "started_at", NUM + (NONE,), path)
    _need(sc, "ended_at", NUM + (NONE,), path)
    skipped = _need(sc, "skipped", (str, NONE), path)
    _need(sc, "thresholds", (dict,), path)
    _need(sc, "tolerance", NUM + (NONE,), path)
    for i, p in enumerate(_need(sc, "phases", (list,), path)):
        check_phase(p, f"{path}.phases[{i}]")
    for i, x in enumerate(_need(sc, "timeline", (list,), path)):
        check_timeline_point(x, f"{path}.timeline[{i}]")
    for i, e in enumerate(_need(sc, "endpoints", (list,), path)):
        check_endpoint(e, f"{path}.endpoints[{i}]")
    _need(sc, "measures", (dict,), path)
    for i, c in enumerate(_need(sc, "checks", (list,), path)):
        check_check(c, f"{path}.checks[{i}]")
    passed = _need(sc, "passed", (bool,), path)
    assert not (skipped and passed), f"{path}: a skipped scenario cannot have passed"
    check_summary(_need(sc, "summary", (dict,), path), f"{path}.summary")
    for name, r in _need(sc, "resources", (dict,), path).items():
        rp = f"{path}.resources.{name}"
        for k in ("cpu_pct", "rss_bytes", "connections"):
            _stats(_need(r, k, (dict,), rp), f"{rp}.{k}")
    host = _need(sc, "host", (dict,), path)
    for k in ("cpu_pct", "mem_pct"):
        _stats(_need(host, k, (dict,), f"{path}.host"), f"{path}.host.{k}")
    for i, a in enumerate(_need(sc, "alerts", (list,), path)):
        check_alert(a, f"{path}.alerts[{i}]")
    for i, d in enumerate(_need(sc, "degradations", (list,), path)):
        check_degradation(d, f"{path}.degradations[{i}]")
    b = _need(sc, "bottleneck", (dict, NONE), path)
    if b is not None:
        check_bottleneck(b, f"{path}.bottleneck")
    plots = _need(sc, "plots", (list,), path)
    for i, p in enumerate(plots):
        assert isinstance(p, str) and p.startswith("plots/") and p.endswith(".png"), \
            f"{path}.plots[{i}]: expected 'plots/*.png', got {p!r}"
    if skipped:
        assert not plots, f"{path}.plots: a skipped scenario has no plots"


def check_baseline(b, path="baseline"):
    _need(b, "dir", (str,), path)
    _need(b, "tolerance", NUM, path)
    _need(b, "error", (str, NONE), path)
    _need(b, "regressions", (list,), path)
    _need(b, "missing", (list,), path)
    for i, r in enumerate(_need(b, "scenarios", (list,), path)):
        rp = f"{path}.scenarios[{i}]"
        _need(r, "name", (str,), rp)
        status = _need(r, "status", (str,), rp)
        _need(r, "regressions", (list,), rp)
        if status == "compared":
            for k in ("p95_ms", "rps", "error_rate"):
                m = _need(r, k, (dict,), rp)
                for f in ("baseline", "current", "delta", "change_pct"):
                    _need(m, f, NUM + (NONE,), f"{rp}.{k}")
    for i, g in enumerate(b["regressions"]):
        rp = f"{path}.regressions[{i}]"
        _need(g, "scenario", (str,), rp)
        _need(g, "metric", (str,), rp)


def check_report_schema(report):
    """Raises AssertionError naming the first missing or mistyped key."""
    assert isinstance(report, dict), f"report: expected an object, got {type(report).__name__}"
    version = _need(report, "version", (int,), "")
    assert version == 1, f"version: expected 1, got {version}"
    _need(report, "started_at", NUM + (NONE,), "")
    _need(report, "ended_at", NUM + (NONE,), "")
    _need(report, "quick", (bool,), "")
    _need(report, "target", (str, NONE), "")
    host = _need(report, "host", (dict,), "")
    _need(host, "cores", (int,), "host")
    _need(host, "memory", (int, NONE), "host")
    _need(host, "kernel", (str,), "host")
    _need(host, "python", (str,), "host")
    passed = _need(report, "passed", (bool,), "")
    scenarios = _need(report, "scenarios", (list,), "")
    for i, sc in enumerate(scenarios):
        check_scenario(sc, f"scenarios[{i}]")
    expect = all(sc["passed"] for sc in scenarios if not sc["skipped"])
    assert passed == expect, f"passed: {passed} but the non-skipped scenarios say {expect}"
    for i, a in enumerate(_need(report, "alerts", (list,), "")):
        check_alert(a, f"alerts[{i}]")
    b = _need(report, "baseline", (dict, NONE), "")
    if b is not None:
        check_baseline(b)
    return True

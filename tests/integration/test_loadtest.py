"""The load-scenario runner (scripts/loadtest/run.py) end to end, scaled down
with --quick: every scenario ends up in report.json with the agreed shape, and
the rate-limit scenario fails when the scenario file's limit is wrong."""

import json
import os
import subprocess
import sys
import time
import tomllib

import pytest

from conftest import PHALANX_BIN, REPO, assert_png

sys.path.insert(0, os.path.join(REPO, "scripts", "loadtest"))
from report_schema import check_report_schema  # noqa: E402

RUN = os.path.join(REPO, "scripts", "loadtest", "run.py")
SCENARIO_FILE = os.path.join(REPO, "scripts", "loadtest", "scenarios.toml")
PHALANXCTL_BIN = os.environ.get("PHALANXCTL_BIN") or os.path.join(REPO, "build", "phalanxctl")

RESULT_KEYS = {"name", "description", "tool", "started_at", "ended_at", "skipped", "thresholds",
               "tolerance", "phases", "timeline", "endpoints", "measures", "checks", "passed"}
PHASE_KEYS = {"name", "start", "end", "users", "connections", "requests", "rps", "p50_ms",
              "p95_ms", "p99_ms", "max_ms", "errors", "rate_limited"}
TIMELINE_KEYS = {"t", "requests", "errors", "rate_limited", "p50_ms", "p95_ms", "p99_ms"}
ENDPOINT_KEYS = {"name", "requests", "errors", "rate_limited", "avg_ms", "p50_ms", "p95_ms",
                 "p99_ms", "max_ms"}
CHECK_KEYS = {"name", "op", "limit", "value", "passed"}
ERROR_CAUSES = {"connect", "timeout", "http_5xx", "http_4xx", "other"}


def run_loadtest(out, *args, timeout=240):
    for b in (PHALANX_BIN, PHALANXCTL_BIN):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} not found (build it or set PHALANX_BIN / PHALANXCTL_BIN)", pytrace=False)
    cmd = ["/usr/bin/python3", RUN, "--quick", "--out", str(out), "--bin", PHALANX_BIN,
           "--ctl", PHALANXCTL_BIN, *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(out.parent))
    took = time.monotonic() - t0
    # 0: everything passed, 1: some scenario failed its thresholds (a loaded
    # machine may do that); anything else is the harness failing.
    assert r.returncode in (0, 1), f"run.py exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r, took


def scenario_results(report):
    """The per-scenario results in report.json, whatever the writer's top level."""
    for key in ("scenarios", "results"):
        v = report.get(key)
        if isinstance(v, list):
            return {s["name"]: s for s in v}
        if isinstance(v, dict):
            return {name: dict(s, name=s.get("name", name)) for name, s in v.items()}
    raise AssertionError(f"no scenario results in report.json (keys {sorted(report)})")




def test_quick_run_reports_every_scenario(tmp_path):
    out = tmp_path / "report"
    r, took = run_loadtest(out)
    print(r.stdout, f"\nquick run took {took:.1f} s", file=sys.stderr)
    with open(SCENARIO_FILE, "rb") as f:
        names = tomllib.load(f)["order"]
    report_json = out / "report.json"
    assert report_json.is_file(), r.stdout
    results = scenario_results(json.loads(report_json.read_text()))
    assert set(names) <= set(results), f"missing {set(names) - set(results)}"
    for name in names:
        res = results[name]
        assert RESULT_KEYS <= set(res), (name, RESULT_KEYS - set(res))
        assert res["skipped"] is None, (name, res["skipped"])  # a local run skips nothing
        assert res["phases"] and res["timeline"] and res["checks"], name
        assert res["started_at"] <= res["ended_at"], name
        for p in res["phases"]:
            assert PHASE_KEYS <= set(p), (name, PHASE_KEYS - set(p))
            assert set(p["errors"]) <= ERROR_CAUSES, (name, p["errors"])
        assert sum(p["requests"] for p in res["phases"]) > 0, name
        for e in res["timeline"]:
            assert TIMELINE_KEYS <= set(e), (name, TIMELINE_KEYS - set(e))
        ts = [e["t"] for e in res["timeline"]]
        assert ts == sorted(set(ts)), f"{name}: timeline not one entry per second"
        for e in res["endpoints"]:
            assert ENDPOINT_KEYS <= set(e), (name, ENDPOINT_KEYS - set(e))
        for c in res["checks"]:
            assert CHECK_KEYS <= set(c), (name, c)
        assert res["passed"] == all(c["passed"] for c in res["checks"]), name
    # figures the scenarios exist for
    assert results["stress"]["measures"]["breaking_point_rps"] > 0
    assert results["stress"]["measures"]["worker_restarts"] == 0
    assert results["rate-limit"]["measures"]["refused"] > 0
    assert results["operations"]["measures"]["reload_ok"] is True
    for k in ("errors_before_open", "failover_s", "return_to_full_s"):
        assert k in results["recovery"]["measures"], k
    assert (out / "report.md").is_file() and (out / "report.md").stat().st_size > 0
    report = json.loads(report_json.read_text())
    check_report_schema(report)
    plots = out / "plots"
    pngs = sorted(plots.iterdir())
    # two figures per scenario: traffic, and the workers' CPU and RSS
    assert len(pngs) >= 2 * len(names), [p.name for p in pngs]
    for p in pngs:
        assert_png(p)
    for res in report["scenarios"]:
        for rel in res["plots"]:
            assert (out / rel).is_file(), rel
    # nothing left running: no process still has the run's deployment open
    assert "phalanx-loadtest-" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                     text=True).stdout


def rate_limit_result(out, *sets):
    args = ["rate-limit"] + [a for s in sets for a in ("--set", s)]
    r, _ = run_loadtest(out, *args)
    results = scenario_results(json.loads((out / "report.json").read_text()))
    return r, results["rate-limit"]


def test_a_wrong_expected_limit_fails_the_rate_limit_scenario(tmp_path):
    with open(SCENARIO_FILE, "rb") as f:
        cfg = tomllib.load(f)
    real = cfg["deployment"]["limited_rate"]
    count, per = real.split("/")
    tol = cfg["rate-limit"]["tolerance_pct"]
    # the gateway enforces `real`; the file claims twice as much, then half
    for claimed in (f"{int(count) * 2}/{per}", f"{int(count) // 2}/{per}"):
        r, res = rate_limit_result(tmp_path / f"wrong-{claimed.replace('/', '-')}",
                                   f"rate-limit.limit_rate={claimed}")
        assert res["passed"] is False, (claimed, res["measures"], r.stdout)
        eff = res["measures"]["effectiveness_pct"]
        assert eff is not None and abs(eff - 100) > 30, (claimed, res["measures"])
        assert r.returncode == 1
    r, res = rate_limit_result(tmp_path / "right", f"rate-limit.limit_rate={real}")
    m = res["measures"]
    assert res["passed"] is True, (m, res["checks"], r.stdout)
    assert abs(m["effectiveness_pct"] - 100) <= tol, m
    assert m["header_violations"] == 0 and m["refused"] > 0, m


def test_target_mode_runs_against_an_existing_gateway_and_skips_what_needs_its_processes(tmp_path):
    """--target starts nothing: the scenarios that only send requests run against
    the given gateway (here one deployment.py started, as an operator's would
    be), those that kill or reload processes are reported skipped."""
    sys.path.insert(0, os.path.join(REPO, "scripts", "loadtest"))
    import deployment  # noqa: E402

    dep = deployment.Deployment(PHALANX_BIN, PHALANXCTL_BIN,
                                {"rate": "50/s", "burst": 0, "key": "ip"})
    dep.start()
    try:
        out = tmp_path / "report"
        r, _ = run_loadtest(out, "--target", dep.base_url, "normal", "rate-limit", "operations")
        report = json.loads((out / "report.json").read_text())
        check_report_schema(report)
        assert report["target"] == dep.base_url
        results = scenario_results(report)
        assert results["operations"]["skipped"], results["operations"]
        for name in ("normal", "rate-limit"):
            assert results[name]["skipped"] is None, results[name]
            assert sum(p["requests"] for p in results[name]["phases"]) > 0, name
        assert results["rate-limit"]["measures"]["refused"] > 0
        # the target's own processes are left running
        assert dep.gateway.running(), r.stdout
    finally:
        dep.stop()

"""The load-scenario harness's resource monitor and report writer
(scripts/loadtest/monitor.py, report.py, plots.py, report_schema.py).

The report tests use synthetic runner results and monitor samples; the monitor
test runs against a real phalanx (2 workers, control socket, /metrics)."""

import copy
import json
import os
import sys
import time

import pytest

from conftest import REPO, assert_png, http_get, make_config

sys.path.insert(0, os.path.join(REPO, "scripts", "loadtest"))

import monitor as lt_monitor  # noqa: E402
import promtext  # noqa: E402
import report as lt_report  # noqa: E402
from report_schema import check_report_schema  # noqa: E402

T0 = 1_700_000_000.0


# --------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------

def _phase(name, start, end, users, rps, p95, errors=None, rate_limited=0):
    return {"name": name, "start": start, "end": end, "users": users, "connections": None,
            "requests": int(rps * (end - start)), "rps": float(rps), "p50_ms": p95 / 3,
            "p95_ms": float(p95), "p99_ms": p95 * 1.5, "max_ms": p95 * 3,
            "errors": dict(errors or {}), "rate_limited": rate_limited}


def stress_result(scale=1.0):
    """Three 10 s phases; the third is slower (p95 x4) and serves less while the
    load grows: a degradation. scale multiplies latencies (for the baseline)."""
    phases = [
        _phase("ramp-50", T0, T0 + 10, 50, 1000, 5 * scale),
        _phase("ramp-100", T0 + 10, T0 + 20, 100, 1900, 6 * scale, {"timeout": 2}),
        _phase("ramp-200", T0 + 20, T0 + 30, 200, 1200, 24 * scale,
               {"timeout": 40, "connect": 3}, rate_limited=7),
    ]
    timeline = []
    for i in range(30):
        ph = phases[i // 10]
        timeline.append({"t": T0 + i + 1, "requests": int(ph["rps"]),
                         "errors": 4 if i >= 20 else 0, "rate_limited": 1 if i == 25 else 0,
                         "p50_ms": ph["p50_ms"], "p95_ms": None if i == 3 else ph["p95_ms"],
                         "p99_ms": ph["p99_ms"]})
    return {
        "name": "stress", "description": "Ramp until throughput stops growing.", "tool": "wrk",
        "started_at": T0, "ended_at": T0 + 30, "skipped": None,
        "thresholds": {"p95_ms": 50, "error_rate": 0.05, "cpu_pct": 60, "process_cpu_pct": 90},
        "tolerance": 0.2, "phases": phases, "timeline": timeline,
        "endpoints": [
            {"name": "GET /api/users", "requests": 30000, "errors": 40, "rate_limited": 7,
             "avg_ms": 4.0 * scale, "p50_ms": 3.0 * scale, "p95_ms": 12.0 * scale,
             "p99_ms": 20.0 * scale, "max_ms": 90.0 * scale},
            {"name": "GET /slow|odd", "requests": 1000, "errors": 5, "rate_limited": 0,
             "avg_ms": 40.0 * scale, "p50_ms": 35.0 * scale, "p95_ms": 80.0 * scale,
             "p99_ms": 120.0 * scale, "max_ms": 300.0 * scale},
            {"name": "GET /never", "requests": 0, "errors": 0, "rate_limited": 0,
             "avg_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None},
        ],
        "measures": {"breaking_point_rps": 1900, "breaking_point_connections": 100,
                     "breaking_point_phase": "ramp-100"},
        "checks": [{"name": "p95_ms", "op": "<", "limit": 50, "value": 24.0 * scale,
                    "passed": 24.0 * scale < 50},
                   {"name": "error_rate", "op": "<=", "limit": 0.05, "value": 0.001, "passed": True}],
        "passed": 24.0 * scale < 50,
    }


def skipped_result():
    return {"name": "spike", "description": "A sudden burst.", "tool": "locust",
            "started_at": T0 + 30, "ended_at": T0 + 30, "skipped": "locust is not installed",
            "thresholds": {}, "tolerance": 0.2, "phases": [], "timeline": [], "endpoints": [],
            "measures": {}, "checks": [], "passed": False}


def monitor_data(t_end=T0 + 31):
    """One sample a second; worker0 saturates (98% of a core) in ramp-100."""
    samples = []
    t = T0
    while t <= t_end:
        busy = T0 + 10 <= t <= T0 + 20
        procs = {
            "master": {"pid": 100, "cpu_pct": 0.5, "rss_bytes": 8 << 20, "connections": 0,
                       "fds": 12, "fd_limit": 1024},
            "worker0": {"pid": 101 if t < T0 + 25 else 111, "slot": 0, "state": "ready",
                        "cpu_pct": 98.0 if busy else 40.0, "rss_bytes": (20 << 20) + int(t - T0) * 4096,
                        "connections": 60, "fds": 70, "fd_limit": 1024},
            "worker1": {"pid": 102, "slot": 1, "state": "ready", "cpu_pct": 55.0 if busy else 35.0,
                        "rss_bytes": 21 << 20, "connections": 50, "fds": 60, "fd_limit": 1024},
            "upstream-a": {"pid": 103, "cpu_pct": 30.0, "rss_bytes": 15 << 20, "connections": 20,
                           "fds": 25, "fd_limit": 1024},
        }
        if t == T0 + 25:
            procs["worker0"].update(cpu_pct=None, rss_bytes=None)  # replaced this second
        samples.append({"t": t, "host": {"cpu_pct": 70.0 if busy else 45.0, "mem_pct": 40.0,
                                         "mem_used_bytes": 3 << 30, "net_rx_bytes": int(t - T0) << 20,
                                         "net_tx_bytes": int(t - T0) << 20, "net_rx_bps": 1 << 20,
                                         "net_tx_bps": 1 << 20},
                        "processes": procs,
                        "metrics": {"phalanx_requests_total": int((t - T0) * 1000),
                                    "phalanx_connections_open": 110}})
        t += 1.0
    alerts = [{"t": T0 + 10, "what": "worker0 cpu_pct", "value": 98.0, "threshold": 80.0,
               "start": T0 + 10, "end": T0 + 20, "peak": 98.0, "samples": 11, "duration_s": 11.0}]
    events = [{"t": T0 + 25, "label": "kill worker0"}]
    return {"samples": samples, "alerts": alerts, "events": events, "gaps": [], "interval_s": 1.0,
            "thresholds": {"cpu_pct": 80.0, "mem_pct": 85.0}, "cores": 2}


def options(**kw):
    o = {"quick": True, "target": None, "baseline": None, "scenario_file": "scenarios.json",
         "tolerance": 0.2, "started_at": T0, "ended_at": T0 + 31}
    o.update(kw)
    return o


# --------------------------------------------------------------------------
# PNG checks
# --------------------------------------------------------------------------



# --------------------------------------------------------------------------
# report tests
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(out dir, report dict) of the stress + skipped spike results, written once."""
    out = tmp_path_factory.mktemp("loadtest") / "out"
    rep = lt_report.write_report(str(out), [stress_result(), skipped_result()], monitor_data(),
                                 options=options())
    return out, rep


def test_report_from_synthetic_results(synthetic):
    out, rep = synthetic

    with open(out / "report.json") as f:
        loaded = json.load(f)
    check_report_schema(loaded)
    assert loaded == json.loads(json.dumps(rep))
    assert [s["name"] for s in loaded["scenarios"]] == ["stress", "spike"]
    assert loaded["passed"] is True  # the skipped one does not count

    stress, spike = loaded["scenarios"]
    # summary
    s = stress["summary"]
    assert s["requests"] == 10000 + 19000 + 12000
    assert s["errors"] == 45 and s["errors_by_cause"] == {"timeout": 42, "connect": 3}
    assert s["rate_limited"] == 7 and s["p95_ms"] == 24 and s["peak_rps"] == 1900
    # degradations: ramp-200 vs ramp-100, both p95 and throughput
    metrics = {(d["phase"], d["metric"]) for d in stress["degradations"]}
    assert metrics == {("ramp-200", "p95_ms"), ("ramp-200", "rps")}, stress["degradations"]
    p95d = next(d for d in stress["degradations"] if d["metric"] == "p95_ms")
    assert p95d["previous"] == 6 and p95d["value"] == 24 and p95d["change_pct"] == 300
    # resources over the scenario's window, per process
    res = stress["resources"]
    assert set(res) == {"master", "worker0", "worker1", "upstream-a"}
    assert res["worker0"]["cpu_pct"]["peak"] == 98
    assert res["worker0"]["pids"] == [101, 111]
    assert res["worker1"]["rss_bytes"]["peak"] == 21 << 20
    assert stress["host"]["cpu_pct"]["peak"] == 70
    # the bottleneck of the breaking-point phase: worker0's CPU
    b = stress["bottleneck"]
    assert b["phase"] == "ramp-100" and b["phase_chosen_as"] == "breaking point"
    assert b["resource"] == "worker0 CPU" and b["kind"] == "worker_cpu" and b["at_limit"] is True
    # alerts from the scenario's own thresholds: host CPU > 60, a process > 90% of a core
    alerts = {a["what"]: a for a in stress["alerts"]}
    assert set(alerts) == {"host cpu_pct", "worker0 cpu_pct"}, stress["alerts"]
    w0 = alerts["worker0 cpu_pct"]
    assert (w0["start"], w0["end"], w0["peak"], w0["threshold"]) == (T0 + 10, T0 + 20, 98, 90)
    assert loaded["alerts"] == monitor_data()["alerts"]  # the monitor's, run-wide
    # plots
    assert stress["plots"] == ["plots/stress-traffic.png", "plots/stress-workers.png"]
    pngs = sorted(os.listdir(out / "plots"))
    assert pngs == ["stress-traffic.png", "stress-workers.png"]
    for p in pngs:
        assert_png(out / "plots" / p)
    # skipped
    assert spike["skipped"] and spike["plots"] == [] and spike["bottleneck"] is None
    assert spike["passed"] is False
    # raw samples beside, not inside, report.json
    with open(out / "raw" / "monitor.jsonl") as f:
        assert sum(1 for _ in f) == 32
    assert "samples" not in json.dumps(loaded["scenarios"][0]["resources"])

    md = (out / "report.md").read_text()
    assert "`stress`" in md and "`spike`" in md
    assert "locust is not installed" in md
    assert "Degradation" in md and "ramp-200" in md
    assert "worker0 CPU" in md
    assert "GET /slow\\|odd" in md  # pipes escaped in tables
    assert md.index("GET /slow") < md.index("GET /api/users")  # slowest first
    assert "plots/stress-traffic.png" in md


def test_baseline_flags_regression(tmp_path):
    base_dir, cur_dir = tmp_path / "base", tmp_path / "cur"
    fast = stress_result(scale=0.25)
    fast["phases"] = [dict(p, rps=p["rps"] * 2, requests=p["requests"] * 2) for p in fast["phases"]]
    lt_report.write_report(str(base_dir), [fast, skipped_result()], monitor_data(),
                           options=options(plots=False))
    rep = lt_report.write_report(str(cur_dir), [stress_result(), skipped_result()], monitor_data(),
                                 options=options(baseline=str(base_dir), plots=False))
    check_report_schema(rep)
    b = rep["baseline"]
    assert b["error"] is None
    rows = {r["name"]: r for r in b["scenarios"]}
    assert rows["spike"]["status"] == "skipped"
    st = rows["stress"]
    assert st["status"] == "compared"
    assert set(st["regressions"]) == {"p95_ms", "rps"}, st
    assert st["p95_ms"]["baseline"] == 6 and st["p95_ms"]["current"] == 24
    assert st["p95_ms"]["change_pct"] == 300
    assert st["rps"]["change_pct"] == -50
    assert {(r["scenario"], r["metric"]) for r in b["regressions"]} == {("stress", "p95_ms"),
                                                                       ("stress", "rps")}
    md = (cur_dir / "report.md").read_text()
    assert "Compared with the baseline" in md and "REGRESSION" in md

    # the same run against itself: nothing regressed
    again = lt_report.write_report(str(tmp_path / "again"), [stress_result()], monitor_data(),
                                   options=options(baseline=str(cur_dir), plots=False))
    assert again["baseline"]["regressions"] == []
    # a missing baseline is reported, not raised
    none = lt_report.write_report(str(tmp_path / "none"), [stress_result()], None,
                                  options=options(baseline=str(tmp_path / "nowhere"), plots=False))
    check_report_schema(none)
    assert "cannot read" in none["baseline"]["error"]


def test_report_edge_cases(tmp_path):
    """One phase with no latencies, an empty timeline, no measures, no monitor data;
    a --target run (host samples only); a phase index as breaking point."""
    one = {"name": "normal", "description": None, "tool": "python", "started_at": T0,
           "ended_at": T0 + 5, "skipped": None, "thresholds": {}, "tolerance": None,
           "phases": [{"name": "steady", "start": T0, "end": T0 + 5, "users": None,
                       "connections": None, "requests": 0, "rps": 0.0, "p50_ms": None,
                       "p95_ms": None, "p99_ms": None, "max_ms": None, "errors": {},
                       "rate_limited": 0}],
           "timeline": [], "endpoints": [], "measures": None, "checks": [], "passed": True}
    rep = lt_report.write_report(str(tmp_path / "a"), [one], None, options=options(quick=False))
    check_report_schema(rep)
    sc = rep["scenarios"][0]
    assert sc["degradations"] == [] and sc["resources"] == {}
    assert sc["bottleneck"] is None or sc["bottleneck"]["resource"] is None
    assert sc["plots"] == ["plots/normal-traffic.png"]
    assert_png(tmp_path / "a" / "plots" / "normal-traffic.png")
    assert rep["passed"] is True

    # --target: no processes, host + metrics only
    md = monitor_data()
    for s in md["samples"]:
        s["processes"] = {}
    r = stress_result()
    r["measures"] = {"breaking_point_phase": 2}
    rep = lt_report.write_report(str(tmp_path / "b"), [r], md,
                                 options=options(target="http://10.0.0.5:8080"))
    check_report_schema(rep)
    sc = rep["scenarios"][0]
    assert sc["plots"] == ["plots/stress-traffic.png", "plots/stress-host.png"]
    assert_png(tmp_path / "b" / "plots" / "stress-host.png")
    assert sc["bottleneck"]["phase"] == "ramp-200"
    assert sc["bottleneck"]["resource"] is None  # host at 45%: nothing at its limit
    assert "no monitored resource at its limit" in sc["bottleneck"]["summary"]

    # everything skipped
    rep = lt_report.write_report(str(tmp_path / "c"), [skipped_result()], {}, options=options())
    check_report_schema(rep)
    assert rep["passed"] is True and not os.path.exists(tmp_path / "c" / "plots")

    # rebuild from raw/ (python3 report.py OUT_DIR)
    assert lt_report.main([str(tmp_path / "b"), "--no-plots"]) == 0
    check_report_schema(json.loads((tmp_path / "b" / "report.json").read_text()))


def test_throughput_drop_with_less_load_is_no_degradation():
    r = stress_result()
    r["phases"][2]["users"] = 10  # the load went down: fewer rps is expected
    r["phases"][2]["p95_ms"] = 6.5
    assert lt_report.find_degradations(r, 0.2) == []


def test_schema_checker_names_the_key(synthetic):
    rep = synthetic[1]
    check_report_schema(rep)
    cases = [
        (lambda r: r.pop("baseline"), "baseline"),
        (lambda r: r["scenarios"][0]["phases"][1].pop("p95_ms"), "scenarios[0].phases[1].p95_ms"),
        (lambda r: r["scenarios"][0]["resources"]["worker1"]["cpu_pct"].update(peak="x"),
         "scenarios[0].resources.worker1.cpu_pct.peak"),
        (lambda r: r["scenarios"][1].update(passed=True), "scenarios[1]"),
        (lambda r: r["host"].update(cores="2"), "host.cores"),
        (lambda r: r["scenarios"][0]["checks"][0].update(passed=1), "scenarios[0].checks[0].passed"),
    ]
    for mutate, name in cases:
        broken = copy.deepcopy(rep)
        mutate(broken)
        with pytest.raises(AssertionError) as e:
            check_report_schema(broken)
        assert name in str(e.value), (name, str(e.value))


def test_prometheus_text_parser():
    text = """# HELP phalanx_requests_total Requests.
# TYPE phalanx_requests_total counter
phalanx_requests_total 12
phalanx_responses_total{code="2xx"} 10
phalanx_responses_total{code="4xx"} 1
phalanx_responses_total{code="5xx"} 1 1700000000000
phalanx_rate_limit_requests_total{limit="per \\"ip\\", a\\\\b",result="limited"} 3
phalanx_rate_limit_requests_total{limit="other",result="limited"} 4
phalanx_request_duration_seconds_bucket{le="+Inf"} 12
phalanx_worker_cpu_seconds_total{slot="0",pid="1",generation="1"} 0.25
phalanx_worker_cpu_seconds_total{slot="1",pid="2",generation="1"} 0.5
"""
    samples = promtext.parse(text)
    assert ("phalanx_requests_total", {}, 12.0) in samples
    lim = [s for s in samples if s[0] == "phalanx_rate_limit_requests_total"]
    assert lim[0][1]["limit"] == 'per "ip", a\\b'
    assert promtext.types(text) == {"phalanx_requests_total": "counter"}
    summary = promtext.summarize(text)
    assert summary["phalanx_requests_total"] == 12
    assert summary["phalanx_responses_total"] == 12
    assert summary['phalanx_responses_total{code="5xx"}'] == 1
    assert summary['phalanx_rate_limit_requests_total{result="limited"}'] == 7
    assert summary["phalanx_worker_cpu_seconds_total"] == 0.75
    with pytest.raises(promtext.ParseError):
        promtext.parse('phalanx_x{code="2xx} 1\n')


# --------------------------------------------------------------------------
# the monitor against a real phalanx
# --------------------------------------------------------------------------

def test_monitor_samples_a_real_phalanx(phalanx_factory, phalanxctl_bin):
    routes = [{"path": "/health/live", "builtin": "live"},
              {"path": "/metrics", "builtin": "metrics"},
              {"path": "/", "static": {"status": 200, "body": "ok\n"}}]
    ph = phalanx_factory(make_config(workers=2, routes=routes))
    workers = ph.worker_by_slot()
    mon = lt_monitor.Monitor(interval_s=0.5, ctl=phalanxctl_bin, ctl_socket=ph.control_path,
                             metrics_url=f"http://127.0.0.1:{ph.port}/metrics",
                             processes={"me": os.getpid(), "gone": 2**22 + 12345},
                             thresholds={"cpu_pct": 0, "p95_ms": 10})
    mon.start()
    deadline = time.monotonic() + 3.0
    n = 0
    while time.monotonic() < deadline:
        assert http_get(ph.port, "/").status == 200
        n += 1
        time.sleep(0.01)
    mon.mark("done")
    data = mon.stop()

    samples = data["samples"]
    assert len(samples) >= 4, samples
    for s in samples:
        procs = s["processes"]
        assert {"master", "worker0", "worker1", "me"} <= set(procs), procs.keys()
        assert "gone" not in procs
        assert procs["master"]["pid"] == ph.pid
        for slot in (0, 1):
            w = procs[f"worker{slot}"]
            assert w["pid"] == workers[slot] and w["slot"] == slot and w["state"] == "ready"
        for key in ("master", "worker0", "worker1"):
            assert procs[key]["rss_bytes"] > 0, (key, procs[key])
        assert s["host"]["mem_pct"] > 0 and s["host"]["net_rx_bytes"] > 0
        assert s["metrics"] is not None, s.get("gaps")
        assert "phalanx_requests_total" in s["metrics"]
        assert s["gaps"] == {"process gone": f"pid {2**22 + 12345} is gone"}
    later = samples[1:]
    assert all(s["processes"]["worker0"]["cpu_pct"] is not None for s in later)
    # the requests made show in /metrics, summed over workers
    assert samples[-1]["metrics"]["phalanx_requests_total"] >= \
        samples[0]["metrics"]["phalanx_requests_total"] + n // 2
    assert samples[-1]["metrics"]['phalanx_responses_total{code="2xx"}'] > 0
    # a threshold of 0 % host CPU: one alert for the whole run (consecutive seconds)
    host_alerts = [a for a in data["alerts"] if a["what"] == "host cpu_pct"]
    assert len(host_alerts) >= 1, data["alerts"]
    a = host_alerts[0]
    assert a["threshold"] == 0 and a["peak"] > 0 and a["end"] >= a["start"]
    assert [e["label"] for e in data["events"]] == ["done"]
    assert any(g["source"] == "process gone" for g in data["gaps"])


def test_monitor_records_gaps_not_crashes(tmp_path):
    """No phalanx behind the socket nor the URL: every sample has gaps, no exception."""
    mon = lt_monitor.Monitor(interval_s=0.2, ctl="/nonexistent/phalanxctl",
                             ctl_socket=str(tmp_path / "none.sock"),
                             metrics_url="http://127.0.0.1:9/metrics")
    mon.start()
    time.sleep(0.7)
    data = mon.stop()
    assert len(data["samples"]) >= 2
    for s in data["samples"]:
        assert set(s["gaps"]) == {"ctl", "metrics"}
        assert s["processes"] == {} and s["metrics"] is None
        assert s["host"]["mem_pct"] is not None
    sources = {g["source"] for g in data["gaps"]}
    assert sources == {"ctl", "metrics"}
    assert all(g["count"] == len(data["samples"]) for g in data["gaps"])


def test_alerts_group_consecutive_seconds():
    def s(t, cpu, mem=10.0, w0=None):
        procs = {} if w0 is None else {"worker0": {"pid": 1, "cpu_pct": w0}}
        return {"t": T0 + t, "host": {"cpu_pct": cpu, "mem_pct": mem}, "processes": procs}
    samples = [s(0, 10), s(1, 90), s(2, 95), s(3, None), s(4, 85), s(5, 50), s(6, 81, mem=90),
               s(7, 20, w0=99)]
    alerts = lt_monitor.alerts_from_samples(samples, {"p95_ms": 3, "process_cpu_pct": 95})
    got = [(a["what"], a["start"] - T0, a["end"] - T0, a["peak"], a["samples"]) for a in alerts]
    assert got == [("host cpu_pct", 1, 4, 95, 3),       # a gap (None) does not split it
                   ("host cpu_pct", 6, 6, 81, 1),
                   ("host mem_pct", 6, 6, 90, 1),
                   ("worker0 cpu_pct", 7, 7, 99, 1)], got
    assert all(a["threshold"] == {"host cpu_pct": 80, "host mem_pct": 85,
                                  "worker0 cpu_pct": 95}[a["what"]] for a in alerts)
    assert alerts[0]["duration_s"] == 4.0


def test_bottleneck_in_an_upstream_tree():
    """An upstream that is a phalanx master: its workers' CPU counts (cpu_pct_max)."""
    md = monitor_data()
    for s in md["samples"]:
        s["processes"]["upstream-a"].update(cpu_pct=120.0, cpu_pct_max=99.0, tree=3)
    b = lt_report.find_bottleneck(stress_result(), md["samples"], 2)
    assert b["resource"] == "upstream-a CPU (busiest process)" and b["kind"] == "upstream_cpu"
    assert "worker0 CPU" in b["also_at_limit"]
    assert "upstream" in b["summary"]

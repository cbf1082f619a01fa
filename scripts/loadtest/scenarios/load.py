"""Locust scenarios: normal, peak, spike, burst. Users run the weighted tasks
of loadgen.default_endpoints() with API keys of the free / standard / premium
tiers; every request is recorded and the figures are computed from the records."""

import math
import os

import loadgen
import stats
from scenarios.common import fill_from_records, finish, new_result, totals


def _endpoints(sc, endpoints=None):
    """The weighted tasks, without the paths in the scenario's skip_paths."""
    skip = set(sc.get("skip_paths", []))
    return [e for e in (endpoints or loadgen.default_endpoints()) if e["path"] not in skip]


def _run(ctx, name, sc, stages, wait, endpoints=None):
    res = new_result(name, sc, "locust")
    endpoints = _endpoints(sc, endpoints)
    keys = loadgen.key_mix(ctx.dep.keys, sc.get("tiers"))
    records, _start, phases = loadgen.run_locust(
        ctx.dep.base_url, stages, os.path.join(ctx.workdir, name), keys, wait=wait,
        endpoints=endpoints, timeout_s=float(sc.get("request_timeout_s", 10)))
    fill_from_records(res, records, [(n, s, e, u, None) for n, s, e, u in phases])
    res["started_at"] = phases[0][1]
    return res, records, phases


def _ramp_stages(sc):
    """warm (users_start) → ramp (to users_end at a steady spawn rate) → steady."""
    a, b = int(sc["users_start"]), int(sc["users_end"])
    total, warm, ramp = float(sc["duration_s"]), float(sc["warm_s"]), float(sc["ramp_s"])
    steady = max(1.0, total - warm - ramp)
    return [{"name": "warm", "duration": warm, "users": a, "spawn_rate": max(a, 1)},
            {"name": "ramp", "duration": ramp, "users": b,
             "spawn_rate": max(1.0, (b - a) / max(ramp, 0.1))},
            {"name": "steady", "duration": steady, "users": b, "spawn_rate": max(b, 1)}]


def _think(sc):
    return {"min": float(sc.get("think_min_s", 1)), "max": float(sc.get("think_max_s", 3))}


def _load_measures(res, records):
    t = totals(records)
    ms = sorted(r[2] for r in records if r[4] in (None, "rate_limited"))
    dur = max(1e-9, res["phases"][-1]["end"] - res["phases"][0]["start"]) if res["phases"] else 1
    return {"requests": t["requests"], "rps": round(t["requests"] / dur, 2),
            "errors": t["errors"], "errors_by_cause": t["errors_by_cause"],
            "error_rate_pct": t["error_rate_pct"], "rate_limited": t["rate_limited"],
            "p50_ms": stats.percentile(ms, 50), "p95_ms": stats.percentile(ms, 95),
            "p99_ms": stats.percentile(ms, 99)}


def run_steady(ctx, name, sc):
    """normal and peak: users ramp from users_start to users_end, think time between calls."""
    res, records, _ = _run(ctx, name, sc, _ramp_stages(sc), _think(sc))
    res["measures"] = _load_measures(res, records)
    return finish(res)


def run_spike(ctx, name, sc):
    """base_users → spike_users at once → base_users; time until the p95 of a
    sliding window is back within tolerance of the p95 before the spike."""
    base, peak = int(sc["base_users"]), int(sc["spike_users"])
    stages = [{"name": "before", "duration": float(sc["before_s"]), "users": base, "spawn_rate": base},
              {"name": "spike", "duration": float(sc["spike_s"]), "users": peak,
               "spawn_rate": float(sc.get("spike_spawn_rate", peak))},
              {"name": "after", "duration": float(sc["after_s"]), "users": base, "spawn_rate": peak}]
    res, records, phases = _run(ctx, name, sc, stages, _think(sc))
    (_, b0, b1, _), (_, s0, s1, _), (_, a0, a1, _) = phases
    tol, slack, win = res["tolerance"], float(sc.get("slack_ms", 0)), float(sc.get("window_s", 5))
    before = stats.combined_p95(records, b0 + min(1.0, (b1 - b0) / 2), b1)  # skip the first second
    recovery = None
    if before is not None:
        limit = before * (1 + tol) + slack
        t = s1
        while t + win <= a1 + 1e-6:
            p = stats.combined_p95(records, t, t + win)
            if p is not None and p <= limit:
                recovery = round(t - s1, 2)
                break
            t += 1.0
    m = _load_measures(res, records)
    m.update({"p95_before_ms": before, "p95_spike_ms": stats.combined_p95(records, s0, s1),
              "p95_after_ms": stats.combined_p95(records, a0, a1),
              "p95_recovered_limit_ms": None if before is None else round(before * (1 + tol) + slack, 2),
              "spike_recovery_s": recovery})
    res["measures"] = m
    return finish(res)


def run_burst(ctx, name, sc):
    """sustained rate (≥ per_endpoint_per_min on each endpoint) → multiplier × that
    for burst_s → sustained again; users with a constant throughput each."""
    eps = [dict(e, weight=1) for e in _endpoints(sc)]  # the same rate on every endpoint
    rate = float(sc["per_endpoint_per_min"]) * len(eps) / 60.0
    per_user = float(sc.get("per_user_rps", 5))
    u_sus = max(1, math.ceil(rate / per_user))
    u_burst = max(1, math.ceil(rate * float(sc["multiplier"]) / per_user))
    stages = [{"name": "sustained", "duration": float(sc["sustained_s"]), "users": u_sus,
               "spawn_rate": u_sus},
              {"name": "burst", "duration": float(sc["burst_s"]), "users": u_burst,
               "spawn_rate": 10 * u_burst},
              {"name": "after", "duration": float(sc["after_s"]), "users": u_sus,
               "spawn_rate": u_burst}]
    res, records, phases = _run(ctx, name, sc, stages, {"throughput": per_user}, endpoints=eps)
    sus, bur, aft = res["phases"]
    target = rate * float(sc["multiplier"])
    # the rate reached once the burst's users are all running (spawning takes a moment)
    settle = min(1.0, (bur["end"] - bur["start"]) / 4)
    reached = stats.phase_summary("burst", bur["start"] + settle, bur["end"], records)["rps"]
    m = _load_measures(res, records)
    m.update({"sustained_target_rps": round(rate, 2), "burst_target_rps": round(target, 2),
              "sustained_rps": sus["rps"], "burst_rps": bur["rps"],
              "burst_reached_rps": reached,
              "burst_achieved_pct": round(100.0 * reached / target, 1) if target else None,
              "sustained_p95_ms": sus["p95_ms"], "burst_p95_ms": bur["p95_ms"],
              "after_p95_ms": aft["p95_ms"],
              "burst_error_rate_pct": stats.error_rate_pct([bur])})
    res["measures"] = m
    return finish(res)

"""stress: many locust users, then wrk at rising concurrency until throughput
stops growing (the breaking point); the gateway must neither crash nor
restart a worker (restarts from phalanxctl status --json, before and after)."""

import os
import time

import loadgen
import stats
from scenarios.common import fill_from_records, finish, new_result, totals, worker_restarts


def _merge_seconds(entries):
    """One entry per second: wrk steps that share a second are added up (the
    latency figures are those of the entry with more requests)."""
    by = {}
    for e in sorted(entries, key=lambda e: e["t"]):
        cur = by.get(e["t"])
        if cur is None:
            by[e["t"]] = dict(e)
            continue
        big = e if e["requests"] > cur["requests"] else cur
        by[e["t"]] = dict(big, requests=cur["requests"] + e["requests"],
                          errors=cur["errors"] + e["errors"],
                          rate_limited=cur["rate_limited"] + e["rate_limited"])
    return [by[t] for t in sorted(by)]


def run(ctx, name, sc):
    res = new_result(name, sc, "mixed")
    restarts_before = worker_restarts(ctx)
    users = int(sc["users"])
    stages = [{"name": f"locust-{users}u", "duration": float(sc["locust_s"]), "users": users,
               "spawn_rate": float(sc.get("spawn_rate", users))}]
    keys = loadgen.key_mix(ctx.dep.keys, sc.get("tiers"))
    records, _start, lphases = loadgen.run_locust(
        ctx.dep.base_url, stages, os.path.join(ctx.workdir, name), keys,
        wait={"min": float(sc.get("think_min_s", 0.5)), "max": float(sc.get("think_max_s", 1.5))},
        timeout_s=float(sc.get("request_timeout_s", 10)))
    fill_from_records(res, records, [(n, s, e, u, None) for n, s, e, u in lphases])
    res["started_at"] = lphases[0][1]
    lt = totals(records)

    # wrk at rising concurrency on one endpoint; stop when throughput has not grown
    # by min_growth over the best so far for `patience` steps in a row.
    url = ctx.dep.base_url + sc.get("wrk_path", "/api/users")
    growth, patience = float(sc.get("min_growth", 0.05)), int(sc.get("patience", 2))
    best, best_phase, flat, timeline = None, None, 0, []
    for c in sc["wrk_connections"]:
        c = int(c)
        ph, tl = loadgen.run_wrk(url, c, int(sc["wrk_step_s"]), key=ctx.key("premium"),
                                 threads=int(sc.get("wrk_threads", 1)),
                                 timeout_s=int(sc.get("request_timeout_s", 10)))
        ph["name"] = f"wrk-{c}c"
        res["phases"].append(ph)
        timeline += tl
        ctx.log(f"  {ph['name']}: {ph['rps']} rps, p95 {ph['p95_ms']} ms, errors {ph['errors']}")
        if best is None or ph["rps"] > best["rps"] * (1 + growth):
            best, flat = ph, 0
        else:
            flat += 1
            if flat >= patience:
                break
        if stats.error_count(ph) > 0.5 * max(ph["requests"], 1):
            break  # mostly failing: past the breaking point already
    best_phase = best
    res["timeline"] = _merge_seconds(res["timeline"] + timeline)
    time.sleep(0.5)

    alive = None
    restarts_after = worker_restarts(ctx)
    if ctx.local:
        st = ctx.dep.status()
        serving = [w for w in st["workers"] if w.get("pid") and w.get("state") == "ready"]
        alive = int(ctx.dep.gateway.running() and len(serving) == st["master"]["workers"])
    wrk_req = sum(p["requests"] for p in res["phases"] if p["name"].startswith("wrk"))
    wrk_err = sum(stats.error_count(p) for p in res["phases"] if p["name"].startswith("wrk"))
    res["measures"] = {
        "locust_users": users, "locust_requests": lt["requests"], "locust_errors": lt["errors"],
        "locust_error_rate_pct": lt["error_rate_pct"],
        "locust_p95_ms": stats.percentile(sorted(r[2] for r in records if r[4] in (None, "rate_limited")), 95),
        "breaking_point_rps": best_phase["rps"] if best_phase else None,
        "breaking_point_connections": best_phase["connections"] if best_phase else None,
        "breaking_point_phase": best_phase["name"] if best_phase else None,
        "breaking_point_p95_ms": best_phase["p95_ms"] if best_phase else None,
        "wrk_error_rate_pct": round(100.0 * wrk_err / wrk_req, 3) if wrk_req else None,
        "gateway_alive": alive,
        "worker_restarts": (None if restarts_before is None or restarts_after is None
                            else restarts_after - restarts_before),
        "generator_note": "wrk with %s thread(s) on a shared machine: the breaking point may be "
                          "the generator's" % sc.get("wrk_threads", 1),
    }
    na = () if ctx.local else ("gateway_alive", "worker_restarts")  # need the control socket
    return finish(res, not_applicable=na)

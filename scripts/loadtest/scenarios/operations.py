"""operations: a reload (phalanxctl reload: a new worker generation, the old
one drains) and a worker kill -9 in the middle of a steady run. The errors
attributable to each are the errors the clients saw in the window_s seconds
after it (target 0 for the reload; a killed worker's in-flight requests are
lost, so kill_errors is bounded by a threshold instead)."""

import os
import signal
import time

from client import Background
from scenarios.common import fill_from_records, finish, new_result, skipped, totals
from stats import check


def _errors(records, a, b):
    return sum(1 for r in records if a <= r[0] < b and r[4] and r[4] != "rate_limited")


def run(ctx, name, sc):
    if not ctx.local:
        return skipped(name, sc, "python", "needs the gateway's control socket and its worker "
                                           "pids (reload, kill -9): not possible with --target")
    res = new_result(name, sc, "python")
    dep = ctx.dep
    headers = {"X-API-Key": ctx.key("standard")}
    paths = sc.get("paths", ["/api/users", "/api/search", "/api/users/1"])
    plan = lambda i: ("GET", paths[i % len(paths)], headers, None)  # noqa: E731
    win, gap = float(sc["window_s"]), float(sc["gap_s"])
    before = dep.status()
    restarts_before = sum(w.get("restarts", 0) for w in before["workers"])
    bg = Background(dep.base_url, plan, float(sc["rps"]), 600.0, int(sc.get("threads", 8)),
                    timeout=float(sc.get("request_timeout_s", 5))).start()
    start = time.time()
    reload_ok, reload_msg, victim = None, "", None
    try:
        time.sleep(float(sc["settle_s"]))
        t_reload = time.time()
        ctx.mark("reload")
        ctx.log("  reload")
        reload_ok, reload_msg = dep.reload_gateway()
        reload_done = time.time()
        time.sleep(max(gap, t_reload + win - time.time()))
        ready = [w for w in dep.status()["workers"] if w.get("state") == "ready" and w.get("pid")]
        victim = ready[0]["pid"] if ready else None
        t_kill = time.time()
        ctx.mark("kill -9 worker")
        ctx.log(f"  kill -9 worker {victim}")
        if victim:
            os.kill(victim, signal.SIGKILL)
        time.sleep(win)
        end = time.time()
    finally:
        records = bg.stop()
    time.sleep(0.3)
    after = dep.status()
    serving = [w for w in after["workers"] if w.get("state") == "ready" and w.get("pid")]
    fill_from_records(res, records, [("steady", start, t_reload, None, None),
                                     ("reload", t_reload, t_kill, None, None),
                                     ("kill", t_kill, end, None, None)])
    t = totals(records)
    res["measures"] = {
        "requests": t["requests"], "errors": t["errors"], "errors_by_cause": t["errors_by_cause"],
        "reload_ok": reload_ok, "reload_message": reload_msg,
        "reload_took_s": round(reload_done - t_reload, 2),
        "reload_errors": _errors(records, t_reload, t_reload + win),
        "killed_worker_pid": victim,
        "kill_errors": _errors(records, t_kill, t_kill + win),
        "worker_restarts": sum(w.get("restarts", 0) for w in after["workers"]) - restarts_before,
        "workers_serving_after": len(serving),
        "generation_after": after["master"].get("generation"),
    }
    extra = [check("reload succeeded", "==", 1, int(bool(reload_ok))),
             check("workers_serving_after", "==", after["master"].get("workers"), len(serving))]
    return finish(res, extra)

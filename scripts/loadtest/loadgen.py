"""The load generators as subprocesses: locust (headless, stages from a plan,
every request recorded by locustfile.py's hook) and wrk (a Lua script that
reports percentiles and status counts as one JSON line)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import stats

HERE = os.path.dirname(os.path.abspath(__file__))
LOCUSTFILE = os.path.join(HERE, "locustfile.py")
WRK_LUA = os.path.join(HERE, "wrk_report.lua")
LOCUST = "/usr/bin/locust" if os.access("/usr/bin/locust", os.X_OK) else "locust"


def default_endpoints():
    """The weighted tasks: where a typical client of the API spends its calls."""
    return [
        {"method": "GET", "path": "/api/users", "weight": 40},
        {"method": "GET", "path": "/api/users/1", "weight": 25},
        {"method": "GET", "path": "/api/search", "weight": 15},
        {"method": "POST", "path": "/api/orders", "weight": 10,
         "body": json.dumps({"item": 42, "quantity": 1})},
        {"method": "GET", "path": "/api/slow", "weight": 10},
    ]


def key_mix(keys, tier_weights=None):
    """Keys with weights from the tier mix {"free": 50, "standard": 30, "premium": 20}."""
    tier_weights = tier_weights or {"free": 50, "standard": 30, "premium": 20}
    counts = {}
    for k in keys:
        counts[k["tier"]] = counts.get(k["tier"], 0) + 1
    return [{"key": k["key"], "tier": k["tier"],
             "weight": tier_weights.get(k["tier"], 0) / counts[k["tier"]]}
            for k in keys if tier_weights.get(k["tier"], 0) > 0]


def run_locust(base_url, stages, workdir, keys, wait=None, endpoints=None, timeout_s=10.0,
               log=None):
    """Runs locust until the last stage ends. Returns (records, start_epoch,
    phases) where phases are (name, start, end, users) on the wall clock."""
    os.makedirs(workdir, exist_ok=True)
    fd, records_path = tempfile.mkstemp(prefix="locust-", suffix=".csv", dir=workdir)
    os.close(fd)
    plan = {"records": records_path, "stages": stages, "wait": wait or {"min": 1, "max": 3},
            "endpoints": endpoints or default_endpoints(), "keys": keys, "timeout": timeout_s}
    plan_path = records_path[:-4] + ".plan.json"
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    total = sum(s["duration"] for s in stages)
    cmd = [LOCUST, "-f", LOCUSTFILE, "--headless", "--host", base_url, "--only-summary",
           "--loglevel", "ERROR", "--stop-timeout", "1", "--exit-code-on-error", "0"]
    env = dict(os.environ, LOADTEST_PLAN=plan_path, PYTHONUNBUFFERED="1")
    logf = open(log or os.path.join(workdir, "locust.log"), "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env,
                            start_new_session=True, cwd=workdir)
    try:
        proc.wait(timeout=total + 60)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        logf.close()
    start = None
    with open(records_path) as f:
        for line in f:
            if line.startswith("#start "):
                start = float(line.split()[1])
                break
    records = sorted(stats.read_records(records_path))
    if start is None:
        raise RuntimeError(f"locust did not start (see {logf.name}): exit {proc.returncode}")
    phases, t = [], start
    for s in stages:
        phases.append((s["name"], t, t + s["duration"], s["users"]))
        t += s["duration"]
    return records, start, phases


def run_wrk(url, connections, duration_s, key=None, threads=None, timeout_s=5):
    """One wrk run. Returns (phase-like dict without name, timeline entries)."""
    threads = threads or max(1, min(2, connections))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s",
           "--timeout", f"{timeout_s}s", "-s", WRK_LUA, url]
    env = dict(os.environ, LOADTEST_KEY=key or "")
    start = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration_s + 60)
    end = time.time()
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("LOADTEST_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no report (exit {r.returncode}): {r.stdout}{r.stderr}")
    d = json.loads(line[len("LOADTEST_JSON "):])
    e = d["errors"]
    errors = {}
    if e["connect"]:
        errors["connect"] = e["connect"]
    if e["timeout"]:
        errors["timeout"] = e["timeout"]
    if e["read"] + e["write"]:
        errors["other"] = e["read"] + e["write"]
    if d["classes"]["5xx"]:
        errors["http_5xx"] = d["classes"]["5xx"]
    if d["classes"]["4xx"]:
        errors["http_4xx"] = d["classes"]["4xx"]
    dur = d["duration_us"] / 1e6 or duration_s
    phase = {"start": start, "end": end, "users": None, "connections": connections,
             "requests": d["requests"], "rps": round(d["requests"] / dur, 2),
             "p50_ms": d["p50_us"] / 1000, "p95_ms": d["p95_us"] / 1000,
             "p99_ms": d["p99_us"] / 1000, "max_ms": d["max_us"] / 1000,
             "errors": errors, "rate_limited": d["classes"]["429"]}
    # wrk has no per-second latency: each second carries its run's percentiles.
    tl = [{"t": float(s), "requests": n, "errors": er, "rate_limited": rl,
           "p50_ms": phase["p50_ms"], "p95_ms": phase["p95_ms"], "p99_ms": phase["p99_ms"]}
          for s, n, er, rl in sorted(d["seconds"])]
    return phase, tl


def python():
    return sys.executable

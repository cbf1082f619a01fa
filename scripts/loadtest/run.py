#!/usr/bin/python3
"""Runs the load scenarios of scripts/loadtest/scenarios.toml and writes a report.

    run.py [SCENARIO ...] [--quick] [--out DIR] [--target URL] [--baseline DIR]
           [--bin build/phalanx] [--ctl build/phalanxctl] [--scenarios FILE]
           [--set scenario.key=value ...] [--keep]

Without --target it starts a local deployment on free loopback ports (redis-server,
two API targets, the gateway with 2 workers: deployment.py), runs the scenarios and
stops everything, also on Ctrl-C or an error. With --target URL the scenarios run
against that deployment; those that need local control are reported as skipped.
Exit status: 0 every scenario that ran passed, 1 some failed, 2 the harness failed.
"""

import argparse
import os
import signal
import sys
import time
import tomllib
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import deployment  # noqa: E402
from scenarios import load, operations, ratelimit, recovery, stress  # noqa: E402
from scenarios.common import Context, new_result  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# name -> (function, tool): the code of each scenario; its figures live in the toml.
SCENARIOS = {
    "normal": (load.run_steady, "locust"),
    "peak": (load.run_steady, "locust"),
    "stress": (stress.run, "mixed"),
    "spike": (load.run_spike, "locust"),
    "burst": (load.run_burst, "locust"),
    "rate-limit": (ratelimit.run, "python"),
    "recovery": (recovery.run, "python"),
    "operations": (operations.run, "python"),
}


def parse_value(text):
    """A --set value as TOML (numbers, booleans, arrays, strings in quotes), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_set(cfg, assignment):
    """"normal.duration_s=60", "rate-limit.limit_rate=100/s",
    "normal.thresholds.max_p95_ms=300", "deployment.limited_rate=20/s"."""
    if "=" not in assignment:
        raise SystemExit(f"--set {assignment!r}: want scenario.key=value")
    path, value = assignment.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) < 2 or parts[0] not in cfg:
        raise SystemExit(f"--set {assignment!r}: no table [{parts[0]}] in the scenario file")
    node = cfg[parts[0]]
    for p in parts[1:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = parse_value(value.strip())


def scenario_config(cfg, name, quick):
    sc = {k: v for k, v in cfg[name].items() if k != "quick"}
    if quick:
        for k, v in cfg[name].get("quick", {}).items():
            if isinstance(v, dict) and isinstance(sc.get(k), dict):
                sc[k] = dict(sc[k], **v)
            else:
                sc[k] = v
    return sc


def load_config(path, sets, quick):
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    # --set wins over [name.quick]: apply it to the quick table too when quick
    for s in sets:
        apply_set(cfg, s)
        if quick:
            name, rest = s.split(".", 1)
            key = rest.split("=", 1)[0].split(".")[0]
            q = cfg.get(name, {}).get("quick", {})
            if key in q:
                q.pop(key)
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios_to_run", nargs="*", metavar="SCENARIO")
    ap.add_argument("--quick", action="store_true", help="scaled-down scenarios (a smoke test)")
    ap.add_argument("--out", help="report directory (default loadtest-reports/YYYYmmdd-HHMMSS)")
    ap.add_argument("--target", help="run against this gateway URL instead of a local deployment")
    ap.add_argument("--baseline", help="a previous report directory to compare with")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "phalanx"))
    ap.add_argument("--ctl", default=os.path.join(REPO, "build", "phalanxctl"))
    ap.add_argument("--scenarios", default=os.path.join(HERE, "scenarios.toml"), help="scenario file")
    ap.add_argument("--set", action="append", default=[], metavar="SCENARIO.KEY=VALUE")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="default degradation tolerance for the report (default: the file's, else 0.2)")
    ap.add_argument("--keys", help="with --target: a JSON file [{\"key\": ..., \"tier\": "
                    "\"free|standard|premium\"}] of API keys the target accepts")
    ap.add_argument("--keep", action="store_true", help="keep the deployment's directory (configs, logs)")
    args = ap.parse_args(argv)

    cfg = load_config(args.scenarios, args.set, args.quick)
    names = args.scenarios_to_run or cfg.get("order") or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS or n not in cfg]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; the file has {[n for n in SCENARIOS if n in cfg]}")
    out = args.out or os.path.join(os.getcwd(), "loadtest-reports", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    workdir = os.path.join(out, "work")
    os.makedirs(workdir, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (background)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    dep_cfg = cfg.get("deployment", {})
    if args.target:
        keys = None
        if args.keys:
            import json
            with open(args.keys) as f:
                keys = json.load(f)
        dep = deployment.Remote(args.target, keys)
    else:
        limited = {"rate": dep_cfg.get("limited_rate", "50/s"), "burst": dep_cfg.get("limited_burst", 0),
                   "key": dep_cfg.get("limited_key", "ip")}
        dep = deployment.Deployment(args.bin, args.ctl, limited, keep=args.keep,
                                    workdir=os.path.join(workdir, "deployment") if args.keep else None)
    started = time.time()
    results, monitor, monitor_data, code = [], None, {"samples": [], "alerts": [], "events": []}, 0
    try:
        import monitor as monitor_mod
        if not args.target:
            log(f"starting the local deployment (phalanx {args.bin})")
        dep.start()
        if not args.target:
            log(f"gateway {dep.base_url}, upstreams {[u.address for u in dep.upstreams]}, "
                f"redis :{dep.redis_port}")
        try:
            monitor = monitor_mod.Monitor(interval_s=1.0, ctl=dep.ctl, ctl_socket=dep.ctl_socket,
                                          metrics_url=dep.metrics_url, processes=dep.pids(),
                                          thresholds=cfg.get("monitor", {"cpu_pct": 80, "mem_pct": 85}))
            monitor.start()
        except Exception as e:
            log(f"monitor not started: {e}")
            monitor = None
        ctx = Context(dep, workdir, monitor, log, args.quick)
        for name in names:
            fn, tool = SCENARIOS[name]
            sc = scenario_config(cfg, name, args.quick)
            log(f"== {name}")
            if monitor is not None:
                ctx.mark(f"start {name}")
            try:
                res = fn(ctx, name, sc)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                log(traceback.format_exc())
                res = new_result(name, sc, tool)
                res["ended_at"] = time.time()
                res["measures"] = {"harness_error": f"{type(e).__name__}: {e}"}
                res["checks"] = [{"name": "scenario ran", "op": "==", "limit": 1, "value": 0,
                                  "passed": False}]
            results.append(res)
            if res["skipped"]:
                log(f"   skipped: {res['skipped']}")
            else:
                failed = [c for c in res["checks"] if not c["passed"]]
                log(f"   {'PASS' if res['passed'] else 'FAIL'} "
                    + "; ".join(f"{c['name']} {c['value']} (want {c['op']} {c['limit']})" for c in failed))
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): stopping")
        code = 130
    except Exception:
        log(traceback.format_exc())
        code = 2
    finally:
        if monitor is not None:
            try:
                monitor_data = monitor.stop()
            except Exception as e:
                log(f"monitor.stop failed: {e}")
        dep.stop()
    ended = time.time()
    tolerance = args.tolerance if args.tolerance is not None else float(cfg.get("tolerance", 0.2))
    options = {"quick": args.quick, "target": args.target, "baseline": args.baseline,
               "scenario_file": os.path.abspath(args.scenarios), "tolerance": tolerance,
               "started_at": started, "ended_at": ended}
    try:
        import report
        report.write_report(out, results, monitor_data, options=options)
    except Exception:
        log(traceback.format_exc())
        code = code or 2
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    ran = [r for r in results if not r["skipped"]]
    log(f"report: {out}  ({sum(1 for r in ran if r['passed'])}/{len(ran)} passed, "
        f"{len(results) - len(ran)} skipped, {ended - started:.0f} s)")
    if code == 0 and any(not r["passed"] for r in ran):
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())

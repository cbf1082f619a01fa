"""rate-limit: factor × a route's limit from one client, then from many.

The limit the scenario expects (limit_rate / limit_burst in scenarios.toml) is
NOT read from the gateway: the expected refusals are computed from it by
replaying the requests actually sent (their send times, per client key)
through GCRA, the algorithm phalanx uses (DESIGN.md "Rate-limit table":
T = period / count rounded up to whole µs, a bucket of `burst` = count by
default; allowed iff max(tat, now) + T - now <= T × burst). So a scenario file
that says the route allows more or less than the gateway really does fails:

    effectiveness_pct = refused (429s seen) / expected_refused × 100

and it must be 100 within tolerance_pct. Every 429 must also carry sane
Retry-After and RateLimit / RateLimit-Policy (or draft-6) headers; each one
that does not counts as a header violation.
"""

import math
import random
import re
import threading
import time

from client import Recorder, paced_load
from scenarios.common import fill_from_records, finish, new_result, totals
from stats import check

PERIODS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_rate(text):
    """"100/m", "1000/15m", "50/s" -> (count, period_ms)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*", str(text))
    if not m:
        raise ValueError(f"bad rate {text!r} (want N/s, N/m, N/15m, N/h, N/d)")
    return int(m.group(1)), (int(m.group(2) or 1)) * PERIODS_MS[m.group(3)]


def expected_refusals(send_times, count, period_ms, burst):
    """How many of the requests sent at send_times (epoch s, one client key)
    GCRA refuses."""
    T = -(-period_ms * 1000 // count)  # µs, rounded up
    tol = T * (burst or count)
    tat, refused = 0, 0
    for t in sorted(send_times):
        now = int(t * 1e6)
        if max(tat, now) + T - now <= tol:
            tat = max(tat, now) + T
        else:
            refused += 1
    return refused


def header_problems(h):
    """What is wrong with one 429's headers ([] when sane)."""
    bad = []
    window = None
    pol = h.get("ratelimit-policy")
    if pol is not None:
        q = re.findall(r"q=(\d+)", pol)
        w = re.findall(r"w=(\d+)", pol)
        if not q or not w or min(map(int, q)) <= 0 or min(map(int, w)) <= 0:
            bad.append(f"RateLimit-Policy {pol!r}")
        else:
            window = max(map(int, w))
    rl = h.get("ratelimit")
    if rl is not None:
        rs = [int(x) for x in re.findall(r"r=(\d+)", rl)]
        if not rs or min(rs) != 0:
            bad.append(f"RateLimit {rl!r} (a refusal leaves r=0 on some limit)")
    draft6 = h.get("ratelimit-limit") is not None and h.get("ratelimit-remaining") == "0"
    if pol is None and rl is None and not draft6:
        bad.append("no RateLimit / RateLimit-Policy (or draft-6) header")
    ra = h.get("retry-after")
    if ra is None or not ra.isdigit():
        bad.append(f"Retry-After {ra!r}")
    elif not 1 <= int(ra) <= (window or 86400):
        bad.append(f"Retry-After {ra} outside 1..{window or 86400}")
    return bad


def _client_ids(key_mode, n, keys):
    if key_mode == "api_key":
        if n > len(keys):
            raise ValueError(f"{n} clients need {n} API keys, the deployment has {len(keys)}")
        return [("X-API-Key", k["key"]) for k in keys[:n]]
    # distinct client addresses via X-Forwarded-For (the gateway must trust our
    # address as a proxy: trusted_proxies); random per run so runs don't share buckets
    base = random.randrange(1, 250)
    return [("X-Forwarded-For", f"10.{base}.{i // 250}.{i % 250 + 1}") for i in range(n)]


def _mode(ctx, sc, label, n_clients, count, period_ms, burst):
    rate = float(sc.get("factor", 2.0)) * count * 1000.0 / period_ms
    duration = float(sc["duration_s"])
    path = sc.get("path", "/limited/item")
    recs = []
    ids = _client_ids(sc.get("key", "ip"), n_clients, ctx.dep.keys)
    threads = []
    for hname, hval in ids:
        rec = Recorder(keep_headers=lambda s: s == 429)
        recs.append(rec)
        headers = {hname: hval}
        t = threading.Thread(target=paced_load, args=(
            ctx.dep.base_url, lambda i, h=headers: ("GET", path, h, None), rate, duration,
            int(sc.get("threads_per_client", 2)), rec), daemon=True)
        threads.append(t)
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    end = time.time()
    records, expected, refused, violations, examples = [], 0, 0, 0, []
    for rec in recs:
        decided = [r for r in rec.records if r[3] != 0]
        expected += expected_refusals([r[0] for r in decided], count, period_ms, burst)
        refused += sum(1 for r in decided if r[3] == 429)
        for _, h in rec.headers:
            p = header_problems(h)
            if p:
                violations += 1
                if len(examples) < 5:
                    examples.append("; ".join(p))
        records += rec.records
    sent = len(records)
    eff = round(100.0 * refused / expected, 2) if expected else (100.0 if refused == 0 else None)
    return {"label": label, "clients": n_clients, "rate_per_client": round(rate, 2),
            "start": start, "end": end, "records": sorted(records), "sent": sent,
            "expected_refused": expected, "refused": refused, "effectiveness_pct": eff,
            "header_violations": violations, "violation_examples": examples}


def run(ctx, name, sc):
    res = new_result(name, sc, "python")
    count, period_ms = parse_rate(sc["limit_rate"])
    burst = int(sc.get("limit_burst", 0) or count)
    modes = [_mode(ctx, sc, "one-client", 1, count, period_ms, burst)]
    time.sleep(0.2)
    modes.append(_mode(ctx, sc, "many-clients", int(sc.get("clients", 4)), count, period_ms, burst))
    records = sorted(r for m in modes for r in m["records"])
    fill_from_records(res, records, [(m["label"], m["start"], m["end"], m["clients"], m["clients"])
                                     for m in modes])
    t = totals(records)
    expected = sum(m["expected_refused"] for m in modes)
    refused = sum(m["refused"] for m in modes)
    meas = {"limit_rate": sc["limit_rate"], "limit_burst": burst, "key": sc.get("key", "ip"),
            "requests": t["requests"], "errors": t["errors"],
            "expected_refused": expected, "refused": refused,
            "effectiveness_pct": round(100.0 * refused / expected, 2) if expected else None,
            "header_violations": sum(m["header_violations"] for m in modes),
            "violation_examples": [e for m in modes for e in m["violation_examples"]][:5]}
    for m in modes:
        p = m["label"].split("-")[0]
        meas.update({f"{p}_sent": m["sent"], f"{p}_expected_refused": m["expected_refused"],
                     f"{p}_refused": m["refused"], f"{p}_effectiveness_pct": m["effectiveness_pct"],
                     f"{p}_rate_per_client": m["rate_per_client"]})
    res["measures"] = meas
    tol = float(sc.get("tolerance_pct", 2.0))
    extra = []
    for p in ("one", "many"):
        v = meas.get(f"{p}_effectiveness_pct")
        extra.append(check(f"{p}_effectiveness_pct", ">=", 100 - tol, v))
        extra.append(check(f"{p}_effectiveness_pct", "<=", 100 + tol, v))
    return finish(res, extra)

"""Request records and what the report is made of: phases, a per-second timeline,
per-endpoint figures, checks.

A record is one request as the client saw it:
    (t, name, ms, status, cause)
t       epoch seconds when it was sent
name    "GET /api/users" (method and path without the query)
ms      latency in ms (until the response, or the failure)
status  HTTP status, 0 when no response came
cause   None (2xx/3xx), "rate_limited" (429), or one of the error causes:
        "connect", "timeout", "http_5xx", "http_4xx", "other"
Records files (locust's hook, wrk never) hold one CSV line per record.
"""

import math
import operator

ERROR_CAUSES = ("connect", "timeout", "http_5xx", "http_4xx", "other")

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq}


def classify(status, exc=None):
    """The cause of one outcome (see the module doc)."""
    if status and status > 0:
        if status == 429:
            return "rate_limited"
        if status >= 500:
            return "http_5xx"
        if status >= 400:
            return "http_4xx"
        return None
    text = f"{type(exc).__name__} {exc}".lower() if exc is not None else ""
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if any(w in text for w in ("refused", "reset", "connect", "broken pipe", "remotedisconnected",
                               "remote end closed", "badstatusline", "eof")):
        return "connect"
    return "other"


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks; None for no values."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def latency_figures(ms_values):
    s = sorted(ms_values)
    return {"p50_ms": _r(percentile(s, 50)), "p95_ms": _r(percentile(s, 95)),
            "p99_ms": _r(percentile(s, 99)), "max_ms": _r(s[-1]) if s else None}


def _r(x, nd=2):
    return None if x is None else round(x, nd)


def read_records(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                if not line or line[0] == "#":
                    continue
                parts = line.rstrip("\n").split(",")
                if len(parts) != 5:
                    continue
                t, name, ms, status, cause = parts
                out.append((float(t), name, float(ms), int(status), cause or None))
    except FileNotFoundError:
        pass
    return out


def phase_summary(name, start, end, records, users=None, connections=None):
    """One phase from the records sent within [start, end)."""
    rs = [r for r in records if start <= r[0] < end]
    ok_ms = [r[2] for r in rs if r[4] is None or r[4] == "rate_limited"]
    errors = {}
    for r in rs:
        if r[4] and r[4] != "rate_limited":
            errors[r[4]] = errors.get(r[4], 0) + 1
    ph = {"name": name, "start": start, "end": end, "users": users, "connections": connections,
          "requests": len(rs), "rps": round(len(rs) / max(end - start, 1e-9), 2),
          "errors": errors, "rate_limited": sum(1 for r in rs if r[4] == "rate_limited")}
    ph.update(latency_figures(ok_ms))
    return ph


def timeline(records, start, end):
    """One entry per second from start to end (seconds without requests included)."""
    t0 = math.floor(start)
    n = max(1, math.ceil(end) - t0)
    buckets = [[] for _ in range(n)]
    for r in records:
        i = int(r[0] - t0)
        if 0 <= i < n:
            buckets[i].append(r)
    out = []
    for i, b in enumerate(buckets):
        ms = sorted(r[2] for r in b if r[4] is None or r[4] == "rate_limited")
        out.append({"t": float(t0 + i), "requests": len(b),
                    "errors": sum(1 for r in b if r[4] and r[4] != "rate_limited"),
                    "rate_limited": sum(1 for r in b if r[4] == "rate_limited"),
                    "p50_ms": _r(percentile(ms, 50)), "p95_ms": _r(percentile(ms, 95)),
                    "p99_ms": _r(percentile(ms, 99))})
    return out


def endpoints(records):
    by = {}
    for r in records:
        by.setdefault(r[1], []).append(r)
    out = []
    for name in sorted(by):
        rs = by[name]
        ms = [r[2] for r in rs if r[4] is None or r[4] == "rate_limited"]
        e = {"name": name, "requests": len(rs),
             "errors": sum(1 for r in rs if r[4] and r[4] != "rate_limited"),
             "rate_limited": sum(1 for r in rs if r[4] == "rate_limited"),
             "avg_ms": _r(sum(ms) / len(ms)) if ms else None}
        e.update(latency_figures(ms))
        out.append(e)
    return out


def error_count(phase_or_entry):
    e = phase_or_entry["errors"]
    return sum(e.values()) if isinstance(e, dict) else e


def error_rate_pct(phases):
    req = sum(p["requests"] for p in phases)
    err = sum(error_count(p) for p in phases)
    return round(100.0 * err / req, 3) if req else None


def combined_p95(records, start, end):
    ms = sorted(r[2] for r in records if start <= r[0] < end and (r[4] is None or r[4] == "rate_limited"))
    return _r(percentile(ms, 95))


def check(name, op, limit, value):
    """A check dict; a missing value fails."""
    passed = value is not None and limit is not None and OPS[op](value, limit)
    return {"name": name, "op": op, "limit": limit, "value": value, "passed": bool(passed)}


def checks_from_thresholds(thresholds, measures):
    """Thresholds named max_X / min_X / eq_X become checks on measures[X]
    (max_ is <=, min_ is >=, eq_ is ==); others are left to the scenario."""
    out = []
    for key, limit in thresholds.items():
        for prefix, op in (("max_", "<="), ("min_", ">="), ("eq_", "==")):
            if key.startswith(prefix):
                m = key[len(prefix):]
                out.append(check(m, op, limit, measures.get(m)))
    return out

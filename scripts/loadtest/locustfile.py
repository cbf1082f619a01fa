"""The locust side of the load scenarios (run by loadgen.run_locust, not by hand).

Everything comes from the JSON plan named by $LOADTEST_PLAN:
  records    file to append one CSV record per request (see stats.py)
  stages     [{"name", "duration", "users", "spawn_rate"}]: the user count over
             time (LoadTestShape); the run stops after the last stage
  wait       {"min": 1, "max": 3} think time in seconds, or {"throughput": x}:
             x tasks per second per user (constant_throughput)
  endpoints  [{"method", "path", "weight"}]: the weighted tasks
  keys       [{"key", "tier", "weight"}]: each user takes one key (X-API-Key)
  timeout    per-request timeout in seconds
The file starts with "#start EPOCH" when the test starts, so phases can be
placed on the clock.
"""

import json
import os
import random
import time

from locust import FastHttpUser, LoadTestShape, between, constant_throughput, events, task

PLAN = json.load(open(os.environ["LOADTEST_PLAN"]))
_out = open(PLAN["records"], "a", buffering=1 << 16)


def _cause(status, exc):
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "http_5xx"
    if 400 <= status < 500:
        return "http_4xx"
    if status and 200 <= status < 400:
        return ""
    text = f"{type(exc).__name__} {exc}".lower()
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if any(w in text for w in ("refused", "reset", "connect", "broken pipe", "eof", "closed")):
        return "connect"
    return "other"


@events.test_start.add_listener
def _start(environment, **kw):
    _out.write(f"#start {time.time():.6f}\n")


@events.request.add_listener
def _record(request_type, name, response_time, response, exception, **kw):
    status = getattr(response, "status_code", 0) or 0
    t = time.time() - (response_time or 0) / 1000.0
    _out.write(f"{t:.6f},{request_type} {name},{response_time or 0:.3f},{status},"
               f"{_cause(status, exception)}\n")


@events.quitting.add_listener
def _quit(environment, **kw):
    _out.flush()


def _wait():
    w = PLAN.get("wait", {"min": 1, "max": 3})
    if "throughput" in w:
        return constant_throughput(w["throughput"])
    return between(w["min"], w["max"])


_ENDPOINTS = PLAN["endpoints"]
_WEIGHTS = [e["weight"] for e in _ENDPOINTS]
_KEYS = PLAN["keys"]
_KEY_WEIGHTS = [k.get("weight", 1) for k in _KEYS]


class ApiUser(FastHttpUser):
    wait_time = _wait()
    network_timeout = PLAN.get("timeout", 10.0)
    connection_timeout = PLAN.get("timeout", 10.0)

    def on_start(self):
        k = random.choices(_KEYS, _KEY_WEIGHTS)[0] if _KEYS else None
        self.headers = {"X-API-Key": k["key"]} if k else {}

    @task
    def call(self):
        e = random.choices(_ENDPOINTS, _WEIGHTS)[0]
        body = e.get("body")
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        # The records file judges (from the status or the exception); locust's
        # own statistics are not used.
        self.client.request(e["method"], e["path"], data=body, headers=headers, name=e["path"])


class Stages(LoadTestShape):
    stages = PLAN["stages"]

    def tick(self):
        t = self.get_run_time()
        for s in self.stages:
            if t < s["duration"]:
                return s["users"], s["spawn_rate"]
            t -= s["duration"]
        return None

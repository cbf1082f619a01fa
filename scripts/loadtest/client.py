"""A small threaded HTTP/1.1 client that records every request (for the
scenarios that need precise control: rate-limit, recovery, operations).

Each thread keeps one keep-alive connection. A request that fails on a reused
connection before any response byte (the server closed it while idle, as a
draining worker does) is sent once more on a fresh connection, as browsers,
urllib3 and phalanx itself do for idempotent requests; anything else that
fails is an error the client saw.
"""

import http.client
import random
import threading
import time
import urllib.parse

from stats import classify


class Target:
    def __init__(self, base_url):
        u = urllib.parse.urlsplit(base_url)
        self.host = u.hostname
        self.port = u.port or 80
        self.base_path = u.path.rstrip("/")


class Conn:
    def __init__(self, target, timeout):
        self.target, self.timeout = target, timeout
        self.c = None
        self.used = False

    def close(self):
        if self.c is not None:
            self.c.close()
        self.c, self.used = None, False

    def request(self, method, path, headers, body=None):
        """(status, headers dict lower-cased, exc); status 0 when no response."""
        for attempt in (0, 1):
            reused = self.used
            if self.c is None:
                self.c = http.client.HTTPConnection(self.target.host, self.target.port,
                                                    timeout=self.timeout)
            try:
                self.c.request(method, self.target.base_path + path, body=body, headers=headers)
                r = self.c.getresponse()
                r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                self.used = True
                if r.will_close:
                    self.close()
                return r.status, hdrs, None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if reused and attempt == 0 and method in ("GET", "HEAD"):
                    continue
                return 0, {}, e
            except Exception as e:  # timeout, refused, bad status line...
                self.close()
                return 0, {}, e
        return 0, {}, RuntimeError("unreachable")


class Recorder:
    """Thread-safe list of records (see stats.py), optionally with headers of
    chosen responses (keep_headers(status) -> bool)."""

    def __init__(self, keep_headers=None):
        self.records = []
        self.headers = []  # (record index, headers) for kept responses
        self.keep_headers = keep_headers
        self.lock = threading.Lock()

    def add(self, t, name, ms, status, exc, hdrs):
        rec = (t, name, round(ms, 3), status, classify(status, exc))
        with self.lock:
            self.records.append(rec)
            if self.keep_headers and self.keep_headers(status):
                self.headers.append((len(self.records) - 1, hdrs))


def one(conn, recorder, method, path, headers, body=None):
    t = time.time()
    t0 = time.perf_counter()
    status, hdrs, exc = conn.request(method, path, headers, body)
    recorder.add(t, f"{method} {path.split('?')[0]}", (time.perf_counter() - t0) * 1000,
                 status, exc, hdrs)
    return status, hdrs


def paced_load(base_url, plan, rate, duration, threads, recorder, stop=None, timeout=5.0,
               jitter=True):
    """Sends requests at `rate` per second in total for `duration` seconds over
    `threads` keep-alive connections. plan(i) -> (method, path, headers, body)
    gives the i-th request. Send times are spaced 1/rate apart (with uniform
    jitter when asked: avoids hitting a limit's refill instants in lock step);
    a thread that falls behind sends at once (closed loop). Returns the count sent."""
    target = Target(base_url)
    t_start = time.monotonic()
    end = t_start + duration
    counter = [0]
    lock = threading.Lock()
    stop = stop or threading.Event()

    def worker():
        conn = Conn(target, timeout)
        rnd = random.Random()
        while not stop.is_set():
            with lock:
                i = counter[0]
                counter[0] += 1
            at = t_start + (i + (rnd.uniform(-0.45, 0.45) if jitter else 0.0)) / rate
            if at >= end:
                break
            delay = at - time.monotonic()
            if delay > 0:
                if stop.wait(delay):
                    break
            method, path, headers, body = plan(i)
            one(conn, recorder, method, path, headers, body)
        conn.close()

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(duration + timeout + 10)
    stop.set()
    return counter[0]


class Background:
    """paced_load in a thread: start(), then stop() -> records."""

    def __init__(self, base_url, plan, rate, duration, threads, timeout=5.0):
        self.recorder = Recorder()
        self.stop_event = threading.Event()
        self.args = (base_url, plan, rate, duration, threads, self.recorder, self.stop_event, timeout)
        self.thread = threading.Thread(target=paced_load, args=self.args, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(30)
        return sorted(self.recorder.records)

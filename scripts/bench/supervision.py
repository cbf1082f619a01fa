#!/usr/bin/env python3
"""Supervision under load: what reloads and crashes cost, measured with wrk.

  scripts/bench/supervision.py [--bin build/phalanx] [--seconds 10] [--reloads 5]

Three scenarios, each on a fresh phalanx (2 workers) on a free loopback port,
each bounded in time:
  reload   wrk -t2 -c64 keep-alive while SIGHUP is sent --reloads times:
           socket errors and non-2xx for phalanx, then the same for nginx
           (nginx -s reload = SIGHUP to its master) with an equivalent config.
  kill     wrk -t2 -c64 while one of the two workers gets SIGKILL halfway:
           failed requests against that worker's open connections at the time,
           and throughput per 100 ms around the kill (from the control
           socket's request counter): how long until it is back to >= 90%.
  spread   requests per worker after a wrk run, as the control socket
           reports them: each worker's deviation from the mean.
  reload-time
           how long from SIGHUP until the new config answers: the body of "/"
           changes with each reload and fresh connections ask for it every
           millisecond; --reloads x2 reloads, median and range, for phalanx
           and for nginx (its `return 200 "..."`) side by side.
  storm    wrk -t2 -c256 for --seconds x3 while a random worker gets SIGKILL
           every second (every fourth time all of them): the windows in which
           no worker was ready (status polled as fast as it answers), the
           longest, and wrk's errors.
Needs wrk and nginx (Debian packages wrk, nginx-light).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"nothing answers on 127.0.0.1:{port}")


class Phalanx:
    def __init__(self, binary, work, workers=2, body="ok\n"):
        os.makedirs(work)
        self.port = free_port()
        self.work = work
        self.sock = os.path.join(work, "ctl.sock")
        self.config = config = {
            "listen": [f"127.0.0.1:{self.port}"],
            "workers": workers,
            "control_socket": self.sock,
            "log": {"level": os.environ.get("BENCH_LOG_LEVEL", "warn"), "access": "off"},
            "routes": [{"path": "/", "static": {"status": 200, "body": body,
                                                "headers": {"Content-Type": "text/plain"}}}],
        }
        self.config_path = os.path.join(work, "phalanx.json")
        self.write_config()
        self.log = open(os.path.join(work, "phalanx.log"), "wb")
        self.proc = subprocess.Popen([binary, "-c", self.config_path], stderr=self.log,
                                     start_new_session=True, cwd=work)
        wait_http(self.port)

    def write_config(self):
        with open(self.config_path + ".tmp", "w") as f:
            json.dump(self.config, f)
        os.replace(self.config_path + ".tmp", self.config_path)

    def control(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60)
            s.connect(self.sock)
            s.sendall(command.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def wrk(url, seconds, conns=64, threads=2):
    """Runs wrk in the background; returns (process, parse) where parse() waits for it."""
    proc = subprocess.Popen(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", url],
                            stdout=subprocess.PIPE, text=True)

    def parse():
        out = proc.communicate(timeout=seconds + 30)[0]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        errors = {k: 0 for k in ("connect", "read", "write", "timeout")}
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            errors = dict(zip(errors, map(int, m.groups())))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"rps": rps, "requests": total, "errors": errors,
                "non2xx": int(m.group(1)) if m else 0}

    return proc, parse


def reload_scenario(args, work):
    ph = Phalanx(args.bin, os.path.join(work, "reload"))
    try:
        _, parse = wrk(f"http://127.0.0.1:{ph.port}/", args.seconds)
        gap = args.seconds / (args.reloads + 1)
        outcomes = []
        for _ in range(args.reloads):
            time.sleep(gap)
            answer = ph.control("reload")  # the same as SIGHUP, and it waits for the outcome
            outcomes.append(answer["ok"])
        result = parse()
        if sum(result["errors"].values()) and os.environ.get("BENCH_KEEP_LOG"):
            shutil.copy(os.path.join(ph.work, "phalanx.log"), os.environ["BENCH_KEEP_LOG"])
        print(f"reload   phalanx: {args.reloads} reloads ({sum(outcomes)} ok) under wrk -c64 "
              f"{args.seconds}s: {result['requests']} requests, socket errors {result['errors']}, "
              f"non-2xx {result['non2xx']}")
    finally:
        ph.stop()

    nginx_dir = os.path.join(work, "nginx")
    os.makedirs(os.path.join(nginx_dir, "tmp"))
    port = free_port()
    with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes 2; daemon off; pid nginx.pid; error_log nginx.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} reuseport;
           location / {{ default_type text/plain; return 200 "ok\\n"; }} }} }}
""")
    nginx = subprocess.Popen(["nginx", "-p", nginx_dir + "/", "-c", "nginx.conf"],
                             start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        wait_http(port)
        _, parse = wrk(f"http://127.0.0.1:{port}/", args.seconds)
        for _ in range(args.reloads):
            time.sleep(gap)
            nginx.send_signal(signal.SIGHUP)
        result = parse()
        print(f"reload   nginx:   {args.reloads} reloads under wrk -c64 {args.seconds}s: "
              f"{result['requests']} requests, socket errors {result['errors']}, "
              f"non-2xx {result['non2xx']}")
    finally:
        os.killpg(nginx.pid, signal.SIGTERM)
        nginx.wait(timeout=10)


def kill_scenario(args, work):
    ph = Phalanx(args.bin, os.path.join(work, "kill"))
    try:
        samples = []  # (time, total requests)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.monotonic(), ph.control("status")["totals"]["requests"]))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        _, parse = wrk(f"http://127.0.0.1:{ph.port}/", args.seconds)
        sampler.start()
        time.sleep(args.seconds / 2)
        rows = [w for w in ph.control("status")["workers"] if w["pid"]]
        victim = rows[-1]
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        result = parse()
        stop.set()
        sampler.join()
        rates = [((t0 + t1) / 2 - killed_at, (n1 - n0) / (t1 - t0))
                 for (t0, n0), (t1, n1) in zip(samples, samples[1:])]
        before = statistics.median(r for t, r in rates if -3 < t < -0.2)
        recovered = next((t for t, r in rates if t > 0 and r >= 0.9 * before), None)
        errors = sum(result["errors"].values())
        print(f"kill     phalanx: SIGKILL to worker {victim['slot']} (pid {victim['pid']}, "
              f"{victim['connections']} open connections) under wrk -c64: socket errors "
              f"{result['errors']} (total {errors}), non-2xx {result['non2xx']}; throughput "
              f"before {before:.0f}/s, back to >= 90% "
              + (f"{recovered * 1000:.0f} ms after the kill" if recovered is not None
                 else "never within the run"))
        print("         rate per 100 ms around the kill: " + ", ".join(
            f"{t * 1000:+.0f}ms {r / before:.2f}" for t, r in rates if -0.5 < t < 1.5))
    finally:
        ph.stop()


def spread_scenario(args, work):
    ph = Phalanx(args.bin, os.path.join(work, "spread"))
    try:
        base = {w["slot"]: w["requests"] for w in ph.control("status")["workers"] if w["pid"]}
        _, parse = wrk(f"http://127.0.0.1:{ph.port}/", args.seconds)
        parse()
        rows = {w["slot"]: w["requests"] - base.get(w["slot"], 0)
                for w in ph.control("status")["workers"] if w["pid"]}
        mean = statistics.mean(rows.values())
        print("spread   phalanx: requests per worker after wrk -c64: " + ", ".join(
            f"worker {s}: {n} ({(n - mean) / mean * 100:+.1f}%)" for s, n in sorted(rows.items())))
    finally:
        ph.stop()


def body_of(port):
    """The body of GET / on a fresh connection, or None while nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else None
    except OSError:
        return None


def time_until_body(port, body, limit=10.0):
    """Seconds until GET / answers `body`, asking every millisecond."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if body_of(port) == body:
            return time.monotonic() - t0
        time.sleep(0.001)
    return None


def summarize(times):
    ms = sorted(t * 1000 for t in times if t is not None)
    missed = sum(1 for t in times if t is None)
    if not ms:
        return "no reload took effect"
    return (f"median {statistics.median(ms):.0f} ms, range {ms[0]:.0f}-{ms[-1]:.0f} ms "
            f"over {len(ms)} reloads" + (f", {missed} not seen within 10 s" if missed else "") +
            " (in order: " + ", ".join(f"{t * 1000:.0f}" if t is not None else "-" for t in times) + ")")


def reload_time_scenario(args, work):
    count = args.reloads * 2
    ph = Phalanx(args.bin, os.path.join(work, "reload-time"), body="gen 0\n")
    try:
        times = []
        for i in range(1, count + 1):
            ph.config["routes"][0]["static"]["body"] = f"gen {i}\n"
            ph.write_config()
            time.sleep(0.3)  # the previous generation settles a little
            os.kill(ph.proc.pid, signal.SIGHUP)
            times.append(time_until_body(ph.port, f"gen {i}\n".encode()))
        print(f"reload-time phalanx: SIGHUP to the new config answering: {summarize(times)}")
    finally:
        ph.stop()

    nginx_dir = os.path.join(work, "nginx-reload-time")
    os.makedirs(os.path.join(nginx_dir, "tmp"))
    port = free_port()

    def write(gen):
        with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
            f.write(f"""worker_processes 2; daemon off; pid nginx.pid; error_log nginx.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  server {{ listen 127.0.0.1:{port} reuseport;
           location / {{ default_type text/plain; return 200 "gen {gen}\\n"; }} }} }}
""")

    write(0)
    nginx = subprocess.Popen(["nginx", "-p", nginx_dir + "/", "-c", "nginx.conf"],
                             start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        wait_http(port)
        times = []
        for i in range(1, count + 1):
            write(i)
            time.sleep(0.3)
            nginx.send_signal(signal.SIGHUP)
            times.append(time_until_body(port, f"gen {i}\n".encode()))
        print(f"reload-time nginx:   SIGHUP to the new config answering: {summarize(times)}")
    finally:
        os.killpg(nginx.pid, signal.SIGTERM)
        nginx.wait(timeout=10)


def storm_scenario(args, work):
    ph = Phalanx(args.bin, os.path.join(work, "storm"))
    seconds = args.seconds * 3
    windows, samples = [], [0]
    stop = threading.Event()

    def ready_pids():
        return [w["pid"] for w in ph.control("status")["workers"]
                if w["pid"] and w["state"] in ("ready", "errored")]

    def watch():
        since = None
        while not stop.is_set():
            t = time.monotonic()
            ready = ready_pids()
            samples[0] += 1
            if not ready and since is None:
                since = t
            elif ready and since is not None:
                windows.append(t - since)
                since = None

    try:
        watcher = threading.Thread(target=watch)
        watcher.start()
        _, parse = wrk(f"http://127.0.0.1:{ph.port}/", seconds, conns=256)
        rng = random.Random(1)
        kills = 0
        t_end = time.monotonic() + seconds - 1
        while time.monotonic() < t_end:
            time.sleep(1.0)
            pids = [w["pid"] for w in ph.control("status")["workers"] if w["pid"]]
            for pid in (pids if kills % 4 == 3 else [rng.choice(pids)] if pids else []):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            kills += 1
        result = parse()
        stop.set()
        watcher.join()
        restarts = {w["slot"]: (w["state"], w["restarts"]) for w in ph.control("status")["workers"]
                    if not w["pid"] or w["state"] != "draining"}
        print(f"storm    phalanx: {kills} SIGKILL rounds in {seconds}s under wrk -c256: "
              f"{len(windows)} windows without a ready worker, longest "
              f"{max(windows, default=0) * 1000:.0f} ms, total {sum(windows) * 1000:.0f} ms "
              f"({samples[0]} status samples); wrk socket errors {result['errors']}, "
              f"non-2xx {result['non2xx']}; slots {restarts}")
    finally:
        stop.set()
        ph.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(REPO, "build", "phalanx"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("scenarios", nargs="*",
                        default=["reload", "reload-time", "kill", "storm", "spread"])
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (scripts/install-deps.sh installs it)")
    work = tempfile.mkdtemp(prefix="phalanx-bench-")
    try:
        for name in args.scenarios:
            {"reload": reload_scenario, "reload-time": reload_time_scenario,
             "kill": kill_scenario, "storm": storm_scenario,
             "spread": spread_scenario}[name](args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

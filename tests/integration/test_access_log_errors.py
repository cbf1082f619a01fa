"""Honest counters for what goes wrong quietly: access log lines lost to write
errors are counted exactly and said in phalanx's own log format, throttled;
accept errors at the fd limit are said once per interval with a count."""

import re
import socket
import stat
import time

from conftest import Conn, Phalanx, build_request, http_get, make_config, wait_until
from test_builtins import ROUTES, scrape, value

# A line of the error log (src/shared/logging.cc): "date time [name] level: message".
ERROR_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[([^\]]+)\] (\w+): (.*)$")


def phalanx_lines(log, pattern):
    """(process name, message) of the error-log lines whose message matches `pattern`."""
    found = []
    for line in log.splitlines():
        m = ERROR_LOG_LINE.match(line)
        if m and re.search(pattern, m.group(3)):
            found.append((m.group(1), m.group(3)))
    return found


def lost_to_write_errors(ph):
    samples = scrape(ph.port)
    return (value(samples, "phalanx_access_log_dropped_total", reason="write_error"),
            value(samples, "phalanx_access_log_dropped_total", reason="queue_full"),
            value(samples, "phalanx_requests_total"))


def wait_all_counted(ph):
    """Waits until every request served is counted as lost to a write error.
    A scrape's own request is counted once it is answered, so the one scrape
    that sees them equal is the one after the last line failed and was published
    (the workers publish every 500 ms)."""
    def counted():
        write_error, queue_full, requests = lost_to_write_errors(ph)
        return (write_error, queue_full, requests) if write_error == requests else None
    return wait_until(counted, 10.0, interval=0.2,
                      message=lambda: f"write_error == requests: {lost_to_write_errors(ph)}")


def test_access_log_write_errors_are_counted_exactly_and_said_in_our_format(phalanx_factory):
    """Access log at /dev/full: every line is lost, and the metric says so line
    for line (it stayed 0 before); the error log says it in phalanx's format,
    throttled, never spdlog's raw "[*** LOG ERROR ***]"."""
    cfg = make_config(workers=2, routes=ROUTES, log={"level": "info", "access": "/dev/full"})
    ph = phalanx_factory(cfg)
    with Conn(ph.port) as conn:  # keep-alive: one connection, many requests
        for _ in range(200):
            conn.send(build_request("GET", "/"))
            assert conn.read_response().status == 200
    write_error, queue_full, requests = wait_all_counted(ph)
    assert requests >= 200
    assert queue_full == 0

    # Still serving, and a reload (old workers exit: their last lines are
    # counted before the master folds their cells) keeps the sum exact.
    answer = ph.control("reload")
    assert answer["ok"], answer
    wait_until(lambda: len(ph.workers()) == 2, 15.0, message="the old generation gone")
    for _ in range(20):
        assert http_get(ph.port, "/").status == 200
    wait_all_counted(ph)

    log = ph.log()
    assert "LOG ERROR" not in log, log
    said = phalanx_lines(log, r"^access log /dev/full: cannot write: No space left on device; "
                              r"\d+ lines? lost")
    assert said, log
    per_process = {}
    for name, _ in said:
        per_process[name] = per_process.get(name, 0) + 1
    # Per worker process: the first line at once, maybe one with a count, one
    # at exit. Two slots, two generations ("worker N" names both generations).
    assert all(n <= 2 * 3 for n in per_process.values()), said
    assert len(said) <= 2 * 2 * 3, said


def serves(ph):
    try:
        return http_get(ph.port, "/", timeout=2.0).status == 200
    except OSError:
        return False


def wrapper_with_fd_limit(tmp_path, binary, limit):
    """A script that starts phalanx with RLIMIT_NOFILE lowered to `limit`
    (inherited by the workers, which the master execs from /proc/self/exe)."""
    path = tmp_path / "phalanx-nofile"
    path.write_text(f"#!/bin/sh\nulimit -n {limit} || exit 1\nexec {binary} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_accept_errors_at_the_fd_limit_are_said_once_per_interval_with_a_count(phalanx_bin,
                                                                                tmp_path):
    """At the fd limit each worker used to log "accept: Too many open files"
    every 100 ms. Now: the first at once, then one line with a count; the
    counts add up to phalanx_accept_errors_total, and it serves again after."""
    limit = 64
    workdir = tmp_path / "phalanx"
    workdir.mkdir()
    cfg = make_config(workers=2, routes=ROUTES)
    ph = Phalanx(wrapper_with_fd_limit(tmp_path, phalanx_bin, limit), str(workdir), cfg)
    held = []
    try:
        ph.start()
        before = value(scrape(ph.port), "phalanx_accept_errors_total")
        assert before == 0
        for _ in range(3 * limit * ph.nworkers):  # well past what both workers can accept
            s = socket.create_connection(("127.0.0.1", ph.port), timeout=5)
            held.append(s)
        time.sleep(3)
        started = time.monotonic()
        for s in held:
            s.close()
        held = []
        wait_until(lambda: serves(ph), 10.0, interval=0.2, message="serving again")

        # The line with the count comes once the 10 s interval since the first is up.
        counted = r"^accept: Too many open files \((once|\d+ times) in the last \d+ s\)"
        wait_until(lambda: len({n for n, _ in phalanx_lines(ph.log(), counted)}) == ph.nworkers,
                   15.0, interval=0.5, message=lambda: f"a count line per worker: {ph.log()}")
        log = ph.log()
        lines = phalanx_lines(log, r"^accept: ")
        per_worker = {}
        for name, _ in lines:
            per_worker[name] = per_worker.get(name, 0) + 1
        assert set(per_worker) == {"worker 0", "worker 1"}, lines
        # ~30 errors each in 3 s (one per 100 ms pause): a few lines, not 30.
        assert all(n <= 3 for n in per_worker.values()), lines
        total = 0
        for _, message in lines:  # "(37 times in the last 10 s)", "(once ...)", or alone: 1
            m = re.search(r"\((\d+) times in the last", message)
            total += int(m.group(1)) if m else 1
        assert total > 2 * ph.nworkers, lines  # the pauses did repeat
        assert value(scrape(ph.port), "phalanx_accept_errors_total") == total, lines
        assert time.monotonic() - started < 20
    finally:
        for s in held:
            s.close()
        ph.cleanup()

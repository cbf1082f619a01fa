"""Real load generators (ab, wrk): no failed requests, no socket errors, no worker lost."""

import re

import pytest

from conftest import module_server, run


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return module_server(request, tmp_path_factory, "load", workers=2)


@pytest.fixture
def workers_before(server):
    before = server.worker_pids()
    yield before
    server.assert_workers_survived(before)


def ab_field(out, name):
    m = re.search(rf"^{re.escape(name)}:\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else None


def run_ab(args, url):
    res = run(["ab", "-q", "-s", "10", *args, url], timeout=90)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"ab exited {res.returncode}:\n{out}"
    return out


def test_ab_keepalive(server, workers_before):
    out = run_ab(["-k", "-n", "5000", "-c", "20"], f"http://127.0.0.1:{server.port}/")
    assert ab_field(out, "Complete requests") == 5000, out
    assert ab_field(out, "Failed requests") == 0, out
    assert ab_field(out, "Non-2xx responses") in (None, 0), out
    assert ab_field(out, "Keep-Alive requests") == 5000, \
        f"ab -k (HTTP/1.0 + Connection: keep-alive) did not keep connections alive:\n{out}"
    assert ab_field(out, "Document Length") == 3, out


def test_ab_without_keepalive(server, workers_before):
    out = run_ab(["-n", "2000", "-c", "10"], f"http://127.0.0.1:{server.port}/")
    assert ab_field(out, "Complete requests") == 2000, out
    assert ab_field(out, "Failed requests") == 0, out
    assert ab_field(out, "Non-2xx responses") in (None, 0), out
    assert ab_field(out, "Keep-Alive requests") in (None, 0), out


def test_ab_post_bodies(server, workers_before, tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"hello": "world", "pad": "' + "x" * 500 + '"}')
    out = run_ab(["-k", "-n", "1000", "-c", "10", "-p", str(body), "-T", "application/json"],
                 f"http://127.0.0.1:{server.port}/")
    assert ab_field(out, "Complete requests") == 1000, out
    assert ab_field(out, "Failed requests") == 0, out
    assert ab_field(out, "Non-2xx responses") in (None, 0), out


def test_wrk_short_run(server, workers_before):
    res = run(["wrk", "-t1", "-c16", "-d2s", "--timeout", "2s", f"http://127.0.0.1:{server.port}/"],
              timeout=30)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"wrk exited {res.returncode}:\n{out}"
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 1000, f"wrk made too few requests:\n{out}"
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    assert sock is None or all(int(x) == 0 for x in sock.groups()), f"wrk saw socket errors:\n{out}"
    assert "Non-2xx or 3xx responses" not in out, f"wrk saw non-2xx responses:\n{out}"


def test_wrk_pipelined_health(server, workers_before, tmp_path):
    """wrk with a Lua script that pipelines 8 requests per write."""
    script = tmp_path / "pipeline.lua"
    script.write_text(
        'init = function(args)\n'
        '  local r = {}\n'
        '  for i = 1, 8 do r[i] = wrk.format(nil, "/health/live") end\n'
        '  req = table.concat(r)\n'
        'end\n'
        'request = function() return req end\n')
    res = run(["wrk", "-t1", "-c8", "-d2s", "--timeout", "2s", "-s", str(script),
               f"http://127.0.0.1:{server.port}/"], timeout=30)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"wrk exited {res.returncode}:\n{out}"
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    assert sock is None or all(int(x) == 0 for x in sock.groups()), f"wrk saw socket errors:\n{out}"
    assert "Non-2xx or 3xx responses" not in out, f"wrk saw non-2xx responses:\n{out}"

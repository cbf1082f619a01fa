"""The command line: -v, -t -c FILE (config validation), and refusing bad configs at start."""

import json
import os
import re

import pytest

from conftest import DEFAULT_ROUTES, REPO, free_port, make_config, run


def write(tmp_path, cfg, name="phalanx.json"):
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return str(path)


def check(binary, path):
    return run([binary, "-t", "-c", path], timeout=15)


def error_lines(res):
    return [l for l in res.stderr.splitlines() if l.strip()]


def assert_error_line(res, *needles):
    """Exit 1 and one stderr line containing every needle (case-insensitive)."""
    assert res.returncode == 1, (f"-t should exit 1 on an invalid config, exited {res.returncode}\n"
                                 f"stdout: {res.stdout!r}\nstderr: {res.stderr!r}")
    lines = error_lines(res)
    hits = [l for l in lines if all(n.lower() in l.lower() for n in needles)]
    assert hits, f"no stderr line contains all of {needles!r}; stderr lines: {lines!r}"
    return hits


def test_version(phalanx_bin):
    res = run([phalanx_bin, "-v"], timeout=10)
    assert res.returncode == 0, f"-v exited {res.returncode}: {res.stderr!r}"
    out = res.stdout.strip()
    assert re.fullmatch(r"phalanx \d+\.\d+\.\d+\S*", out), f"-v printed {out!r}, want 'phalanx X.Y.Z'"


def test_unknown_option_fails(phalanx_bin):
    res = run([phalanx_bin, "--no-such-option"], timeout=10)
    assert res.returncode != 0, f"an unknown option should fail, got exit 0: {res.stdout!r}"
    assert res.stderr.strip(), "an unknown option should say something on stderr"


def test_valid_config_ok(phalanx_bin, tmp_path):
    path = write(tmp_path, make_config(workers=2, limits={"max_header_bytes": 8192,
                                                          "max_body_bytes": 1024,
                                                          "header_timeout_ms": 1000,
                                                          "idle_timeout_ms": 1000,
                                                          "max_connections": 100}))
    res = check(phalanx_bin, path)
    assert res.returncode == 0, f"valid config rejected: {res.stderr!r}"
    assert "ok" in (res.stdout + res.stderr).lower(), f"-t printed no 'ok': {res.stdout!r} {res.stderr!r}"


def test_valid_config_workers_auto(phalanx_bin, tmp_path):
    res = check(phalanx_bin, write(tmp_path, make_config(workers="auto")))
    assert res.returncode == 0, f'"workers": "auto" rejected: {res.stderr!r}'


def test_shipped_default_config_is_valid(phalanx_bin):
    path = os.path.join(REPO, "etc", "phalanx.json")
    assert os.path.isfile(path), "etc/phalanx.json (the config `make run` uses) is missing"
    res = check(phalanx_bin, path)
    assert res.returncode == 0, f"etc/phalanx.json does not validate: {res.stderr!r}"


def test_missing_file(phalanx_bin, tmp_path):
    path = str(tmp_path / "does-not-exist.json")
    res = check(phalanx_bin, path)
    assert_error_line(res, path, "cannot read")


@pytest.mark.parametrize("text", ['{"listen": ["127.0.0.1:8080"], ', "not json at all", ""],
                         ids=["truncated", "garbage", "empty"])
def test_invalid_json(phalanx_bin, tmp_path, text):
    res = check(phalanx_bin, write(tmp_path, text))
    assert_error_line(res, "invalid JSON")


def _mutate(mutation):
    cfg = make_config(workers=2)
    mutation(cfg)
    return cfg


BAD_CONFIGS = {
    # name: (mutation, needles that one error line must contain)
    "header-bytes-string": (lambda c: c.update(limits={"max_header_bytes": "big"}),
                            ["limits.max_header_bytes", "expected"]),
    "body-bytes-negative": (lambda c: c.update(limits={"max_body_bytes": -5}),
                            ["limits.max_body_bytes"]),
    "timeout-float-string": (lambda c: c.update(limits={"header_timeout_ms": "1s"}),
                             ["limits.header_timeout_ms"]),
    "port-too-big": (lambda c: c.update(listen=["127.0.0.1:70000"]), ["listen[0]", "port"]),
    "port-zero": (lambda c: c.update(listen=["127.0.0.1:0"]), ["listen[0]", "port"]),
    "no-port": (lambda c: c.update(listen=["127.0.0.1"]), ["listen[0]"]),
    "bad-ip": (lambda c: c.update(listen=["300.1.2.3:8080"]), ["listen[0]"]),
    "second-listen-bad": (lambda c: c.update(listen=[c["listen"][0], "127.0.0.1:abc"]), ["listen[1]"]),
    "listen-not-strings": (lambda c: c.update(listen=[8080]), ["listen[0]"]),
    "unknown-top-key": (lambda c: c.update(bogus=1), ["bogus", "unknown"]),
    "unknown-nested-key": (lambda c: c.update(limits={"max_header_bytez": 10}),
                           ["limits.max_header_bytez", "unknown"]),
    "unknown-route-key": (lambda c: c["routes"][1].update(colour="red"), ["routes[1].colour", "unknown"]),
    "workers-string": (lambda c: c.update(workers="many"), ["workers"]),
    "workers-zero": (lambda c: c.update(workers=0), ["workers"]),
    "missing-listen": (lambda c: c.pop("listen"), ["listen"]),
    "missing-routes": (lambda c: c.pop("routes"), ["routes"]),
    "route-no-match": (lambda c: c["routes"].append({"static": {"status": 200, "body": "x"}}),
                       [f"routes[{len(DEFAULT_ROUTES)}]"]),
    "route-bad-status": (lambda c: c["routes"][1]["static"].update(status=999), ["routes[1].static.status"]),
    "route-unknown-builtin": (lambda c: c["routes"][0].update(builtin="nope"), ["routes[0].builtin"]),
    "log-level": (lambda c: c["log"].update(level="loud"), ["log.level"]),
    "upstream-route-refused": (lambda c: c["routes"].insert(2, {"prefix": "/api/", "upstream": "api"}),
                               ["routes[2]", "upstream"]),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_reports_path(phalanx_bin, tmp_path, name):
    mutation, needles = BAD_CONFIGS[name]
    res = check(phalanx_bin, write(tmp_path, _mutate(mutation)))
    assert_error_line(res, *needles)


def test_config_not_an_object(phalanx_bin, tmp_path):
    res = check(phalanx_bin, write(tmp_path, "[1, 2, 3]"))
    assert res.returncode == 1, f"a JSON array as config should be refused: {res.stderr!r}"
    assert error_lines(res), "no error printed for a non-object config"


def test_every_error_is_reported(phalanx_bin, tmp_path):
    cfg = make_config(workers=2)
    cfg["bogus"] = True
    cfg["listen"] = ["127.0.0.1:70000"]
    cfg["limits"] = {"max_header_bytes": "big"}
    cfg["log"]["level"] = "loud"
    res = check(phalanx_bin, write(tmp_path, cfg))
    assert_error_line(res, "bogus")
    assert_error_line(res, "listen[0]")
    assert_error_line(res, "limits.max_header_bytes")
    assert_error_line(res, "log.level")
    # one error per line: no line names two of the problems
    for line in error_lines(res):
        named = [p for p in ("bogus", "listen[0]", "limits.max_header_bytes", "log.level") if p in line]
        assert len(named) <= 1, f"one line reports several errors: {line!r}"


def test_run_refuses_invalid_config(phalanx_bin, tmp_path):
    """`phalanx -c BAD` must not start: it exits non-zero quickly, saying why."""
    port = free_port()
    cfg = make_config(workers=1, listen=[f"127.0.0.1:{port}"])
    cfg["limits"] = {"max_header_bytes": "big"}
    res = run([phalanx_bin, "-c", write(tmp_path, cfg)], timeout=15)
    assert res.returncode != 0, "phalanx started with an invalid config"
    assert "limits.max_header_bytes" in res.stderr, f"start-up error does not name the key: {res.stderr!r}"


def test_run_refuses_unwritable_access_log(phalanx_bin, tmp_path):
    """An access log that cannot be opened stops start-up with one clear line, before any fork."""
    port = free_port()
    cfg = make_config(workers=2, listen=[f"127.0.0.1:{port}"])
    cfg["log"]["access"] = "/proc/phalanx-no-such-dir/access.log"
    res = run([phalanx_bin, "-c", write(tmp_path, cfg)], timeout=15)
    assert res.returncode == 1, f"exit {res.returncode}, stderr: {res.stderr!r}"
    assert "log.access" in res.stderr and "/proc/phalanx-no-such-dir/access.log" in res.stderr, res.stderr
    assert "worker 0: started" not in res.stderr, "workers were forked before the access log was checked"


def test_run_refuses_a_port_held_by_another_process(phalanx_bin, tmp_path):
    """SO_REUSEPORT must not silently share a port with someone else's socket."""
    import socket
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen(1)
    port = other.getsockname()[1]
    try:
        cfg = make_config(workers=1, listen=[f"127.0.0.1:{port}"])
        res = run([phalanx_bin, "-c", write(tmp_path, cfg)], timeout=15)
        assert res.returncode == 1, f"started on a port another socket holds: {res.stderr!r}"
        assert f"127.0.0.1:{port}" in res.stderr and "in use" in res.stderr.lower(), res.stderr
    finally:
        other.close()

"""The control socket refuses what it does not understand, and says so in JSON.

Over a raw AF_UNIX socket (not phalanxctl, which checks its command line
before sending anything), so the master sees exactly these bytes:

* a command that takes no arguments refuses any: `stop --help` must not stop,
  `reload --dry-run` must not reload, `status now` must not answer status;
* bytes that are not UTF-8, control characters (NUL too) and an over-long line
  get an error answer that is itself valid UTF-8 and JSON, with the offending
  bytes shown escaped (\\xNN);
* `scale` says what N may be for -1, 0, words and numbers past any integer.

After each: ok is false with an error, the master still runs and answers
`status`, no reload happened, the same workers serve.
"""

import json
import os
import socket

import pytest

from conftest import http_get, module_server, pid_alive


@pytest.fixture(scope="module")
def ph(request, tmp_path_factory):
    return module_server(request, tmp_path_factory, "strict", workers=2)


def ask_raw(path, data, timeout=10.0):
    """Sends `data` as is; returns every byte the master answers. No reset
    either: a master that answers a line too long before its end reads the
    rest, so it never closes on unread input (which makes the kernel report
    ECONNRESET to the client after the answer)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def strict_json(answer):
    """The answer as JSON, decoded the strict way: invalid UTF-8 raises."""
    assert answer.endswith(b"\n") and answer.count(b"\n") == 1, answer
    return json.loads(answer.decode("utf-8", errors="strict"))


def refused(ph, data):
    answer = strict_json(ask_raw(ph.control_path, data))
    assert answer["version"] == 1 and answer["ok"] is False, (data[:80], answer)
    assert isinstance(answer["error"], str) and answer["error"], (data[:80], answer)
    return answer["error"]


def snapshot(ph):
    st = ph.status()
    return {"generation": st["master"]["generation"], "reloads": st["master"]["reloads"],
            "workers": sorted(w["pid"] for w in st["workers"])}


def assert_untouched(ph, before):
    assert ph.running() and pid_alive(ph.pid), f"the master exited\n{ph.log()[-3000:]}"
    assert snapshot(ph) == before, "a refused command changed something"
    assert http_get(ph.port, "/health/live").status == 200


# --------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "stop --help", "stop now", "reload now", "reload --dry-run", "status now", "help me",
    "show info extra", "show stat -v", "upstreams all", "access x", "routes 10",
])
def test_a_command_without_arguments_refuses_words(ph, line):
    before = snapshot(ph)
    error = refused(ph, line.encode() + b"\n")
    command, got = line.rsplit(" ", 1)
    assert error == f'"{command}" takes no arguments (got "{got}")', error
    assert_untouched(ph, before)


@pytest.mark.parametrize("data, says", [
    (b"\xff\xfe status\n", "not valid UTF-8"),
    (b"\xc3\x28\n", "not valid UTF-8"),
    (b"\xed\xa0\x80\n", "not valid UTF-8"),  # a UTF-16 surrogate, encoded
    (b"sta\x00tus\n", "control character"),
    (b"status\x00\n", "control character"),
    (b"\x1b[2Jstatus\n", "control character"),
    (b"a" * 10240 + b"\n", "longer than"),
    (b" \t \r\n", "empty"),
])
def test_bytes_that_are_no_command_get_a_json_error(ph, data, says):
    before = snapshot(ph)
    error = refused(ph, data)
    assert says in error, error
    assert len(error) < 300, error  # the input shown is bounded
    assert_untouched(ph, before)


def test_unknown_commands_echo_their_bytes_escaped(ph):
    assert refused(ph, b"\xff\xfe status\n") == (
        'the command is not valid UTF-8: "\\xff\\xfe status"; try "help"')
    assert refused(ph, b"sta\x00tus\n") == (
        'the command holds a control character: "sta\\x00tus"; try "help"')
    assert refused(ph, "stätus\n".encode()) == 'unknown command "st\\xc3\\xa4tus"; try "help"'
    long_word = refused(ph, b"x" * 200 + b"\n")
    assert long_word == 'unknown command "' + "x" * 64 + '…"; try "help"', long_word


@pytest.mark.parametrize("line, says", [
    ("scale -1", 'scale: N must be a whole number from 1 to 256, got "-1"'),
    ("scale 0", 'scale: N must be a whole number from 1 to 256, got "0"'),
    ("scale abc", 'scale: N must be a whole number from 1 to 256, got "abc"'),
    ("scale 99999999999999999999",
     'scale: N must be a whole number from 1 to 256, got "99999999999999999999"'),
    ("scale 257", 'scale: N must be a whole number from 1 to 256, got "257"'),
    ("scale +2", 'scale: N must be a whole number from 1 to 256, got "+2"'),
    ("scale", "usage: scale N (a worker count from 1 to 256)"),
    ("scale 2 3", "usage: scale N (a worker count from 1 to 256)"),
])
def test_scale_says_what_n_may_be(ph, line, says):
    before = snapshot(ph)
    assert refused(ph, line.encode() + b"\n") == says
    assert_untouched(ph, before)
    assert ph.status()["master"]["workers"] == 2


def test_a_line_too_long_is_answered_before_it_ends(ph):
    """A client still sending (no newline, no EOF) gets its answer at once,
    not after the 5 s read timeout."""
    before = snapshot(ph)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3.0)
        s.connect(ph.control_path)
        s.sendall(b"status " * 1000)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer: {answer!r}"
            answer += chunk
    assert "longer than 4096 bytes" in strict_json(answer)["error"], answer
    assert_untouched(ph, before)

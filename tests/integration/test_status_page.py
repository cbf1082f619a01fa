"""The dashboard builtin: one self-contained HTML page that polls the status
route. Checked as bytes (headers, policy, no external references) and live in
headless Chromium: it renders one row per worker, follows a killed worker's
replacement without a reload, escapes what it shows, and says so when the
gateway stops answering."""

import json
import os
import re
import signal

import pytest

from conftest import DEFAULT_ROUTES, free_port, http_get, make_config, run, wait_until
from headless_chromium import CHROMIUM_BIN, Chromium

WORKERS = 2
# An upstream whose name is markup: the page must show it as text.
MARKUP_NAME = "<i id=injected>u</i>&amp;"

ROUTES = [
    {"path": "/health/status", "builtin": "status"},
    {"path": "/dashboard", "builtin": "dashboard", "allow": ["127.0.0.1/32", "::1/128"]},
    {"prefix": "/up/", "upstream": MARKUP_NAME},
] + DEFAULT_ROUTES


def dashboard_config():
    return make_config(workers=WORKERS, routes=ROUTES, extra={
        "upstreams": {MARKUP_NAME: {"targets": [{"address": f"127.0.0.1:{free_port()}"}],
                                    "retries": 0}}})


# What the page shows of its worker table, read in the browser.
WORKER_ROWS = """JSON.stringify(Array.from(document.querySelectorAll('#workers tbody tr'))
  .filter(tr => tr.dataset.slot !== undefined)
  .map(tr => ({slot: Number(tr.dataset.slot), pid: Number(tr.dataset.pid),
               restarts: tr.dataset.restarts, cells: Array.from(tr.cells, c => c.textContent)})))"""


def worker_rows(browser):
    return json.loads(browser.evaluate(WORKER_ROWS) or "[]")


def test_dashboard_is_one_self_contained_page(phalanx_factory):
    ph = phalanx_factory(config=dashboard_config())
    r = http_get(ph.port, "/dashboard")
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert r.header("Cache-Control") == "no-store"
    assert r.header("X-Content-Type-Options") == "nosniff"
    policy = r.header("Content-Security-Policy")
    assert policy, r
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", directives["script-src"]), policy
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", directives["style-src"]), policy
    assert directives["frame-ancestors"] == "'none'"

    page = r.body.decode()
    assert page.startswith("<!doctype html>")
    assert int(r.header("Content-Length")) == len(r.body) < 30 * 1024
    # Nothing from elsewhere: no external script, style, font or image.
    for reference in ('src="http', "src='http", 'href="http', "href='http", "@import", "url("):
        assert reference not in page, reference
    assert '<meta name="phalanx-status" content="/health/status">' in page

    head = http_get(ph.port, "/dashboard", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == r.header("Content-Length")
    assert head.header("Content-Security-Policy") == policy


def test_dashboard_config_needs_a_status_route(phalanx_bin, tmp_path):
    config = make_config(routes=[{"path": "/dashboard", "builtin": "dashboard"}] + DEFAULT_ROUTES)
    path = tmp_path / "phalanx.json"
    path.write_text(json.dumps(config))
    r = run([phalanx_bin, "-t", "-c", str(path)], timeout=30)
    assert r.returncode == 1
    assert 'routes[0].builtin: "dashboard" needs a route with builtin "status"' in r.stderr + r.stdout


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM_BIN:
        pytest.skip("chromium is not installed")
    profile = tmp_path / "chromium"
    profile.mkdir()
    b = Chromium(profile)
    yield b
    b.close()


def test_dashboard_follows_a_killed_worker_live(phalanx_factory, browser):
    ph = phalanx_factory(config=dashboard_config())
    by_slot = ph.worker_by_slot()
    assert len(by_slot) == WORKERS
    http_get(ph.port, "/up/x")  # a 502: the unreachable upstream shows up in the figures

    browser.navigate(f"http://127.0.0.1:{ph.port}/dashboard")

    def shown():
        rows = worker_rows(browser)
        return rows if len(rows) == WORKERS and all(r["pid"] for r in rows) else None
    rows = wait_until(shown, 15, interval=0.2, message="the worker table with one row per worker")
    assert {r["slot"]: r["pid"] for r in rows} == by_slot, (rows, by_slot)
    for r in rows:
        assert r["cells"][0] == str(r["slot"]) and r["cells"][1] == str(r["pid"])
        assert r["cells"][3] == "ready", r
        assert r["restarts"] == "0", r
    assert "ok" in browser.evaluate("document.getElementById('conn').className")
    # The inline style applied too: its hash is in the policy.
    assert browser.evaluate("getComputedStyle(document.querySelector('header')).position") == "sticky"
    # The upstream's name is text, never markup.
    assert browser.evaluate("document.getElementById('injected')") is None
    assert MARKUP_NAME in browser.evaluate("document.getElementById('upstreams').textContent")

    # Kill one worker: the page must show its replacement without being reloaded.
    browser.evaluate("window.__notReloaded = true")
    slot, old_pid = 0, by_slot[0]
    os.kill(old_pid, signal.SIGKILL)

    def replaced():
        row = next((r for r in worker_rows(browser) if r["slot"] == slot and r["pid"]), None)
        return row if row and row["pid"] != old_pid and row["restarts"] == "1" else None
    row = wait_until(replaced, 10, interval=0.2,
                     message=lambda: f"slot {slot}'s new worker on the page: {worker_rows(browser)}")
    assert row["pid"] == ph.worker_by_slot()[slot]
    assert "signal 9" in row["cells"][6], row
    assert browser.evaluate("window.__notReloaded") is True
    wait_until(lambda: len(worker_rows(browser)) == WORKERS, 10, interval=0.2,
               message="the table back to one row per worker")

    # The gateway goes away: the page says so, and keeps what it last showed.
    ph.stop()
    wait_until(lambda: "down" in browser.evaluate("document.getElementById('conn').className"), 10,
               interval=0.2, message="the page marking the gateway unreachable")
    assert "unreachable" in browser.evaluate("document.getElementById('conn').textContent")
    assert len(worker_rows(browser)) == WORKERS
    assert browser.evaluate("window.__notReloaded") is True

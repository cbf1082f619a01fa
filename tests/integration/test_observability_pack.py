"""The observability pack in etc/: the Grafana dashboard is well formed, every
PromQL expression in it and in the Prometheus rules parses, and every metric
family, and every label value they select on, is one a real phalanx exposes.
The /metrics scrape the names are checked against passes `promtool check
metrics` too.

The rules themselves are checked and unit-tested by ctest (promtool_check_rules,
promtool_test_rules: etc/prometheus/phalanx-alerts.test.yml).

A phalanx with an upstream (breaker), a rate limit, a cache and a memory cap is
started and given a little traffic, so that every family the pack reads is in
its /metrics."""

import json
import os
import re
import subprocess
import tempfile

import pytest
import yaml

from conftest import REPO, Upstream, http_get, module_server, wait_until

PROMETHEUS_DIR = os.path.join(REPO, "etc", "prometheus")
ALERTS = os.path.join(PROMETHEUS_DIR, "phalanx-alerts.yml")
RECORDING = os.path.join(PROMETHEUS_DIR, "phalanx-recording.yml")
ALERT_TESTS = os.path.join(PROMETHEUS_DIR, "phalanx-alerts.test.yml")
DASHBOARD = os.path.join(REPO, "etc", "grafana", "phalanx-dashboard.json")

# Series Prometheus makes itself, not phalanx.
PROMETHEUS_SERIES = {"up"}
# Labels the scrape adds (target labels), not phalanx.
TARGET_LABELS = {"job", "instance"}

# Grafana's variables, replaced by something PromQL parses.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

ROUTES = [
    {"path": "/health/live", "builtin": "live"},
    {"path": "/metrics", "builtin": "metrics"},
    {"prefix": "/cached/", "upstream": "api", "cache": {"ttl_ms": 60000}},
    {"prefix": "/limited/", "upstream": "api", "rate_limit": "per_ip"},
    {"prefix": "/api/", "upstream": "api"},
    {"path": "/", "static": {"status": 200, "body": "ok\n"}},
]


# ------------------------------------------------------------------ the files

def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def load_rules(path):
    with open(path) as f:
        return [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]


def dashboard_panels(dashboard):
    """Every panel, those inside collapsed rows too."""
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_exprs(dashboard):
    """(where, expr) of every target, Grafana's variables replaced."""
    out = []
    for p in dashboard_panels(dashboard):
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} {p['title']!r} {t['refId']}", grafana_to_promql(t["expr"])))
    return out


def grafana_to_promql(expr):
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    # Other variables ($job, $route...) only appear inside regex matchers' strings.
    return expr


def variable_selectors(dashboard):
    """(where, selector expr, label) of every label_values() variable query."""
    out = []
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", query)
        assert m, f"variable {v['name']}: only label_values(selector, label) queries are checked: {query!r}"
        out.append((f"variable {v['name']}", m.group(1), m.group(2)))
    return out


def rule_exprs():
    out = []
    for path in (ALERTS, RECORDING):
        for rule in load_rules(path):
            name = rule.get("alert") or rule.get("record")
            out.append((f"{os.path.basename(path)} {name}", rule["expr"]))
    return out


# ------------------------------------------------------------------ PromQL names

GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
# Aggregations can be followed by `by (...)` instead of their "(".
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def _skip_string(expr, i):
    quote = expr[i]
    i += 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" else 1
    return i + 1


def _skip_to_close(expr, i, open_, close):
    """i at `open_`; returns the index after its matching `close` (strings skipped)."""
    depth = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {open_} in {expr!r}")


def selectors(expr):
    """[(metric name, [(label, op, value)...])] of every vector selector in a
    PromQL expression: identifiers that are not functions (followed by "("),
    keywords, or the labels of by/on/... clauses."""
    out = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "[":
            i = _skip_to_close(expr, i, "[", "]")
        elif c == "{":  # a selector without a name: {__name__="..."}
            end = _skip_to_close(expr, i, "{", "}")
            matchers = MATCHER.findall(expr[i:end])
            names = [v for (label, op, v) in matchers if label == "__name__" and op == "="]
            out.append((names[0] if names else "", matchers))
            i = end
        elif c.isdigit() or c == ".":
            while i < len(expr) and (expr[i].isalnum() or expr[i] in "._"):
                i += 1
        elif c.isalpha() or c in "_:":
            j = i
            while j < len(expr) and (expr[j].isalnum() or expr[j] in "_:"):
                j += 1
            ident = expr[i:j]
            k = j
            while k < len(expr) and expr[k].isspace():
                k += 1
            nxt = expr[k] if k < len(expr) else ""
            if ident in GROUPING and nxt == "(":
                i = _skip_to_close(expr, k, "(", ")")
            elif nxt == "(" or ident.lower() in KEYWORDS or ident in AGGREGATIONS:
                i = j  # a function, an aggregation or a keyword
            else:
                matchers = []
                if nxt == "{":
                    end = _skip_to_close(expr, k, "{", "}")
                    matchers = MATCHER.findall(expr[k:end])
                    j = end
                out.append((ident, matchers))
                i = j
        else:
            i += 1
    return out


def test_the_selector_parser():
    got = selectors('histogram_quantile(0.95, sum by (job, le) (rate(phalanx_x_bucket'
                    '{code="5xx", job=~"$job"}[5m]))) / on (instance) group_left () '
                    '(phalanx_y > 0) and bool phalanx_z offset 5m or absent(up{job="a"})')
    assert got == [("phalanx_x_bucket", [("code", "=", "5xx"), ("job", "=~", "$job")]),
                   ("phalanx_y", []), ("phalanx_z", []), ("up", [("job", "=", "a")])]


# ------------------------------------------------------------------ the scrape

def parse_exposition(text):
    """({family: type}, {series name: family}, [(series name, {label: value})])."""
    types = {}
    samples = []
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$", line)
        assert m, f"not a sample line: {line!r}"
        labels = {k: v for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")}
        samples.append((m.group(1), labels))
    return types, series_of(types), samples


def series_of(types):
    """{series name a query can use: its family}."""
    out = {}
    for family, kind in types.items():
        if kind in ("histogram", "summary"):
            for suffix in ("_bucket", "_sum", "_count") if kind == "histogram" else ("_sum", "_count"):
                out[family + suffix] = family
        else:
            out[family] = family
    return out


@pytest.fixture(scope="module")
def scrape(request, tmp_path_factory):
    upstream = Upstream(str(tmp_path_factory.mktemp("obs-upstream")), name="u")
    upstream.start()
    request.addfinalizer(upstream.kill)
    ph = module_server(request, tmp_path_factory, "obs-phalanx", workers=2, routes=ROUTES, extra={
        "upstreams": {"api": {"targets": [{"address": upstream.address}], "retries": 0,
                              "breaker": {"consecutive_failures": 5, "open_ms": 30000}}},
        "rate_limits": {"per_ip": {"key": "ip", "rate": "1000/m"}},
        "cache": {"memory": "8M"},
        "supervisor": {"max_memory": "512M"},
    })
    for path in ("/api/a", "/cached/a", "/cached/a", "/limited/a", "/", "/nowhere-404"):
        http_get(ph.port, path)

    def counted():
        text = http_get(ph.port, "/metrics").body.decode()
        return text if re.search(r"^phalanx_upstream_requests_total\{[^}]*\} [1-9]", text, re.M) \
            and re.search(r'^phalanx_rate_limit_requests_total\{limit="per_ip",result="allowed"\} 1',
                          text, re.M) else None
    wait_until(counted, 5.0, message="the traffic counted in /metrics")
    return counted()


@pytest.fixture(scope="module")
def exposed(scrape):
    return parse_exposition(scrape)


def test_the_scrape_passes_promtool_check_metrics(scrape):
    res = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, f"promtool check metrics:\n{res.stdout}{res.stderr}"


# ------------------------------------------------------------------ the checks

def unknown_uses(uses, exposed):
    """What in `uses` ([(where, expr)]) phalanx does not expose: a list of messages."""
    _types, series, samples = exposed
    recorded = {rule["record"] for rule in load_rules(RECORDING)}
    problems = []
    for where, expr in uses:
        for name, matchers in selectors(expr):
            if name in PROMETHEUS_SERIES or name in recorded:
                continue
            if name not in series:
                problems.append(f"{where}: {name!r} is not a series phalanx exposes")
                continue
            values = {}
            for sample_name, labels in samples:
                if sample_name == name:
                    for k, v in labels.items():
                        values.setdefault(k, set()).add(v)
            for label, op, value in matchers:
                if label in TARGET_LABELS:
                    continue
                if label not in values:
                    problems.append(f"{where}: {name} has no label {label!r}")
                elif op == "=" and value not in values[label]:
                    problems.append(f"{where}: {name}{{{label}={value!r}}} never appears "
                                    f"(values: {sorted(values[label])})")
                elif op == "=~" and re.fullmatch(r"[\w-]+(\|[\w-]+)*", value):
                    for alternative in value.split("|"):
                        if alternative not in values[label]:
                            problems.append(f"{where}: {name}{{{label}=~...{alternative!r}...}} "
                                            f"never appears (values: {sorted(values[label])})")
    return problems


def dashboard_uses(dashboard):
    uses = dashboard_exprs(dashboard)
    for where, selector, _label in variable_selectors(dashboard):
        uses.append((where, selector))
    return uses


def test_every_family_the_dashboard_reads_is_exposed(exposed):
    dashboard = load_dashboard()
    problems = unknown_uses(dashboard_uses(dashboard), exposed)
    # The label a variable lists must exist on its family (an unknown family is
    # reported by unknown_uses already).
    _, series, samples = exposed
    for where, selector, label in variable_selectors(dashboard):
        ((name, _),) = selectors(selector)
        if label in TARGET_LABELS:
            continue
        if name in series and not any(n == name and label in labels for n, labels in samples):
            problems.append(f"{where}: {name} has no label {label!r}")
    assert not problems, "\n".join(problems)


def test_every_family_the_rules_read_is_exposed(exposed):
    uses = rule_exprs()
    # metric names quoted in the annotations (what an operator is told to look at)
    for rule in load_rules(ALERTS):
        for text in rule.get("annotations", {}).values():
            for name in re.findall(r"\bphalanx_[a-z0-9_]+", text):
                uses.append((f"annotation of {rule['alert']}", name))
    problems = unknown_uses(uses, exposed)
    assert not problems, "\n".join(problems)


def test_a_misspelt_family_or_label_value_is_caught(exposed):
    problems = unknown_uses([
        ("typo", 'rate(phalanx_request_total[5m])'),
        ("label", 'phalanx_responses_total{code="5XX"}'),
        ("regex", 'phalanx_worker_restarts_total{reason=~"exit|crash"}'),
        ("histogram", 'rate(phalanx_request_duration_seconds[5m])'),
        ("unknown label", 'phalanx_route_requests_total{path="/"}'),
    ], exposed)
    assert [p.split(":")[0] for p in problems] == ["typo", "label", "regex", "histogram", "unknown label"], \
        problems


def test_every_expression_parses():
    """promtool parses each dashboard query (as a recording rule) and each rule."""
    dashboard = load_dashboard()
    rules = [{"record": f"dashboard:expr_{i}", "expr": expr}
             for i, (_, expr) in enumerate(dashboard_uses(dashboard))]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        path = f.name
    try:
        res = subprocess.run(["promtool", "check", "rules", path, ALERTS, RECORDING],
                             capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    assert res.returncode == 0, f"promtool check rules:\n{res.stdout}{res.stderr}"


# ------------------------------------------------------------------ the dashboard

def test_the_dashboard_is_well_formed():
    d = load_dashboard()
    assert d["title"] and d["uid"] and 36 <= d["schemaVersion"] <= 39
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    route = variables["route"]["query"]
    assert (route["query"] if isinstance(route, dict) else route) == \
        "label_values(phalanx_route_requests_total, route)"

    panels = dashboard_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    boxes = []
    for p in panels:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("x", "y", "w", "h")), where
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0, where
        assert g["x"] + g["w"] <= 24, f"{where} is wider than the grid: {g}"
        for other_where, o in boxes:
            overlap = (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and
                       g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"])
            assert not overlap, f"{where} overlaps {other_where}: {g} {o}"
        boxes.append((where, g))
        if p["type"] == "row":
            continue
        assert p.get("title"), where
        assert p.get("targets"), f"{where} has no targets"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), f"{where}: duplicate refIds {refs}"
        for t in p["targets"]:
            assert t.get("expr", "").strip(), f"{where} {t['refId']}: empty expr"
            ds = t.get("datasource", p.get("datasource"))
            assert ds and ds.get("uid") == "${datasource}", f"{where}: datasource {ds}"


def test_the_dashboard_covers_what_an_operator_looks_at():
    d = load_dashboard()
    panels = [p for p in dashboard_panels(d) if p["type"] != "row"]
    used = {name for _, expr in dashboard_exprs(d) for name, _ in selectors(expr)}
    for family in ["phalanx_requests_total", "phalanx_responses_total",
                   "phalanx_request_duration_seconds_bucket", "phalanx_route_requests_total",
                   "phalanx_route_responses_total", "phalanx_route_request_duration_seconds_bucket",
                   "phalanx_worker_rss_bytes", "phalanx_worker_cpu_seconds_total",
                   "phalanx_worker_restarts_total", "phalanx_workers", "phalanx_breaker_state",
                   "phalanx_upstream_requests_total", "phalanx_upstream_failures_total",
                   "phalanx_rate_limit_requests_total", "phalanx_auth_failures_total",
                   "phalanx_cache_requests_total", "phalanx_redis_connected_workers",
                   "phalanx_worker_memory_limit_bytes"]:
        assert family in used, f"no panel reads {family}"
    heatmaps = [p for p in panels if p["type"] == "heatmap"]
    assert any(t.get("format") == "heatmap" and "phalanx_request_duration_seconds_bucket" in t["expr"]
               for p in heatmaps for t in p["targets"]), "no latency heatmap"
    quantiles = {q for _, expr in dashboard_exprs(d)
                 if "phalanx_request_duration_seconds_bucket" in expr
                 for q in re.findall(r"histogram_quantile\((0\.\d+)", expr)}
    assert {"0.50", "0.95", "0.99"} <= quantiles, quantiles


# ------------------------------------------------------------------ the rules

def test_every_alert_is_documented_and_unit_tested():
    with open(ALERTS) as f:
        text = f.read()
    with open(ALERT_TESTS) as f:
        tests = yaml.safe_load(f)
    fired, quiet = set(), set()
    for case in tests["tests"]:
        for t in case.get("alert_rule_test", []):
            (fired if t["exp_alerts"] else quiet).add(t["alertname"])
    for rule in load_rules(ALERTS):
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "$labels" in rule["annotations"]["description"] or "$value" in rule["annotations"]["description"], name
        # a comment right above the rule says why its threshold and `for`
        before = text[:text.index(f"- alert: {name}\n")].rstrip().splitlines()
        assert before[-1].strip().startswith("#"), f"{name} has no comment saying why"
        assert name in fired, f"no promtool test where {name} fires"
        assert name in quiet, f"no promtool test where {name} stays quiet"

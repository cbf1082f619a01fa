"""A small parser for the Prometheus text exposition format (version 0.0.4).

Only what the load harness needs: samples with their labels and values, the
``# TYPE`` of each family, and a few sums over the families phalanx exports.
Standard library only.
"""

import math
import re

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class ParseError(ValueError):
    pass


def _parse_labels(text, pos, line):
    """Parses '{a="b",c="d"}' starting at text[pos] == '{'; returns (labels, next pos)."""
    labels = {}
    pos += 1
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == "}":
            return labels, pos + 1
        m = _NAME.match(text, pos)
        if not m:
            raise ParseError(f"bad label name in {line!r}")
        name = m.group(0)
        pos = m.end()
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n or text[pos] != "=":
            raise ParseError(f"expected '=' in {line!r}")
        pos += 1
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n or text[pos] != '"':
            raise ParseError(f"expected '\"' in {line!r}")
        pos += 1
        out = []
        while True:
            if pos >= n:
                raise ParseError(f"unterminated label value in {line!r}")
            c = text[pos]
            if c == "\\" and pos + 1 < n:
                out.append(_ESCAPES.get(text[pos + 1], "\\" + text[pos + 1]))
                pos += 2
                continue
            if c == '"':
                pos += 1
                break
            out.append(c)
            pos += 1
        labels[name] = "".join(out)
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == ",":
            pos += 1
        elif pos < n and text[pos] == "}":
            return labels, pos + 1
        else:
            raise ParseError(f"expected ',' or '}}' in {line!r}")


def _parse_value(s):
    s = s.strip()
    low = s.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low == "nan":
        return math.nan
    return float(s)


def parse(text):
    """Parses exposition text into a list of (name, labels dict, value float).

    Comments other than TYPE are ignored; timestamps after the value are dropped.
    A malformed line raises ParseError naming it."""
    samples = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if not m:
            raise ParseError(f"bad metric name in {raw!r}")
        name = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, raw)
        rest = line[pos:].split()
        if not rest:
            raise ParseError(f"no value in {raw!r}")
        try:
            value = _parse_value(rest[0])
        except ValueError:
            raise ParseError(f"bad value in {raw!r}") from None
        samples.append((name, labels, value))
    return samples


def types(text):
    """{family: type} from the '# TYPE name type' lines."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            out[parts[2]] = parts[3]
    return out


def family_sum(samples, name, **match):
    """Sum of the samples of one family whose labels include every match item;
    None when the family has no such sample."""
    total = None
    for n, labels, value in samples:
        if n != name:
            continue
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        total = (total or 0.0) + value
    return total


# The handful of series the monitor keeps per sample: key -> (family, label match).
# Family sums are over every label (e.g. every limit, every upstream).
SUMMARY_SERIES = {
    "phalanx_requests_total": ("phalanx_requests_total", {}),
    "phalanx_connections_open": ("phalanx_connections_open", {}),
    "phalanx_connections_accepted_total": ("phalanx_connections_accepted_total", {}),
    "phalanx_bytes_sent_total": ("phalanx_bytes_sent_total", {}),
    "phalanx_responses_total": ("phalanx_responses_total", {}),
    'phalanx_responses_total{code="2xx"}': ("phalanx_responses_total", {"code": "2xx"}),
    'phalanx_responses_total{code="3xx"}': ("phalanx_responses_total", {"code": "3xx"}),
    'phalanx_responses_total{code="4xx"}': ("phalanx_responses_total", {"code": "4xx"}),
    'phalanx_responses_total{code="5xx"}': ("phalanx_responses_total", {"code": "5xx"}),
    "phalanx_worker_restarts_total": ("phalanx_worker_restarts_total", {}),
    "phalanx_reloads_total": ("phalanx_reloads_total", {}),
    "phalanx_worker_rss_bytes": ("phalanx_worker_rss_bytes", {}),
    "phalanx_worker_cpu_seconds_total": ("phalanx_worker_cpu_seconds_total", {}),
    'phalanx_rate_limit_requests_total{result="limited"}':
        ("phalanx_rate_limit_requests_total", {"result": "limited"}),
    "phalanx_upstream_requests_total": ("phalanx_upstream_requests_total", {}),
    "phalanx_upstream_failures_total": ("phalanx_upstream_failures_total", {}),
    "phalanx_upstream_breaker_refusals_total": ("phalanx_upstream_breaker_refusals_total", {}),
    "phalanx_upstream_retries_total": ("phalanx_upstream_retries_total", {}),
    'phalanx_workers{state="ready"}': ("phalanx_workers", {"state": "ready"}),
}


def summarize(text):
    """The SUMMARY_SERIES present in an exposition, as {key: number}. Integral
    values come back as int."""
    samples = parse(text)
    out = {}
    for key, (family, match) in SUMMARY_SERIES.items():
        v = family_sum(samples, family, **match)
        if v is None or math.isnan(v) or math.isinf(v):
            continue
        out[key] = int(v) if float(v).is_integer() else v
    return out

"""PNG plots of the load-scenario report (matplotlib, Agg backend).

Per scenario:
  plots/<scenario>-traffic.png   requests/s, latency p50/p95/p99 and errors/429s
                                 per second, stacked, phases shaded
  plots/<scenario>-workers.png   CPU % and RSS of the master and each worker
                                 (when the monitor saw them: local runs)
  plots/<scenario>-host.png      host CPU % and memory % (when it did not:
                                 --target runs, no control socket)
"""

import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PHASE_COLORS = ("#dde8f5", "#f5eedd")
WORKER_KEY = re.compile(r"^worker(\d+)$")
DPI = 100


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "scenario"


def _shade_phases(axes, phases, t0):
    for i, ph in enumerate(phases):
        start, end = ph.get("start"), ph.get("end")
        if start is None or end is None:
            continue
        for ax in axes:
            ax.axvspan(start - t0, end - t0, color=PHASE_COLORS[i % 2], alpha=0.8, zorder=0,
                       lw=0)
        top = axes[0]
        top.text((start + end) / 2 - t0, 1.0, str(ph.get("name", "")), transform=top.get_xaxis_transform(),
                 ha="center", va="bottom", fontsize=8, clip_on=False)


def _mark_events(axes, events, t0, t1):
    for ev in events or []:
        t = ev.get("t")
        if t is None or t < t0 or t > t1:
            continue
        for ax in axes:
            ax.axvline(t - t0, color="#888888", ls="--", lw=0.8, zorder=1)
        axes[-1].text(t - t0, 0.98, " " + str(ev.get("label", "")), rotation=90,
                      transform=axes[-1].get_xaxis_transform(), fontsize=7, va="top",
                      color="#555555")


def _window(scenario):
    phases = scenario.get("phases") or []
    timeline = scenario.get("timeline") or []
    t0 = scenario.get("started_at")
    if t0 is None:
        cands = [p["start"] for p in phases if p.get("start") is not None] + \
                [x["t"] for x in timeline if x.get("t") is not None]
        t0 = min(cands) if cands else 0.0
    t1 = scenario.get("ended_at")
    if t1 is None:
        cands = [p["end"] for p in phases if p.get("end") is not None] + \
                [x["t"] for x in timeline if x.get("t") is not None]
        t1 = max(cands) if cands else t0
    return t0, t1


def _nums(values):
    return [float("nan") if v is None else v for v in values]


def _legend(ax):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.8)


def _finish(fig, axes, scenario, events, t0, t1, title, path, *, xmax, ylim=(0, None)):
    """What every figure ends with: grids and legends, the time axis, the phases
    shaded, the events marked, the title; then the PNG written and the figure freed."""
    for ax in axes:
        ax.set_ylim(*ylim)
        ax.grid(True, alpha=0.3)
        _legend(ax)
    axes[0].set_xlim(0, xmax)
    _shade_phases(axes, scenario.get("phases") or [], t0)
    _mark_events(axes, events, t0, t1)
    fig.suptitle(f"{scenario.get('name')}: {title}", y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_traffic(path, scenario, events=None):
    """requests/s, latency percentiles, errors and 429s per second over time."""
    timeline = sorted((x for x in scenario.get("timeline") or [] if x.get("t") is not None),
                      key=lambda x: x["t"])
    t0, t1 = _window(scenario)
    fig, axes = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    ts, rps, errs, limited = [], [], [], []
    prev_t = None
    for x in timeline:
        dt = x["t"] - prev_t if prev_t is not None and x["t"] > prev_t else 1.0
        prev_t = x["t"]
        ts.append(x["t"] - t0)
        rps.append((x.get("requests") or 0) / dt)
        errs.append((x.get("errors") or 0) / dt)
        limited.append((x.get("rate_limited") or 0) / dt)
    ax_rps, ax_lat, ax_err = axes
    ax_rps.plot(ts, rps, color="#1f77b4", lw=1.4, label="requests/s")
    ax_rps.set_ylabel("throughput (requests/s)")
    for key, color in (("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")):
        ax_lat.plot(ts, _nums(x.get(key) for x in timeline), color=color, lw=1.2,
                    label=key.replace("_ms", ""))
    ax_lat.set_ylabel("latency (ms)")
    ax_err.plot(ts, errs, color="#d62728", lw=1.2, label="errors/s")
    ax_err.plot(ts, limited, color="#9467bd", lw=1.2, label="429/s (rate limited)")
    ax_err.set_ylabel("errors and 429s (per s)")
    ax_err.set_xlabel("time since scenario start (s)")
    if not timeline:
        ax_rps.text(0.5, 0.5, "no per-second data", transform=ax_rps.transAxes, ha="center")
    _finish(fig, list(axes), scenario, events, t0, t1, "throughput, latency and errors over time",
            path, xmax=max(t1 - t0, ts[-1] if ts else 0, 1))


def _series(samples, key, field, t0):
    ts, vs = [], []
    for s in samples:
        p = (s.get("processes") or {}).get(key)
        ts.append(s["t"] - t0)
        vs.append(None if p is None else p.get(field))
    return ts, vs


def process_keys(samples):
    """master, worker0..N (by slot), in that order, of the samples given."""
    keys = set()
    for s in samples:
        keys.update((s.get("processes") or {}).keys())
    workers = sorted((k for k in keys if WORKER_KEY.match(k)),
                     key=lambda k: int(WORKER_KEY.match(k).group(1)))
    return (["master"] if "master" in keys else []) + workers


def plot_workers(path, scenario, samples, events=None):
    """CPU % (100 = one core) and RSS (MiB) of the master and each worker."""
    t0, t1 = _window(scenario)
    keys = process_keys(samples)
    fig, (ax_cpu, ax_rss) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key in keys:
        style = dict(lw=1.2, ls="--") if key == "master" else dict(lw=1.2)
        ts, cpu = _series(samples, key, "cpu_pct", t0)
        ax_cpu.plot(ts, _nums(cpu), label=key, **style)
        ts, rss = _series(samples, key, "rss_bytes", t0)
        ax_rss.plot(ts, [float("nan") if v is None else v / 2**20 for v in rss], label=key, **style)
    ax_cpu.set_ylabel("CPU (% of one core)")
    ax_rss.set_ylabel("RSS (MiB)")
    ax_rss.set_xlabel("time since scenario start (s)")
    _finish(fig, [ax_cpu, ax_rss], scenario, events, t0, t1,
            "CPU and memory per phalanx process", path, xmax=max(t1 - t0, 1))


def plot_host(path, scenario, samples, events=None):
    """Host CPU % (100 = every core) and memory % over time."""
    t0, t1 = _window(scenario)
    fig, (ax_cpu, ax_mem) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ts = [s["t"] - t0 for s in samples]
    ax_cpu.plot(ts, _nums((s.get("host") or {}).get("cpu_pct") for s in samples),
                color="#1f77b4", label="host CPU")
    ax_mem.plot(ts, _nums((s.get("host") or {}).get("mem_pct") for s in samples),
                color="#8c564b", label="host memory")
    ax_cpu.set_ylabel("CPU (% of all cores)")
    ax_mem.set_ylabel("memory used (%)")
    ax_mem.set_xlabel("time since scenario start (s)")
    _finish(fig, [ax_cpu, ax_mem], scenario, events, t0, t1, "host CPU and memory", path,
            xmax=max(t1 - t0, 1), ylim=(0, 105))


def plot_scenario(out_dir, scenario, samples, events=None):
    """Writes the scenario's figures under out_dir/plots; returns their paths
    relative to out_dir. Skipped scenarios get none."""
    if scenario.get("skipped"):
        return []
    plot_dir = os.path.join(out_dir, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    stem = safe_name(scenario.get("name"))
    made = []
    rel = f"plots/{stem}-traffic.png"
    plot_traffic(os.path.join(out_dir, rel), scenario, events)
    made.append(rel)
    if samples:
        if process_keys(samples):
            rel = f"plots/{stem}-workers.png"
            plot_workers(os.path.join(out_dir, rel), scenario, samples, events)
        else:
            rel = f"plots/{stem}-host.png"
            plot_host(os.path.join(out_dir, rel), scenario, samples, events)
        made.append(rel)
    return made

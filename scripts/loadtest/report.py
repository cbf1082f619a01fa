"""STAND-IN for the report writer (written in another worktree; replaced at
merge). Same interface: write_report(out_dir, results, monitor_data, *, options)
writes report.json, report.md and plots/*.png and returns the report dict."""

import json
import os


def write_report(out_dir, results, monitor_data, *, options):
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    report = {"options": options, "scenarios": results, "monitor": monitor_data,
              "passed": all(r["passed"] for r in results if not r["skipped"])}
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    lines = ["# Load test report", "", "| scenario | result | failed checks |", "|---|---|---|"]
    for r in results:
        state = "skipped: " + r["skipped"] if r["skipped"] else ("PASS" if r["passed"] else "FAIL")
        failed = ", ".join(f"{c['name']} {c['value']} (want {c['op']} {c['limit']})"
                           for c in r["checks"] if not c["passed"])
        lines.append(f"| {r['name']} | {state} | {failed} |")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        for r in results:
            if not r["timeline"]:
                continue
            t0 = r["timeline"][0]["t"]
            fig, ax = plt.subplots(figsize=(6, 3))
            ax.plot([e["t"] - t0 for e in r["timeline"]], [e["requests"] for e in r["timeline"]])
            ax.set_title(r["name"])
            ax.set_xlabel("s")
            ax.set_ylabel("requests/s")
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, "plots", f"{r['name']}.png"))
            plt.close(fig)
    except ImportError:
        pass
    return report

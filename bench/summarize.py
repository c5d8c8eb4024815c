#!/usr/bin/env python3
"""Summarizes bench/results/*.json (written by `clearnode loadgen`) into
summary.md, with each run's committed tx/s as a ratio of kvstore's, and
draws load-sweep.svg (committed throughput and p99 latency against offered
load) when sweep-*.json exist. Standard library only."""

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def machine():
    cpu = platform.processor() or "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = 0
    try:
        with open("/proc/meminfo") as f:
            memory_gb = int(f.readline().split()[1]) // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}), {memory_gb} GB RAM"


def commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(results):
    kvstore = load(results, "kvstore.json")
    rows = [("kvstore", kvstore), ("single", load(results, "single.json")),
            ("localnet", load(results, "localnet.json"))]
    lines = [
        "| run | nodes | lanes | B/tx | committed tx/s | ratio to kvstore | position updates/s | p50 ms | p99 ms | p99 blocks | ms/block |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in rows:
        if run is None:
            continue
        ratio = "-"
        if kvstore and kvstore["committed_tx_per_s"] > 0:
            ratio = f'{run["committed_tx_per_s"] / kvstore["committed_tx_per_s"]:.2f}'
        updates = "-" if run["target"] == "kvstore" else f'{run["committed_position_updates_per_s"]:,.0f}'
        lines.append(
            f'| {run["label"] or name} | {run["nodes"]} | {run["lanes"]} | {run["tx_bytes"]:,} | '
            f'{run["committed_tx_per_s"]:.1f} | {ratio} | {updates} | {run["latency"]["p50_ms"]:.0f} | '
            f'{run["latency"]["p99_ms"]:.0f} | {run["latency"]["p99_blocks"]:.2f} | {run["mean_block_interval_ms"]:.0f} |'
        )
    return "\n".join(lines)


def sweep(results):
    runs = []
    for name in os.listdir(results):
        if name.startswith("sweep-") and name.endswith(".json"):
            run = load(results, name)
            runs.append(run)
    runs.sort(key=lambda r: r["submitted_txs"])
    return runs


def svg(runs, path):
    """Offered tx/s (submitted / duration) on x; committed tx/s and p99 latency on two y axes."""
    width, height, left, right, top, bottom = 640, 360, 70, 70, 30, 50
    xs = [r["submitted_txs"] / r["duration_s"] for r in runs]
    throughput = [r["committed_tx_per_s"] for r in runs]
    p99 = [r["latency"]["p99_ms"] for r in runs]
    x_max = max(xs + [1]) * 1.1
    t_max = max(throughput + [1]) * 1.1
    l_max = max(p99 + [1]) * 1.1

    def px(x):
        return left + (width - left - right) * x / x_max

    def py(y, y_max):
        return height - bottom - (height - top - bottom) * y / y_max

    def polyline(values, y_max, colour):
        points = " ".join(f"{px(x):.1f},{py(y, y_max):.1f}" for x, y in zip(xs, values))
        dots = "".join(f'<circle cx="{px(x):.1f}" cy="{py(y, y_max):.1f}" r="3" fill="{colour}"/>'
                       for x, y in zip(xs, values))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>{dots}'

    ticks = []
    for i in range(6):
        fraction = i / 5
        ticks.append(f'<text x="{px(x_max * fraction):.1f}" y="{height - bottom + 18}" font-size="11" text-anchor="middle">{x_max * fraction:.0f}</text>')
        ticks.append(f'<text x="{left - 6}" y="{py(t_max * fraction, t_max) + 4:.1f}" font-size="11" text-anchor="end" fill="#1f77b4">{t_max * fraction:.0f}</text>')
        ticks.append(f'<text x="{width - right + 6}" y="{py(l_max * fraction, l_max) + 4:.1f}" font-size="11" fill="#d62728">{l_max * fraction:.0f}</text>')
        ticks.append(f'<line x1="{left}" x2="{width - right}" y1="{py(t_max * fraction, t_max):.1f}" y2="{py(t_max * fraction, t_max):.1f}" stroke="#eee"/>')
    body = "".join(ticks)
    text = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{width / 2}" y="18" font-size="13" text-anchor="middle">clearnode, single validator: committed tx/s and p99 latency against offered load</text>
{body}
<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>
<line x1="{width - right}" y1="{top}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>
{polyline(throughput, t_max, "#1f77b4")}
{polyline(p99, l_max, "#d62728")}
<text x="{width / 2}" y="{height - 12}" font-size="12" text-anchor="middle">offered load (submitted tx/s)</text>
<text x="16" y="{height / 2}" font-size="12" fill="#1f77b4" transform="rotate(-90 16 {height / 2})" text-anchor="middle">committed tx/s</text>
<text x="{width - 14}" y="{height / 2}" font-size="12" fill="#d62728" transform="rotate(90 {width - 14} {height / 2})" text-anchor="middle">p99 submit-to-commit, ms</text>
</svg>
"""
    with open(path, "w") as f:
        f.write(text)


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    lines = [
        "# Side by side: clearnode and CometBFT's kvstore",
        "",
        f"- summarized: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit()}",
        f"- machine: {machine()}",
        "",
        table(results),
    ]
    runs = sweep(results)
    if runs:
        svg(runs, os.path.join(results, "load-sweep.svg"))
        lines += ["", "## Load sweep (single validator)", "",
                  "| offered tx/s | committed tx/s | position updates/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
        for r in runs:
            lines.append(f'| {r["submitted_txs"] / r["duration_s"]:.1f} | {r["committed_tx_per_s"]:.1f} | '
                         f'{r["committed_position_updates_per_s"]:,.0f} | {r["latency"]["p50_ms"]:.0f} | {r["latency"]["p99_ms"]:.0f} |')
        lines += ["", "![load sweep](load-sweep.svg)"]
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

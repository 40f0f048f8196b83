#!/usr/bin/env python3
"""Figures from lcsm-bench's JSON lines.

  /usr/bin/python3 bench/plot.py RUN.jsonl [MORE.jsonl[.gz] ...] [--out DIR]

Needs matplotlib (Debian: apt-get install python3-matplotlib). Writes PNGs to DIR
(default: next to the first file):

  latency_<model>_B<b>_L<L>.png  per-token latency vs position, one line per
                                 runner and algorithm (cells run with --latencies):
                                 flash stays flat in L, lazy and eager grow linearly
  time_vs_L_<model>_B<b>.png     generation time vs L on log-log axes, with the
                                 O(L^2) and O(L log^2 L) slopes drawn for reference
  compare_<model>_B<b>.png       ms per token for every runner (backends, peers) and
                                 algorithm, one group of bars per L

A "runner" is lcsm on a backend (lcsm cpu, lcsm opencl; with its weight type
when not f32, and "tiled" for a model loaded with --modal-tiled) or a peer
(torch:cuda); when the files come from several machines the host is added to
its name. Prefill cells (kind "prefill") are not drawn.
"""
import argparse
import gzip
import json
import math
import os
import sys
from collections import defaultdict

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError:
    sys.exit("plot.py needs matplotlib: apt-get install python3-matplotlib (or pip install matplotlib)")

ALGO_ORDER = ["recompute", "lazy", "eager", "flash", "modal"]
ALGO_STYLE = {"recompute": ":", "lazy": "--", "eager": "-.", "flash": "-", "modal": "-"}


def load(paths):
    cells = []
    for p in paths:
        with (gzip.open(p, "rt") if p.endswith(".gz") else open(p)) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    o = json.loads(line)
                except ValueError:
                    print(f"{p}:{n}: not JSON, skipped", file=sys.stderr)
                    continue
                if o.get("kind") == "cell" and o.get("status") == "ok":
                    cells.append(o)
    return cells


def runner(o, several_hosts):
    name = f"lcsm {o['backend']}" if o["impl"] == "lcsm" else o["backend"]
    if o.get("weights", "f32") != "f32":
        name += f" {o['weights']}"
    if o["impl"] == "lcsm" and o.get("modal_tiled"):
        name += " tiled"
    return f"{name} @{o['machine']['host']}" if several_hosts else name


def algo_key(a):
    return ALGO_ORDER.index(a) if a in ALGO_ORDER else len(ALGO_ORDER)


def safe(s):
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(s))


def save(fig, path):
    """Writes a finished figure to path (PNG) and frees it; returns path."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_latencies(cells, several, out):
    groups = defaultdict(list)
    for o in cells:
        if o.get("latencies_ms"):
            groups[(o["model"]["name"], o["batch"], o["L"])].append(o)
    files = []
    for (model, b, L), group in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(9, 5))
        for i, o in enumerate(sorted(group, key=lambda o: (runner(o, several), algo_key(o["algo"])))):
            lat = o["latencies_ms"]
            pos = list(range(o["prompt"], o["prompt"] + len(lat)))
            color = f"C{i % 10}"
            label = f"{runner(o, several)} {o['algo']} (p50 {o['lat_ms']['p50']:.3g} ms)"
            if len(lat) < 2000:
                ax.plot(pos, lat, ALGO_STYLE.get(o["algo"], "-"), color=color, lw=0.6, alpha=0.85, label=label)
                continue
            # Long runs: every step faintly, and a running median (1% of the run) to show the trend
            # through the noise of other processes and flash's periodic big tiles.
            if len(lat) > 200000:
                # a million steps: each of 1000 blocks' maximum and median (a running median's windows
                # would not fit in memory), and the bound of 4x the run's median
                w = len(lat) // 1000
                blocks = np.asarray(lat[: w * 1000]).reshape(1000, w)
                mid = np.asarray(pos[: w * 1000]).reshape(1000, w)[:, w // 2]
                ax.plot(mid, blocks.max(axis=1), "-", color=color, lw=0.5, alpha=0.5,
                        label=f"maximum of {w} steps")
                ax.plot(mid, np.median(blocks, axis=1), ALGO_STYLE.get(o["algo"], "-"), color=color, lw=1.6,
                        label=label + f", median of {w} steps")
                ax.axhline(4 * o["lat_ms"]["p50"], color=color, ls=":", lw=1, label="4x the median")
                continue
            ax.plot(pos, lat, "-", color=color, lw=0.3, alpha=0.25)
            w = max(5, len(lat) // 100) | 1
            med = np.median(np.lib.stride_tricks.sliding_window_view(np.asarray(lat), w), axis=1)
            ax.plot(pos[w // 2: w // 2 + len(med)], med, ALGO_STYLE.get(o["algo"], "-"), color=color, lw=1.6,
                    label=label + ", running median")
        ax.set_yscale("log")
        ax.set_xlabel("position of the token fed")
        ax.set_ylabel("step time, ms (log)")
        ax.set_title(f"Per-token latency, {model}, batch {b}, L = {L}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        f = os.path.join(out, f"latency_{safe(model)}_B{b}_L{L}.png")
        files.append(save(fig, f))
    return files


def plot_time_vs_L(cells, several, out):
    groups = defaultdict(lambda: defaultdict(list))
    for o in cells:
        groups[(o["model"]["name"], o["batch"])][(runner(o, several), o["algo"])].append((o["L"], o["gen_s"]))
    files = []
    for (model, b), series in sorted(groups.items()):
        if max(len(v) for v in series.values()) < 2:
            continue  # one length: nothing to draw a slope through
        fig, ax = plt.subplots(figsize=(8, 5.5))
        all_L, all_t = [], []
        for (name, algo), pts in sorted(series.items(), key=lambda kv: (kv[0][0], algo_key(kv[0][1]))):
            pts.sort()
            Ls, ts = [p[0] for p in pts], [p[1] for p in pts]
            all_L += Ls
            all_t += ts
            ax.plot(Ls, ts, ALGO_STYLE.get(algo, "-"), marker="o", ms=4, label=f"{name} {algo}")
        # Reference slopes: O(L^2) through the first point of a quadratic algorithm, O(L log^2 L)
        # through flash's first point (else through the geometric middle of the shortest length).
        L0, L1 = min(all_L), max(all_L)
        t_mid = math.exp(sum(math.log(t) for L, t in zip(all_L, all_t) if L == L0) / all_L.count(L0))

        def first_point(algos):
            for (name, algo), pts in sorted(series.items()):
                if algo in algos:
                    return min(pts)
            return (L0, t_mid)

        xs = [L0 * (L1 / L0) ** (i / 20) for i in range(21)]
        qa, qt = first_point(("lazy", "eager", "recompute"))
        ax.plot(xs, [qt * (x / qa) ** 2 for x in xs], color="gray", lw=1, ls=(0, (1, 3)), label="O(L^2)")
        lg = lambda x: x * math.log2(x) ** 2
        fa, ft = first_point(("flash",))
        ax.plot(xs, [ft * lg(x) / lg(fa) for x in xs], color="black", lw=1, ls=(0, (5, 3)), label="O(L log^2 L)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("L (prompt + generated tokens)")
        ax.set_ylabel("generation time, s (prefill excluded)")
        ax.set_title(f"Generation time vs length, {model}, batch {b}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        f = os.path.join(out, f"time_vs_L_{safe(model)}_B{b}.png")
        files.append(save(fig, f))
    return files


def plot_compare(cells, several, out):
    groups = defaultdict(dict)
    for o in cells:
        groups[(o["model"]["name"], o["batch"])][(o["L"], runner(o, several), o["algo"])] = o["ms_per_tok"]
    files = []
    for (model, b), vals in sorted(groups.items()):
        Ls = sorted({k[0] for k in vals})
        bars = sorted({(k[1], k[2]) for k in vals}, key=lambda r: (r[0], algo_key(r[1])))
        width = 0.8 / len(bars)
        fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(Ls) * max(1, len(bars) / 4)), 5))
        for i, (name, algo) in enumerate(bars):
            xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(Ls))]
            ys = [vals.get((L, name, algo), float("nan")) for L in Ls]
            ax.bar(xs, ys, width, label=f"{name} {algo}", hatch="//" if not name.startswith("lcsm") else None)
        ax.set_xticks(range(len(Ls)))
        ax.set_xticklabels([f"L={L}" for L in Ls])
        ax.set_yscale("log")
        ax.set_ylabel("ms per generated token (log)")
        ax.set_title(f"Backends and peers, {model}, batch {b} (lower is better; hatched: peers)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        f = os.path.join(out, f"compare_{safe(model)}_B{b}.png")
        files.append(save(fig, f))
    return files


def main():
    ap = argparse.ArgumentParser(description="PNG figures from lcsm-bench JSON lines")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", help="output directory (default: that of the first file)")
    a = ap.parse_args()
    cells = load(a.files)
    if not cells:
        sys.exit("plot.py: no measured cells in " + ", ".join(a.files))
    out = a.out or os.path.dirname(os.path.abspath(a.files[0]))
    os.makedirs(out, exist_ok=True)
    several = len({o["machine"]["host"] for o in cells}) > 1
    files = plot_latencies(cells, several, out) + plot_time_vs_L(cells, several, out) + plot_compare(cells, several, out)
    for f in files:
        print(f)
    if not any("latency_" in os.path.basename(f) for f in files):
        print("(no per-position latencies: run lcsm-bench with --latencies for the latency figure)", file=sys.stderr)


if __name__ == "__main__":
    main()

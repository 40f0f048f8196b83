#!/usr/bin/env python3
"""Runs lcsm-bench on a grid and checks what it wrote (the bench_tiny_grid tests).

  check_bench_json.py --bench EXE --json OUT [--needs-backend NAME] -- BENCH-ARGS...

Checks: the bench exits 0; every line of the JSON file is an object; every cell
of the grid (models x batches x lens x algos x backends, read from BENCH-ARGS)
is there exactly once, ran, and has positive, consistent numbers (times,
latency percentiles in order, one step time per generated token with
--latencies, a mixer / rest split on the CPU); each (model, batch, length,
backend) has a flash-vs-lazy ratio; and at temperature 0 every algorithm
sampled the same tokens (the bench doubles as an exactness check).
Exit 77 (skip) when --needs-backend names a backend every cell of which failed
with "no such backend" (not built in, or no device).
"""
import argparse
import json
import math
import subprocess
import sys


def grid_from_args(args):
    """The grid lcsm-bench will run, from its command line (the options the test uses)."""
    opts = {"--models": "256x8", "--lens": "1024,4096", "--batches": "1",
            "--algos": "lazy,eager,flash,recompute", "--backends": "cpu", "--prompt": "16", "--temp": "0"}
    flags = set()
    i = 0
    while i < len(args):
        if args[i] in opts:
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            flags.add(args[i])
            i += 1
    split = lambda k: opts[k].split(",")
    return {
        "models": split("--models"), "lens": [int(x) for x in split("--lens")],
        "batches": [int(x) for x in split("--batches")], "algos": split("--algos"),
        "backends": split("--backends"), "prompt": int(opts["--prompt"]),
        "greedy": float(opts["--temp"]) == 0, "latencies": "--latencies" in flags,
    }


class Checker:
    def __init__(self):
        self.errors = []

    def expect(self, cond, what):
        if not cond:
            self.errors.append(what)
        return cond


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--needs-backend")
    ap.add_argument("bench_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    bench_args = a.bench_args[1:] if a.bench_args[:1] == ["--"] else a.bench_args
    grid = grid_from_args(bench_args)

    run = subprocess.run([a.bench, *bench_args, "--json", a.json], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    print(run.stdout)
    if run.returncode != 0:
        print(f"FAIL: lcsm-bench exited with {run.returncode}")
        return 1

    c = Checker()
    cells, ratios = {}, []
    with open(a.json) as f:
        for n, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except ValueError as e:
                c.expect(False, f"line {n}: not JSON ({e})")
                continue
            if not c.expect(isinstance(o, dict) and o.get("kind") in ("cell", "ratio"), f"line {n}: not a cell or ratio"):
                continue
            for key in ("tool", "commit", "machine", "model", "batch", "L", "prompt"):
                c.expect(key in o, f"line {n}: no '{key}'")
            if o["kind"] == "ratio":
                ratios.append(o)
                continue
            key = (o["model"]["name"], o["batch"], o["L"], o["backend"], o["algo"])
            c.expect(key not in cells, f"cell {key} appears twice")
            cells[key] = o

    if a.needs_backend:
        mine = [o for k, o in cells.items() if k[3] == a.needs_backend]
        if mine and all(o["status"] == "failed" and "no such backend" in o.get("reason", "") for o in mine):
            print(f"SKIP: no {a.needs_backend} backend here ({mine[0]['reason']})")
            return 77

    expected = [(m, b, L, be, al) for m in grid["models"] for b in grid["batches"] for L in grid["lens"]
                for be in grid["backends"] for al in grid["algos"]]
    c.expect(len(cells) == len(expected), f"{len(cells)} cells in the JSON, {len(expected)} expected")
    for key in expected:
        o = cells.get(key)
        if not c.expect(o is not None, f"cell {key} missing"):
            continue
        if not c.expect(o["status"] == "ok", f"cell {key}: {o['status']} ({o.get('reason')})"):
            continue
        m, b, L, be, al = key
        steps = L - grid["prompt"]
        c.expect(o["steps"] == steps, f"{key}: steps {o['steps']} != {steps}")
        for f in ("total_s", "prefill_s", "gen_s", "ms_per_tok", "tok_s", "setup_s", "host_peak_mib"):
            c.expect(positive(o.get(f)), f"{key}: {f} = {o.get(f)} is not positive")
        c.expect(abs(o["total_s"] - o["prefill_s"] - o["gen_s"]) <= 1e-9 + 1e-6 * o["total_s"],
                 f"{key}: total != prefill + gen")
        c.expect(abs(o["tok_s"] - b * steps / o["total_s"]) <= 1e-6 * o["tok_s"], f"{key}: tok_s != B*n/total")
        lat = o.get("lat_ms", {})
        c.expect(positive(lat.get("p50")) and lat["p50"] <= lat["p99"] <= lat["max"],
                 f"{key}: latency percentiles out of order: {lat}")
        c.expect(0 <= lat.get("spike_frac", -1) <= 1, f"{key}: spike_frac {lat.get('spike_frac')}")
        if grid["latencies"]:
            arr = o.get("latencies_ms")
            if c.expect(isinstance(arr, list) and len(arr) == steps, f"{key}: latencies_ms has not {steps} values"):
                c.expect(all(positive(x) for x in arr), f"{key}: a step time is not positive")
                c.expect(abs(max(arr) - lat["max"]) <= 1e-3 + 1e-3 * lat["max"], f"{key}: max != max of latencies")
        if al != "recompute" and be == "cpu":
            c.expect(o.get("split") == "host" and positive(o.get("mixer_s")) and positive(o.get("dense_s")),
                     f"{key}: no mixer / rest split")
        if o["impl"] == "lcsm":
            su = o.get("startup", {})
            c.expect(positive(su.get("backend_s")) and positive(su.get("model_s")), f"{key}: start-up {su}")
            c.expect(o.get("device_peak_mib", -1) >= 0, f"{key}: device_peak_mib")
            c.expect(isinstance(o.get("tokens_hash"), str), f"{key}: no tokens_hash")

    # Same greedy tokens from every algorithm of a (model, batch, length, backend).
    if grid["greedy"]:
        for m in grid["models"]:
            for b in grid["batches"]:
                for L in grid["lens"]:
                    for be in grid["backends"]:
                        hashes = {al: cells[(m, b, L, be, al)].get("tokens_hash") for al in grid["algos"]
                                  if cells.get((m, b, L, be, al), {}).get("status") == "ok"}
                        c.expect(len(set(hashes.values())) <= 1,
                                 f"greedy tokens differ for {m} B={b} L={L} {be}: {hashes}")

    if "flash" in grid["algos"] and "lazy" in grid["algos"]:
        for m in grid["models"]:
            for b in grid["batches"]:
                for L in grid["lens"]:
                    for be in grid["backends"]:
                        r = [x for x in ratios if x["model"]["name"] == m and x["batch"] == b and x["L"] == L and
                             x["a"] == f"lcsm {be} flash" and x["b"] == f"lcsm {be} lazy" and x["what"] == "gen"]
                        c.expect(len(r) == 1 and positive(r[0]["speedup"]), f"no flash/lazy ratio for {m} {b} {L} {be}")

    for e in c.errors:
        print("FAIL:", e)
    if c.errors:
        return 1
    print(f"OK: {len(cells)} cells and {len(ratios)} ratios checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Runs lcsm-bench on a grid and checks what it wrote (the bench_tiny_grid tests).

  check_bench_json.py --bench EXE --json OUT [--needs-backend NAME] -- BENCH-ARGS...

Checks: the bench exits 0; every line of the JSON file is an object; every cell
of the grid (models x batches x lens x algos x weights x backends, read from
BENCH-ARGS) is there exactly once, ran, and has positive, consistent numbers
(times, latency percentiles in order, one step time per generated token with
--latencies, a mixer / rest split on the CPU), its weight type, family and
modal_tiled; each (model, batch, length, backend, weights) has a flash-vs-lazy
ratio and a modal-vs-flash ratio when those ran, each narrow weight type an
"x vs f32" ratio per algorithm; and at temperature 0 every algorithm sampled
the same tokens (the bench doubles as an exactness check). With
--prefill-lens: every prefill cell (models x batches x P x session algos x
weights x chunks x backends) with consistent prefill tokens/s, peak memory per
prompt token and call count, the same greedy next token for every chunking and
algorithm, and its weights and chunk ratios.
Exit 77 (skip) when --needs-backend names a backend every cell of which failed
with "no such backend" (not built in, or no device).
"""
import argparse
import json
import math
import subprocess
import sys


STRIPED = ("stripedhyena", "evo2")
PRESETS = {"evo2-1b": "evo2", "sh-7b": "stripedhyena"}


def grid_from_args(args):
    """The grid lcsm-bench will run, from its command line (the options the test uses)."""
    opts = {"--models": "256x8", "--lens": None, "--batches": "1", "--arch": "hyenadna",
            "--algos": "lazy,eager,flash,recompute", "--backends": "cpu", "--prompt": "16", "--temp": "0",
            "--weights": "f32", "--prefill-lens": None, "--prefill-chunk": "0"}
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
    models = {}  # the bench's label -> family
    for m in split("--models"):
        if m in PRESETS:
            models[m] = PRESETS[m]
        elif ":" in m:
            models[m] = m.split(":")[0]
        elif opts["--arch"] != "hyenadna":
            models[f"{opts['--arch']}:{m}"] = opts["--arch"]
        else:
            models[m] = "hyenadna"
    if opts["--lens"] is not None:
        lens = [int(x) for x in split("--lens")]
    else:
        lens = [] if opts["--prefill-lens"] is not None else [1024, 4096]
    weights = split("--weights")
    weights = (["f32"] if "f32" in weights else []) + [w for w in weights if w != "f32"]
    return {
        "models": models, "lens": lens,
        "batches": [int(x) for x in split("--batches")], "algos": split("--algos"),
        "backends": split("--backends"), "prompt": int(opts["--prompt"]), "weights": weights,
        "greedy": float(opts["--temp"]) == 0, "latencies": "--latencies" in flags,
        "modal_tiled": "--modal-tiled" in flags,
        "prefill_lens": [int(x) for x in opts["--prefill-lens"].split(",")] if opts["--prefill-lens"] else [],
        "chunks": sorted(int(x) for x in split("--prefill-chunk")),
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
    cells, prefills, ratios = {}, {}, []
    with open(a.json) as f:
        for n, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except ValueError as e:
                c.expect(False, f"line {n}: not JSON ({e})")
                continue
            if not c.expect(isinstance(o, dict) and o.get("kind") in ("cell", "ratio", "prefill"),
                            f"line {n}: not a cell, prefill cell or ratio"):
                continue
            for key in ("tool", "commit", "machine", "model", "mode", "batch", "L", "prompt"):
                c.expect(key in o, f"line {n}: no '{key}'")
            if o["kind"] == "ratio":
                c.expect(o.get("a_weights") in grid["weights"] + ["f32"] and o.get("b_weights") in grid["weights"] + ["f32"],
                         f"line {n}: ratio without its weights")
                ratios.append(o)
                continue
            if o["kind"] == "prefill":
                c.expect(o["mode"] == "prefill", f"line {n}: a prefill cell of mode {o['mode']}")
                key = (o["model"]["name"], o["batch"], o["L"], o["backend"], o["algo"], o.get("weights"), o.get("chunk"))
                c.expect(key not in prefills, f"prefill cell {key} appears twice")
                prefills[key] = o
                continue
            c.expect(o["mode"] == "decode", f"line {n}: a cell of mode {o['mode']}")
            key = (o["model"]["name"], o["batch"], o["L"], o["backend"], o["algo"], o.get("weights"))
            c.expect(key not in cells, f"cell {key} appears twice")
            cells[key] = o

    if a.needs_backend:
        mine = [o for k, o in list(cells.items()) + list(prefills.items()) if k[3] == a.needs_backend]
        if mine and all(o["status"] == "failed" and "no such backend" in o.get("reason", "") for o in mine):
            print(f"SKIP: no {a.needs_backend} backend here ({mine[0]['reason']})")
            return 77

    expected = [(m, b, L, be, al, w) for m in grid["models"] for b in grid["batches"] for L in grid["lens"]
                for be in grid["backends"] for al in grid["algos"] for w in grid["weights"]]
    c.expect(len(cells) == len(expected), f"{len(cells)} cells in the JSON, {len(expected)} expected")
    for key in expected:
        o = cells.get(key)
        if not c.expect(o is not None, f"cell {key} missing"):
            continue
        if not c.expect(o["status"] == "ok", f"cell {key}: {o['status']} ({o.get('reason')})"):
            continue
        m, b, L, be, al, w = key
        steps = L - grid["prompt"]
        check_model(c, key, o, grid)
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

    def ratio(mode, m, b, L, a_, b_, wa, wb, what, ca=None, cb=None):
        r = [x for x in ratios if x["mode"] == mode and x["model"]["name"] == m and x["batch"] == b and x["L"] == L
             and x["a"] == a_ and x["b"] == b_ and x["a_weights"] == wa and x["b_weights"] == wb and x["what"] == what
             and (ca is None or (x.get("a_chunk") == ca and x.get("b_chunk") == cb))]
        return len(r) == 1 and positive(r[0]["speedup"])

    groups = [(m, b, L, be, w) for m in grid["models"] for b in grid["batches"] for L in grid["lens"]
              for be in grid["backends"] for w in grid["weights"]]
    for m, b, L, be, w in groups:
        # Same greedy tokens from every algorithm of a (model, batch, length, backend, weights).
        if grid["greedy"]:
            hashes = {al: cells[(m, b, L, be, al, w)].get("tokens_hash") for al in grid["algos"]
                      if cells.get((m, b, L, be, al, w), {}).get("status") == "ok"}
            c.expect(len(set(hashes.values())) <= 1, f"greedy tokens differ for {m} B={b} L={L} {be} {w}: {hashes}")
        if "flash" in grid["algos"] and "lazy" in grid["algos"]:
            c.expect(ratio("decode", m, b, L, f"lcsm {be} flash", f"lcsm {be} lazy", w, w, "gen"),
                     f"no flash/lazy ratio for {m} {b} {L} {be} {w}")
        if "flash" in grid["algos"] and "modal" in grid["algos"]:
            c.expect(ratio("decode", m, b, L, f"lcsm {be} modal", f"lcsm {be} flash", w, w, "gen"),
                     f"no modal/flash ratio for {m} {b} {L} {be} {w}")
        if w != "f32" and "f32" in grid["weights"]:
            for al in grid["algos"]:
                c.expect(ratio("decode", m, b, L, f"lcsm {be} {al}", f"lcsm {be} {al}", w, "f32", "gen"),
                         f"no {w}/f32 ratio for {m} {b} {L} {be} {al}")

    check_prefills(c, grid, prefills, ratio)

    for e in c.errors:
        print("FAIL:", e)
    if c.errors:
        return 1
    print(f"OK: {len(cells)} cells, {len(prefills)} prefill cells and {len(ratios)} ratios checked")
    return 0


def check_model(c, key, o, grid):
    """The cell's family, weights and modal_tiled, and what the bench says of the model."""
    m, w = key[0], key[5]
    arch = grid["models"][m]
    c.expect(o.get("weights") == w, f"{key}: weights {o.get('weights')}")
    c.expect(o.get("modal_tiled") == grid["modal_tiled"], f"{key}: modal_tiled {o.get('modal_tiled')}")
    model = o.get("model", {})
    c.expect(model.get("arch") == arch, f"{key}: arch {model.get('arch')} != {arch}")
    c.expect(isinstance(model.get("layers"), str) and model["layers"], f"{key}: no layer summary")
    c.expect(positive(model.get("dense_mib")), f"{key}: dense_mib {model.get('dense_mib')}")
    tiled = model.get("n_tiled_convs", -1)
    if arch in STRIPED:  # modal layers are tiled only with --modal-tiled (Evo 2: its hcl layers)
        c.expect((tiled > 0) == grid["modal_tiled"] or (arch == "evo2" and model.get("n_layer", 0) < 3 and tiled == 0),
                 f"{key}: {tiled} tiled convolutions with modal_tiled {grid['modal_tiled']}")
    else:
        c.expect(tiled > 0, f"{key}: {tiled} tiled convolutions")


def check_prefills(c, grid, prefills, ratio):
    algos = [al for al in grid["algos"] if al != "recompute"]
    expected = [(m, b, P, be, al, w, ch) for m in grid["models"] for b in grid["batches"] for P in grid["prefill_lens"]
                for be in grid["backends"] for al in algos for w in grid["weights"] for ch in grid["chunks"]]
    c.expect(len(prefills) == len(expected), f"{len(prefills)} prefill cells in the JSON, {len(expected)} expected")
    for key in expected:
        o = prefills.get(key)
        if not c.expect(o is not None, f"prefill cell {key} missing"):
            continue
        if not c.expect(o["status"] == "ok", f"prefill cell {key}: {o['status']} ({o.get('reason')})"):
            continue
        m, b, P, be, al, w, ch = key
        check_model(c, key, o, grid)
        tokens = b * P
        c.expect(o["prompt"] == P and o.get("chunk") == ch, f"{key}: prompt {o['prompt']} chunk {o.get('chunk')}")
        for f in ("prefill_s", "prefill_tok_s", "setup_s", "host_peak_mib", "host_kib_per_prompt_token", "weight_mib"):
            c.expect(positive(o.get(f)), f"{key}: {f} = {o.get(f)} is not positive")
        if positive(o.get("prefill_s")):
            c.expect(abs(o["prefill_tok_s"] - tokens / o["prefill_s"]) <= 1e-6 * o["prefill_tok_s"],
                     f"{key}: prefill_tok_s != B*P/prefill_s")
        c.expect(abs(o["host_kib_per_prompt_token"] - o["host_peak_mib"] * 1024 / tokens) <= 1e-6 * o["host_kib_per_prompt_token"],
                 f"{key}: host_kib_per_prompt_token != host_peak_mib * 1024 / (B*P)")
        c.expect(o.get("device_peak_mib", -1) >= 0 and o.get("device_kib_per_prompt_token", -1) >= 0,
                 f"{key}: device peak")
        c.expect(o.get("state_mib", -1) >= 0, f"{key}: state_mib")
        calls = 1 if ch == 0 or ch >= P else -(-P // ch)
        c.expect(o.get("calls") == calls, f"{key}: {o.get('calls')} calls, {calls} expected")
        c.expect(isinstance(o.get("next_tokens_hash"), str), f"{key}: no next_tokens_hash")
    for m in grid["models"]:
        for b in grid["batches"]:
            for P in grid["prefill_lens"]:
                for be in grid["backends"]:
                    for w in grid["weights"]:
                        hashes = {(al, ch): prefills[(m, b, P, be, al, w, ch)].get("next_tokens_hash")
                                  for al in algos for ch in grid["chunks"]
                                  if prefills.get((m, b, P, be, al, w, ch), {}).get("status") == "ok"}
                        c.expect(len(set(hashes.values())) <= 1,
                                 f"greedy next tokens differ for {m} B={b} P={P} {be} {w}: {hashes}")
                        for al in algos:
                            for ch in grid["chunks"]:
                                if w != "f32" and "f32" in grid["weights"]:
                                    c.expect(ratio("prefill", m, b, P, f"lcsm {be} {al}", f"lcsm {be} {al}", w, "f32",
                                                   "prefill", ch, ch), f"no prefill {w}/f32 ratio for {m} {b} {P} {be} {al} {ch}")
                                if ch != 0 and 0 in grid["chunks"]:
                                    c.expect(ratio("prefill", m, b, P, f"lcsm {be} {al}", f"lcsm {be} {al}", w, w,
                                                   "prefill", ch, 0), f"no chunk {ch}/whole ratio for {m} {b} {P} {be} {al} {w}")


if __name__ == "__main__":
    sys.exit(main())

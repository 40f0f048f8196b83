#!/usr/bin/python3
"""
check_peer.py -- CTest for the PyTorch peer (torch_peer.py), on the CPU.

  check_peer.py --lcsm PATH/TO/lcsm --work DIR [--python PY] [--device cuda]

On two tiny models -- one written by tests/reference/hyena_ref.py (F16 and BF16
tensors, "model." prefix) and one by `lcsm make-model` (F32, no prefix) -- it checks:
  1. the peer's parallel forward reproduces the reference's logits (expected.safetensors);
  2. recompute, lazy, flash (tile methods: measured, all FFT, all direct) and the
     graph-ready static steps of lazy and flash produce the same greedy tokens, and
     their logits agree with recompute's to 1e-4 relative;
  3. those tokens are the ones lcsm's CLI generates greedily from the same prompts
     (`lcsm generate --temp 0 --all-tokens`, one call per sequence);
  4. the one-line JSON result honours the contract lcsm-bench reads.
L = 200 with a 5-token prompt runs flash tiles of every size 1 .. 128, so both the
direct and the FFT paths and the clipped last tile are exercised.
--device cuda runs every peer run on the GPU and adds lazy and flash under
--cuda-graphs (the one-command check of the graph code on a GPU machine);
without --lcsm the comparison with lcsm's CLI is left out.
Exit 0 pass, 1 fail, 77 skip (no torch in this python).
"""

import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOKENS = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N"]

B, L, P = 2, 200, 5
TOL = 1e-4
KEYS = ["impl", "algo", "device", "torch", "batch", "L", "prompt", "setup_s", "prefill_s", "gen_s",
        "ms_per_tok", "tok_s", "lat_ms", "cuda_graphs"]

failures = []


def check(ok, what):
    print("%s: %s" % ("ok" if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def peer(py, model, algo, out, extra=(), device="cpu"):
    tok, lg = os.path.join(out, "tok.txt"), os.path.join(out, "logits.npy")
    cmd = [py, os.path.join(HERE, "torch_peer.py"), "--model", model, "--algo", algo, "--batch", str(B),
           "--len", str(L), "--prompt", str(P), "--device", device, "--threads", "1", "--seed", "3",
           "--dump-tokens", tok, "--dump-logits", lg] + list(extra)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    lines = r.stdout.splitlines()
    if r.returncode != 0 or len(lines) != 1:
        raise RuntimeError("%s failed (%d): %s %s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    res = json.loads(lines[0])
    with open(tok) as f:
        toks = [[int(x) for x in line.split()] for line in f]
    import numpy as np
    return res, toks, np.load(lg)


def lcsm_generate(lcsm, model, prompt_ids, n_new):
    text = "".join(TOKENS[i] for i in prompt_ids)
    cmd = [lcsm, "generate", "-m", model, "--temp", "0", "--all-tokens", "--threads", "1",
           "-n", str(n_new), "--max-len", str(L), "-p", text]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr))
    pieces = re.findall(r"\[[A-Z]+\]|[ACGTN]", r.stdout.strip())
    return [TOKENS.index(p) for p in pieces]


def check_model(py, lcsm, model, work, name, device):
    import numpy as np
    runs = [("recompute", []), ("lazy", []), ("flash", []), ("flash", ["--fft-min", "1"]),
            ("flash", ["--fft-min", "100000"]), ("lazy", ["--static"]), ("flash", ["--static"])]
    if device != "cpu":
        runs += [("lazy", ["--cuda-graphs"]), ("flash", ["--cuda-graphs"]),
                 ("flash", ["--cuda-graphs", "--fft-min", "1"])]
    results = {}
    for algo, extra in runs:
        label = " ".join([algo] + extra)
        out = os.path.join(work, name + "-" + label.replace(" ", "").replace("-", ""))
        os.makedirs(out, exist_ok=True)
        results[label] = peer(py, model, algo, out, extra, device)
    ref_res, ref_tok, ref_lg = results["recompute"]
    check(all(len(row) == L + 1 for row in ref_tok) and len(ref_tok) == B,
          "%s: %d sequences of prompt + generated = %d ids" % (name, B, L + 1))
    check(ref_lg.shape == (L - P + 1, B, ref_lg.shape[2]), "%s: logits of the prefill and every step" % name)
    scale = float(np.abs(ref_lg).max())
    for label, (res, tok, lg) in results.items():
        check(all(k in res for k in KEYS) and res["impl"] == "torch" and res["algo"] == label.split()[0]
              and res["batch"] == B and res["L"] == L and res["prompt"] == P
              and res["device"].split(":")[0] == device.split(":")[0]
              and res["cuda_graphs"] is ("--cuda-graphs" in label) and abs(res["ms_per_tok"] - res["gen_s"] / (L - P) * 1e3) < 1e-6
              * max(1.0, res["ms_per_tok"]) and set(res["lat_ms"]) == {"p50", "p99", "max", "spike_frac"},
              "%s: %s: JSON result as the contract says" % (name, label))
        if label == "recompute":
            continue
        check(tok == ref_tok, "%s: %s: same greedy tokens as recompute" % (name, label))
        if lg.shape == ref_lg.shape:
            rel = float(np.abs(lg - ref_lg).max()) / scale
            check(rel < TOL, "%s: %s: logits vs recompute, max rel err %.2g < %g" % (name, label, rel, TOL))
        else:
            check(False, "%s: %s: logits shape %s vs %s" % (name, label, lg.shape, ref_lg.shape))
    # The peer's prompts are its own (from --seed); lcsm gets the same ids as text.
    for b in range(B if lcsm else 0):
        got = lcsm_generate(lcsm, model, ref_tok[b][:P], L - P + 1)
        first = next((i for i, (x, y) in enumerate(zip(got, ref_tok[b])) if x != y), None)
        check(got == ref_tok[b], "%s: sequence %d: lcsm generate gives the same %d ids%s" % (
            name, b, L + 1, "" if first is None else " (first difference at position %d)" % first))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lcsm", default=None, help="lcsm CLI to compare with (and to write model 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", required=True)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        print("SKIP: %s has no torch/numpy (apt-get install python3-torch)" % sys.executable)
        return 77
    os.makedirs(a.work, exist_ok=True)

    # Model 1: the independent reference's writer, with its logits for a forward check.
    ref = os.path.join(a.work, "ref-model")
    subprocess.check_call([a.python, os.path.join(ROOT, "tests", "reference", "hyena_ref.py"), "--out", ref,
                           "--d-model", "32", "--n-layer", "2", "--l-max", "256", "--seq-len", "97",
                           "--prefix", "model.", "--seed", "11"], stdout=subprocess.DEVNULL)
    sys.path.insert(0, HERE)
    import numpy as np
    import torch
    from peer_model import Model, read_safetensors, spectra_cache
    torch.set_num_threads(1)
    with torch.no_grad():
        m = Model(ref, "cpu")
        exp = read_safetensors(os.path.join(ref, "expected.safetensors"))
        tok = torch.from_numpy(exp["tokens"]).long()
        lg = m.forward_seq(tok, spectra_cache(m.filters(tok.shape[1])), last_only=False).numpy()
    want = exp["logits"][..., :m.vocab]
    rel = float(np.abs(lg - want).max() / np.abs(want).max())
    check(rel < TOL, "reference model: parallel forward vs hyena_ref.py logits, max rel err %.2g" % rel)
    check_model(a.python, a.lcsm, ref, a.work, "reference model", a.device)

    # Model 2: lcsm's own writer.
    if a.lcsm:
        own = os.path.join(a.work, "lcsm-model")
        subprocess.check_call([a.lcsm, "make-model", own, "--d-model", "16", "--n-layer", "2", "--l-max", "256",
                               "--seed", "5"], stdout=subprocess.DEVNULL)
        check_model(a.python, a.lcsm, own, a.work, "lcsm make-model", a.device)

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

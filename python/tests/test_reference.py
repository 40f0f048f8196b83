"""model.forward and the sessions against the independent PyTorch references
(tests/reference/hyena_ref.py for HyenaDNA, longconv_ref.py for safari's long
convolutions), which write a random checkpoint and its logits. Skipped when no
python with torch is found (conftest.torch_python)."""

import json
import os
import struct
import subprocess

import numpy as np
import pytest
from conftest import rel_err, torch_python

import lcsm

TOL = 1e-4

# name -> (script, its options, the family the checkpoint is): the cases of tests/CMakeLists.txt
CASES = {
    "plain": ("hyena_ref.py", [], "hyenadna"),
    "lightning": ("hyena_ref.py", ["--prefix", "model.", "--batch", "1", "--seq-len", "300", "--l-max", "300",
                                   "--d-model", "48", "--n-layer", "3", "--seed", "7"], "hyenadna"),
    "shift": ("hyena_ref.py", ["--shift", "0.05", "--num-inner-mlps", "1", "--emb-dim", "3", "--filter-order", "8",
                               "--batch", "3", "--seq-len", "64", "--l-max", "64"], "hyenadna"),
    "longconv": ("longconv_ref.py", ["--batch", "3", "--seq-len", "131", "--l-max", "300", "--ma-window", "7",
                                     "--d-model", "40", "--n-layer", "2", "--seed", "11"], "longconv"),
    "longconv_lightning": ("longconv_ref.py", ["--prefix", "model.", "--batch", "1", "--seq-len", "300", "--l-max",
                                               "300", "--with-lm-head", "--seed", "5"], "longconv"),
}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "I32": np.int32}[t["dtype"]]
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt).reshape(t["shape"])
    return out


@pytest.fixture(scope="module")
def torch_py():
    py = torch_python()
    if not py:
        pytest.skip("no python with torch for the PyTorch reference (apt-get install python3-torch)")
    return py


@pytest.mark.parametrize("case", sorted(CASES))
def test_against_pytorch(torch_py, root, tmp_path, case):
    name, args, arch = CASES[case]
    script = os.path.join(root, "tests", "reference", name)
    r = subprocess.run([torch_py, script, "--out", str(tmp_path), *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ex = read_safetensors(tmp_path / "expected.safetensors")
    tok, want = ex["tokens"], ex["logits"]
    B, T = tok.shape
    with lcsm.Model.load(tmp_path) as m:
        assert m.info.arch == arch
        got = m.forward(tok)
        assert got.shape == want.shape
        assert rel_err(got, want) <= TOL
        for algo in ("flash", "lazy", "eager"):
            P = T // 3
            with m.session(batch=B, max_len=T, algo=algo) as s:
                steps = [s.prefill(tok[:, :P])] + [s.step(tok[:, t]) for t in range(P, T)]
            assert rel_err(np.stack(steps, axis=1), want[:, P - 1:]) <= TOL, algo
        # score: log-softmax of the reference's logits over the real vocabulary
        V = m.vocab_size
        x = want[:, :-1, :V].astype(np.float64)
        lse = np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)
        ref = np.take_along_axis(x, tok[:, 1:, None].astype(np.intp), -1)[..., 0] - lse
        assert np.abs(m.score(tok) - ref).max() <= 1e-3

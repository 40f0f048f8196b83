"""The issue's "done when": logits through Python equal the C library's, bitwise.

The reference is lcsm_probe (tests/c/lcsm_probe.c), a C program over the public
API built against the very liblcsm.so the binding loaded, run in its own
process; it prints every float's bits. Both sides use the CPU backend with the
same FFT threshold and FFTW's estimated plans (conftest.py), so any difference
is the binding's. The models: the built-in default, the small HyenaDNA model
saved, the small long-convolution model saved; each with f32 weights and
loaded with bf16 weights (the probe's --weights).
"""

import numpy as np
import pytest
from conftest import THRESHOLD, probe_floats, run_probe

import lcsm


def _tokens(rng, B, L, V=12):
    return rng.integers(0, V, size=(B, L)).astype(np.int32)


@pytest.fixture(scope="module")
def models(model, small, small_dir, longconv, longconv_dir):
    """(model, probe arguments) by (which, weights); bf16 models opened once per module."""
    specs = {"default": "default", "saved": small_dir, "longconv": longconv_dir}
    f32 = {"default": model, "saved": small, "longconv": longconv}
    opened = {}

    def get(which, weights):
        spec = specs[which]
        if weights == "f32":
            return f32[which], [spec]
        if (which, weights) not in opened:
            opened[which, weights] = (lcsm.Model.default(weights=weights) if which == "default"
                                      else lcsm.Model.load(spec, weights=weights))
        return opened[which, weights], ["--weights", weights, spec]

    yield get
    for m in opened.values():
        m.close()


def _probe_args(args, mode):
    """The probe's command line: [--weights W] MODE MODEL (the dtype option goes first)."""
    return args[:-1] + [mode, args[-1]]


@pytest.mark.parametrize("weights", ["f32", "bf16"])
@pytest.mark.parametrize("which", ["default", "saved", "longconv"])
@pytest.mark.parametrize("B,L", [(1, 1), (1, 77), (3, 150)])
def test_forward_bitwise(probe, models, which, weights, B, L):
    m, args = models(which, weights)
    tok = _tokens(np.random.default_rng(B * 1000 + L), B, L)
    want = probe_floats(probe, *_probe_args(args, "forward"), THRESHOLD, B, L, *tok.ravel()).reshape(B, L, m.n_vocab)
    got = m.forward(tok)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("weights", ["f32", "bf16"])
@pytest.mark.parametrize("which", ["saved", "longconv"])
@pytest.mark.parametrize("algo", ["flash", "lazy", "eager"])
@pytest.mark.parametrize("B,P,L", [(1, 0, 40), (2, 13, 70)])
def test_session_bitwise(probe, models, which, weights, algo, B, P, L):
    m, args = models(which, weights)
    tok = _tokens(np.random.default_rng(L + P), B, L)
    V = m.n_vocab
    want = probe_floats(probe, *_probe_args(args, "steps"), THRESHOLD, algo, B, P, L, *tok.ravel())
    got = []
    with m.session(batch=B, max_len=L, algo=algo) as s:
        if P:
            got.append(s.prefill(tok[:, :P]))
        for t in range(P, L):
            got.append(s.step(tok[:, t]))
    got = np.stack(got)
    assert got.tobytes() == want.reshape(got.shape).tobytes()
    assert got.shape == ((1 if P else 0) + L - P, B, V)


@pytest.mark.parametrize("weights,temp,top_k,top_p,seed", [("f32", 0.0, 0, 1.0, 0), ("f32", 1.0, 0, 1.0, 5),
                                                           ("f32", 0.7, 3, 0.9, 123456789),
                                                           ("bf16", 1.0, 0, 1.0, 5)])
def test_generate_ids_equal(probe, models, weights, temp, top_k, top_p, seed):
    m, args = models("default", weights)
    prompt = lcsm.tokenize("ACGTTGCA")
    n, B = 50, 2
    want = run_probe(probe, *_probe_args(args, "generate"), THRESHOLD, "flash", B, len(prompt) + n, repr(temp),
                     top_k, repr(top_p), seed, 7, 11, n, len(prompt), *np.tile(prompt, B))
    want = np.array(want.split(), dtype=np.int32).reshape(B, n)
    got = m.generate(prompt, n, temperature=temp, top_k=top_k, top_p=top_p, seed=seed, batch=B)
    np.testing.assert_array_equal(got, want)
    # streaming goes through lcsm_session_step_sample: the same ids (lcsm.h: lcsm_generate(n) is
    # lcsm_generate(1) followed by n - 1 step_sample calls)
    streamed = np.stack(list(m.stream(prompt, n, temperature=temp, top_k=top_k, top_p=top_p, seed=seed,
                                      batch=B)), axis=1)
    np.testing.assert_array_equal(streamed, want)


def test_bf16_is_not_f32(models):
    # the parity above would also pass if --weights / weights= were ignored on both sides
    tok = _tokens(np.random.default_rng(3), 1, 50)
    for which in ("default", "longconv"):
        a, b = models(which, "f32")[0], models(which, "bf16")[0]
        assert a.info.dense_bytes == a.info.dense_bytes_f32 and b.info.dense_bytes == b.info.dense_bytes_f16
        assert not np.array_equal(a.forward(tok), b.forward(tok))

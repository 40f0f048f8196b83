"""The issue's "done when": logits through Python equal the C library's, bitwise.

The reference is lcsm_probe (tests/c/lcsm_probe.c), a C program over the public
API built against the very liblcsm.so the binding loaded, run in its own
process; it prints every float's bits. Both sides use the CPU backend with the
same FFT threshold and FFTW's estimated plans (conftest.py), so any difference
is the binding's.
"""

import numpy as np
import pytest
from conftest import THRESHOLD, probe_floats, run_probe

import lcsm


def _tokens(rng, B, L, V=12):
    return rng.integers(0, V, size=(B, L)).astype(np.int32)


@pytest.mark.parametrize("which", ["default", "saved"])
@pytest.mark.parametrize("B,L", [(1, 1), (1, 77), (3, 150)])
def test_forward_bitwise(probe, model, small, small_dir, which, B, L):
    m, spec = (model, "default") if which == "default" else (small, small_dir)
    tok = _tokens(np.random.default_rng(B * 1000 + L), B, L)
    want = probe_floats(probe, "forward", spec, THRESHOLD, B, L, *tok.ravel()).reshape(B, L, m.n_vocab)
    got = m.forward(tok)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("algo", ["flash", "lazy", "eager"])
@pytest.mark.parametrize("B,P,L", [(1, 0, 40), (2, 13, 70)])
def test_session_bitwise(probe, small, small_dir, algo, B, P, L):
    tok = _tokens(np.random.default_rng(L + P), B, L)
    V = small.n_vocab
    want = probe_floats(probe, "steps", small_dir, THRESHOLD, algo, B, P, L, *tok.ravel())
    got = []
    with small.session(batch=B, max_len=L, algo=algo) as s:
        if P:
            got.append(s.prefill(tok[:, :P]))
        for t in range(P, L):
            got.append(s.step(tok[:, t]))
    got = np.stack(got)
    assert got.tobytes() == want.reshape(got.shape).tobytes()
    assert got.shape == ((1 if P else 0) + L - P, B, V)


@pytest.mark.parametrize("temp,top_k,top_p,seed", [(0.0, 0, 1.0, 0), (1.0, 0, 1.0, 5), (0.7, 3, 0.9, 123456789)])
def test_generate_ids_equal(probe, model, temp, top_k, top_p, seed):
    prompt = lcsm.tokenize("ACGTTGCA")
    n, B = 50, 2
    want = run_probe(probe, "generate", "default", THRESHOLD, "flash", B, len(prompt) + n, repr(temp), top_k,
                     repr(top_p), seed, 7, 11, n, len(prompt), *np.tile(prompt, B))
    want = np.array(want.split(), dtype=np.int32).reshape(B, n)
    got = model.generate(prompt, n, temperature=temp, top_k=top_k, top_p=top_p, seed=seed, batch=B)
    np.testing.assert_array_equal(got, want)
    # streaming goes through lcsm_session_step_sample: the same ids
    streamed = np.stack(list(model.stream(prompt, n, temperature=temp, top_k=top_k, top_p=top_p, seed=seed,
                                          batch=B)), axis=1)
    np.testing.assert_array_equal(streamed, want)

"""Forward against session steps (teacher forcing), score against forward,
generation and streaming shapes, and the OpenCL backend when there is one."""

import numpy as np
import pytest
from conftest import rel_err

import lcsm

TOL = 1e-4


@pytest.mark.parametrize("algo", ["flash", "lazy", "eager"])
@pytest.mark.parametrize("B,P", [(1, 0), (1, 17), (3, 0), (3, 40)])
def test_steps_equal_forward(small, algo, B, P):
    L = 120
    tok = np.random.default_rng(B * 100 + P).integers(0, 12, size=(B, L))
    full = small.forward(tok)
    assert full.shape == (B, L, small.n_vocab) and full.dtype == np.float32
    with small.session(batch=B, max_len=L, algo=algo) as s:
        assert (s.batch, s.max_len, s.algo, s.position) == (B, L, algo, 0)
        if P:
            last = s.prefill(tok[:, :P])
            assert last.shape == (B, small.n_vocab)
            assert rel_err(last, full[:, P - 1]) <= TOL
            assert s.position == P
        for t in range(P, L):
            lg = s.step(tok[:, t])
            assert lg.shape == (B, small.n_vocab)
            assert rel_err(lg, full[:, t]) <= TOL, t
        assert s.position == L
        st = s.stats
        assert st.steps == L - P and st.state_bytes > 0 and st.dense_s > 0
        assert (st.prefill_s > 0) == bool(P)
        s.reset()
        assert s.position == 0 and s.stats.steps == 0
        again = s.step(tok[:, 0])
        assert rel_err(again, full[:, 0]) <= TOL


def test_forward_inputs(small):
    a = small.forward("ACGTAC")
    np.testing.assert_array_equal(a, small.forward([7, 8, 9, 10, 7, 8]))
    np.testing.assert_array_equal(a, small.forward(np.array([[7, 8, 9, 10, 7, 8]], dtype=np.int64)))
    np.testing.assert_array_equal(a, small.forward((7, 8, 9, 10, 7, 8)))
    two = small.forward(["ACGTAC", "TTTTAA"])
    assert two.shape == (2, 6, small.n_vocab)
    assert rel_err(two[0], a[0]) <= TOL  # another batch size: equal up to rounding
    with pytest.raises(TypeError):
        small.forward([1.5, 2.0])
    with pytest.raises(lcsm.InvalidArgumentError, match="dimensions"):
        small.forward(np.zeros((1, 2, 3), dtype=np.int32))
    with pytest.raises(lcsm.InvalidArgumentError, match="one length"):
        small.forward(["ACG", "AC"])


def test_score_equals_forward(small):
    tok = np.random.default_rng(5).integers(0, 12, size=(2, 90))
    sc = small.score(tok)
    assert sc.shape == (2, 89) and sc.dtype == np.float32
    logits = small.forward(tok).astype(np.float64)[:, :, : small.vocab_size]
    for b in range(2):
        for t in range(89):
            x = logits[b, t]
            want = x[tok[b, t + 1]] - np.log(np.exp(x - x.max()).sum()) - x.max()
            assert abs(sc[b, t] - want) <= 1e-5 * max(1.0, abs(want))
    assert (sc <= 0).all()
    assert small.score("A").shape == (1, 0)
    with pytest.raises(lcsm.TokenRangeError, match="padding"):
        small.score([7, 8, 13])


def test_score_sums_to_one(small):
    prefix = [7, 9, 10, 8, 7]
    rows = np.array([prefix + [v] for v in range(small.vocab_size)])
    last = small.score(rows)[:, -1].astype(np.float64)
    assert abs(np.exp(last).sum() - 1.0) < 1e-5


def test_generate_shapes(small):
    s = small.generate("ACGT", 10, seed=1)
    assert isinstance(s, str) and len(s) == 10 and set(s) <= set("ACGT")
    lst = small.generate("ACGT", 10, seed=1, batch=3)
    assert isinstance(lst, list) and len(lst) == 3 and lst[0] == s  # sequence 0 draws the same stream
    ids = small.generate([7, 8, 9, 10], 10, seed=1)
    assert ids.dtype == np.int32 and ids.shape == (10,) and small.detokenize(ids) == s
    ids2 = small.generate([[7, 8, 9, 10], [10, 9, 8, 7]], 10, seed=1)
    assert ids2.shape == (2, 10) and small.detokenize(ids2[0]) == s
    assert small.generate("ACGT", 0) == ""
    assert set(small.generate("ACGT", 200, seed=2, temperature=3.0, all_tokens=True)) - set("ACGTN")
    greedy = small.generate("ACGT", 30, temperature=0)
    assert greedy == small.generate("ACGT", 30, temperature=0, seed=99)
    for algo in ("lazy", "eager"):
        assert small.generate("ACGT", 30, temperature=0, algo=algo) == greedy
    with pytest.raises(lcsm.InvalidArgumentError, match="rows"):
        small.generate([[7, 8], [9, 10]], 5, batch=3)


def test_stream(small):
    it = small.stream("ACGT", 20, seed=4)
    first = next(it)
    assert isinstance(first, str) and len(first) == 1
    rest = list(it)
    assert first + "".join(rest) == small.generate("ACGT", 20, seed=4)
    ids = list(small.stream([7, 8], 5, seed=4))
    assert all(isinstance(i, int) for i in ids)
    batch = list(small.stream("ACGT", 6, seed=4, batch=2))
    assert len(batch) == 6 and all(isinstance(p, list) and len(p) == 2 for p in batch)
    assert "".join(p[0] for p in batch) == small.generate("ACGT", 6, seed=4)
    assert list(small.stream("ACGT", 0)) == []


def test_session_sampling(small):
    with small.session(batch=2, max_len=50) as s:
        assert s.sampler == lcsm.Sampler()
        s.set_sampler(temperature=0.5, top_k=3, seed=8, token_lo=7, token_hi=11)
        assert s.sampler.top_k == 3 and s.sampler.token_hi == 11
        s.prefill("ACG")
        nxt = s.step_sample([10, 10])
        assert nxt.shape == (2,) and nxt.dtype == np.int32 and ((nxt >= 7) & (nxt < 11)).all()
        out = [nxt]
        for _ in range(5):
            out.append(s.step_sample(out[-1]))
        s.reset()  # keeps the sampler, reseeded
        s.prefill("ACG")
        again = [s.step_sample([10, 10])]
        for _ in range(5):
            again.append(s.step_sample(again[-1]))
        np.testing.assert_array_equal(np.stack(out), np.stack(again))
        s.reset()
        g = s.generate("ACGT", 8)
        assert g.shape == (2, 8)


def test_step_inputs(small):
    with small.session(max_len=8) as s:
        a = s.step(7)
        s.reset()
        np.testing.assert_array_equal(a, s.step("A"))
        s.reset()
        np.testing.assert_array_equal(a, s.step([7]))
        with pytest.raises(lcsm.InvalidArgumentError, match="one token per sequence"):
            s.step([7, 8])


@pytest.mark.parametrize("which,weights", [("hyenadna", "f32"), ("longconv", "bf16")])
def test_opencl_matches_cpu(small_dir, longconv_dir, which, weights):
    if "opencl" not in lcsm.backends():
        pytest.skip("no OpenCL backend in this build")
    path = small_dir if which == "hyenadna" else longconv_dir
    try:
        m = lcsm.Model.load(path, backend="opencl", weights=weights)
    except (lcsm.NoBackendError, lcsm.BackendError) as e:
        pytest.skip("no OpenCL device: %s" % e)
    with m, lcsm.Model.load(path, weights=weights) as cpu:
        assert m.info.arch == which and m.info.dense_bytes == cpu.info.dense_bytes
        assert m.backend.name == "opencl"
        tok = np.random.default_rng(1).integers(0, 12, size=(2, 64))
        assert rel_err(m.forward(tok), cpu.forward(tok)) <= TOL
        with m.session(batch=2, max_len=64) as s:
            s.prefill(tok[:, :20])
            for t in range(20, 64):
                lg = s.step(tok[:, t])
        assert rel_err(lg, cpu.forward(tok)[:, -1]) <= TOL
        assert m.generate("ACGT", 16, temperature=0) == cpu.generate("ACGT", 16, temperature=0)
        assert m.backend.stats.device_bytes_live > 0

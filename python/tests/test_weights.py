"""Weight storage dtypes: weights="f16" / "bf16" store the matrices and
embeddings rounded to that type (the rest and all arithmetic stay f32), so a
half model must compute what the f32 model of the same rounded values
computes; "auto" keeps the types a checkpoint stores."""

import numpy as np
import pytest
from conftest import rel_err

import lcsm

TOL = 1e-4

# One small shape per family (hyenadna through lcsm_model_create_random, the
# others through the family's config.json).
FAMILIES = {
    "hyenadna": dict(d_model=24, n_layer=2, d_inner=64, l_max=160, filter_order=16),
    "longconv": dict(d_model=20, n_layer=2, d_inner=48, l_max=160,
                     layer=dict(lam=0.01, use_ma_smoothing=True, ma_window_len=5)),
}


@pytest.mark.parametrize("weights", ["f16", "bf16"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_half_model_is_f32_model_of_rounded_values(tmp_path, family, weights):
    tok = np.random.default_rng(5).integers(0, 12, size=(2, 100)).astype(np.int32)
    with lcsm.Model.random(family, seed=3, weights=weights, **FAMILIES[family]) as half:
        hi = half.info
        assert hi.arch == family
        assert hi.dense_bytes == hi.dense_bytes_f16 < hi.dense_bytes_f32
        want = half.forward(tok)
        half.save(tmp_path)  # the matrices as F16 / BF16 tensors: nothing is lost
        with lcsm.Model.load(tmp_path, weights="f32") as back:  # the rounded values, widened to f32
            bi = back.info
            assert bi.dense_bytes == bi.dense_bytes_f32 == hi.dense_bytes_f32
            assert rel_err(back.forward(tok), want) <= TOL
        with lcsm.Model.load(tmp_path, weights="auto") as auto:  # the file's type kept
            assert auto.info.dense_bytes == hi.dense_bytes
            np.testing.assert_array_equal(auto.forward(tok), want)
        with lcsm.Model.load(tmp_path, weights=weights) as again:  # rounding a rounded value changes nothing
            np.testing.assert_array_equal(again.forward(tok), want)
        # the sessions of a half model decode what its forward computes
        with half.session(batch=2, max_len=100) as s:
            steps = [s.prefill(tok[:, :30])] + [s.step(tok[:, t]) for t in range(30, 100)]
        assert rel_err(np.stack(steps, axis=1), want[:, 29:]) <= TOL
    # and it is another model than the f32 one of the same seed (the option did something)
    with lcsm.Model.random(family, seed=3, **FAMILIES[family]) as full:
        got = full.forward(tok)
        assert not np.array_equal(got, want) and rel_err(got, want) < 0.1


def test_f32_file_loaded_narrow(small, small_dir):
    tok = np.random.default_rng(1).integers(0, 12, size=(1, 60))
    with lcsm.Model.load(small_dir, weights="auto") as auto:  # an f32 checkpoint stays f32
        assert auto.info.dense_bytes == small.info.dense_bytes == small.info.dense_bytes_f32
        np.testing.assert_array_equal(auto.forward(tok), small.forward(tok))
    with lcsm.Model.load(small_dir, weights="f16") as f16, lcsm.Model.load(small_dir, weights="bf16") as bf16:
        assert f16.info.dense_bytes == bf16.info.dense_bytes == small.info.dense_bytes_f16
        want = small.forward(tok)
        e16, eb16 = rel_err(f16.forward(tok), want), rel_err(bf16.forward(tok), want)
        assert 0 < e16 < eb16 < 0.1  # bf16 keeps 8 bits of mantissa, f16 11


def test_default_weights():
    tok = [7, 8, 9, 10, 7, 7, 8]
    with lcsm.Model.default() as full, lcsm.Model.default(weights="bf16") as half:
        assert half.info.config == full.info.config
        assert half.info.dense_bytes == full.info.dense_bytes_f16
        assert rel_err(half.forward(tok), full.forward(tok)) < 0.1
        with lcsm.Model.default(weights="f32") as again:
            np.testing.assert_array_equal(again.forward(tok), full.forward(tok))

"""Hybrid stacks and the session knobs that came with them: attention layers
(StripedHyena with grouped-query heads, Evo 2's stripes), Hedgehog linear
attention, the KV caches' storage (Session(kv=)), lagged flash (Model(lag=))
and NumericError for logits that overflow f32. Every session must give the
forward's logits."""

import numpy as np
import pytest
from conftest import rel_err

import lcsm

T = 60


def _tokens(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, model.info.config.vocab_size, size=(batch, T)).astype(np.int32)


def _decode(model, ids, **session_kw):
    """Teacher-forced logits [B][T][V]: a prompt of 5, then steps."""
    B = ids.shape[0]
    out = np.zeros((B, T, model.n_vocab), np.float32)
    with model.session(batch=B, max_len=T, **session_kw) as s:
        out[:, 4] = s.prefill(ids[:, :5])
        for t in range(5, T):
            out[:, t] = s.step(ids[:, t])
    return out


HYBRIDS = {
    "stripedhyena+gqa": ("stripedhyena", dict(d_model=32, n_layer=3, num_attention_heads=4, proj_groups=2,
                                              state_size=4, hyena_layer_idxs=[0, 2], attn_layer_idxs=[1])),
    "evo2 stripes": ("evo2", dict(d_model=32, n_layer=5, num_attention_heads=2, state_size=4,
                                  hcs_filter_groups=8, hcm_filter_groups=8)),
    "hedgehog": ("hedgehog", dict(d_model=24, n_layer=3, d_inner=48, filter_order=16, attn_layer_idx=[1],
                                  attn_cfg=dict(num_heads=3, feature_dim=6))),
}


@pytest.mark.parametrize("name", sorted(HYBRIDS))
def test_hybrid_sessions_equal_forward(name):
    arch, shape = HYBRIDS[name]
    with lcsm.Model.random(arch, seed=4, l_max=128, **shape) as m:
        kinds = [li.mixer for li in m.layers]
        assert any(k != "hyena" for k in kinds), kinds
        ids = _tokens(m)
        ref = m.forward(ids)
        for algo in ("flash", "lazy", "eager"):
            got = _decode(m, ids, algo=algo)
            assert rel_err(got[:, 4:], ref[:, 4:]) < 1e-4, (name, algo)


def test_evo2_random_model_has_attention_at_layer_3():
    with lcsm.Model.random("evo2", seed=1, d_model=32, n_layer=8, num_attention_heads=2, l_max=64) as m:
        kinds = [li.mixer for li in m.layers]
        assert kinds[3] == "attention" and kinds.count("attention") == 1, kinds


def test_kv_storage():
    arch, shape = HYBRIDS["stripedhyena+gqa"]
    with lcsm.Model.random(arch, seed=5, l_max=128, **shape) as m:
        ids = _tokens(m)
        ref = m.forward(ids)
        f32 = _decode(m, ids, kv="f32")
        assert rel_err(f32[:, 4:], ref[:, 4:]) < 1e-4
        for kv in ("f16", "bf16"):  # rounded K and V: a few 1e-3 at most
            assert rel_err(_decode(m, ids, kv=kv)[:, 4:], ref[:, 4:]) < 2e-2, kv
        with pytest.raises(lcsm.InvalidArgumentError):
            m.session(kv="f8")


def test_lagged_flash_is_exact():
    with lcsm.Model.random("hyenadna", seed=6, d_model=32, n_layer=2, l_max=128, filter_order=16, lag=5) as m:
        assert m.info.lag == 5
        ids = _tokens(m)
        ref = m.forward(ids)
        assert rel_err(_decode(m, ids, algo="flash")[:, 4:], ref[:, 4:]) < 1e-4
    with lcsm.Model.random("hyenadna", seed=6, d_model=32, n_layer=2, l_max=128, filter_order=16) as m:
        assert m.info.lag == 1  # auto: short models keep the plain schedule
    with pytest.raises(lcsm.InvalidArgumentError):
        lcsm.Model.random("hyenadna", d_model=16, n_layer=1, l_max=64, lag=-1)


def test_numeric_error_class():
    assert issubclass(lcsm.NumericError, ArithmeticError)
    assert lcsm.errors.error_for(13).__class__ is lcsm.NumericError

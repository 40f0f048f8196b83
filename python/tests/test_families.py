"""Model families: lcsm.archs(), Model.random(arch=...) from a config.json's keys
(lcsm_model_create_random_config), the family and layer table a model reports,
and the long-convolution family end to end (its forward against its sessions,
save and load, generation)."""

import json

import numpy as np
import pytest
from conftest import LONGCONV_SHAPE, rel_err

import lcsm

TOL = 1e-4


def test_archs():
    names = lcsm.archs()
    assert isinstance(names, tuple) and names[:2] == ("hyenadna", "longconv") and len(set(names)) == len(names)
    for arch in names:  # every family the library lists builds with its defaults, small
        with lcsm.Model.random(arch, seed=1, d_model=8, n_layer=1, l_max=32) as m:
            assert m.info.arch == arch == m.arch and arch in repr(m)
            assert len(m.layers) == 1


def test_longconv_info_and_layers(longconv):
    info = longconv.info
    assert info.arch == "longconv"
    c = info.config
    assert (c.d_model, c.n_layer, c.d_inner, c.l_max, c.vocab_size) == (32, 2, 128, 256, 12)
    assert (c.emb_dim, c.filter_order, c.short_filter_order, c.hyena_order) == (0, 0, 0, 0)  # not this family's
    assert info.n_vocab == 16 == longconv.n_vocab and longconv.l_max == 256
    assert info.n_tiled_convs == 4  # two long convolutions (k's filter, then kv's) per layer
    assert info.state_bytes_per_token == 4 * 32 * 2 * 4
    assert info.dense_bytes == info.dense_bytes_f32 > info.dense_bytes_f16
    layers = longconv.layers
    assert len(layers) == 2 and layers[0] == layers[1]
    li = layers[0]
    assert (li.norm, li.mixer, li.filter, li.mlp, li.act) == ("layernorm", "hyena", "explicit,explicit", "plain",
                                                               "gelu-tanh")
    assert (li.n_stage, li.streams, li.short_taps, li.d_inner) == (2, 3, 0, 128)
    assert li.filter.split(",") == ["explicit"] * li.n_stage
    assert 0 < 2 * li.weight_bytes < info.dense_bytes


@pytest.mark.parametrize("algo", ["flash", "lazy", "eager"])
@pytest.mark.parametrize("B,P", [(1, 0), (3, 17)])
def test_longconv_forward_vs_sessions(longconv, algo, B, P):
    T = 131  # not a power of two
    tok = np.random.default_rng(B + P).integers(0, 12, size=(B, T)).astype(np.int32)
    want = longconv.forward(tok)
    with longconv.session(batch=B, max_len=T, algo=algo) as s:
        got = ([s.prefill(tok[:, :P])] if P else []) + [s.step(tok[:, t]) for t in range(P, T)]
    got = np.stack(got, axis=1)
    assert rel_err(got, want[:, max(P - 1, 0):]) <= TOL
    np.testing.assert_array_equal(longconv.forward(tok), want)  # repeatable


def test_longconv_keys(longconv):
    tok = np.random.default_rng(0).integers(0, 12, size=(1, 40))
    # l_max is max_seq_len's alias; keys left out take the family's defaults (d_inner 4 * d_model)
    shape = dict(LONGCONV_SHAPE, max_seq_len=LONGCONV_SHAPE["l_max"])
    del shape["l_max"]
    with lcsm.Model.random("longconv", seed=11, **shape) as m:
        np.testing.assert_array_equal(m.forward(tok), longconv.forward(tok))
    with lcsm.Model.random("longconv", seed=11, d_inner=128, **LONGCONV_SHAPE) as m:
        np.testing.assert_array_equal(m.forward(tok), longconv.forward(tok))
    with lcsm.Model.random("longconv", seed=12, **LONGCONV_SHAPE) as m:  # another seed, other weights
        assert not np.array_equal(m.forward(tok), longconv.forward(tok))
    with lcsm.Model.random("longconv", seed=11, d_model=32, n_layer=2, l_max=256) as m:  # no smoothing, lam 0.003
        assert not np.array_equal(m.forward(tok), longconv.forward(tok))
    with lcsm.Model.random("longconv") as m:
        c = m.config
        assert (c.d_model, c.n_layer, c.d_inner, c.l_max) == (64, 2, 256, 1024)
    # numpy scalars are JSON numbers
    with lcsm.Model.random("longconv", seed=np.uint64(11), d_model=np.int64(32), n_layer=2, l_max=256,
                           layer=dict(lam=np.float32(0.01), use_ma_smoothing=True, ma_window_len=5)) as m:
        np.testing.assert_allclose(m.forward(tok), longconv.forward(tok), rtol=1e-3, atol=1e-4)


def test_longconv_key_errors():
    with pytest.raises(TypeError, match="d_modle.*max_seq_len"):
        lcsm.Model.random("longconv", d_modle=32)
    with pytest.raises(TypeError, match="emb_dim"):  # a HyenaDNA field is no longconv key
        lcsm.Model.random("longconv", emb_dim=3)
    with pytest.raises(TypeError, match="lamda"):
        lcsm.Model.random("longconv", layer=dict(lamda=0.1))
    with pytest.raises(TypeError, match="dict"):
        lcsm.Model.random("longconv", layer=0.1)
    with pytest.raises(TypeError, match="alias"):
        lcsm.Model.random("longconv", l_max=64, max_seq_len=64)
    with pytest.raises(TypeError, match="model_type"):
        lcsm.Model.random("longconv", model_type="hyenadna")
    with pytest.raises(TypeError):
        lcsm.Model.random("longconv", d_model=object())
    with pytest.raises(lcsm.UnsupportedError, match="longconv"):
        lcsm.Model.random("LongConv")
    # values: the library's checks and messages
    with pytest.raises(lcsm.FormatError, match="odd"):
        lcsm.Model.random("longconv", d_model=8, l_max=32, layer=dict(use_ma_smoothing=True, ma_window_len=4))
    with pytest.raises(lcsm.FormatError, match="d_model"):
        lcsm.Model.random("longconv", d_model=0)
    with pytest.raises(lcsm.FormatError, match="use_ma_smoothing"):
        lcsm.Model.random("longconv", layer=dict(use_ma_smoothing=1))
    with pytest.raises(lcsm.UnsupportedError, match="head_dim"):
        lcsm.Model.random("longconv", d_model=8, l_max=32, layer=dict(head_dim=2))
    with pytest.raises(lcsm.InvalidArgumentError, match="seed"):
        lcsm.Model.random("longconv", seed=-1)


def test_longconv_save_load(longconv, longconv_dir):
    cfg = json.load(open(longconv_dir + "/config.json"))
    assert cfg["model_type"] == "longconv" and cfg["max_seq_len"] == 256 and cfg["layer"]["ma_window_len"] == 5
    tok = np.random.default_rng(4).integers(0, 12, size=(2, 90))
    with lcsm.Model.load(longconv_dir) as m:
        assert m.info == longconv.info
        assert m.layers == longconv.layers
        np.testing.assert_array_equal(m.forward(tok), longconv.forward(tok))


def test_longconv_generate_and_score(longconv):
    text = longconv.generate("ACGT", 40, seed=2)
    assert len(text) == 40 and set(text) <= set("ACGT")
    assert "".join(longconv.stream("ACGT", 40, seed=2)) == text
    assert longconv.generate("ACGT", 40, temperature=0, seed=1) == longconv.generate("ACGT", 40, temperature=0, seed=9)
    ll = longconv.score("ACGT" + text)
    assert ll.shape == (1, 43) and np.all(ll < 0)


@pytest.mark.parametrize("arch,shape", [
    ("stripedhyena", dict(d_model=32, n_layer=2, l_max=96, num_attention_heads=4, state_size=4)),
    ("evo2", dict(d_model=32, n_layer=3, l_max=160, num_attention_heads=4, state_size=4, hcs_filter_groups=8,
                  hcm_filter_groups=8)),
])
def test_chunked_prompts_equal_the_forward(arch, shape):
    """Prefix invariance through the binding: a prompt fed in chunks of several
    sizes (Session.extend) gives the forward's logits at every chunk end."""
    with lcsm.Model.random(arch, seed=3, **shape) as m:
        T = 140 if arch == "evo2" else 90
        rng = np.random.default_rng(5)
        tok = rng.integers(0, m.vocab_size, size=(2, T))
        ref = m.forward(tok)
        for algo in ("flash", "modal"):
            with m.session(batch=2, max_len=T, algo=algo) as s:
                pos = 0
                for n in (1, 2, 5, 13, 40, T):
                    n = min(n, T - pos)
                    if n <= 0:
                        break
                    chunk = tok[:, pos:pos + n]
                    got = s.prefill(chunk) if pos == 0 else s.extend(chunk)
                    pos += n
                    assert rel_err(got, ref[:, pos - 1]) <= TOL

"""Version, library location, backends, tokenizer, model construction, info, save/load."""

import os
import re

import numpy as np
import pytest

import lcsm


def test_versions_agree(root):
    cmake = open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8").read()
    want = re.search(r"project\(lcsm\s+VERSION\s+([0-9.]+)", cmake).group(1)
    header = open(os.path.join(root, "include", "lcsm.h"), encoding="utf-8").read()
    assert re.search(r'#define LCSM_VERSION_STRING "([^"]+)"', header).group(1) == want
    assert lcsm.version() == want
    assert lcsm.__version__ == want


def test_library_location():
    assert os.path.isfile(lcsm.library_path)
    if os.environ.get("LCSM_LIBRARY"):
        assert os.path.samefile(lcsm.library_path, os.environ["LCSM_LIBRARY"])
    if os.environ.get("LCSM_EXPECT_INSTALLED") == "1":
        pkg = os.path.dirname(os.path.abspath(lcsm.__file__))
        assert "site-packages" in pkg, pkg
        assert not os.environ.get("LCSM_LIBRARY")
        assert os.path.dirname(lcsm.library_path) == pkg


def test_backends_and_devices():
    names = lcsm.backends()
    assert names[0] == "cpu" and len(set(names)) == len(names)
    assert set(names) <= {"cpu", "opencl"}
    # lcsm_backend_available agrees with the list an unknown name's message gives
    with pytest.raises(lcsm.NoBackendError) as e:
        lcsm.devices("nope")
    have = re.search(r"\(have: ([^)]*)\)", str(e.value))
    if have:
        assert [s.strip() for s in have.group(1).split(",")] == names
    cpu = lcsm.devices("cpu")
    assert len(cpu) >= 1 and isinstance(cpu[0], lcsm.Device)
    with pytest.raises(lcsm.NoBackendError, match="no backend named"):
        lcsm.devices("nope")
    if "opencl" in names:
        try:
            devs = lcsm.devices("opencl")
        except lcsm.NoBackendError:
            pass  # compiled in, no platform on this machine
        else:
            assert all(d.name and d.type in ("gpu", "cpu", "accelerator", "other") for d in devs)


def test_backend_object():
    with lcsm.Backend("cpu", threads=1, fft_threshold=16) as be:
        assert be.name == "cpu" and be.description
        assert be.fft_threshold == 16
        assert be.stats.device_bytes_live == 0
        with pytest.raises(lcsm.UnsupportedError):
            be.profile()
        m1 = lcsm.Model.default(backend=be)
        m2 = lcsm.Model.random(seed=1, d_model=16, n_layer=1, l_max=32, backend=be)
        assert m1.backend is be and m2.backend is be
        with lcsm.Model.default() as m3:  # other threads and threshold: equal to rounding
            np.testing.assert_allclose(m1.forward([7, 8, 9]), m3.forward([7, 8, 9]), rtol=1e-4, atol=1e-4)
    assert m1.closed and m2.closed  # closing the backend closed its models
    with pytest.raises(lcsm.InvalidArgumentError, match="by name"):
        lcsm.Model.default(backend=lcsm.Backend("cpu"), threads=2)


def test_tokenizer(model):
    ids = lcsm.tokenize("ACGTNacgtn")
    assert ids.dtype == np.int32 and ids.tolist() == [7, 8, 9, 10, 11] * 2
    assert lcsm.detokenize(ids) == "ACGTNACGTN"
    assert model.tokenize("GATTACA").tolist() == [9, 7, 10, 10, 7, 8, 7]
    assert model.detokenize([9, 7, 10]) == "GAT"
    assert lcsm.token_text(0) == "[CLS]"
    assert lcsm.token_text(1000) == "?" and lcsm.token_text(2**40) == "?"
    assert lcsm.tokenize("").size == 0
    with pytest.raises(lcsm.TokenRangeError, match="offset 2"):
        lcsm.tokenize("ACXG")
    with pytest.raises(lcsm.TokenRangeError, match="NUL"):
        lcsm.tokenize("AC\0G")
    with pytest.raises(TypeError):
        lcsm.tokenize(b"ACGT")


def test_info(model):
    info = model.info
    assert isinstance(info, lcsm.ModelInfo) and info.arch == "hyenadna" == model.arch
    c = info.config
    assert (c.d_model, c.n_layer, c.d_inner, c.vocab_size, c.l_max) == (128, 2, 512, 12, 16384)
    assert info.n_vocab == 16 == model.n_vocab and model.vocab_size == 12 and model.l_max == 16384
    assert info.d_model == 128  # shortcut to the config
    assert info.n_params > 0 and info.weight_bytes > 0
    # f32 weights: as stored = the f32 figure; half of the matrices' bytes with 16-bit ones
    assert info.dense_bytes == info.dense_bytes_f32 > info.dense_bytes_f16 > info.dense_bytes_f32 // 2
    assert info.n_tiled_convs == 2  # one long convolution per layer
    assert info.state_bytes_per_token == info.n_tiled_convs * c.d_model * 2 * 4  # history + accumulator, f32
    layers = model.layers
    assert len(layers) == 2 and all(isinstance(li, lcsm.LayerInfo) for li in layers)
    assert layers[0] == layers[1]
    li = layers[0]
    assert (li.norm, li.mixer, li.filter, li.mlp, li.act) == ("layernorm", "hyena", "implicit", "plain", "gelu-tanh")
    assert (li.n_stage, li.streams, li.short_taps, li.d_inner) == (1, 3, 3, 512)
    assert 0 < 2 * li.weight_bytes < info.dense_bytes  # the embedding and final norm are no layer's
    assert lcsm.default_config()["d_model"] == 128
    assert "d_model=128" in repr(model)


def test_random_shapes():
    m = lcsm.Model.random(seed=3, d_model=24, n_layer=3, l_max=64, emb_dim=3, filter_order=8)
    c = m.info.config
    assert (c.d_model, c.n_layer, c.d_inner, c.l_max, c.emb_dim, c.filter_order) == (24, 3, 96, 64, 3, 8)
    assert lcsm.Model.random(seed=3, d_model=24, d_inner=40, l_max=64).info.config.d_inner == 40
    m.close()
    with pytest.raises(TypeError, match="d_modle"):
        lcsm.Model.random(d_modle=32)
    with pytest.raises(lcsm.UnsupportedError, match="hyenadna, longconv"):
        lcsm.Model.random(arch="mamba")
    with pytest.raises(lcsm.InvalidArgumentError):
        lcsm.Model.random(d_model=0)
    with pytest.raises(lcsm.UnsupportedError):
        lcsm.Model.random(hyena_order=3, d_model=16, l_max=32)


def test_weights_names(small_dir):
    assert lcsm.supported_weight_dtypes() == ("f32", "f16", "bf16", "auto")
    with pytest.raises(lcsm.InvalidArgumentError, match="weights='f64'.*f32, f16, bf16, auto"):
        lcsm.Model.load(small_dir, weights="f64")
    with pytest.raises(lcsm.InvalidArgumentError, match="weights"):
        lcsm.Model.load(small_dir, weights=None)
    # "auto" keeps a checkpoint's types: a new model has none, the binding refuses it
    for make in (lambda: lcsm.Model.default(weights="auto"), lambda: lcsm.Model.random(seed=1, weights="auto"),
                 lambda: lcsm.Model.random("longconv", d_model=8, l_max=16, weights="auto")):
        with pytest.raises(lcsm.InvalidArgumentError, match="Model.load"):
            make()


def test_save_load_roundtrip(small, tmp_path):
    small.save(tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors"]
    with lcsm.Model.load(tmp_path / "m") as m2:
        assert m2.info.config == small.info.config
        tok = np.random.default_rng(0).integers(0, 12, size=(2, 40))
        np.testing.assert_array_equal(m2.forward(tok), small.forward(tok))


def test_model_options(small_dir):
    a = lcsm.Model.load(small_dir)
    b = lcsm.Model.load(small_dir, filter_shift=0.0, defer_spectra=True)
    assert b.info.weight_bytes < a.info.weight_bytes  # no spectra made yet
    fa, fb = a.forward("ACGTACGTAC"), b.forward("ACGTACGTAC")
    assert not np.array_equal(fa, fb)  # another filter
    with pytest.raises(TypeError):
        lcsm.Model()

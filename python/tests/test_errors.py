"""Each error class is raised where the C API returns its status, with the
library's message, and the handles stay usable afterwards."""

import json
import os
import shutil

import numpy as np
import pytest

import lcsm


def _edit_config(src, dst, **changes):
    shutil.copytree(src, dst)
    p = os.path.join(dst, "config.json")
    with open(p, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.update(changes)
    with open(p, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return dst


def test_file_error(small, tmp_path):
    with pytest.raises(lcsm.FileError, match="config.json") as e:
        lcsm.Model.load(tmp_path / "nowhere")
    assert e.value.status == 3 and isinstance(e.value, OSError)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(lcsm.FileError):
        small.save(tmp_path / "afile" / "sub")


def test_format_error(small_dir, tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(small_dir, d)
    (d / "config.json").write_text("{ not json")
    with pytest.raises(lcsm.FormatError, match="config.json") as e:
        lcsm.Model.load(d)
    assert e.value.status == 4
    shutil.copy(os.path.join(small_dir, "config.json"), d / "config.json")
    (d / "model.safetensors").write_bytes(open(os.path.join(small_dir, "model.safetensors"), "rb").read()[:100])
    with pytest.raises(lcsm.FormatError):
        lcsm.Model.load(d)


def test_missing_tensor_error(small_dir, tmp_path):
    d = _edit_config(small_dir, str(tmp_path / "m"), n_layer=3)
    with pytest.raises(lcsm.MissingTensorError, match="layers.2") as e:
        lcsm.Model.load(d)
    assert e.value.status == 5


def test_shape_error(small_dir, tmp_path):
    d = _edit_config(small_dir, str(tmp_path / "m"), d_model=48)
    with pytest.raises(lcsm.ShapeError, match="word_embeddings") as e:
        lcsm.Model.load(d)
    assert e.value.status == 6


def test_unsupported_error(small_dir, tmp_path):
    d = _edit_config(small_dir, str(tmp_path / "m"), hyena_order=3)
    with pytest.raises(lcsm.UnsupportedError, match="hyena_order") as e:
        lcsm.Model.load(d)
    assert e.value.status == 7
    with pytest.raises(lcsm.UnsupportedError, match="profile"):
        lcsm.Backend("cpu").profile()


def test_token_range_error(small):
    for bad in ([7, 99], [-1], [[7, 16]]):
        with pytest.raises(lcsm.TokenRangeError) as e:
            small.forward(bad)
        assert e.value.status == 8 and e.value.message
    with pytest.raises(lcsm.TokenRangeError, match="int32"):
        small.forward([2**31])
    with pytest.raises(lcsm.TokenRangeError, match="not one of ACGTN"):
        small.generate("ACGU", 4)
    with small.session(max_len=10) as s:
        with pytest.raises(lcsm.TokenRangeError):
            s.step(16)
        with pytest.raises(lcsm.TokenRangeError):
            s.prefill([7, 8, 100])
        assert s.position == 0  # a refused call changes nothing
        s.step(7)


def test_length_error(small):
    L = small.l_max
    with pytest.raises(lcsm.LengthError) as e:
        small.forward(np.full(L + 1, 7))
    assert e.value.status == 9
    small.forward(np.full(L, 7))
    with small.session(max_len=5) as s:
        s.prefill("ACGTA")
        with pytest.raises(lcsm.LengthError, match="max_len 5"):
            s.step(7)
        s.reset()
        with pytest.raises(lcsm.LengthError):
            s.prefill("ACGTAC")
        with pytest.raises(lcsm.LengthError):
            s.generate("ACG", 4)
        assert s.generate("ACG", 3).shape == (1, 3)  # the last token is not fed back
    with pytest.raises(lcsm.LengthError):
        small.generate("ACGT", L)
    with pytest.raises(lcsm.LengthError, match="l_max"):
        small.session(max_len=L + 1)


@pytest.mark.parametrize("kw", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-2),
                                dict(token_lo=11, token_hi=7), dict(token_hi=13), dict(temperature=float("nan"))])
def test_bad_sampler(small, kw):
    with small.session(max_len=8) as s:
        with pytest.raises(lcsm.InvalidArgumentError, match="sampler") as e:
            s.set_sampler(**kw)
        assert e.value.status == 1
        assert s.sampler == lcsm.Sampler()  # unchanged
    gen = dict((k, v) for k, v in kw.items() if k in ("temperature", "top_p", "top_k"))
    if gen:
        with pytest.raises(lcsm.InvalidArgumentError):
            small.generate("ACGT", 5, **gen)
        with pytest.raises(lcsm.InvalidArgumentError):
            next(small.stream("ACGT", 5, **gen))


def test_invalid_argument(small):
    for kw in (dict(batch=0), dict(batch=70000), dict(max_len=-1)):
        with pytest.raises(lcsm.InvalidArgumentError):
            small.session(**kw)
    with pytest.raises(lcsm.InvalidArgumentError, match="algo"):
        small.session(algo="fast")
    with pytest.raises(lcsm.InvalidArgumentError, match="n_threads"):
        lcsm.Backend("cpu", threads=-1)
    with pytest.raises(lcsm.InvalidArgumentError):
        lcsm.Backend("cpu", fft_threshold=3)
    with pytest.raises(lcsm.InvalidArgumentError):
        small.forward([])
    with pytest.raises(lcsm.InvalidArgumentError, match="seed"):
        small.generate("A", 2, seed=-1)
    with pytest.raises(lcsm.InvalidArgumentError, match="C int"):
        small.session(batch=2**40)


def test_state_error(small):
    with small.session(max_len=10) as s:
        s.step(7)
        with pytest.raises(lcsm.StateError, match="position") as e:
            s.prefill("AC")
        assert e.value.status == 10
        s.reset()
        s.prefill("AC")
        with pytest.raises(lcsm.StateError):
            s.prefill("AC")


def test_no_backend_error():
    with pytest.raises(lcsm.NoBackendError, match="no backend named 'tpu'") as e:
        lcsm.Backend("tpu")
    assert e.value.status == 12
    with pytest.raises(lcsm.NoBackendError):
        lcsm.Model.default(backend="tpu")


def test_out_of_memory_error():
    # 32 layers x 64 channels x l_max 16384 = 2^25 history floats per sequence;
    # batch 65536 needs 2^41, past the library's limit (refused before allocating).
    with lcsm.Model.random(seed=21, n_layer=32, d_model=64, d_inner=64, l_max=16384, defer_spectra=True) as m:
        with pytest.raises(lcsm.OutOfMemoryError, match="too large") as e:
            m.session(batch=65536)
        assert e.value.status == 2 and isinstance(e.value, MemoryError)
        with m.session(max_len=4) as s:  # the model goes on
            s.step(7)


def test_messages_are_the_calls_own(small):
    try:
        small.forward([7, 50])
    except lcsm.TokenRangeError as e:
        msg = e.message
    assert "50" in msg
    assert lcsm._capi.text(lcsm._capi.lcsm_model_last_error(small._ptr)) == msg

"""Handle lifetimes: with blocks, close(), closing twice, use after close,
sessions keeping their model alive, garbage collection."""

import gc
import weakref

import numpy as np
import pytest

import lcsm


def test_close_twice_and_use_after_close():
    m = lcsm.Model.random(seed=1, d_model=16, n_layer=1, l_max=32)
    s = m.session()
    be = m.backend
    s.close()
    s.close()
    with pytest.raises(lcsm.StateError, match="session is closed") as e:
        s.step(7)
    assert e.value.status == 10
    for call in (lambda: s.prefill("A"), lambda: s.position, lambda: s.stats, s.reset,
                 lambda: s.set_sampler(), lambda: s.generate("A", 1), lambda: s.step_sample(7)):
        with pytest.raises(lcsm.StateError):
            call()
    m.close()
    m.close()
    assert m.closed and be.closed  # a model opened by backend name owns its backend
    for call in (lambda: m.forward([7]), lambda: m.info, lambda: m.session(), lambda: m.save("/tmp/x"),
                 lambda: m.generate("A", 2), lambda: m.score([7, 8])):
        with pytest.raises(lcsm.StateError, match="model is closed"):
            call()
    with pytest.raises(lcsm.StateError, match="backend is closed"):
        be.name
    assert "closed" in repr(m) and "closed" in repr(s) and "closed" in repr(be)


def test_with_blocks():
    with lcsm.Backend("cpu") as be:
        with lcsm.Model.default(backend=be) as m:
            with m.session(max_len=4) as s:
                s.step(7)
            assert s.closed and not m.closed
        assert m.closed and not be.closed
    assert be.closed


def test_session_keeps_model_alive():
    s = lcsm.Model.random(seed=2, d_model=16, n_layer=1, l_max=32).session(max_len=8)
    gc.collect()
    assert not s.model.closed
    assert s.step(7).shape == (1, 16)
    m = s.model
    m.close()  # closing the model closes its sessions first
    assert s.closed
    with pytest.raises(lcsm.StateError):
        s.step(8)


def test_garbage_collection_closes():
    m = lcsm.Model.random(seed=3, d_model=16, n_layer=1, l_max=32)
    be = m.backend
    s = m.session()
    ws, wm = weakref.ref(s), weakref.ref(m)
    del s
    gc.collect()
    assert ws() is None and len(list(m._dependants)) == 0
    del m
    gc.collect()
    assert wm() is None
    assert be.closed  # the owned backend went with its model


def test_stream_closes_its_session():
    m = lcsm.Model.random(seed=4, d_model=16, n_layer=1, l_max=64)
    it = m.stream("ACGT", 30)
    next(it)
    (sess,) = list(m._dependants)
    it.close()
    assert sess.closed
    list(m.stream("ACGT", 5))
    gc.collect()
    assert not [x for x in m._dependants if not x.closed]
    m.close()


def test_shared_backend_outlives_model():
    be = lcsm.Backend("cpu")
    m = lcsm.Model.default(backend=be)
    m.close()
    assert not be.closed
    with lcsm.Model.default(backend=be) as m2:
        assert np.isfinite(m2.forward("ACGT")).all()
    be.close()

"""The model's own tokenizer (lcsm_model_tokenizer / tokenize / detokenize /
dna_ids): HyenaDNA's characters, Evo's UTF-8 bytes, and none; text through it
in every Model method; the default A C G T sampling of any tokenizer and the
sampler's allowed set (Session.set_sampler(allowed=)); generation and scoring
of an Evo 2 model against the CLI; modal_tiled."""

import dataclasses
import gc
import subprocess

import numpy as np
import pytest
from conftest import rel_err

import lcsm

# The Evo 2 shape of the brief: small, every layer kind (hcs, hcm, hcl).
EVO2_SHAPE = dict(d_model=32, n_layer=3, num_attention_heads=4, state_size=4, hcs_filter_groups=8,
                  hcm_filter_groups=8)
TEXT = "ACGT naïve → ✓ x"  # 2- and 3-byte UTF-8 characters


@pytest.fixture(scope="module")
def evo2():
    with lcsm.Model.random("evo2", seed=3, **EVO2_SHAPE) as m:
        yield m


@pytest.fixture(scope="module")
def evo2_dir(evo2, tmp_path_factory):
    d = tmp_path_factory.mktemp("evo2_model")
    evo2.save(d)
    return str(d)


@pytest.fixture(scope="module")
def bpe():
    """A model whose vocabulary lcsm cannot tokenize (tokenizer "none")."""
    with lcsm.Model.random("longconv", seed=2, d_model=16, n_layer=1, l_max=64, vocab_size=50) as m:
        yield m


def _run(cli, *args):
    r = subprocess.run([cli, *map(str, args)], capture_output=True, encoding="utf-8")
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:-1]


# ------------------------------------------------------------------ tokenizers


def test_tokenizer_of_each_family(model, longconv, evo2, bpe):
    assert (model.tokenizer, model.dna_ids) == ("dna", (7, 8, 9, 10))
    assert (longconv.tokenizer, longconv.dna_ids) == ("dna", (7, 8, 9, 10))  # HyenaDNA's 12 ids
    assert (evo2.tokenizer, evo2.dna_ids) == ("byte", (65, 67, 71, 84))
    assert evo2.vocab_size == evo2.n_vocab == 512
    assert (bpe.tokenizer, bpe.dna_ids) == ("none", None)
    for arch, vocab, want in (("stripedhyena", 512, "byte"), ("stripedhyena", 256, "byte"),
                              ("stripedhyena", 1000, "none"), ("evo2", 12, "none")):
        with lcsm.Model.random(arch, seed=1, d_model=8, n_layer=1, l_max=32, vocab_size=vocab) as m:
            assert m.tokenizer == want, (arch, vocab)


def test_dna_round_trip(model):
    ids = model.tokenize("ACGTNacgtn")
    assert ids.dtype == np.int32 and ids.tolist() == [7, 8, 9, 10, 11] * 2
    np.testing.assert_array_equal(ids, lcsm.tokenize("ACGTNacgtn"))
    assert model.detokenize(ids) == "ACGTNACGTN" == lcsm.detokenize(ids)
    assert model.detokenize([0, 7, 1]) == "[CLS]A[SEP]" and model.token_text(10) == "T"
    assert model.detokenize(np.array([[7, 8], [9, 10]])) == "ACGT"  # flattened
    assert model.tokenize("").size == 0 and model.detokenize([]) == ""
    with pytest.raises(lcsm.TokenRangeError):
        model.tokenize("ACé")
    with pytest.raises(lcsm.TokenRangeError, match="NUL"):
        model.tokenize("AC\0G")
    with pytest.raises(lcsm.TokenRangeError, match="outside"):  # the model's own: ids past n_vocab
        model.detokenize([7, model.n_vocab])
    assert lcsm.detokenize([7, 1000]) == "A?"  # the module's HyenaDNA texts stay lenient
    with pytest.raises(TypeError):
        model.tokenize(b"ACGT")


def test_byte_round_trip(evo2):
    ids = evo2.tokenize(TEXT)
    assert ids.dtype == np.int32 and ids.tolist() == list(TEXT.encode("utf-8"))
    assert len(ids) == len(TEXT) + 1 + 2 + 2  # ï: 2 bytes, → and ✓: 3 each
    assert bytes(ids.tolist()).decode("utf-8") == TEXT  # the exact inverse
    # Evo's detokenizer: one character per id, the code point it names
    assert evo2.detokenize(ids) == TEXT.encode("utf-8").decode("latin-1")
    ascii_text = "Hello, Evo 2! ACGT~"
    assert evo2.detokenize(evo2.tokenize(ascii_text)) == ascii_text
    assert "".join(evo2.token_text(t) for t in ids) == evo2.detokenize(ids)
    # below 32 a space (control characters, end of text 0), from 256 on that code point
    assert evo2.detokenize([0, 10, 31, 32, 65, 255, 256, 300, 511]) == "    A\xff\u0100\u012c\u01ff"
    assert evo2.tokenize("A\0C").tolist() == [65, 0, 67] and evo2.tokenize("\0").tolist() == [0]
    assert evo2.tokenize("").size == 0
    with pytest.raises(lcsm.TokenRangeError, match="512"):
        evo2.detokenize([65, 512])
    # the module's tokenizer stays HyenaDNA's, whatever the model
    assert lcsm.tokenize("ACGT").tolist() == [7, 8, 9, 10] and evo2.tokenize("ACGT").tolist() == [65, 67, 71, 84]


def test_text_goes_through_the_models_tokenizer(evo2):
    ids = evo2.tokenize(TEXT)
    np.testing.assert_array_equal(evo2.forward(TEXT), evo2.forward(ids))
    two = ["ACGTé", "TTTTTT"]  # one length in bytes, not in characters
    np.testing.assert_array_equal(evo2.forward(two), evo2.forward(np.stack([evo2.tokenize(t) for t in two])))
    with pytest.raises(lcsm.InvalidArgumentError, match="one length in tokens"):
        evo2.forward(["ACGTé", "ACGTe"])
    with evo2.session(max_len=32) as s:
        assert rel_err(s.prefill("ACé"), s.model.forward([65, 67, 195, 169])[:, -1]) <= 1e-5
        assert s.step("G").shape == (1, 512)
        with pytest.raises(lcsm.InvalidArgumentError, match="one token per sequence"):
            s.step("é")  # two bytes


def test_score_through_the_byte_tokenizer(evo2):
    sc = evo2.score(TEXT)
    ids = evo2.tokenize(TEXT)
    assert sc.shape == (1, len(ids) - 1) and (sc < 0).all()
    np.testing.assert_array_equal(sc, evo2.score(ids))
    x = evo2.forward(ids)[0, :-1].astype(np.float64)
    want = x[np.arange(len(ids) - 1), ids[1:]] - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) - x.max(-1)
    np.testing.assert_allclose(sc[0], want, rtol=1e-5, atol=1e-5)


def test_score_matches_cli(cli, evo2, evo2_dir):
    lines = _run(cli, "score", "-m", evo2_dir, "-p", TEXT)
    sc = evo2.score(TEXT)[0]
    rows = lines[1:-1]
    assert len(rows) == len(sc)
    got = np.array([float(r.split()[-1]) for r in rows])
    np.testing.assert_allclose(got, sc, atol=2e-6, rtol=0)
    assert [r.split()[0] for r in rows] == [str(t) for t in range(1, len(sc) + 1)]
    assert abs(float(lines[-1].split()[2]) - float(sc.astype(np.float64).sum())) < 1e-4


def test_none_refuses_text(bpe):
    for call in (lambda: bpe.tokenize("ACGT"), lambda: bpe.detokenize([1, 2]), lambda: bpe.token_text(3),
                 lambda: bpe.forward("ACGT"), lambda: bpe.score(["ACGT"]), lambda: bpe.generate("ACGT", 4),
                 lambda: bpe.generate(None, 4), lambda: bpe.generate("", 4), lambda: bpe.stream("AC", 4),
                 lambda: sess.prefill("ACGT"), lambda: sess.step("A")):
        with bpe.session(max_len=8) as sess, \
                pytest.raises(lcsm.UnsupportedError, match="tokenizer is 'none'.*pass token ids"):
            call()
    # ids still work; the default sampling has no A C G T here, so every real id may come
    ids = bpe.generate([1, 2, 3], 60, seed=1, temperature=3.0)
    assert ids.shape == (60,) and ids.min() >= 0 and ids.max() < bpe.vocab_size and len(set(ids.tolist())) > 10
    np.testing.assert_array_equal(ids, bpe.generate([1, 2, 3], 60, seed=1, temperature=3.0, all_tokens=True))
    assert bpe.forward([1, 2, 49]).shape == (1, 3, bpe.n_vocab) and bpe.score([1, 2, 49]).shape == (1, 2)


# --------------------------------------------------------- generation, sampler


def test_evo2_generates_dna_by_default(evo2):
    for temp, seed in ((0, 0), (1.0, 1), (1.5, 7)):
        text = evo2.generate("ACGT", 80, temperature=temp, seed=seed)
        assert len(text) == 80 and set(text) <= set("ACGT"), text
        assert "".join(evo2.stream("ACGT", 80, temperature=temp, seed=seed)) == text
    rows = evo2.generate(["ACGT", "TTGA"], 40, seed=2, temperature=1.5)
    assert all(len(r) == 40 and set(r) <= set("ACGT") for r in rows)
    ids = evo2.generate(evo2.tokenize("ACGT"), 60, seed=1)
    assert set(ids.tolist()) <= set(evo2.dna_ids) and evo2.detokenize(ids) == evo2.generate("ACGT", 60, seed=1)
    free = evo2.generate("ACGT", 200, seed=1, temperature=1.5, all_tokens=True)
    assert len(free) == 200 and set(free) - set("ACGT")


def test_allowed_set(evo2):
    allowed = [66, 72, 300, 7, 511]
    with evo2.session(batch=3, max_len=120) as s:
        s.set_sampler(temperature=2.0, seed=4, allowed=allowed)
        assert s.sampler.allowed == tuple(allowed) and s.sampler.token_lo == 0
        out = s.generate("ACGT", 100)
        assert out.shape == (3, 100) and set(out.ravel().tolist()) <= set(allowed)
        assert len(set(out.ravel().tolist())) > 1
        # greedy: the most likely id of the set
        s.reset()
        s.set_sampler(temperature=0, allowed=np.array(allowed, dtype=np.int64))
        logits = s.prefill("ACGT")
        s.reset()
        first = s.generate("ACGT", 1)[:, 0]
        assert (first == np.array(allowed)[np.argmax(logits[:, allowed], axis=1)]).all()
        # with a range: only the ids of the set inside [token_lo, token_hi)
        s.reset()
        s.set_sampler(temperature=2.0, seed=1, token_lo=60, token_hi=310, allowed=allowed)
        assert set(s.generate("ACGT", 100).ravel().tolist()) <= {66, 72, 300}
        # the session holds its own copy (and the library its): the caller's list may change or go
        s.reset()
        mine = [65, 84]
        s.set_sampler(temperature=2.0, seed=3, allowed=mine)
        mine[:] = [1, 2]
        del mine
        gc.collect()
        assert set(s.generate("ACGT", 100).ravel().tolist()) <= {65, 84}
        # the dataclass sets it again
        again = s.sampler
        s.set_sampler(**dataclasses.asdict(again))
        assert s.sampler == again
        s.set_sampler(temperature=2.0, seed=3)
        assert s.sampler.allowed is None and s.sampler == lcsm.Sampler(temperature=2.0, seed=3)


def test_allowed_on_a_dna_model(small):
    with small.session(max_len=80) as s:
        s.set_sampler(temperature=3.0, seed=2, allowed=[7, 10])  # A and T only
        text = small.detokenize(s.generate("ACGT", 70))
        assert set(text) == {"A", "T"}


def test_allowed_errors(evo2):
    with evo2.session(max_len=16) as s:
        s.set_sampler(temperature=1.0, seed=5, allowed=[65, 84])
        before = s.sampler
        for allowed, match in (([512], r"allowed id 512 is outside \[0, 512\)"),
                               ([65, -1], r"allowed id -1 is outside"),
                               (list(range(257)), r"n_allowed 257 must be in \[0, 256\]")):
            with pytest.raises(lcsm.InvalidArgumentError, match=match) as e:  # the library's refusals
                s.set_sampler(allowed=allowed)
            assert e.value.status == 1 and e.value.message.startswith("sampler:")
        with pytest.raises(lcsm.InvalidArgumentError, match=r"no allowed id lies in \[100, 200\)"):
            s.set_sampler(token_lo=100, token_hi=200, allowed=[65, 84])
        with pytest.raises(lcsm.InvalidArgumentError, match="empty"):  # n_allowed 0 would mean "no set"
            s.set_sampler(allowed=[])
        with pytest.raises(lcsm.InvalidArgumentError, match="outside"):
            s.set_sampler(allowed=[2**40])
        with pytest.raises(lcsm.InvalidArgumentError, match="1-D"):
            s.set_sampler(allowed=[[65, 84]])
        with pytest.raises(TypeError):
            s.set_sampler(allowed=[65.0])
        with pytest.raises(TypeError):
            s.set_sampler(allowed="ACGT")
        assert s.sampler == before  # a refused sampler changes nothing
        s.set_sampler(allowed=list(range(256)))  # LCSM_MAX_ALLOWED ids are fine
        assert len(s.sampler.allowed) == 256
        s.set_sampler(**dataclasses.asdict(before))
        assert set(s.generate("ACGT", 12).ravel().tolist()) <= {65, 84}


# -------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("temp,seed", [(0, 0), (1.0, 0), (1.0, 42), (1.5, 7)])
def test_make_model_evo2_generate_matches_cli(cli, tmp_path, temp, seed):
    # `lcsm make-model --arch evo2` makes the model Model.random makes; the CLI's
    # generate (A C G T through the allowed set of Evo's bytes) prints the
    # prompt, then generate's text.
    _run(cli, "make-model", tmp_path, "--arch", "evo2", "--d-model", 32, "--n-layer", 3, "--l-max", 256,
         "--seed", 5)
    with lcsm.Model.load(tmp_path) as made, \
            lcsm.Model.random("evo2", seed=5, d_model=32, n_layer=3, l_max=256) as m:
        assert made.info == m.info and made.layers == m.layers and made.tokenizer == "byte"
        tok = np.random.default_rng(1).integers(0, 512, size=(2, 70))
        np.testing.assert_array_equal(made.forward(tok), m.forward(tok))
        out = _run(cli, "generate", "-m", tmp_path, "-p", "ACGTACGGT", "-n", 64, "--temp", temp, "--seed", seed)
        got = made.generate("ACGTACGGT", 64, temperature=temp, seed=seed)
        assert len(got) == 64 and set(got) <= set("ACGT")
        assert out == ["ACGTACGGT" + got]
        assert got == m.generate("ACGTACGGT", 64, temperature=temp, seed=seed)


def test_evo2_generate_matches_cli_options(cli, evo2, evo2_dir):
    # the brief's shape, saved; a prompt with a multi-byte character (printed by
    # the CLI through Evo's detokenizer), batch 3, top-k / top-p, the modal algorithm
    prompt = "GATTACAé"
    echo = evo2.detokenize(evo2.tokenize(prompt))
    out = _run(cli, "generate", "-m", evo2_dir, "-p", prompt, "-n", 40, "--batch", 3, "--temp", 1.2, "--top-k", 3,
               "--top-p", 0.9, "--seed", 3)
    got = evo2.generate(prompt, 40, temperature=1.2, top_k=3, top_p=0.9, seed=3, batch=3)
    assert out == [echo + g for g in got] and all(set(g) <= set("ACGT") for g in got)
    out = _run(cli, "generate", "-m", evo2_dir, "-p", prompt, "-n", 50, "--temp", 0, "--algo", "lazy")
    assert out == [echo + evo2.generate(prompt, 50, temperature=0, algo="lazy")]
    # all tokens: bytes and ids from 256 on, printed as Evo prints them
    out = _run(cli, "generate", "-m", evo2_dir, "-p", prompt, "-n", 60, "--temp", 1.5, "--seed", 9, "--all-tokens")
    got = evo2.generate(prompt, 60, temperature=1.5, seed=9, all_tokens=True)
    assert len(got) == 60 and out == [echo + got]
    # the empty prompt: id 0 (Evo's end of text), printed as nothing
    out = _run(cli, "generate", "-m", evo2_dir, "-n", 30, "--seed", 11)
    assert out == [evo2.generate("", 30, seed=11)] == [evo2.generate(None, 30, seed=11)]


def test_evo2_stream_matches_cli(cli, evo2, evo2_dir):
    out = _run(cli, "generate", "-m", evo2_dir, "-p", "CCGGA", "-n", 48, "--seed", 5)
    pieces = list(evo2.stream("CCGGA", 48, seed=5))
    assert all(isinstance(p, str) and len(p) == 1 for p in pieces)
    assert out == ["CCGGA" + "".join(pieces)]


# ---------------------------------------------------------------- modal_tiled


def test_modal_tiled(evo2, evo2_dir):
    T = 100
    tok = np.random.default_rng(3).integers(0, 512, size=(2, T))
    ref = evo2.forward(tok)
    with lcsm.Model.random("evo2", seed=3, modal_tiled=True, **EVO2_SHAPE) as tiled, \
            lcsm.Model.load(evo2_dir, modal_tiled=True) as loaded:
        assert tiled.info.n_tiled_convs > evo2.info.n_tiled_convs and tiled.info == loaded.info
        assert tiled.info.weight_bytes > evo2.info.weight_bytes
        assert rel_err(tiled.forward(tok), ref) <= 1e-4
        for algo in ("flash", "lazy", "modal", "smooth"):
            with tiled.session(batch=2, max_len=T, algo=algo) as s:
                got = [s.prefill(tok[:, :7])] + [s.step(tok[:, t]) for t in range(7, T)]
            assert rel_err(np.stack(got, axis=1), ref[:, 6:]) <= 1e-4, algo

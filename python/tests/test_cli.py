"""model.generate against the C command-line tool: the same tokens for the same
model, prompt, sampler and seed (the CLI prints the prompt, then the new letters)."""

import subprocess

import numpy as np
import pytest

import lcsm


def _cli(cli, *args):
    r = subprocess.run([cli, "generate", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:-1]


@pytest.mark.parametrize("temp,seed", [(0, 0), (0, 9), (1.0, 0), (1.0, 42), (0.8, 7)])
def test_generate_matches_cli(cli, model, temp, seed):
    out = _cli(cli, "-p", "ACGTACGGT", "-n", 64, "--temp", temp, "--seed", seed)
    assert len(out) == 1
    got = model.generate("ACGTACGGT", 64, temperature=temp, seed=seed)
    assert isinstance(got, str) and len(got) == 64
    assert out[0] == "ACGTACGGT" + got


def test_generate_matches_cli_options(cli, small, small_dir):
    # a model directory, batch 3, top-k / top-p, another algorithm, all tokens
    out = _cli(cli, "-m", small_dir, "-p", "GATTACA", "-n", 40, "--batch", 3, "--temp", 1.5, "--top-k", 5,
               "--top-p", 0.95, "--seed", 3, "--algo", "eager", "--all-tokens")
    got = small.generate("GATTACA", 40, temperature=1.5, top_k=5, top_p=0.95, seed=3, batch=3, algo="eager",
                         all_tokens=True)
    assert isinstance(got, list) and len(got) == 3
    assert out == ["GATTACA" + g for g in got]
    ids = small.generate(small.tokenize("GATTACA"), 40, temperature=1.5, top_k=5, top_p=0.95, seed=3, batch=3,
                         algo="eager", all_tokens=True)
    assert [small.detokenize(r) for r in ids] == got


def test_empty_prompt_is_cls(cli, model):
    out = _cli(cli, "-n", 30, "--temp", 0.9, "--seed", 11)
    assert out == [model.generate("", 30, temperature=0.9, seed=11)]
    assert model.generate(None, 30, temperature=0.9, seed=11) == out[0]


def test_stream_matches_cli(cli, model):
    out = _cli(cli, "-p", "CCGGA", "-n", 48, "--seed", 5)
    pieces = list(model.stream("CCGGA", 48, seed=5))
    assert all(isinstance(p, str) and len(p) == 1 for p in pieces)
    assert out == ["CCGGA" + "".join(pieces)]
    assert "".join(model.generate("CCGGA", 48, seed=5, stream=True)) == "".join(pieces)


@pytest.mark.parametrize("weights", ["f32", "bf16"])
def test_make_model_longconv_matches_random(cli, tmp_path, weights):
    # `lcsm make-model --arch longconv` writes the JSON config of its options to
    # lcsm_model_create_random_config; Model.random builds its own from keywords:
    # the same model for the same seed, stored as the same weight type.
    r = subprocess.run([cli, "make-model", str(tmp_path), "--arch", "longconv", "--d-model", "24", "--n-layer", "3",
                        "--l-max", "128", "--seed", "5", "--weights", weights], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tok = np.random.default_rng(2).integers(0, 12, size=(2, 100))
    with lcsm.Model.load(tmp_path, weights="auto") as made, \
            lcsm.Model.random("longconv", seed=5, d_model=24, n_layer=3, l_max=128, weights=weights) as m:
        assert made.info == m.info and made.layers == m.layers
        np.testing.assert_array_equal(made.forward(tok), m.forward(tok))

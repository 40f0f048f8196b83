#!/usr/bin/python3
"""
hyena_ref.py -- independent PyTorch (fp32) reference for the lcsm C library.

Builds a small, randomly initialised HyenaDNA-style model, writes it as a
HuggingFace-style checkpoint (config.json + model.safetensors) and writes
random tokens plus the logits this reference computes for them
(expected.safetensors).  The C library loads the checkpoint, runs the same
tokens and must reproduce the logits.

The whole model is in this one file, in plain tensor ops (no nn.Module), so
that it can be read in one sitting and compared line by line with the C code.
It deliberately depends on nothing but torch + numpy (Debian 12's
python3-torch, torch 1.13): no `safetensors`, no `transformers`, no network.
The safetensors files are therefore written by hand (refutil.write_safetensors).

Usage:
  hyena_ref.py --out DIR [--seed 1234] [--d-model 32] [--n-layer 2]
               [--l-max 300] [--emb-dim 5] [--filter-order 16]
               [--num-inner-mlps 2] [--batch 2] [--seq-len 97]
               [--prefix ""] [--shift 0.05] [--no-check]

Math follows HyenaDNA (hyena-dna / LongSafari HF "hyenadna" models):
pre-norm residual blocks of [LayerNorm -> Hyena operator (order 2)] and
[LayerNorm -> MLP with tanh-GELU], a final LayerNorm, and an LM head tied to
the word embedding.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refutil as ru                                   # noqa: E402

VOCAB_SIZE = 12            # HyenaDNA character tokenizer: 7 specials + ACGTN
PAD_MULTIPLE = 8           # embedding rows are padded up to a multiple of this
LN_EPS = 1e-5


def padded_vocab(v=VOCAB_SIZE, m=PAD_MULTIPLE):
    return ((v + m - 1) // m) * m   # 12 -> 16


# -----------------------------------------------------------------------------
# safetensors, by hand: refutil's writers (shared with the other references)
tensor_bytes, write_safetensors, round_to = ru.tensor_bytes, ru.write_safetensors, ru.round_to


# -----------------------------------------------------------------------------
# random model

def positional_embedding(l_max, emb_dim):
    """hyena-dna PositionalEmbedding: z = [t, Re exp(-i f w), Im exp(-i f w)].

    t in [0, 1] is the normalised position (also used by the decay modulation);
    the complex exponentials give the implicit-filter MLP a set of sinusoids at
    frequencies f (in cycles per l_max) to build filters from.
    """
    assert emb_dim % 2 == 1 and emb_dim >= 3, "emb_dim must be odd and >= 3"
    t = torch.linspace(0, 1, l_max, dtype=torch.float64)[None, :, None]
    bands = (emb_dim - 1) // 2
    t_rescaled = torch.linspace(0, l_max - 1, l_max, dtype=torch.float64)[None, :, None]
    w = 2 * math.pi * t_rescaled / l_max
    f = torch.linspace(1e-4, bands - 1, bands, dtype=torch.float64)[None, None]
    # exp(-i f w) = cos(f w) - i sin(f w); computed in float64, stored as fp32
    z = torch.cat([t, torch.cos(f * w), -torch.sin(f * w)], dim=-1)
    return z.float(), t.float()


def randn(*shape, scale=1.0):
    """Every random draw of a reference model goes through torch's global RNG."""
    return torch.randn(*shape) * scale


def linear_w(out_f, in_f, scale=None):
    """~N(0, 1/fan_in) by default: keeps activations O(1) through the stack."""
    return randn(out_f, in_f, scale=in_f ** -0.5 if scale is None else scale)


def hyena_mixer_params(add, a, i, m):
    """The Hyena operator's tensors of layer i, names under prefix m
    ("layers.{i}.mixer."), drawn in a fixed order."""
    D, Fo, E, L = a.d_model, a.filter_order, a.emb_dim, a.l_max
    add(m + "in_proj.weight", linear_w(3 * D, D))
    add(m + "in_proj.bias", randn(3 * D, scale=0.02))
    # BF16 on disk to exercise the C bf16 decoder
    add(m + "out_proj.weight", linear_w(D, D), "BF16")
    add(m + "out_proj.bias", randn(D, scale=0.02))
    add(m + "short_filter.weight", randn(3 * D, 1, 3, scale=0.5))
    add(m + "short_filter.bias", randn(3 * D, scale=0.1))
    # per-channel skip ("D" term of the long convolution), O(1) so that
    # both the skip and the convolution contribute
    add(m + "filter_fn.bias", randn(D))
    z, t = positional_embedding(L, E)
    add(m + "filter_fn.pos_emb.z", z)
    add(m + "filter_fn.pos_emb.t", t)
    # implicit filter MLP: Linear(E,Fo) Sin [Linear(Fo,Fo) Sin]*n Linear(Fo,D,no bias)
    # The first layer uses scale 1.0 (not 1/sqrt(E)) so sin() sees
    # arguments of order 1-2 and is genuinely nonlinear.
    f = m + "filter_fn.implicit_filter."
    add(f + "0.weight", linear_w(Fo, E, scale=1.0))
    add(f + "0.bias", randn(Fo, scale=0.02))
    add(f + "1.freq", 1 + randn(1, Fo, scale=0.1))   # shared by every Sin
    for k in range(1, a.num_inner_mlps + 1):
        add(f + "%d.weight" % (2 * k), linear_w(Fo, Fo))
        add(f + "%d.bias" % (2 * k), randn(Fo, scale=0.02))
    add(f + "%d.weight" % (2 * (a.num_inner_mlps + 1)), linear_w(D, Fo))
    # ExponentialModulation(fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2)
    max_decay = math.log(1e-2) / 0.3
    min_decay = math.log(1e-2) / 1.5
    add(m + "filter_fn.modulation.deltas",
        torch.linspace(min_decay, max_decay, D)[None, None])


def build_params(a, mixer_params=hyena_mixer_params):
    """Returns an ordered list of (name, fp32 tensor, on-disk dtype tag).

    mixer_params(add, a, i, prefix) adds layer i's mixer tensors (default: the
    Hyena operator); the rest of the block (norm1, norm2, MLP), the embedding
    and ln_f are the same for every safari-style LM family."""
    D = a.d_model
    V = padded_vocab()
    torch.manual_seed(a.seed)        # every random draw below comes from this
    P = a.prefix + "backbone."

    params = []

    def add(name, t, dtype="F32"):
        params.append((P + name, t.float().contiguous(), dtype))

    add("embeddings.word_embeddings.weight", randn(V, D, scale=0.5))
    for i in range(a.n_layer):
        p = "layers.%d." % i
        add(p + "norm1.weight", 1 + randn(D, scale=0.1))
        add(p + "norm1.bias", randn(D, scale=0.1))
        mixer_params(add, a, i, p + "mixer.")
        add(p + "norm2.weight", 1 + randn(D, scale=0.1))
        add(p + "norm2.bias", randn(D, scale=0.1))
        # F16 on disk to exercise the C fp16 decoder
        add(p + "mlp.fc1.weight", linear_w(4 * D, D), "F16")
        add(p + "mlp.fc1.bias", randn(4 * D, scale=0.02))
        add(p + "mlp.fc2.weight", linear_w(D, 4 * D))
        add(p + "mlp.fc2.bias", randn(D, scale=0.02))
    add("ln_f.weight", 1 + randn(D, scale=0.1))
    add("ln_f.bias", randn(D, scale=0.1))

    # The reference computes with exactly what the C side decodes from disk.
    params = [(n, round_to(t, dt), dt) for n, t, dt in params]
    return params


# -----------------------------------------------------------------------------
# forward

def causal_conv_fft(a, k):
    """y[b,c,t] = sum_{s<=t} k[c,s] a[b,c,t-s], via FFT of size 2T.

    Zero-padding to 2T makes the circular convolution equal to the linear
    one on the first T outputs (no wrap-around)."""
    T = a.shape[-1]
    n = 2 * T
    y = torch.fft.irfft(torch.fft.rfft(a, n=n) * torch.fft.rfft(k, n=n), n=n)
    return y[..., :T]


def causal_conv_direct(a, k):
    """Same as causal_conv_fft, the O(T^2) way (used for the self-check)."""
    T = a.shape[-1]
    y = torch.zeros_like(a)
    for s in range(T):                 # tap s: k[:, s] times a delayed by s
        y[..., s:] += k[:, s, None] * a[..., :T - s]
    return y


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, LN_EPS)


def implicit_filter(W, pfx, T, n_inner, shift):
    """Long filter k (D, T) generated from positions by a small sin-MLP,
    then multiplied by a per-channel exponential decay window."""
    z = W[pfx + "pos_emb.z"][:, :T]                 # (1, T, E)
    t = W[pfx + "pos_emb.t"][:, :T]                 # (1, T, 1)
    freq = W[pfx + "implicit_filter.1.freq"]        # (1, Fo)
    h = z
    for k in range(n_inner + 1):                    # Linear -> Sin, n_inner+1 times
        h = F.linear(h, W[pfx + "implicit_filter.%d.weight" % (2 * k)],
                     W[pfx + "implicit_filter.%d.bias" % (2 * k)])
        h = torch.sin(freq * h)
    h = F.linear(h, W[pfx + "implicit_filter.%d.weight" % (2 * (n_inner + 1))])  # (1,T,D)
    # deltas are negative; abs() gives decay rates between ~3 and ~15 per unit t
    decay = torch.exp(-t * W[pfx + "modulation.deltas"].abs())   # (1, T, D)
    h = h * (decay + shift)
    return h[0].transpose(0, 1).contiguous()        # (D, T)


def hyena_operator(W, pfx, h, cfg, conv, stats=None):
    """Order-2 Hyena: y = x0 * (k * (v * x1) + bias * (v * x1))."""
    B, T, D = h.shape
    u = F.linear(h, W[pfx + "in_proj.weight"], W[pfx + "in_proj.bias"])  # (B,T,3D)
    u = u.transpose(1, 2)                                                # (B,3D,T)
    # depthwise causal short conv: pad 2 on both sides, keep the first T
    # outputs -> out[t] = w0*u[t-2] + w1*u[t-1] + w2*u[t] + b
    uc = F.conv1d(u, W[pfx + "short_filter.weight"], W[pfx + "short_filter.bias"],
                  padding=2, groups=3 * D)[..., :T]
    x0, x1, v = uc.split(D, dim=1)
    k = implicit_filter(W, pfx + "filter_fn.", T, cfg.num_inner_mlps, cfg.shift)
    a = v * x1
    long_term = conv(a, k)
    skip_term = a * W[pfx + "filter_fn.bias"][:, None]
    if stats is not None:
        stats.append(float(long_term.norm() / skip_term.norm()))
    y = (long_term + skip_term) * x0
    y = y.transpose(1, 2)                                                # (B,T,D)
    return F.linear(y, W[pfx + "out_proj.weight"], W[pfx + "out_proj.bias"])


def forward(W, tokens, cfg, conv=causal_conv_fft, stats=None, mixer=None):
    """tokens (B, T) int64 -> logits (B, T, V_padded). Dtype follows W.

    mixer(i, W, prefix, h) -> (B, T, D) is layer i's mixer on the normed
    stream h (default: the Hyena operator with `conv`)."""
    P = cfg.prefix + "backbone."
    emb = W[P + "embeddings.word_embeddings.weight"]
    r = emb[tokens]                                  # residual stream (B,T,D)
    for i in range(cfg.n_layer):
        p = P + "layers.%d." % i
        h = layer_norm(r, W[p + "norm1.weight"], W[p + "norm1.bias"])
        if mixer is None:
            r = r + hyena_operator(W, p + "mixer.", h, cfg, conv, stats)
        else:
            r = r + mixer(i, W, p + "mixer.", h)
        h = layer_norm(r, W[p + "norm2.weight"], W[p + "norm2.bias"])
        h = F.linear(h, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])
        h = F.gelu(h, approximate="tanh")
        r = r + F.linear(h, W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
    h = layer_norm(r, W[P + "ln_f.weight"], W[P + "ln_f.bias"])
    return h @ emb.t()                               # tied LM head


# -----------------------------------------------------------------------------
# main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--l-max", type=int, default=300)
    ap.add_argument("--emb-dim", type=int, default=5)
    ap.add_argument("--filter-order", type=int, default=16)
    ap.add_argument("--num-inner-mlps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=97)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--shift", type=float, default=0.05)
    ap.add_argument("--no-check", action="store_true",
                    help="skip the float64 direct-convolution self-check")
    a = ap.parse_args()
    assert 1 <= a.seq_len <= a.l_max, "need 1 <= seq_len <= l_max"
    os.makedirs(a.out, exist_ok=True)

    params = build_params(a)         # seeds torch's RNG, then draws the weights
    tokens = torch.randint(0, VOCAB_SIZE, (a.batch, a.seq_len))

    W32 = {n: t for n, t, _ in params}
    with torch.no_grad():
        stats = []
        logits = forward(W32, tokens, a, causal_conv_fft, stats)
    assert torch.isfinite(logits).all(), "non-finite logits"

    config = {
        "d_model": a.d_model, "n_layer": a.n_layer, "d_inner": 4 * a.d_model,
        "vocab_size": VOCAB_SIZE, "pad_vocab_size_multiple": PAD_MULTIPLE,
        "max_seq_len": a.l_max, "emb_dim": a.emb_dim,
        "filter_order": a.filter_order, "hyena_order": 2,
        "short_filter_order": 3, "num_inner_mlps": a.num_inner_mlps,
        "activation_freq": 1, "layer_norm_epsilon": LN_EPS,
        "tie_word_embeddings": True, "model_type": "hyenadna",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "model.safetensors"), params,
                      {"format": "pt"})
    write_safetensors(os.path.join(a.out, "expected.safetensors"),
                      [("tokens", tokens, "I32"), ("logits", logits, "F32")],
                      {"format": "pt", "seed": a.seed, "shift": a.shift,
                       "prefix": a.prefix})

    print("logits: min %.3f max %.3f std %.3f" % (
        logits.min(), logits.max(), logits.std()))
    print("layer 0 |long conv| / |skip| = %.3f (all layers: %s)" % (
        stats[0], " ".join("%.3f" % s for s in stats)))

    check = "skipped"
    if not a.no_check:
        # Same math in float64 with the O(T^2) convolution: catches FFT
        # size / orientation / truncation mistakes in the fp32 path.
        W64 = {n: t.double() for n, t in W32.items()}
        with torch.no_grad():
            ref = forward(W64, tokens, a, causal_conv_direct)
        rel = float((logits.double() - ref).abs().max() / ref.abs().max())
        assert rel < 1e-5, "self-check failed: rel err %.3g" % rel
        check = "%.2g" % rel
    print("wrote %s: B=%d T=%d D=%d layers=%d, self-check rel err %s" % (
        a.out, a.batch, a.seq_len, a.d_model, a.n_layer, check))


if __name__ == "__main__":
    main()

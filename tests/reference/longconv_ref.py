#!/usr/bin/python3
"""
longconv_ref.py -- independent PyTorch (fp32) reference for the lcsm C library, "long convolution" family.

Builds a small, randomly initialised language model of the safari "long
convolutions" family (Fu et al. 2023, "Simple Hardware-Efficient Long
Convolutions for Sequence Modeling": the H3 mixer with explicit, learned
long-convolution filters instead of SSM kernels), writes it as a checkpoint
(config.json + model.safetensors) and writes random tokens plus the logits
this reference computes for them (expected.safetensors). The C library
loads the checkpoint, runs the same tokens and must reproduce the logits.

As in hyena_ref.py, the whole model is in this one file in plain tensor ops
(no nn.Module) and depends on nothing but torch + numpy (Debian 12's
python3-torch, torch 1.13). The safetensors writer and the helpers that write
the files come from hyena_ref.py (imported from the same directory), so both
references produce files the same way.

Usage:
  longconv_ref.py --out DIR [--seed 1234] [--d-model 32] [--n-layer 2]
                  [--l-max 300] [--batch 2] [--seq-len 97] [--lam 0.05]
                  [--ma-window 0] [--prefix ""] [--with-lm-head] [--no-check]

Upstream sources, HazyResearch/safari at commit 02220c6 (the file a fact
comes from is named next to the code that uses it):
  [lm]     src/models/sequence/long_conv_lm.py   (ConvLMHeadModel, LMBackbone, create_block)
  [h3c]    src/models/sequence/h3_conv.py        (H3Conv)
  [lck]    src/models/sequence/long_conv_kernel.py (LongConvKernel)
  [block]  flash_attn/modules/block.py, mlp.py, embedding.py (Block, Mlp, GPT2Embeddings)
  [cfg]    configs/model/layer/h3-conv.yaml, configs/experiment/pile/h3-conv.yaml
  [reg]    src/utils/registry.py ("lm" -> ConvLMHeadModel, "h3-conv" -> H3Conv)

Model (head_dim 1, every LM layer an H3Conv mixer, no attention layers):
  r = E[tokens]                                        # no position embeddings
  per layer:  r += H3Conv(LN1(r));  r += fc2(gelu_tanh(fc1(LN2(r))))
  logits = LN_f(r) @ E^T                               # tied LM head, padded vocab
  H3Conv(u):  q, k, v = Wq u + bq, Wk u + bk, Wv u + bv
              k  = (f_k * k) + k_D . k                 # '*' causal convolution over time
              kv = k . v
              y  = ((f * kv) + D . kv) . q
              out = Wo y + bo
  filters f_k, f from the raw (1, D, l_max) taps K:
              K' = AvgPool(K)   if use_ma_smoothing   # zero padded, divisor = window
              f  = sign(K') . relu(|K'| - lam)          # soft threshold
  and a length-T sequence uses the first T taps of the length-l_max f.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hyena_ref import (write_safetensors, round_to,  # noqa: E402  (shared file writers)
                       VOCAB_SIZE, PAD_MULTIPLE, LN_EPS, padded_vocab)


# -----------------------------------------------------------------------------
# random model

def build_params(a):
    """Returns an ordered list of (name, fp32 tensor, on-disk dtype tag).

    Names are the state_dict() names of ConvLMHeadModel with H3Conv mixers:
      backbone.embeddings.word_embeddings.weight  [lm] GPT2Embeddings.word_embeddings
                                                  [block]; max_position_embeddings=0
                                                  (LMBackbone default) -> no position table
      backbone.layers.{i}.norm1 / mixer / norm2 / mlp    [block] Block attributes
      mixer.{q,k,v}_proj, mixer.output_linear           [h3c] nn.Linear(D, D), bias=True
      mixer.k_kernel.kernel, mixer.kernel.kernel        [h3c] two LongConvKernel(D, L=l_max);
                                                        [lck] parameter (or buffer when its
                                                        lr is 0) 'kernel', (channels=1, H, L)
      mixer.k_D (D), mixer.D (H = D / head_dim = D)     [h3c]
      mlp.fc1 (d_inner, D), mlp.fc2 (D, d_inner)        [block] Mlp; [lm] d_inner
      backbone.ln_f                                     [lm]
      lm_head.weight (optional, --with-lm-head)         [lm] tied to the word embedding, so
                                                        state_dict() lists it too
    """
    D, L, w = a.d_model, a.l_max, a.ma_window
    V = padded_vocab()
    torch.manual_seed(a.seed)        # every random draw below comes from this
    P = a.prefix + "backbone."

    def randn(*shape, scale=1.0):
        return torch.randn(*shape) * scale

    def linear_w(out_f, in_f):
        # ~N(0, 1/fan_in): keeps activations O(1) through the stack
        return randn(out_f, in_f, scale=in_f ** -0.5)

    def raw_taps():
        # Raw (pre-smoothing, pre-squash) taps, as the checkpoint stores them.
        # Std 3*lam (times sqrt(window) with smoothing, which averages
        # `window` independent taps) so that ~3/4 of the taps near t=0 survive
        # the soft threshold; a per-channel decay exp(-r t / l_max) with r in
        # [0.5, 2.5] takes the std down to 0.25..1.8 lam at the far end, so
        # the tails are sparse but not empty and both the threshold's
        # "survive" and "zero" branches are exercised everywhere.
        # (--lam 0: std 0.15, as for the default lam.)
        sd = 3.0 * (a.lam if a.lam > 0 else 0.05) * math.sqrt(max(w, 1))
        r = torch.linspace(0.5, 2.5, D)[:, None]
        decay = torch.exp(-r * torch.arange(L, dtype=torch.float32)[None, :] / L)
        return (randn(1, D, L, scale=sd) * decay[None]).contiguous()

    params = []

    def add(name, t, dtype="F32"):
        params.append((P + name, t.float().contiguous(), dtype))

    # std 1/sqrt(D): the tied head then gives logits of std ~1 (ln_f output
    # has norm ~sqrt(D))
    add("embeddings.word_embeddings.weight", randn(V, D, scale=D ** -0.5))
    for i in range(a.n_layer):
        p = "layers.%d." % i
        add(p + "norm1.weight", 1 + randn(D, scale=0.1))
        add(p + "norm1.bias", randn(D, scale=0.1))
        m = p + "mixer."
        add(m + "q_proj.weight", linear_w(D, D))
        add(m + "q_proj.bias", randn(D, scale=0.1))
        add(m + "k_proj.weight", linear_w(D, D))
        add(m + "k_proj.bias", randn(D, scale=0.1))
        # BF16 on disk to exercise the C bf16 decoder
        add(m + "v_proj.weight", linear_w(D, D), "BF16")
        add(m + "v_proj.bias", randn(D, scale=0.1))
        # F16 on disk: a 3-D tensor through the fp16 decoder, and the squash
        # then acts on the rounded taps (on both sides)
        add(m + "k_kernel.kernel", raw_taps(), "F16")
        # skip terms O(1) (upstream initialises both with torch.randn [h3c]),
        # so that convolution and skip contribute alike
        add(m + "k_D", randn(D))
        add(m + "kernel.kernel", raw_taps())
        add(m + "D", randn(D))
        # BF16 on disk
        add(m + "output_linear.weight", linear_w(D, D), "BF16")
        add(m + "output_linear.bias", randn(D, scale=0.02))
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
    if a.with_lm_head:
        # [lm] ConvLMHeadModel.tie_weights: lm_head.weight IS the embedding; a
        # state_dict() (and a Lightning checkpoint) lists it under both names.
        emb = params[0]
        params.append((a.prefix + "lm_head.weight", emb[1].clone(), emb[2]))
    return params


# -----------------------------------------------------------------------------
# filters

def filter_fast(raw, lam, window):
    """LongConvKernel forward at inference [lck]: raw taps (1, D, l_max) ->
    filter (D, l_max).

    Smoothing [lck] is nn.AvgPool1d(kernel_size=window, stride=1,
    padding=window//2) with the default count_include_pad=True: each output
    tap is the sum of the `window` raw taps centred on it, zeros outside
    [0, l_max), divided by `window` (also at the ends). It runs over the
    whole l_max taps, so the filter's tap t depends on raw taps up to
    t + window//2; a length-T filter is the prefix of this one (see
    conv_*), never the smoothing of a truncated kernel.
    Then the soft threshold relu(|k| - lam) * sign(k) [lck]. Kernel dropout is
    the identity at inference."""
    k = raw
    if window:
        k = F.avg_pool1d(k, kernel_size=window, stride=1, padding=window // 2,
                         count_include_pad=True)
    k = torch.relu(k.abs() - lam) * torch.sign(k)
    return k[0]                                   # [h3c] '1 h l -> h l' (channels = 1)


def filter_direct(raw, lam, window):
    """filter_fast written out tap by tap (used by the float64 self-check)."""
    k = raw[0]
    L = k.shape[-1]
    if window:
        acc = torch.zeros_like(k)
        for j in range(-(window // 2), window // 2 + 1):   # acc[t] += k[t + j]
            if abs(j) >= L:
                continue
            if j >= 0:
                acc[:, :L - j] += k[:, j:]
            else:
                acc[:, -j:] += k[:, :L + j]
        k = acc / window
    big = k.abs() > lam
    return torch.where(big, k - lam * torch.sign(k), torch.zeros_like(k))


# -----------------------------------------------------------------------------
# convolutions: a (B, D, T) input, f_full the (D, l_max) filter

def conv_fft(a, f_full):
    """y[b,c,t] = sum_{s<=t} f[c,s] a[b,c,t-s] with the first T taps of f,
    via an FFT of size 2T (zero padding: no wrap-around on the first T outputs)."""
    T = a.shape[-1]
    f = f_full[:, :T]
    n = 2 * T
    y = torch.fft.irfft(torch.fft.rfft(a, n=n) * torch.fft.rfft(f, n=n), n=n)
    return y[..., :T]


def conv_direct(a, f_full):
    """Same as conv_fft, the O(T^2) way (used for the self-check)."""
    T = a.shape[-1]
    y = torch.zeros_like(a)
    for s in range(min(T, f_full.shape[-1])):      # tap s times a delayed by s
        y[..., s:] += f_full[:, s, None] * a[..., :T - s]
    return y


def conv_upstream(a, f_full):
    """H3Conv's non-fused path, literally [h3c]: rfft of the whole filter with
    n = 2T (torch truncates the filter to 2T taps, or zero pads it), product,
    irfft, first T outputs. Output t then also gets f[s] a[2T + t - s] for
    the taps T + t < s < min(l_max, 2T): later inputs wrap around the
    circular convolution into earlier outputs. So it equals conv_fft only
    when T >= l_max - 1 (or T = 1) and is not causal for 2 <= T <= l_max - 2
    (see the README). Used only by the self-check, at T = l_max."""
    T = a.shape[-1]
    n = 2 * T
    y = torch.fft.irfft(torch.fft.rfft(a, n=n) * torch.fft.rfft(f_full, n=n), n=n)
    return y[..., :T]


# -----------------------------------------------------------------------------
# forward

def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, LN_EPS)


def linear(x, W, pfx):
    return F.linear(x, W[pfx + ".weight"], W[pfx + ".bias"])


def h3conv(W, m, h, cfg, conv, filt, stats=None):
    """H3Conv forward, head_dim = 1 [h3c]. h: (B, T, D) -> (B, T, D)."""
    # [h3c] q/k/v: weight @ u^T + bias, i.e. three ordinary Linear layers
    q = linear(h, W, m + "q_proj").transpose(1, 2)             # (B, D, T)
    k = linear(h, W, m + "k_proj").transpose(1, 2)
    v = linear(h, W, m + "v_proj").transpose(1, 2)
    fk = filt(W[m + "k_kernel.kernel"], cfg.lam, cfg.ma_window)  # (D, l_max)
    fs = filt(W[m + "kernel.kernel"], cfg.lam, cfg.ma_window)
    # [h3c] k = causalconv(k, k_kernel) + k_D * k  (no short conv, no gelu)
    conv_k, skip_k = conv(k, fk), W[m + "k_D"][:, None] * k
    k = conv_k + skip_k
    # [h3c] kv = k * v  (head_dim 1: elementwise)
    kv = k * v
    # [h3c] y = causalconv(kv, kernel) + D * kv;  y = y * q
    conv_y, skip_y = conv(kv, fs), W[m + "D"][:, None] * kv
    y = (conv_y + skip_y) * q
    if stats is not None:
        stats.append((float(conv_k.norm() / skip_k.norm()),
                      float(conv_y.norm() / skip_y.norm())))
    return linear(y.transpose(1, 2), W, m + "output_linear")   # [h3c] output_linear


def forward(W, tokens, cfg, conv=conv_fft, filt=filter_fast, stats=None):
    """tokens (B, T) int64 -> logits (B, T, V_padded). Dtype follows W.

    [block] Block(prenorm=True) computes  residual += dropout(hidden);
    hidden = norm(residual); hidden = sublayer(hidden)  for the mixer and the
    MLP, and [lm] LMBackbone ends with ln_f(dropout(hidden) + residual): at
    inference (dropout = identity) that is the usual pre-norm residual stack
    below. [lm] MLP: Mlp(fc1 -> gelu(approximate='tanh') -> fc2)."""
    P = cfg.prefix + "backbone."
    emb = W[P + "embeddings.word_embeddings.weight"]
    r = emb[tokens]                                  # residual stream (B, T, D)
    for i in range(cfg.n_layer):
        p = P + "layers.%d." % i
        h = layer_norm(r, W[p + "norm1.weight"], W[p + "norm1.bias"])
        r = r + h3conv(W, p + "mixer.", h, cfg, conv, filt, stats)
        h = layer_norm(r, W[p + "norm2.weight"], W[p + "norm2.bias"])
        h = F.gelu(linear(h, W, p + "mlp.fc1"), approximate="tanh")
        r = r + linear(h, W, p + "mlp.fc2")
    h = layer_norm(r, W[P + "ln_f.weight"], W[P + "ln_f.bias"])
    return h @ emb.t()                               # [lm] lm_head tied, bias=False


# -----------------------------------------------------------------------------
# main

def rel_err(x, ref):
    return float((x.double() - ref.double()).abs().max() / ref.double().abs().max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--l-max", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=97)
    ap.add_argument("--lam", type=float, default=0.05,
                    help="soft-threshold lambda (safari's h3-conv.yaml uses 0.003)")
    ap.add_argument("--ma-window", type=int, default=0,
                    help="moving-average window (odd); 0 = use_ma_smoothing off")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--with-lm-head", action="store_true",
                    help="also write PREFIXlm_head.weight (a copy of the tied embedding)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the float64 direct-convolution self-check")
    a = ap.parse_args()
    assert 1 <= a.seq_len <= a.l_max, "need 1 <= seq_len <= l_max"
    assert a.ma_window == 0 or a.ma_window % 2 == 1, \
        "ma window must be odd [lck]"
    assert a.lam >= 0
    os.makedirs(a.out, exist_ok=True)

    params = build_params(a)         # seeds torch's RNG, then draws the weights
    tokens = torch.randint(0, VOCAB_SIZE, (a.batch, a.seq_len))

    W32 = {n: t for n, t, _ in params}
    with torch.no_grad():
        stats = []
        logits = forward(W32, tokens, a, conv_fft, filter_fast, stats)
    assert torch.isfinite(logits).all(), "non-finite logits"

    # config.json: safari's LM keys [lm] with the mixer config nested under
    # "layer" as in [cfg] (the LM passes `layer` to the registry [reg]).
    layer = {
        "_name_": "h3-conv",
        "l_max": a.l_max,
        "head_dim": 1,
        "lam": a.lam,
        "use_ma_smoothing": a.ma_window > 0,
        # LongConvKernel default 7 [lck]; unused when smoothing is off
        "ma_window_len": a.ma_window if a.ma_window > 0 else 7,
        # the LongConvKernel switches that would change the math; only these
        # values are modelled here (a loader should refuse others)
        "smooth_freq": False,
        "causal": True,
        "channels": 1,
    }
    config = {
        "model_type": "longconv",
        "d_model": a.d_model, "n_layer": a.n_layer, "d_inner": 4 * a.d_model,
        "vocab_size": VOCAB_SIZE, "pad_vocab_size_multiple": PAD_MULTIPLE,
        "layer_norm_epsilon": LN_EPS, "tie_word_embeddings": True,
        # LMBackbone defaults: no position embeddings, no attention layers
        # (safari's pile h3-conv experiment uses attn_layer_idx [1, 8]: a
        # hybrid, not modelled here)
        "max_position_embeddings": 0, "attn_layer_idx": None,
        "max_seq_len": a.l_max,
        "layer": layer,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "model.safetensors"), params,
                      {"format": "pt"})
    write_safetensors(os.path.join(a.out, "expected.safetensors"),
                      [("tokens", tokens, "I32"), ("logits", logits, "F32")],
                      {"format": "pt", "seed": a.seed, "lam": a.lam,
                       "ma_window": a.ma_window, "prefix": a.prefix})

    P = a.prefix + "backbone."
    live = []
    for i in range(a.n_layer):
        for nm in ("k_kernel.kernel", "kernel.kernel"):
            f = filter_fast(W32[P + "layers.%d.mixer.%s" % (i, nm)], a.lam, a.ma_window)
            live.append(float((f[:, :a.seq_len] != 0).float().mean()))
    print("logits: min %.3f max %.3f std %.3f" % (
        logits.min(), logits.max(), logits.std()))
    print("|conv|/|skip| per layer (k, kv): %s" % " ".join(
        "(%.3f, %.3f)" % s for s in stats))
    print("fraction of the first T filter taps surviving the threshold: %.2f .. %.2f"
          % (min(live), max(live)))

    check = "skipped"
    if not a.no_check:
        # (1) Same math in float64 with the O(T^2) convolution and the tap by
        # tap smoothing + threshold: catches FFT size / orientation /
        # truncation mistakes and smoothing-edge mistakes in the fp32 path.
        W64 = {n: t.double() for n, t in W32.items()}
        with torch.no_grad():
            ref = forward(W64, tokens, a, conv_direct, filter_direct)
        rel = rel_err(logits, ref)
        assert rel < 1e-5, "self-check failed: rel err %.3g" % rel
        # (2) The filter a length-T run uses is the first T taps of the
        # length-l_max filter: the fp32 filter conv_fft sees, against the
        # float64 one computed on all l_max taps then cut.
        frel = 0.0
        for i in range(a.n_layer):
            for nm in ("k_kernel.kernel", "kernel.kernel"):
                raw = W32[P + "layers.%d.mixer.%s" % (i, nm)]
                f32 = filter_fast(raw, a.lam, a.ma_window)[:, :a.seq_len]
                f64 = filter_direct(raw.double(), a.lam, a.ma_window)
                assert f64.shape[-1] == a.l_max
                f64 = f64[:, :a.seq_len]
                frel = max(frel, rel_err(f32, f64))
        assert frel < 1e-5, "filter check failed: rel err %.3g" % frel
        # (3) Upstream's own FFT path [h3c] (whole filter, fft size 2T) is
        # exact when T = l_max. Run it on the tokens extended to l_max with
        # more random tokens: by causality its first T logits must be ours,
        # i.e. the length-T model is the prefix of the l_max one.
        g = torch.Generator().manual_seed(a.seed + 1)
        more = torch.randint(0, VOCAB_SIZE, (a.batch, a.l_max - a.seq_len), generator=g)
        with torch.no_grad():
            up = forward(W32, torch.cat([tokens, more], 1), a, conv_upstream,
                         filter_fast)[:, :a.seq_len]
        urel = rel_err(logits, up)
        assert urel < 1e-5, "upstream-path check failed: rel err %.3g" % urel
        # (4) Information only: upstream's path run directly at length T.
        with torch.no_grad():
            upT = forward(W32, tokens, a, conv_upstream, filter_fast)
        print("upstream fft path run at T=%d (l_max %d) differs by rel %.3g %s" % (
            a.seq_len, a.l_max, rel_err(upT, logits),
            "(circular wrap of taps > T: not causal, not modelled)"
            if 2 <= a.seq_len <= a.l_max - 2 else "(no wrap at this T: exact)"))
        check = "%.2g (filters %.2g, upstream path at l_max %.2g)" % (rel, frel, urel)
    print("wrote %s: B=%d T=%d D=%d layers=%d lam=%g ma_window=%d, self-check rel err %s" % (
        a.out, a.batch, a.seq_len, a.d_model, a.n_layer, a.lam, a.ma_window, check))


if __name__ == "__main__":
    main()

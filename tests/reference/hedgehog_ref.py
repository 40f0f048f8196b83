#!/usr/bin/python3
"""
hedgehog_ref.py -- independent PyTorch (fp32) reference for the lcsm C library, "hedgehog" family.

A safari-style LM (pre-norm LayerNorm blocks, tanh-GELU MLP, ln_f, LM head
tied to the padded word embedding) whose mixers are Hedgehog linear
attentions (Zhang, Bhatia, Kumbong, Re, "The Hedgehog & the Porcupine:
Expressive Linear Attentions with Softmax Mimicry", ICLR 2024) at the layer
indices `attn_layer_idx` and HyenaDNA Hyena operators everywhere else. There
is no published Hedgehog + Hyena LM; the checkpoint format is defined here
(spec: /work/notes/hedgehog.md, outside the repo) from what exists upstream.

Writes a random model as config.json + model.safetensors and random tokens
plus the logits this reference computes for them (expected.safetensors); the
C library loads the checkpoint, runs the same tokens, must reproduce them.

Like hyena_ref.py: one file of plain tensor ops (no nn.Module), torch + numpy
only (Debian 12's python3-torch 1.13; no einops / safetensors packages). The
block, the Hyena operator, the FFT and direct convolutions and the file
writers are imported from hyena_ref.py, not repeated here.

Usage:
  hedgehog_ref.py --out DIR [--seed 1234] [--d-model 32] [--n-layer 4]
                  [--heads 4] [--feature-dim 16] [--attn-layers 1,3|all|none]
                  [--l-max 300] [--batch 2] [--seq-len 97] [--prefix ""]
                  [--chunk 16] [--fm-scale 2.5] [--no-proj-bias]
                  [--emb-dim 5] [--filter-order 16] [--num-inner-mlps 2]
                  [--shift 0.05] [--no-check]

Upstream sources (read, not copied; the file a fact comes from is named next
to the code that uses it):
  [lfm]  HazyResearch/lolcats @375df84 src/model/feature_map.py
         (FeatureMap, SoftmaxDim, FeatureMapMLP = learned_kernel "untied_head_einsum")
  [lla]  HazyResearch/lolcats @375df84 src/model/linear_attention/linear_attention.py
         (causal_dot_product, linear_attention, quadratic_attention,
          LolcatsLinearAttention.forward, LinearAttentionState.update)
  [lcfg] HazyResearch/lolcats @375df84 configs/model/distill_llama3_8b_lk_smd_fd64.yaml
         (feature_map softmax_dim, eps 1e-12, feature_dim 64, bias false,
          tie_qk_kernels false)
  [lm]   HazyResearch/safari @c1b5c7b src/models/sequence/long_conv_lm.py
         (create_mixer_cls: a layer whose index is in attn_layer_idx gets an
          attention mixer built from the attn_cfg keys)
  [h3]   HazyResearch/safari configs/experiment/pile/h3.yaml
         (attn_layer_idx: [1, 8], attn_cfg: {num_heads: 12, ...})
  [mha]  Dao-AILab/flash-attention flash_attn/modules/mha.py
         (MHA: qkv_proj_bias=True, out_proj_bias=True; heads split as
          "(h d)": head h owns channels h*dh .. h*dh+dh-1)

Hedgehog mixer (per head h, head_dim dh = D / H, feature_dim F; x = LN1(r)):
  q, k, v = Wq x + bq, Wk x + bk, Wv x + bv           (D -> D each)
  q_h, k_h, v_h = channels h*dh .. h*dh+dh-1
  u_q = q_h^T Wfq[h]   (Wfq[h]: dh x F)                 [lfm] einsum 'hdf,bhld->bhlf'
  phi(q) = max([softmax(u_q), softmax(-u_q)], eps_fm)   2F values, each half sums to 1
  phi(k) likewise with its own Wfk                       [lcfg] tie_qk_kernels: false
  S_t = S_{t-1} + phi(k_t) v_t^T  (2F x dh),  z_t = z_{t-1} + phi(k_t)   (t included)
  y_t = (phi(q_t)^T S_t) / (phi(q_t)^T z_t + eps)       [lla] no 1/sqrt(d) scale
  out = Wo concat_h(y) + bo
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hyena_ref as hr  # noqa: E402  (the block, the Hyena operator, the writers)
from hyena_ref import (VOCAB_SIZE, PAD_MULTIPLE, LN_EPS, randn, linear_w,  # noqa: E402
                       write_safetensors)

FM_EPS = 1e-12     # [lfm] FeatureMap / SoftmaxDim: clamp(min=eps), eps default 1e-12 ([lcfg] sets 1e-12)
ATTN_EPS = 1e-12   # [lla] LolcatsLinearAttention(eps=1e-12) -> linear_attention(..., eps): denominator + eps


# -----------------------------------------------------------------------------
# random model

def hedgehog_mixer_params(add, a, i, m):
    """Layer i's Hedgehog tensors under prefix m ("layers.{i}.mixer.")."""
    D, H, Fd = a.d_model, a.heads, a.feature_dim
    dh = D // H
    for name, dt in (("q_proj", "F32"), ("k_proj", "F16"), ("v_proj", "F32")):
        add(m + name + ".weight", linear_w(D, D), dt)       # k_proj F16 on disk: the fp16 decoder
        if a.proj_bias:
            add(m + name + ".bias", randn(D, scale=0.02))
    # v is averaged over many tokens, which shrinks it: a larger output
    # projection keeps the attention's contribution to the residual O(1).
    add(m + "out_proj.weight", linear_w(D, D, scale=2.0 * D ** -0.5), "BF16")
    if a.proj_bias:
        add(m + "out_proj.bias", randn(D, scale=0.02))
    # [lfm] FeatureMapMLP.layer: (num_heads, head_dim, feature_dim), used as
    # u[f] = sum_d x[d] layer[h, d, f]. q_h has O(1) components, so entries
    # ~N(0, fm_scale^2 / dh) give softmax logits of std ~fm_scale: neither
    # uniform nor saturated (the script prints the entropy).
    add(m + "feature_map_q.mlp.layer", randn(H, dh, Fd, scale=a.fm_scale * dh ** -0.5))
    add(m + "feature_map_k.mlp.layer", randn(H, dh, Fd, scale=a.fm_scale * dh ** -0.5), "BF16")


def build_params(a):
    attn = set(a.attn_layer_idx)

    def mixer_params(add, a_, i, m):
        (hedgehog_mixer_params if i in attn else hr.hyena_mixer_params)(add, a_, i, m)
    return hr.build_params(a, mixer_params)


# -----------------------------------------------------------------------------
# forward

def feature_map(x, layer, eps=FM_EPS):
    """x (B, H, T, dh), layer (H, dh, F) -> phi(x) (B, H, T, 2F).

    [lfm] FeatureMapMLP.forward: u = einsum('hdf,bhld->bhlf', layer, x), no
    bias ([lcfg] bias: false), no skip connection; SoftmaxDim.forward: the two
    softmaxes are separate, each over the F features, then clamp(min=eps)."""
    u = torch.einsum("bhtd,hdf->bhtf", x, layer)
    return torch.cat([torch.softmax(u, dim=-1), torch.softmax(-u, dim=-1)], dim=-1).clamp(min=eps)


def causal_mask(T, dtype):
    """M[t, s] = 1 for s <= t: a query sees the keys up to and including its
    own token ([lla] quadratic_attention masks triu(1); causal_dot_product's
    cumsum is inclusive)."""
    return torch.ones(T, T, dtype=dtype).tril()


def attention_parallel(fq, fk, v, eps=ATTN_EPS):
    """O(T^2) form ([lla] quadratic_attention): A = phi(Q) phi(K)^T masked,
    y = A V / (rowsum(A) + eps)."""
    A = (fq @ fk.transpose(-1, -2)) * causal_mask(fq.shape[-2], fq.dtype)
    return (A @ v) / (A.sum(-1, keepdim=True) + eps)


def attention_chunked(fq, fk, v, chunk, eps=ATTN_EPS):
    """Chunked prefill: within a chunk the masked quadratic form, plus the
    state (S, z) carried from the earlier chunks; then S, z absorb the chunk.
    Equal to the recurrence for any chunk size (the last chunk may be short)."""
    B, H, T, F2 = fk.shape
    S = fk.new_zeros(B, H, F2, v.shape[-1])
    z = fk.new_zeros(B, H, F2)
    y = torch.empty_like(v)
    for c0 in range(0, T, chunk):
        q, k, vv = fq[:, :, c0:c0 + chunk], fk[:, :, c0:c0 + chunk], v[:, :, c0:c0 + chunk]
        A = (q @ k.transpose(-1, -2)) * causal_mask(q.shape[-2], q.dtype)
        num = q @ S + A @ vv
        den = (q @ z[..., None])[..., 0] + A.sum(-1)
        y[:, :, c0:c0 + chunk] = num / (den + eps)[..., None]
        S = S + k.transpose(-1, -2) @ vv
        z = z + k.sum(-2)
    return y


def attention_recurrent(fq, fk, v, eps=ATTN_EPS):
    """Token by token, the decode form ([lla] LinearAttentionState.update adds
    phi(k_t) v_t^T and phi(k_t) to the states, then the output reads them)."""
    B, H, T, F2 = fk.shape
    S = fk.new_zeros(B, H, F2, v.shape[-1])
    z = fk.new_zeros(B, H, F2)
    y = torch.empty_like(v)
    for t in range(T):
        S = S + fk[:, :, t, :, None] * v[:, :, t, None, :]
        z = z + fk[:, :, t]
        q = fq[:, :, t]
        y[:, :, t] = (q[..., None, :] @ S)[..., 0, :] / ((q * z).sum(-1) + eps)[..., None]
    return y


def hedgehog_operator(W, m, h, cfg, attention, stats=None):
    """h (B, T, D) normed stream -> (B, T, D). `attention(fq, fk, v)` is one of
    the three equal forms above."""
    B, T, D = h.shape
    H = cfg.heads
    dh = D // H

    def proj(name):
        b = W.get(m + name + ".bias")
        return F.linear(h, W[m + name + ".weight"], b)

    # [mha] / [lla] process_qkv: view(b, l, H, dh).transpose(1, 2)
    q, k, v = (proj(n).view(B, T, H, dh).transpose(1, 2) for n in ("q_proj", "k_proj", "v_proj"))
    fq = feature_map(q, W[m + "feature_map_q.mlp.layer"])
    fk = feature_map(k, W[m + "feature_map_k.mlp.layer"])
    y = attention(fq, fk, v)                                   # (B, H, T, dh)
    if stats is not None:
        stats.append(attention_stats(q, W[m + "feature_map_q.mlp.layer"], y, v))
    y = y.transpose(1, 2).reshape(B, T, D)                     # heads back in channel order
    return F.linear(y, W[m + "out_proj.weight"], W.get(m + "out_proj.bias"))


def attention_stats(q, layer, y, v):
    """How far the layer is from the degenerate cases: the feature map's
    softmax entropy / log F (1 = uniform, 0 = one-hot) and its largest weight,
    and |y - causal mean of v| / |y| (0 = attention as uniform as a mean)."""
    u = torch.einsum("bhtd,hdf->bhtf", q, layer)
    p = torch.softmax(u, -1)
    ent = float((-(p * p.clamp_min(1e-30).log()).sum(-1)).mean() / math.log(u.shape[-1])) \
        if u.shape[-1] > 1 else 1.0
    mean_v = v.cumsum(-2) / torch.arange(1, v.shape[-2] + 1, dtype=v.dtype)[:, None]
    dep = float((y - mean_v).norm() / y.norm())
    phi = torch.cat([p, torch.softmax(-u, -1)], -1)
    return {"entropy": ent, "pmax": float(p.max(-1)[0].mean()), "vs_mean": dep,
            "clamped": float((phi < FM_EPS).double().mean())}


def forward(W, tokens, a, attention, conv, stats=None, contrib=None):
    attn = set(a.attn_layer_idx)

    def mixer(i, W_, m, h):
        if i in attn:
            out = hedgehog_operator(W_, m, h, a, attention, stats)
        else:
            out = hr.hyena_operator(W_, m, h, a, conv)
        if contrib is not None:
            contrib.append(float(out.norm() / h.norm()))
        return out
    return hr.forward(W, tokens, a, conv, mixer=mixer)


# -----------------------------------------------------------------------------
# main

def parse_layers(s, n_layer):
    if s is None:
        return [i for i in range(n_layer) if i % 2 == 1]
    if s in ("all",):
        return list(range(n_layer))
    if s in ("", "none"):
        return []
    idx = sorted({int(x) for x in s.split(",")})
    assert all(0 <= i < n_layer for i in idx), "--attn-layers: indices must be in [0, n_layer)"
    return idx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--feature-dim", type=int, default=16,
                    help="F: features per sign (phi has 2F entries per head)")
    ap.add_argument("--attn-layers", default=None,
                    help="Hedgehog layer indices, comma separated, 'all' or 'none' "
                         "(default: the odd ones, 1,3,...)")
    ap.add_argument("--l-max", type=int, default=300)
    ap.add_argument("--emb-dim", type=int, default=5)
    ap.add_argument("--filter-order", type=int, default=16)
    ap.add_argument("--num-inner-mlps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=97)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--shift", type=float, default=0.05,
                    help="Hyena modulation shift (as hyena_ref.py; not in config.json)")
    ap.add_argument("--chunk", type=int, default=16,
                    help="chunk length of the fp32 chunked attention")
    ap.add_argument("--fm-scale", type=float, default=2.5,
                    help="std of the feature-map softmax logits the random weights aim at")
    ap.add_argument("--no-proj-bias", dest="proj_bias", action="store_false",
                    help="no q/k/v/out_proj biases (attn_cfg qkv_proj_bias / out_proj_bias false)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the float64 self-checks")
    a = ap.parse_args()
    assert 1 <= a.seq_len <= a.l_max, "need 1 <= seq_len <= l_max"
    assert a.d_model % a.heads == 0, "d_model must be a multiple of heads"
    assert a.feature_dim >= 1 and a.chunk >= 1
    a.attn_layer_idx = parse_layers(a.attn_layers, a.n_layer)
    os.makedirs(a.out, exist_ok=True)

    params = build_params(a)         # seeds torch's RNG, then draws the weights
    tokens = torch.randint(0, VOCAB_SIZE, (a.batch, a.seq_len))

    W32 = {n: t for n, t, _ in params}
    chunked = lambda fq, fk, v: attention_chunked(fq, fk, v, a.chunk)  # noqa: E731
    with torch.no_grad():
        stats, contrib = [], []
        logits = forward(W32, tokens, a, chunked, hr.causal_conv_fft, stats, contrib)
    assert torch.isfinite(logits).all(), "non-finite logits"

    config = {
        "d_model": a.d_model, "n_layer": a.n_layer, "d_inner": 4 * a.d_model,
        "vocab_size": VOCAB_SIZE, "pad_vocab_size_multiple": PAD_MULTIPLE,
        "max_seq_len": a.l_max, "emb_dim": a.emb_dim,
        "filter_order": a.filter_order, "hyena_order": 2,
        "short_filter_order": 3, "num_inner_mlps": a.num_inner_mlps,
        "activation_freq": 1, "layer_norm_epsilon": LN_EPS,
        "tie_word_embeddings": True, "model_type": "hedgehog",
        "attn_layer_idx": a.attn_layer_idx,
        "attn_cfg": {
            "num_heads": a.heads, "feature_dim": a.feature_dim,
            "feature_map": "softmax_dim", "learned_kernel": "untied_head_einsum",
            "tie_qk_kernels": False, "feature_map_eps": FM_EPS, "eps": ATTN_EPS,
            "qkv_proj_bias": a.proj_bias, "out_proj_bias": a.proj_bias,
        },
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "model.safetensors"), params, {"format": "pt"})
    write_safetensors(os.path.join(a.out, "expected.safetensors"),
                      [("tokens", tokens, "I32"), ("logits", logits, "F32")],
                      {"format": "pt", "seed": a.seed, "shift": a.shift, "prefix": a.prefix,
                       "family": "hedgehog", "chunk": a.chunk})

    print("logits: min %.3f max %.3f std %.3f" % (logits.min(), logits.max(), logits.std()))
    print("|mixer out| / |normed in| per layer: %s" % " ".join(
        "%d%s:%.2f" % (i, "a" if i in a.attn_layer_idx else "h", c) for i, c in enumerate(contrib)))
    for i, s in zip(a.attn_layer_idx, stats):
        print("attn layer %d: feature-map entropy/logF %.3f, mean max weight %.3f, "
              "|y - mean v| / |y| %.3f, q features clamped %.2g" % (
                  i, s["entropy"], s["pmax"], s["vs_mean"], s["clamped"]))

    check = "skipped"
    if not a.no_check:
        W64 = {n: t.double() for n, t in W32.items()}
        ref = logits.double()

        def rel(x):
            return float((ref - x).abs().max() / x.abs().max())

        def all_forms(fq, fk, v):
            # float64: the three forms of the attention agree to rounding
            yr = attention_recurrent(fq, fk, v)
            for other in (attention_parallel(fq, fk, v), attention_chunked(fq, fk, v, a.chunk),
                          attention_chunked(fq, fk, v, 1 + a.seq_len // 3)):
                e = float((other - yr).abs().max() / yr.abs().max())
                assert e < 1e-12, "float64 attention forms differ: %.3g" % e
            return yr
        with torch.no_grad():
            # (a) attention as the token-by-token (S, z) recurrence, FFT convolutions
            la = forward(W64, tokens, a, all_forms, hr.causal_conv_fft)
            # (b) attention in the O(T^2) parallel form, O(T^2) direct convolutions
            lb = forward(W64, tokens, a, attention_parallel, hr.causal_conv_direct)
        ea, eb = rel(la), rel(lb)
        assert ea < 1e-5, "self-check (a) recurrence failed: rel err %.3g" % ea
        assert eb < 1e-5, "self-check (b) direct failed: rel err %.3g" % eb
        eab = float((la - lb).abs().max() / lb.abs().max())
        check = "(a) recurrence %.2g, (b) parallel+direct conv %.2g; (a) vs (b) in float64 %.2g" % (ea, eb, eab)
    print("wrote %s: B=%d T=%d D=%d layers=%d attn=%s H=%d F=%d, self-check rel err %s" % (
        a.out, a.batch, a.seq_len, a.d_model, a.n_layer,
        ",".join(map(str, a.attn_layer_idx)) or "none", a.heads, a.feature_dim, check))


if __name__ == "__main__":
    main()

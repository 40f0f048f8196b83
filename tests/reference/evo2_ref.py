#!/usr/bin/python3
"""
evo2_ref.py -- independent PyTorch (fp32) reference for StripedHyena 2
(Evo 2 1B / 7B / 20B / 40B, Zymrael/vortex + ArcInstitute/evo2) for the lcsm
C library.

Builds a small random Evo 2 model, writes config.yml (the published YAML
keys) plus config.json (same keys), model.safetensors (the published .pt
tensor names and shapes, incl. the head-interleaved Wqkv layout the .pt
files store) and expected.safetensors (tokens I32 [B][T], logits F32
[B][T][V]), like hyena_ref.py.  --save-pt writes the state dict as the
published evo2_*.pt files hold it.

Usage:
  evo2_ref.py --out DIR [--seed 1234] [--d-model 32] [--n-layer 6]
      [--heads 4] [--state-size 4] [--vocab-size 512] [--inner-mlp-size N]
      [--hcs-layers L] [--hcm-layers L] [--hcl-layers L] [--attn-layers L]
      [--hcs-filter-length 7] [--hcm-filter-length 128]
      [--hcs-filter-groups G] [--hcm-filter-groups G]
      [--l-max 300] [--batch 2] [--seq-len 97] [--prefix ""]
      [--dtypes emb=F32,proj=BF16,mlp=F16,...] [--rotary-base 10000]
      [--rotary-scaling 1] [--no-interleave] [--column-split-hyena]
      [--no-evo2-style-activations] [--save-pt FILE] [--no-check]
  Layer kinds default to the repeating pattern hcs, hcm, hcl (index mod 3);
  any layer listed explicitly takes that kind.

Math (Zymrael/vortex vortex/model/model.py, engine.py, layers.py, utils.py;
details and citations in /work/notes/evo2.md):
  x = E[tokens]
  Hyena layer (hcs / hcm / hcl):
      z = W_p RMSNorm_pre(x)  [+ b_p if qkv_proj_bias]          (3D channels)
      z = shortconv3(z) [+ b_s if short_filter_bias]   (w[2] on x_t)
      interleave: x2 = z[0::3], x1 = z[1::3], v = z[2::3]
      u = x1 * v
      hcs (inner filter length < 128): y = sum_k h_g[k] u[t-L+1+k]  (no D)
      hcm (inner filter length >= 128): y = sum_k h_g[k] u[t-k] + D u
          h_g shared by the D/G consecutive channels of group g = c // (D/G)
      hcl: y = sum_j h[c, t-j] u[j] + D u, h[c,t] = sum_s R[c,s] exp(lp[c,s] t)
      x = x + W_o (x2 * y) + b_o
  Attention: x = x + MHA(RMSNorm_pre(x)) (rotary, causal; Wqkv rows stored
      per head [q|k|v] and permuted to [q|k|v] blocks when column_split)
  both: x = x + l3(act(l1 n) * l2 n), act = GELU in layer 0 and identity in
      every later layer (evo2_style_activations)
  logits = RMSNorm_final(x) @ E^T  (tied)

Self-checks (float64, default on): the same forward with direct O(T^2)
convolutions and materialised filters, and a token-by-token decode with
explicit states (FIR states, s <- exp(lp) s + u, y = sum_s R s, KV cache);
both must agree with the fp32 logits to < 1e-5 relative.
"""

import argparse
import io
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refutil as ru                                   # noqa: E402
import striped_common as sc                            # noqa: E402

DTYPE_CLASSES = ("emb", "norm", "proj", "mlp", "conv", "skip", "bias", "poles", "inv_freq")
DEFAULT_DTYPES = {"emb": "F32", "norm": "F32", "proj": "BF16", "mlp": "F16", "conv": "F32",
                  "skip": "F32", "bias": "F32", "poles": "F32", "inv_freq": "F32"}
MEDIUM = 128      # vortex: an inner FIR of length >= 128 has D, fft conv, flipped step


# -----------------------------------------------------------------------------
# configuration: the published YAML keys (configs/evo2-7b-8k.yml order)

def make_config(a):
    D, H, n = a.d_model, a.heads, a.n_layer
    assert D % H == 0 and (D // H) % 2 == 0
    kinds = {}
    for i in range(n):
        kinds[i] = ("hcs", "hcm", "hcl")[i % 3]
    for name, lst in (("hcs", a.hcs_layers), ("hcm", a.hcm_layers),
                      ("hcl", a.hcl_layers), ("attn", a.attn_layers)):
        for i in lst:
            assert 0 <= i < n, "layer %d out of range" % i
            kinds[i] = name
    pick = lambda k: [i for i in range(n) if kinds[i] == k]   # noqa: E731
    for g in (a.hcs_filter_groups, a.hcm_filter_groups):
        assert D % g == 0, "filter groups must divide d_model"
    inner = a.inner_mlp_size or 16 * ((int(2 * D * 4 / 3) + 15) // 16)
    cfg = {
        "model_name": "lcsm-evo2-ref-%dd-%dl" % (D, n),
        "vocab_size": a.vocab_size,
        "hidden_size": D,
        "num_filters": D,
        "hcl_layer_idxs": pick("hcl"),
        "hcm_layer_idxs": pick("hcm"),
        "hcs_layer_idxs": pick("hcs"),
        "attn_layer_idxs": pick("attn"),
        "hcm_filter_length": a.hcm_filter_length,
        "hcl_filter_groups": D,
        "hcm_filter_groups": a.hcm_filter_groups,
        "hcs_filter_groups": a.hcs_filter_groups,
        "hcs_filter_length": a.hcs_filter_length,
        "num_layers": n,
        "short_filter_length": 3,
        "num_attention_heads": H,
        "short_filter_bias": a.short_filter_bias,
        "mlp_init_method": "torch.nn.init.zeros_",
        "mlp_output_init_method": "torch.nn.init.zeros_",
        "eps": a.eps,
        "state_size": a.state_size,
        "rotary_emb_base": a.rotary_base,
    }
    if a.rotary_scaling != 1:
        cfg["rotary_emb_scaling_factor"] = a.rotary_scaling
        cfg["use_interpolated_rotary_pos_emb"] = True
    cfg.update({
        "make_vocab_size_divisible_by": 8,
        "inner_size_multiple_of": 16,
        "inner_mlp_size": inner,
        "log_intermediate_values": False,
        "proj_groups": 1,
        "hyena_filter_groups": 1,
        "column_split_hyena": a.column_split_hyena,
        "column_split": True,
        "interleave": a.interleave,
        "evo2_style_activations": a.evo2_style_activations,
        "model_parallel_size": 1,
        "pipe_parallel_size": 1,
        "tie_embeddings": True,
        "mha_out_proj_bias": True,
        "hyena_out_proj_bias": True,
        "hyena_flip_x1x2": False,
        "qkv_proj_bias": a.qkv_proj_bias,
        "use_fp8_input_projections": False,
        "max_seqlen": a.l_max,
        "max_batch_size": 1,
        "final_norm": True,
        "use_flash_attn": True,
        "use_flash_rmsnorm": False,
        "use_flash_depthwise": False,
        "use_flashfft": False,
        "use_laughing_hyena": False,
        "inference_mode": True,
        "tokenizer_type": "CharLevelTokenizer",
        "prefill_style": "fft",
        "mlp_activation": "gelu",
        "print_activations": False,
    })
    return cfg


def from_config(cfg):
    """What the forward needs, with vortex's defaults for absent keys."""
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    kinds = {}
    for k, key in (("attn", "attn_layer_idxs"), ("hcl", "hcl_layer_idxs"),
                   ("hcm", "hcm_layer_idxs"), ("hcs", "hcs_layer_idxs")):
        for i in cfg.get(key, []):
            kinds.setdefault(i, k)           # get_block tests attn, hcl, hcm, hcs in order
    assert sorted(kinds) == list(range(cfg["num_layers"])), "every layer needs a kind"
    groups = cfg.get("proj_groups", 1)
    if cfg.get("column_split", True):
        assert groups == 1, "vortex's column_split Wqkv permutation needs proj_groups == 1"
    return {
        "D": D, "H": H, "hd": D // H, "Hkv": H // groups, "V": cfg["vocab_size"],
        "n_layer": cfg["num_layers"], "kinds": kinds, "S": cfg["state_size"],
        "K": cfg["short_filter_length"],
        "fir_len": {"hcm": cfg.get("hcm_filter_length"), "hcs": cfg.get("hcs_filter_length")},
        "fir_groups": {"hcm": cfg.get("hcm_filter_groups"), "hcs": cfg.get("hcs_filter_groups")},
        "eps": cfg["eps"], "flash_rms": cfg.get("use_flash_rmsnorm", False),
        "act": cfg.get("mlp_activation", "gelu"),
        "evo2_act": cfg.get("evo2_style_activations", False),
        "tie": cfg.get("tie_embeddings", True), "final_norm": cfg.get("final_norm", True),
        "base": cfg.get("rotary_emb_base", 1000000),          # AttentionBlock default
        "scaling": (cfg.get("rotary_emb_scaling_factor", 1.0)
                    if cfg.get("use_interpolated_rotary_pos_emb", False) else 1.0),
        "interleave": cfg.get("interleave", False),            # vortex reads config.interleave
        "col_split_hyena": cfg.get("column_split_hyena", True),
        "col_split_attn": cfg.get("column_split", True),
        "flip": cfg.get("hyena_flip_x1x2", False),
        # vortex reads some keys as dotdict attributes (absent -> None -> off) and
        # others with config.get(key, True): the Hyena projections use
        # `config.qkv_proj_bias`, the attention Wqkv `config.get("qkv_proj_bias", True)`.
        "proj_bias": bool(cfg.get("qkv_proj_bias")),
        "qkv_bias": cfg.get("qkv_proj_bias", True),
        "short_bias": bool(cfg.get("short_filter_bias")),
        "hyena_out_bias": bool(cfg.get("hyena_out_proj_bias")),
        "mha_out_bias": cfg.get("mha_out_proj_bias", True),
    }


# -----------------------------------------------------------------------------
# random model

def build_params(a, cfg, dt):
    m = from_config(cfg)
    D, V, S, K, I, hd = m["D"], m["V"], m["S"], m["K"], cfg["inner_mlp_size"], m["hd"]
    torch.manual_seed(a.seed)
    P = a.prefix
    params = []

    def add(name, t, cls):
        params.append((P + name, t.float().contiguous(), dt[cls]))

    def lin(o, i):
        return torch.randn(o, i) * i ** -0.5

    add("embedding_layer.weight", torch.randn(V, D), "emb")
    for i in range(m["n_layer"]):
        p, kind = "blocks.%d." % i, m["kinds"][i]
        add(p + "pre_norm.scale", 1 + 0.1 * torch.randn(D), "norm")
        if kind == "attn":
            q = p + "inner_mha_cls."
            # stored as in the .pt (per head [q | k | v] when column_split)
            add(q + "Wqkv.weight", lin(3 * D, D), "proj")
            if m["qkv_bias"]:
                add(q + "Wqkv.bias", 0.1 * torch.randn(3 * D), "bias")
            add(q + "out_proj.weight", lin(D, D), "proj")
            if m["mha_out_bias"]:
                add(q + "out_proj.bias", 0.1 * torch.randn(D), "bias")
            add(q + "rotary_emb.inv_freq", sc.inv_freq(hd, m["base"]), "inv_freq")
        else:
            add(p + "projections.weight", lin(3 * D, D), "proj")
            if m["proj_bias"]:
                add(p + "projections.bias", 0.1 * torch.randn(3 * D), "bias")
            f = p + "filter."
            add(f + "short_filter_weight", 0.6 * torch.randn(3 * D, 1, K), "conv")
            if m["short_bias"]:
                add(f + "short_filter_bias", 0.1 * torch.randn(3 * D), "bias")
            if kind == "hcl":
                # real poles exp(lp), decay time log-uniform in [4, 120] steps;
                # residues ~ 1/sqrt(S tau) so |h * u| ~ |D u|
                tau = torch.exp(torch.empty(D, S).uniform_(1.4, 4.8))
                add(f + "log_poles", (-1.0 / tau)[:, :, None], "poles")
                add(f + "residues", torch.randn(D, S) * (2.0 / (S * tau)) ** 0.5, "poles")
                add(f + "D", torch.randn(D), "skip")
            else:
                L, G = m["fir_len"][kind], m["fir_groups"][kind]
                # taps ~ N(0, 1/L), slowly decaying so late taps still matter
                decay = torch.exp(-torch.arange(L, dtype=torch.float32) / (0.7 * L))
                add(f + "h", torch.randn(G, 1, L) * decay * (2.0 / L) ** 0.5, "conv")
                if L >= MEDIUM:
                    add(f + "D", torch.randn(D), "skip")
            add(p + "out_filter_dense.weight", lin(D, D), "proj")
            if m["hyena_out_bias"]:
                add(p + "out_filter_dense.bias", 0.1 * torch.randn(D), "bias")
        add(p + "post_norm.scale", 1 + 0.1 * torch.randn(D), "norm")
        add(p + "mlp.l1.weight", lin(I, D), "mlp")
        add(p + "mlp.l2.weight", lin(I, D), "mlp")
        add(p + "mlp.l3.weight", lin(D, I), "mlp")
    add("norm.scale", 1 + 0.1 * torch.randn(D), "norm")
    return [(n, ru.round_to(t, d), d) for n, t, d in params]


# -----------------------------------------------------------------------------
# forward

def split_streams(z, m):
    """(B, 3D, T) after the short conv -> x2 (post-gate), x1 (pre-gate), v.

    interleave (vortex utils.interleave): channels are first regrouped as
    [z[0::3] | z[1::3] | z[2::3]]; then column_split_hyena splits per head
    ([x2 | x1 | v] of hd each per head) or, if false, into three D blocks.
    Published Evo 2: interleave True, column_split_hyena False, so
    x2[c] = z[3c], x1[c] = z[3c+1], v[c] = z[3c+2]."""
    B, _, T = z.shape
    D, H, hd = m["D"], m["H"], m["hd"]
    if m["interleave"]:
        z = torch.cat([z[:, 0::3], z[:, 1::3], z[:, 2::3]], dim=1)
    if m["col_split_hyena"]:
        z = z.reshape(B, H, 3 * hd, T)
        x2, x1, v = (z[:, :, j * hd:(j + 1) * hd].reshape(B, D, T) for j in range(3))
    else:
        x2, x1, v = z[:, :D], z[:, D:2 * D], z[:, 2 * D:]
    if m["flip"]:
        x1, x2 = x2, x1
    return x2, x1, v


def hcl_filter(W, f, T, dtype):
    """h[c, t] = sum_s R[c,s] exp(lp[c,s] t), t = 0..T-1 (HyenaCascade.compute_filter)."""
    lp, R = W[f + "log_poles"].to(dtype), W[f + "residues"].to(dtype)     # (D,S,1), (D,S)
    t = torch.arange(T, dtype=dtype)[None, None, :]
    return (R[..., None] * torch.exp(lp * t)).sum(1)                     # (D, T)


def group_filter(W, f, D):
    """filter.h (G, 1, L) -> per channel (D, L): h.repeat_interleave(D // G, 0)."""
    h = W[f + "h"]
    return h.repeat_interleave(D // h.shape[0], 0)[:, 0]


def hyena_block(W, p, x, m, kind, direct, stats=None):
    B, T, D = x.shape
    f = p + "filter."
    z = sc.linear(sc.rms_norm(x, W[p + "pre_norm.scale"], m["eps"], m["flash_rms"]),
                  W[p + "projections.weight"], W.get(p + "projections.bias")).transpose(1, 2)
    z = (sc.causal_xcorr_direct if direct else sc.causal_xcorr)(z, W[f + "short_filter_weight"])
    if m["short_bias"]:
        z = z + W[f + "short_filter_bias"][None, :, None]
    x2, x1, v = split_streams(z, m)
    u = x1 * v
    if kind == "hcl":
        h = hcl_filter(W, f, T, x.dtype)
        y = (sc.causal_conv_direct if direct else sc.causal_conv_fft)(u, h)
        skip = u * W[f + "D"][None, :, None]
        if stats is not None:       # both terms must matter in a good test model
            stats.append("L%.2f" % float(y.norm() / skip.norm()))
        y = y + skip
    else:
        h = group_filter(W, f, D)
        if h.shape[-1] >= MEDIUM:
            # engine.fftconv_func: 'conv' orientation (h[0] on u_t), weight[..., :T]
            y = (sc.causal_conv_direct if direct else sc.causal_conv_fft)(u, h)
            skip = u * W[f + "D"][None, :, None]           # gated_bias: D * u
            if stats is not None:
                stats.append("M%.2f" % float(y.norm() / skip.norm()))
            y = y + skip
        else:
            # engine.parallel_fir: F.conv1d, 'xcorr' orientation (h[L-1] on u_t), no D
            y = (sc.causal_xcorr_direct if direct else sc.causal_xcorr)(u, h[:, None])
    y = (x2 * y).transpose(1, 2)
    return x + sc.linear(y, W[p + "out_filter_dense.weight"], W.get(p + "out_filter_dense.bias"))


def wqkv_flash(w, m):
    """Stored Wqkv (rows per head [q_h | k_h | v_h]) -> flash layout [q | k | v]
    (StripedHyena.custom_load_state_dict, 'column split' permutation).  Works
    for weight (3D, D) and bias (3D,)."""
    if w is None or not m["col_split_attn"]:
        return w
    H, hd = m["H"], m["hd"]
    rest = w.shape[1:]
    return w.reshape(H, 3, hd, *rest).transpose(0, 1).reshape(3 * H * hd, *rest)


def attn_params(W, p, m):
    q = p + "inner_mha_cls."
    return {"wqkv": wqkv_flash(W[q + "Wqkv.weight"], m), "bqkv": wqkv_flash(W.get(q + "Wqkv.bias"), m),
            "wo": W[q + "out_proj.weight"], "bo": W.get(q + "out_proj.bias"),
            "n_heads": m["H"], "n_kv": m["Hkv"], "scaling": m["scaling"]}


def mlp_block(W, p, i, x, m):
    # ParallelGatedMLP: identity instead of act for layer_idx > 0 when evo2_style_activations
    act = "identity" if (i > 0 and m["evo2_act"]) else m["act"]
    n = sc.rms_norm(x, W[p + "post_norm.scale"], m["eps"], m["flash_rms"])
    return x + sc.gated_mlp(n, W[p + "mlp.l1.weight"], W[p + "mlp.l2.weight"],
                            W[p + "mlp.l3.weight"], act)


def head(W, P, x, m):
    if m["final_norm"]:
        x = sc.rms_norm(x, W[P + "norm.scale"], m["eps"], m["flash_rms"])
    U = W[P + "embedding_layer.weight"] if m["tie"] else W[P + "unembed.weight"]
    return x @ U.t()


def forward(W, tokens, m, P, direct=False, stats=None):
    x = W[P + "embedding_layer.weight"][tokens]
    for i in range(m["n_layer"]):
        p, kind = P + "blocks.%d." % i, m["kinds"][i]
        if kind == "attn":
            n = sc.rms_norm(x, W[p + "pre_norm.scale"], m["eps"], m["flash_rms"])
            x = x + sc.attention(n, attn_params(W, p, m), W[p + "inner_mha_cls.rotary_emb.inv_freq"])
        else:
            x = hyena_block(W, p, x, m, kind, direct, stats)
        x = mlp_block(W, p, i, x, m)
    return head(W, P, x, m)


def decode(W, tokens, m, P):
    """Token-by-token forward with explicit states (float64): short-filter
    FIR state (last 2 projected inputs), inner FIR state (last L-1 gated
    inputs u), real modal state s <- exp(lp) s + u with y = sum_s R s + D u,
    KV cache.  All states start at zero; this is the correct version of
    engine.step_fir / step_iir (see the notes for the upstream short-prompt
    bug)."""
    B, T = tokens.shape
    D, S, K = m["D"], m["S"], m["K"]
    dt = W[P + "embedding_layer.weight"].dtype
    st = {}
    for i in range(m["n_layer"]):
        p, kind = P + "blocks.%d." % i, m["kinds"][i]
        f = p + "filter."
        if kind == "attn":
            st[i] = {}
            continue
        st[i] = {"fir": sc.FirState(B, 3 * D, K, dt)}
        if kind == "hcl":
            st[i]["s"] = torch.zeros(B, D, S, dtype=dt)
            st[i]["p"] = torch.exp(W[f + "log_poles"][..., 0])           # (D, S)
        else:
            h = group_filter(W, f, D)
            st[i]["h"] = h
            st[i]["inner"] = sc.FirState(B, D, h.shape[-1], dt)
    out = []
    for t in range(T):
        x = W[P + "embedding_layer.weight"][tokens[:, t]]
        for i in range(m["n_layer"]):
            p, kind, s = P + "blocks.%d." % i, m["kinds"][i], st[i]
            f = p + "filter."
            n = sc.rms_norm(x, W[p + "pre_norm.scale"], m["eps"], m["flash_rms"])
            if kind == "attn":
                x = x + sc.attention_step(n, attn_params(W, p, m),
                                          W[p + "inner_mha_cls.rotary_emb.inv_freq"], s, t)
            else:
                z = sc.linear(n, W[p + "projections.weight"], W.get(p + "projections.bias"))
                z = s["fir"].step_xcorr(z, W[f + "short_filter_weight"])
                if m["short_bias"]:
                    z = z + W[f + "short_filter_bias"]
                x2, x1, v = (c[..., 0] for c in split_streams(z[..., None], m))
                u = x1 * v
                if kind == "hcl":
                    s["s"] = s["p"][None] * s["s"] + u[..., None]
                    y = (W[f + "residues"][None] * s["s"]).sum(-1) + W[f + "D"] * u
                elif s["h"].shape[-1] >= MEDIUM:
                    y = s["inner"].step_conv(u, s["h"]) + W[f + "D"] * u
                else:
                    y = s["inner"].step_xcorr(u, s["h"][:, None])
                x = x + sc.linear(x2 * y, W[p + "out_filter_dense.weight"],
                                  W.get(p + "out_filter_dense.bias"))
            x = mlp_block(W, p, i, x, m)
        out.append(head(W, P, x, m))
    return torch.stack(out, 1)


# -----------------------------------------------------------------------------
# main

def save_pt(path, params, m, P):
    """State dict as in the published evo2_*.pt files: tensors in their
    distributed dtypes; unembed.weight present although the model ties it
    (vortex drops it at load: the tied Lambda has no parameter); a
    Transformer-Engine `projections._extra_state` (io.BytesIO) entry per
    Hyena block, which converters must skip."""
    sd = {}
    for n, t, d in params:
        sd[n] = t.to(ru.torch_dtype(d)).clone()
        if n.endswith("projections.weight"):
            sd[n[:-len("weight")] + "_extra_state"] = io.BytesIO(b"")
    sd[P + "unembed.weight"] = sd[P + "embedding_layer.weight"].clone()
    torch.save(sd, path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--state-size", type=int, default=4)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--inner-mlp-size", type=int, default=None)
    ap.add_argument("--hcs-layers", default="")
    ap.add_argument("--hcm-layers", default="")
    ap.add_argument("--hcl-layers", default="")
    ap.add_argument("--attn-layers", default="", help="e.g. 3 (default: none)")
    ap.add_argument("--hcs-filter-length", type=int, default=7)
    ap.add_argument("--hcm-filter-length", type=int, default=128)
    ap.add_argument("--hcs-filter-groups", type=int, default=8)
    ap.add_argument("--hcm-filter-groups", type=int, default=8)
    ap.add_argument("--l-max", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=97)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--dtypes", default="",
                    help="on-disk dtype per class (%s); default %s" % (
                        ",".join(DTYPE_CLASSES),
                        ",".join("%s=%s" % kv for kv in DEFAULT_DTYPES.items())))
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--rotary-base", type=float, default=10000)
    ap.add_argument("--rotary-scaling", type=float, default=1.0,
                    help="rotary_emb_scaling_factor (Evo 2 1m: 128); 1 = no interpolation")
    ap.add_argument("--no-interleave", dest="interleave", action="store_false")
    ap.add_argument("--column-split-hyena", action="store_true")
    ap.add_argument("--no-evo2-style-activations", dest="evo2_style_activations",
                    action="store_false")
    ap.add_argument("--qkv-proj-bias", action="store_true",
                    help="also gives the Hyena projections a bias (vortex uses this key for both)")
    ap.add_argument("--short-filter-bias", action="store_true")
    ap.add_argument("--save-pt", default=None)
    ap.add_argument("--no-check", action="store_true")
    a = ap.parse_args(argv)
    for k in ("hcs_layers", "hcm_layers", "hcl_layers", "attn_layers"):
        setattr(a, k, ru.parse_int_list(getattr(a, k)))
    for k in ("rotary_base", "rotary_scaling"):
        v = getattr(a, k)
        setattr(a, k, int(v) if v == int(v) else v)
    assert 1 <= a.seq_len <= a.l_max, "need 1 <= seq_len <= l_max"
    return a


def main(argv=None):
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    dt = ru.parse_dtype_spec(a.dtypes, DTYPE_CLASSES, DEFAULT_DTYPES)
    cfg = make_config(a)
    m = from_config(cfg)
    params = build_params(a, cfg, dt)
    tokens = torch.randint(0, m["V"], (a.batch, a.seq_len))
    W32 = {n: t for n, t, _ in params}
    stats = []
    with torch.no_grad():
        logits = forward(W32, tokens, m, a.prefix, stats=stats)
    assert torch.isfinite(logits).all(), "non-finite logits"

    ru.write_flat_yaml(os.path.join(a.out, "config.yml"), cfg,
                       "random Evo 2 (StripedHyena 2) reference model, lcsm tests/reference/evo2_ref.py")
    ru.write_json(os.path.join(a.out, "config.json"), cfg)
    ru.write_safetensors(os.path.join(a.out, "model.safetensors"), params, {"format": "pt"})
    ru.write_safetensors(os.path.join(a.out, "expected.safetensors"),
                         [("tokens", tokens, "I32"), ("logits", logits, "F32")],
                         {"format": "pt", "seed": a.seed, "prefix": a.prefix, "family": "evo2"})
    if a.save_pt:
        save_pt(a.save_pt, params, m, a.prefix)
    print("logits: min %.3f max %.3f std %.3f" % (logits.min(), logits.max(), logits.std()))
    print("hcl (L) / hcm (M) layers |long conv| / |D skip|: %s" % " ".join(stats))

    check = "skipped"
    if not a.no_check:
        W64 = {n: t.double() for n, t in W32.items()}
        with torch.no_grad():
            ref = forward(W64, tokens, m, a.prefix, direct=True)
            dec = decode(W64, tokens, m, a.prefix)
        scale = ref.abs().max()
        e1 = float((logits.double() - ref).abs().max() / scale)
        e2 = float((logits.double() - dec).abs().max() / scale)
        assert e1 < 1e-5, "self-check (direct conv) failed: rel err %.3g" % e1
        assert e2 < 1e-5, "self-check (recurrent decode) failed: rel err %.3g" % e2
        check = "direct %.2g, recurrent %.2g" % (e1, e2)
    kinds = "".join({"hcs": "S", "hcm": "M", "hcl": "L", "attn": "A"}[m["kinds"][i]]
                    for i in range(m["n_layer"]))
    print("wrote %s: B=%d T=%d D=%d layers=%s, self-check rel err %s" % (
        a.out, a.batch, a.seq_len, a.d_model, kinds, check))


if __name__ == "__main__":
    main()

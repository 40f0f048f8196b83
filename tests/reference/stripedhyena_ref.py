#!/usr/bin/python3
"""
stripedhyena_ref.py -- independent PyTorch (fp32) reference for StripedHyena
(StripedHyena-Hessian-7B / -Nous-7B, Evo 1 8k / 131k) for the lcsm C library.

Builds a small random StripedHyena, writes it as the published HuggingFace
checkpoint would look (config.json with the published keys +
model.safetensors with the published tensor names and shapes), draws random
tokens and writes the logits this reference computes (expected.safetensors,
same layout as hyena_ref.py).  Optionally also torch.save()s the state dict
the way the upstream repos distribute .pt checkpoints (--save-pt).

Usage:
  stripedhyena_ref.py --out DIR [--seed 1234] [--style evo1|sh7b]
      [--d-model 32] [--n-layer 4] [--heads 4] [--proj-groups G]
      [--state-size 4] [--vocab-size 512] [--inner-mlp-size N]
      [--attn-layers 1,3] [--short-filter-length 3] [--l-max 300]
      [--batch 2] [--seq-len 97] [--prefix backbone.|""]
      [--dtypes emb=F32,proj=BF16,mlp=F16,...] [--mlp-activation gelu|silu]
      [--tie | --no-tie] [--flash-rmsnorm | --no-flash-rmsnorm]
      [--rotary-base B] [--rotary-scaling S] [--eps E]
      [--save-pt FILE] [--no-check]

Math (read from togethercomputer/stripedhyena, stripedhyena/model.py,
engine.py, layers.py, utils.py; see /work/notes/stripedhyena.md):
  x = E[tokens]
  per layer i (attention if i in attn_layer_idxs, else Hyena):
    Hyena:  z = W_p RMSNorm_pre(x) + b_p                     (3D channels)
            z = shortconv3(z) + b_s        (depthwise, causal, w[2] on x_t)
            (x2, x1, v) = column_split(z)  (per head: [x2 | x1 | v] of hd each)
            y = x2 * (h * (x1 v) + D (x1 v)),
                h[c, t] = Re sum_s R[c,s] p[c,s]^t  (t = 0, 1, ...; modal form,
                          computed upstream as exp(t * log p))
            x = x + W_o y + b_o
    Attn:   x = x + MHA(RMSNorm_pre(x))   (rotary, causal, GQA if proj_groups>1)
    both:   x = x + l3(act(l1 n) * l2 n),  n = RMSNorm_post(x)
  logits = RMSNorm_final(x) @ U^T  (U = E when tie_embeddings)

Self-checks (float64, default on): (1) the same forward with the filter
materialised from the poles and O(T^2) direct convolutions; (2) a
token-by-token decode with explicit states: FIR state of the last 2 inputs,
modal state s <- p s + x1v, y = Re sum_s R s, and a KV cache.  Both must match
the fp32 FFT logits to < 1e-5 relative (max abs error / max |logit|).
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refutil as ru                                   # noqa: E402
import striped_common as sc                            # noqa: E402

DTYPE_CLASSES = ("emb", "norm", "proj", "mlp", "conv", "skip", "bias", "poles", "inv_freq")
DEFAULT_DTYPES = {"emb": "F32", "norm": "F32", "proj": "BF16", "mlp": "F16", "conv": "F32",
                  "skip": "F32", "bias": "F32", "poles": "F32", "inv_freq": "F32"}


# -----------------------------------------------------------------------------
# configuration (published HF config.json keys, configuration_hyena.py)

def make_config(a):
    """The config.json dict, with the published key names and meaning."""
    D, H = a.d_model, a.heads
    assert D % H == 0 and (D // H) % 2 == 0, "head dim must be even"
    assert H % a.proj_groups == 0, "heads must be divisible by proj_groups"
    attn = sorted(set(a.attn_layers))
    assert all(0 <= i < a.n_layer for i in attn)
    inner = a.inner_mlp_size
    if inner is None:
        # ParallelGatedMLP: int(2*D*4/3) rounded up to inner_size_multiple_of
        m = 16 if a.style == "evo1" else 64
        inner = int(2 * D * 4 / 3)
        inner = m * ((inner + m - 1) // m)
    return {
        "architectures": ["StripedHyenaModelForCausalLM"],
        "model_type": "stripedhyena",
        "vocab_size": a.vocab_size,
        "hidden_size": D,
        "num_filters": D,
        "inner_mlp_size": inner,
        "attn_layer_idxs": attn,
        "hyena_layer_idxs": [i for i in range(a.n_layer) if i not in attn],
        "num_layers": a.n_layer,
        "tie_embeddings": a.tie,
        "short_filter_length": a.short_filter_length,
        "num_attention_heads": H,
        "proj_groups": a.proj_groups,
        "hyena_filter_groups": 1,
        "split_k0": True,
        "column_split_hyena": True,
        "column_split": False,
        "model_parallel_size": 1,
        "pipe_parallel_size": 1,
        "short_filter_bias": True,
        "mha_out_proj_bias": a.mha_out_proj_bias,
        "qkv_proj_bias": a.qkv_proj_bias,
        "final_norm": True,
        "use_cache": True,
        "use_flash_attn": True,
        "use_flash_rmsnorm": a.flash_rmsnorm,
        "use_flash_depthwise": False,
        "use_flashfft": False,
        "inference_mode": False,
        "prefill_style": "fft",
        "max_seqlen": a.l_max,
        "eps": a.eps,
        "state_size": a.state_size,
        "rotary_emb_base": a.rotary_base,
        "rotary_emb_scaling_factor": a.rotary_scaling,
        "use_interpolated_rotary_pos_emb": a.rotary_scaling != 1,
        "smeared_gqa": False,
        "make_vocab_size_divisible_by": 8,
        "log_intermediate_values": False,
        "mlp_activation": a.mlp_activation,
        "torch_dtype": "bfloat16",
    }


def from_config(cfg):
    """Everything the forward needs, from the published config keys (with
    the upstream defaults where a key may be absent)."""
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    assert cfg.get("hyena_filter_groups", 1) == 1, "only hyena_filter_groups=1 is published"
    assert cfg.get("column_split_hyena", True), "published models use column_split_hyena"
    return {
        "D": D, "H": H, "hd": D // H, "V": cfg["vocab_size"],
        "Hkv": H // cfg.get("proj_groups", 1),
        "n_layer": cfg["num_layers"], "attn": set(cfg["attn_layer_idxs"]),
        "S": cfg["state_size"], "K": cfg["short_filter_length"],
        "eps": cfg["eps"], "flash_rms": cfg.get("use_flash_rmsnorm", False),
        "act": cfg.get("mlp_activation", "silu"),      # layers.py default
        "tie": cfg["tie_embeddings"], "final_norm": cfg.get("final_norm", True),
        "base": cfg.get("rotary_emb_base", 10000),
        "scaling": (cfg.get("rotary_emb_scaling_factor", 1.0)
                    if cfg.get("use_interpolated_rotary_pos_emb", False) else 1.0),
        "qkv_bias": cfg.get("qkv_proj_bias", True),
        "out_bias": cfg.get("mha_out_proj_bias", True),
        # model.py: `config.short_filter_bias` (dotdict: absent -> None -> no bias);
        # the projections are always biased, Wqkv / out_proj via config.get(key, True)
        "short_bias": bool(cfg.get("short_filter_bias")),
    }


# -----------------------------------------------------------------------------
# random model with the published names and shapes

def build_params(a, cfg, dt):
    """Ordered list of (name, fp32 tensor, on-disk dtype).  Scales keep the
    residual stream O(1) and make the long convolution and the D skip of
    comparable size."""
    m = from_config(cfg)
    D, V, S, K, I = m["D"], m["V"], m["S"], m["K"], cfg["inner_mlp_size"]
    hd = m["hd"]
    torch.manual_seed(a.seed)
    P = a.prefix
    params = []

    def add(name, t, cls):
        params.append((P + name, t.float().contiguous(), dt[cls]))

    def lin(o, i):
        return torch.randn(o, i) * i ** -0.5

    add("embedding_layer.weight", torch.randn(V, D), "emb")
    for i in range(m["n_layer"]):
        p = "blocks.%d." % i
        add(p + "pre_norm.scale", 1 + 0.1 * torch.randn(D), "norm")
        if i in m["attn"]:
            q = p + "inner_mha_cls."
            add(q + "Wqkv.weight", lin((m["H"] + 2 * m["Hkv"]) * hd, D), "proj")
            if m["qkv_bias"]:
                add(q + "Wqkv.bias", 0.1 * torch.randn((m["H"] + 2 * m["Hkv"]) * hd), "bias")
            add(q + "out_proj.weight", lin(D, D), "proj")
            if m["out_bias"]:
                add(q + "out_proj.bias", 0.1 * torch.randn(D), "bias")
            add(q + "rotary_emb.inv_freq", sc.inv_freq(hd, m["base"]), "inv_freq")
        else:
            f = p + "filter."
            add(f + "D", torch.randn(D), "skip")
            add(f + "short_filter_weight", 0.6 * torch.randn(3 * D, 1, K), "conv")
            if m["short_bias"]:
                add(f + "short_filter_bias", 0.1 * torch.randn(3 * D), "bias")
            # poles p = r e^{i theta}: decay time tau = -1/ln r log-uniform in
            # [4, 120] steps, theta up to 0.6 rad/step so the filter rings.
            tau = torch.exp(torch.empty(D, S).uniform_(1.4, 4.8))
            r = torch.exp(-1.0 / tau)
            th = torch.empty(D, S).uniform_(-0.6, 0.6)
            poles = torch.stack([r * torch.cos(th), r * torch.sin(th)], -1)[:, :, None, :]
            # residues ~ 1/sqrt(S * tau): sum_t |h[t]|^2 ~ 1, so |h * x| ~ |D x|
            res = torch.randn(D, S, 1, 2) * (2.0 / (S * tau[:, :, None, None])) ** 0.5
            add(f + "poles", poles, "poles")
            add(f + "residues", res, "poles")
            add(p + "projections.weight", lin(3 * D, D), "proj")
            add(p + "projections.bias", 0.1 * torch.randn(3 * D), "bias")
            add(p + "out_filter_dense.weight", lin(D, D), "proj")
            add(p + "out_filter_dense.bias", 0.1 * torch.randn(D), "bias")
        add(p + "post_norm.scale", 1 + 0.1 * torch.randn(D), "norm")
        add(p + "mlp.l1.weight", lin(I, D), "mlp")
        add(p + "mlp.l2.weight", lin(I, D), "mlp")
        add(p + "mlp.l3.weight", lin(D, I), "mlp")
    add("norm.scale", 1 + 0.1 * torch.randn(D), "norm")
    if not m["tie"]:
        add("unembed.weight", torch.randn(V, D), "emb")
    return [(n, ru.round_to(t, d), d) for n, t, d in params]


# -----------------------------------------------------------------------------
# forward

def column_split(z, H, hd):
    """(B, 3D, T) -> x2, x1, v (B, D, T): projection channel c belongs to head
    c // (3 hd); within the head, [0, hd) is x2 (post-gate), [hd, 2hd) x1
    (pre-gate), [2hd, 3hd) v.  Output channel of each stream = head*hd + j.
    (stripedhyena/engine.py parallel_iir, utils.py column_split.)"""
    B, _, T = z.shape
    z = z.reshape(B, H, 3 * hd, T)
    return (z[:, :, :hd].reshape(B, H * hd, T), z[:, :, hd:2 * hd].reshape(B, H * hd, T),
            z[:, :, 2 * hd:].reshape(B, H * hd, T))


def modal_filter(poles, residues, T, dtype):
    """h[c, t] = Re sum_s R[c,s] exp(t log p[c,s]), t = 0..T-1 (model.py
    compute_filter).  poles/residues: (D, S, 1, 2) real/imag."""
    cd = torch.complex64 if dtype == torch.float32 else torch.complex128
    p = torch.view_as_complex(poles.to(dtype).contiguous()).to(cd)      # (D, S, 1)
    r = torch.view_as_complex(residues.to(dtype).contiguous()).to(cd)
    t = torch.arange(T, dtype=dtype)[None, None, :]
    return (r * torch.exp(torch.log(p) * t)).real.sum(1)                # (D, T)


def hyena_block(W, p, x, m, direct, stats=None):
    B, T, D = x.shape
    f = p + "filter."
    z = sc.linear(sc.rms_norm(x, W[p + "pre_norm.scale"], m["eps"], m["flash_rms"]),
                  W[p + "projections.weight"], W[p + "projections.bias"])
    z = z.transpose(1, 2)                                               # (B, 3D, T)
    conv = sc.causal_xcorr_direct if direct else sc.causal_xcorr
    # engine.parallel_fir: conv1d without bias, then the bias added by hand
    z = conv(z, W[f + "short_filter_weight"])
    if m["short_bias"]:
        z = z + W[f + "short_filter_bias"][None, :, None]
    x2, x1, v = column_split(z, m["H"], m["hd"])
    x1v = x1 * v
    h = modal_filter(W[f + "poles"], W[f + "residues"], T, x.dtype)
    long = (sc.causal_conv_direct if direct else sc.causal_conv_fft)(x1v, h)
    skip = x1v * W[f + "D"][None, :, None]
    if stats is not None:           # both terms must matter in a good test model
        stats.append(float(long.norm() / skip.norm()))
    y = ((long + skip) * x2).transpose(1, 2)
    return x + sc.linear(y, W[p + "out_filter_dense.weight"], W[p + "out_filter_dense.bias"])


def attn_params(W, p, m):
    q = p + "inner_mha_cls."
    return {"wqkv": W[q + "Wqkv.weight"], "bqkv": W.get(q + "Wqkv.bias"),
            "wo": W[q + "out_proj.weight"], "bo": W.get(q + "out_proj.bias"),
            "n_heads": m["H"], "n_kv": m["Hkv"], "scaling": m["scaling"]}


def mlp_block(W, p, x, m):
    n = sc.rms_norm(x, W[p + "post_norm.scale"], m["eps"], m["flash_rms"])
    return x + sc.gated_mlp(n, W[p + "mlp.l1.weight"], W[p + "mlp.l2.weight"],
                            W[p + "mlp.l3.weight"], m["act"])


def head(W, P, x, m):
    if m["final_norm"]:
        x = sc.rms_norm(x, W[P + "norm.scale"], m["eps"], m["flash_rms"])
    U = W[P + "embedding_layer.weight"] if m["tie"] else W[P + "unembed.weight"]
    return x @ U.t()


def forward(W, tokens, m, P, direct=False, stats=None):
    """tokens (B, T) -> logits (B, T, V), in the dtype of W."""
    x = W[P + "embedding_layer.weight"][tokens]
    for i in range(m["n_layer"]):
        p = P + "blocks.%d." % i
        if i in m["attn"]:
            n = sc.rms_norm(x, W[p + "pre_norm.scale"], m["eps"], m["flash_rms"])
            x = x + sc.attention(n, attn_params(W, p, m), W[p + "inner_mha_cls.rotary_emb.inv_freq"])
        else:
            x = hyena_block(W, p, x, m, direct, stats)
        x = mlp_block(W, p, x, m)
    return head(W, P, x, m)


def decode(W, tokens, m, P):
    """Token-by-token forward with explicit recurrent state (float64):
    FIR state = last K-1 projected inputs, modal state s (B, D, S) complex,
    s <- p s + x1v_t, y_t = x2_t (Re sum_s R s + D x1v_t); KV cache for
    attention.  This is what engine.step_fir / step_iir compute after a
    correct prefill."""
    B, T = tokens.shape
    D, H, hd, S, K = m["D"], m["H"], m["hd"], m["S"], m["K"]
    dt = W[P + "embedding_layer.weight"].dtype
    cd = torch.complex128 if dt == torch.float64 else torch.complex64
    st = {}
    for i in range(m["n_layer"]):
        p = P + "blocks.%d." % i
        if i in m["attn"]:
            st[i] = {}
        else:
            f = p + "filter."
            st[i] = {"fir": sc.FirState(B, 3 * D, K, dt),
                     "s": torch.zeros(B, D, S, dtype=cd),
                     "p": torch.view_as_complex(W[f + "poles"].contiguous())[..., 0].to(cd),
                     "r": torch.view_as_complex(W[f + "residues"].contiguous())[..., 0].to(cd)}
    out = []
    for t in range(T):
        x = W[P + "embedding_layer.weight"][tokens[:, t]]               # (B, D)
        for i in range(m["n_layer"]):
            p = P + "blocks.%d." % i
            n = sc.rms_norm(x, W[p + "pre_norm.scale"], m["eps"], m["flash_rms"])
            if i in m["attn"]:
                x = x + sc.attention_step(n, attn_params(W, p, m),
                                          W[p + "inner_mha_cls.rotary_emb.inv_freq"], st[i], t)
            else:
                f, s = p + "filter.", st[i]
                z = sc.linear(n, W[p + "projections.weight"], W[p + "projections.bias"])
                z = s["fir"].step_xcorr(z, W[f + "short_filter_weight"])
                if m["short_bias"]:
                    z = z + W[f + "short_filter_bias"]
                x2, x1, v = (c[..., 0] for c in column_split(z[..., None], H, hd))
                x1v = x1 * v
                s["s"] = s["p"][None] * s["s"] + x1v[..., None].to(cd)
                y = x2 * ((s["r"][None] * s["s"]).real.sum(-1) + W[f + "D"] * x1v)
                x = x + sc.linear(y, W[p + "out_filter_dense.weight"], W[p + "out_filter_dense.bias"])
            x = mlp_block(W, p, x, m)
        out.append(head(W, P, x, m))
    return torch.stack(out, 1)


# -----------------------------------------------------------------------------
# main

def save_pt(path, params, m, P):
    """torch.save of the state dict as the upstream model would produce it:
    tensors in their distributed dtypes, poles/residues fp32 (D, S, 1, 2),
    and, when embeddings are tied, unembed.weight present as well
    (StripedHyena sets self.unembed = self.embedding_layer, so state_dict()
    lists the shared weight under both names)."""
    sd = {}
    for n, t, d in params:
        sd[n] = t.to(ru.torch_dtype(d)).clone()
    if m["tie"]:
        sd[P + "unembed.weight"] = sd[P + "embedding_layer.weight"]
    torch.save(sd, path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--style", choices=("evo1", "sh7b"), default="evo1",
                    help="defaults of the flags below: evo1 = Evo 1 (gelu, tied, biases, "
                         "custom RMSNorm, eps 1e-6); sh7b = StripedHyena-Hessian-7B (silu, untied, "
                         "no attention biases, GQA groups 2, flash RMSNorm, eps 1e-5, base 500000)")
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--proj-groups", type=int, default=None)
    ap.add_argument("--state-size", type=int, default=4)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--inner-mlp-size", type=int, default=None)
    ap.add_argument("--attn-layers", default="", help="e.g. 1,3 (default: none)")
    ap.add_argument("--short-filter-length", type=int, default=3)
    ap.add_argument("--l-max", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=97)
    ap.add_argument("--prefix", default="", help='tensor name prefix, e.g. "backbone."')
    ap.add_argument("--dtypes", default="",
                    help="on-disk dtype per class (%s); default %s" % (
                        ",".join(DTYPE_CLASSES),
                        ",".join("%s=%s" % kv for kv in DEFAULT_DTYPES.items())))
    ap.add_argument("--mlp-activation", choices=("gelu", "silu"), default=None)
    ap.add_argument("--tie", dest="tie", action="store_true", default=None)
    ap.add_argument("--no-tie", dest="tie", action="store_false")
    ap.add_argument("--flash-rmsnorm", dest="flash_rmsnorm", action="store_true", default=None)
    ap.add_argument("--no-flash-rmsnorm", dest="flash_rmsnorm", action="store_false")
    ap.add_argument("--rotary-base", type=float, default=None)
    ap.add_argument("--rotary-scaling", type=float, default=1.0,
                    help="rotary_emb_scaling_factor (Evo 1 131k: 16); 1 = no interpolation")
    ap.add_argument("--eps", type=float, default=None)
    ap.add_argument("--save-pt", default=None)
    ap.add_argument("--no-check", action="store_true")
    a = ap.parse_args(argv)
    evo1 = a.style == "evo1"
    for k, v in (("proj_groups", 1 if evo1 else 2), ("mlp_activation", "gelu" if evo1 else "silu"),
                 ("tie", evo1), ("flash_rmsnorm", not evo1),
                 ("rotary_base", 10000.0 if evo1 else 500000.0), ("eps", 1e-6 if evo1 else 1e-5)):
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.qkv_proj_bias = a.mha_out_proj_bias = evo1
    a.attn_layers = ru.parse_int_list(a.attn_layers)
    if a.rotary_base == int(a.rotary_base):
        a.rotary_base = int(a.rotary_base)
    if a.rotary_scaling == int(a.rotary_scaling):
        a.rotary_scaling = int(a.rotary_scaling)
    assert 1 <= a.seq_len <= a.l_max, "need 1 <= seq_len <= l_max"
    return a


def main(argv=None):
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    dt = ru.parse_dtype_spec(a.dtypes, DTYPE_CLASSES, DEFAULT_DTYPES)
    cfg = make_config(a)
    m = from_config(cfg)
    params = build_params(a, cfg, dt)          # seeds the RNG, then draws the weights
    tokens = torch.randint(0, m["V"], (a.batch, a.seq_len))
    W32 = {n: t for n, t, _ in params}
    stats = []
    with torch.no_grad():
        logits = forward(W32, tokens, m, a.prefix, stats=stats)
    assert torch.isfinite(logits).all(), "non-finite logits"

    ru.write_json(os.path.join(a.out, "config.json"), cfg)
    ru.write_safetensors(os.path.join(a.out, "model.safetensors"), params, {"format": "pt"})
    ru.write_safetensors(os.path.join(a.out, "expected.safetensors"),
                         [("tokens", tokens, "I32"), ("logits", logits, "F32")],
                         {"format": "pt", "seed": a.seed, "prefix": a.prefix,
                          "family": "stripedhyena", "style": a.style})
    if a.save_pt:
        save_pt(a.save_pt, params, m, a.prefix)

    print("logits: min %.3f max %.3f std %.3f" % (logits.min(), logits.max(), logits.std()))
    print("hyena layers |long conv| / |D skip|: %s" % " ".join("%.2f" % v for v in stats))

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
    print("wrote %s: B=%d T=%d D=%d layers=%d attn=%s, self-check rel err %s" % (
        a.out, a.batch, a.seq_len, a.d_model, a.n_layer, cfg["attn_layer_idxs"], check))


if __name__ == "__main__":
    main()

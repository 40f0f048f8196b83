"""
striped_common.py -- math shared by the StripedHyena (1) and StripedHyena 2
(Evo 2) references: RMSNorm, gated MLP, rotary attention (full and one step
with a KV cache), causal convolutions.  Plain tensor ops; every function
works in whatever float dtype it is given (fp32 for the reference logits,
float64 for the self-checks).

Upstream facts used here (read, not copied):
* RMSNorm -- togethercomputer/stripedhyena stripedhyena/layers.py RMSNorm,
  Zymrael/vortex vortex/model/layers.py RMSNorm: without flash,
  y = scale * x / (||x||_2 * D^-1/2 + eps)   (eps OUTSIDE the root);
  with use_flash_rmsnorm the flash_attn rms_norm kernel is called, which is
  the usual y = scale * x * rsqrt(mean(x^2) + eps)  (eps INSIDE the root).
* gated MLP -- same files, ParallelGatedMLP: l3(act(l1 x) * l2 x), no biases.
* attention -- flash_attn MHA as vendored in vortex/model/attention.py:
  Wqkv rows are [q: heads*hd | k: kv_heads*hd | v: kv_heads*hd], each block
  head-major ("(h d)"; for MHA "(three h d)"), GQA repeats kv head j for
  query heads j*g .. j*g+g-1 (einops "(hkv g)"), softmax scale 1/sqrt(hd),
  causal.  Rotary: vortex/model/rotary.py RotaryEmbedding, non-interleaved
  (GPT-NeoX half split), rotary_dim = head_dim, inv_freq[j] =
  base^(-2j/hd), angle = (pos / scaling_factor) * inv_freq[j]
  (positional_embeddings.py LinearlyScaledRotaryEmbedding divides the fp32
  positions by rotary_emb_scaling_factor when use_interpolated_rotary_pos_emb).
"""

import math

import torch
import torch.nn.functional as F


def rms_norm(x, scale, eps, flash):
    if flash:
        return scale * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
    d = x.shape[-1]
    return scale * (x / (x.norm(2, dim=-1, keepdim=True) * d ** -0.5 + eps))


def activation(name):
    if name == "gelu":
        return F.gelu                       # exact (erf) GELU: F.gelu's default
    if name == "silu":
        return F.silu
    if name == "identity":
        return lambda z: z
    raise ValueError(name)


def gated_mlp(x, w1, w2, w3, act):
    return F.linear(activation(act)(F.linear(x, w1)) * F.linear(x, w2), w3)


def linear(x, w, b=None):
    return F.linear(x, w, b)


# -----------------------------------------------------------------------------
# rotary attention

def inv_freq(head_dim, base):
    """fp32, exactly as RotaryEmbedding._compute_inv_freq (and as stored in
    the checkpoints' inner_mha_cls.rotary_emb.inv_freq)."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def rope_cos_sin(positions, inv_f, scaling):
    """positions: 1-D float tensor of absolute positions (dtype = compute dtype)."""
    t = positions / scaling
    freqs = torch.outer(t, inv_f.to(positions.dtype))       # (T, hd/2)
    return torch.cos(freqs), torch.sin(freqs)


def apply_rope(x, cos, sin):
    """x: (B, T, H, hd); half-split rotation of pairs (j, j + hd/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def split_qkv(qkv, n_heads, n_kv, hd):
    """Flash layout (..., (h + 2 hkv) * hd) -> q (..., h, hd), k, v (..., hkv, hd)."""
    q = qkv[..., :n_heads * hd]
    k = qkv[..., n_heads * hd:(n_heads + n_kv) * hd]
    v = qkv[..., (n_heads + n_kv) * hd:]
    sh = qkv.shape[:-1]
    return (q.reshape(*sh, n_heads, hd), k.reshape(*sh, n_kv, hd),
            v.reshape(*sh, n_kv, hd))


def attention(x, a, inv_f):
    """Causal multi-head / grouped-query attention with rotary embedding.

    x: (B, T, D) normalised input; a: dict with wqkv, bqkv, wo, bo, n_heads,
    n_kv, base, scaling.  wqkv must already be in flash layout."""
    B, T, D = x.shape
    H, Hkv = a["n_heads"], a["n_kv"]
    hd = D // H
    q, k, v = split_qkv(linear(x, a["wqkv"], a["bqkv"]), H, Hkv, hd)
    cos, sin = rope_cos_sin(torch.arange(T, dtype=x.dtype), inv_f, a["scaling"])
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    g = H // Hkv
    k = k.repeat_interleave(g, dim=2)             # kv head j -> q heads j*g..j*g+g-1
    v = v.repeat_interleave(g, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    ctx = torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, D)
    return linear(ctx, a["wo"], a["bo"])


def attention_step(x, a, inv_f, cache, pos):
    """One decode step: x (B, D) at absolute position `pos`; cache is a dict
    holding the rotated keys and values seen so far (grows by one)."""
    B, D = x.shape
    H, Hkv = a["n_heads"], a["n_kv"]
    hd = D // H
    q, k, v = split_qkv(linear(x, a["wqkv"], a["bqkv"])[:, None], H, Hkv, hd)
    cos, sin = rope_cos_sin(torch.tensor([float(pos)], dtype=x.dtype), inv_f, a["scaling"])
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    cache["k"] = k if "k" not in cache else torch.cat([cache["k"], k], 1)
    cache["v"] = v if "v" not in cache else torch.cat([cache["v"], v], 1)
    g = H // Hkv
    kk = cache["k"].repeat_interleave(g, dim=2)
    vv = cache["v"].repeat_interleave(g, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, kk) / math.sqrt(hd)
    ctx = torch.einsum("bhts,bshd->bthd", torch.softmax(scores, -1), vv)
    return linear(ctx.reshape(B, D), a["wo"], a["bo"])


# -----------------------------------------------------------------------------
# causal convolutions.  Two orientations occur upstream:
#   "conv": y[t] = sum_k h[k] a[t-k]          (h[0] multiplies the current input)
#   "xcorr": y[t] = sum_k w[k] a[t-K+1+k]     (w[K-1] multiplies the current
#            input): what F.conv1d(padding=K-1)[..., :T] computes.

def causal_conv_fft(a, h):
    """'conv' orientation via FFT of size 2T (as the upstream engines do:
    rfft(h, 2T) / 2T, irfft(norm='forward')).  a: (B, C, T); h: (C, K) with
    any K (taps beyond T cannot reach the first T outputs and are dropped)."""
    T = a.shape[-1]
    h = h[:, :T]
    n = 2 * T
    y = torch.fft.irfft(torch.fft.rfft(a, n=n) * torch.fft.rfft(h, n=n), n=n)
    return y[..., :T]


def causal_conv_direct(a, h):
    """Same as causal_conv_fft, the O(T*K) way (self-check)."""
    T = a.shape[-1]
    y = torch.zeros_like(a)
    for s in range(min(T, h.shape[-1])):
        y[..., s:] += h[:, s, None] * a[..., :T - s]
    return y


def causal_xcorr(a, w):
    """'xcorr' orientation, via F.conv1d exactly as upstream: depthwise, zero
    padding K-1 on both sides, keep the first T outputs.  w: (C, 1, K)."""
    T, K = a.shape[-1], w.shape[-1]
    return F.conv1d(a, w, padding=K - 1, groups=a.shape[1])[..., :T]


def causal_xcorr_direct(a, w):
    """Same as causal_xcorr, written out (self-check): tap k sees a[t-(K-1-k)]."""
    T, K = a.shape[-1], w.shape[-1]
    y = torch.zeros_like(a)
    for k in range(K):
        d = K - 1 - k                     # delay of tap k
        if d < T:
            y[..., d:] += w[:, 0, k, None] * a[..., :T - d]
    return y


class FirState:
    """Explicit FIR decode state: the last K-1 inputs, oldest first, starting
    as zeros (what causal zero padding means).  step() returns the 'xcorr'
    output w[K-1]*a_t + sum_{k<K-1} w[k]*a_{t-K+1+k}."""

    def __init__(self, batch, channels, K, dtype):
        self.buf = torch.zeros(batch, channels, K - 1, dtype=dtype)

    def step_xcorr(self, a, w):             # a: (B, C); w: (C, 1, K)
        y = w[:, 0, -1] * a + (self.buf * w[:, 0, :-1]).sum(-1)
        self.push(a)
        return y

    def step_conv(self, a, h):              # h: (C, K), h[0] on the current input
        K = h.shape[-1]
        y = h[:, 0] * a + (self.buf * h[:, 1:].flip(-1)).sum(-1)
        self.push(a)
        return y

    def push(self, a):
        if self.buf.shape[-1]:
            self.buf = torch.cat([self.buf[..., 1:], a[..., None]], dim=-1)

"""
peer_model.py -- the HyenaDNA-style model of lcsm, in PyTorch, for the peer benchmark.

What lives here is shared by every decoding algorithm of torch_peer.py:
  * reading a model directory exactly as lcsm does (config.json + model.safetensors,
    F32/F16/BF16, names with or without a "model." / "hyena." prefix), with the
    safetensors header parsed by json and the data decoded by numpy (no
    `safetensors` package, so Debian's python3-torch 1.13 is enough);
  * materialising the implicit long filters (src/filter.c, DESIGN.md section 4):
    sin-MLP over the stored positional embedding z, then
    h *= exp(-t * |deltas|) + shift;
  * the parallel forward over whole sequences (FFT long convolution), used for the
    prompt (prefill) and by the cache-less "recompute" algorithm.

All math is fp32. Works with python >= 3.8 and torch >= 1.13, on CPU or CUDA.
"""

import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------- safetensors

_ST_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "I32": ("<i4", 4)}


def read_safetensors(path):
    """Returns {name: numpy array} for every F32/F16/BF16 (as float32) and I32 tensor.

    Layout: u64 little-endian header length N, N bytes of JSON, then the data
    buffer; each entry's data_offsets are relative to the buffer's start."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("%s: header length %d exceeds the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt = e["dtype"]
        if dt not in _ST_DTYPES:
            continue  # tensors of other dtypes are not the model's (lcsm ignores them too)
        npdt, size = _ST_DTYPES[dt]
        b0, b1 = e["data_offsets"]
        count = 1
        for s in e["shape"]:
            count *= int(s)
        if b1 - b0 != count * size or base + b1 > len(raw):
            raise ValueError("%s: tensor '%s' has inconsistent offsets" % (path, name))
        a = np.frombuffer(raw, dtype=npdt, count=count, offset=base + b0)
        if dt == "BF16":  # bf16 is the top half of an fp32
            a = (a.astype("<u4") << 16).view("<f4")
        out[name] = a.astype(np.int32 if dt == "I32" else np.float32).reshape([int(s) for s in e["shape"]])
    return out


# ---------------------------------------------------------------------- config

def read_config(path):
    """The fields lcsm reads (src/config.c), with its defaults."""
    with open(path) as f:
        c = json.load(f)
    layer = c.get("layer") if isinstance(c.get("layer"), dict) else {}

    def get(key, nested=None, default=None):
        v = c.get(key)
        if v is None and nested:
            v = layer.get(nested)
        if v is None:
            if default is None:
                raise ValueError("config: required field '%s' is missing" % key)
            return default
        return v

    cfg = {
        "d_model": int(get("d_model")),
        "n_layer": int(get("n_layer")),
        "vocab_size": int(get("vocab_size")),
        "pad_vocab_size_multiple": int(get("pad_vocab_size_multiple", default=8)),
        "l_max": int(get("max_seq_len", "l_max")),
        "emb_dim": int(get("emb_dim", "emb_dim", 5)),
        "filter_order": int(get("filter_order", "filter_order", 64)),
        "num_inner_mlps": int(get("num_inner_mlps", default=2)),
        "short_filter_order": int(get("short_filter_order", default=3)),
        "hyena_order": int(get("hyena_order", "order", 2)),
        "activation_freq": float(get("activation_freq", default=1.0)),
        "layer_norm_epsilon": float(get("layer_norm_epsilon", default=1e-5)),
    }
    cfg["d_inner"] = int(c.get("d_inner") or 4 * cfg["d_model"])
    if cfg["hyena_order"] != 2 or cfg["short_filter_order"] != 3:
        raise ValueError("config: only hyena_order 2 and short_filter_order 3 are supported")
    if c.get("tie_word_embeddings") is False:
        raise ValueError("config: untied word embeddings are not supported")
    m = cfg["pad_vocab_size_multiple"]
    cfg["n_vocab"] = (cfg["vocab_size"] + m - 1) // m * m
    return cfg


# ----------------------------------------------------------------------- model

_PREFIXES = ("", "model.", "hyena.", "model.hyena.")


class Layer(object):
    """One block's tensors, shaped for the step and the parallel forward."""
    pass


class Model(object):
    """Weights of a model directory on one device (fp32), plus its config."""

    def __init__(self, model_dir, device, shift=0.05):
        self.cfg = cfg = read_config(os.path.join(model_dir, "config.json"))
        raw = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        emb_name = "backbone.embeddings.word_embeddings.weight"
        prefix = next((p for p in _PREFIXES if p + emb_name in raw), None)
        if prefix is None:
            raise ValueError("%s: tensor '%s' (with or without a model./hyena. prefix) not found"
                             % (model_dir, emb_name))
        D, G, V = cfg["d_model"], cfg["n_layer"], cfg["n_vocab"]
        self.D, self.G, self.DI = D, G, cfg["d_inner"]
        self.V, self.vocab = V, cfg["vocab_size"]
        self.l_max, self.eps, self.shift = cfg["l_max"], cfg["layer_norm_epsilon"], float(shift)
        self.device = torch.device(device)

        def t(name, shape=None, optional_fill=None):
            full = prefix + name
            if full not in raw:
                if optional_fill is not None:
                    return torch.full(shape, optional_fill, dtype=torch.float32, device=self.device)
                raise ValueError("%s: tensor '%s' not found" % (model_dir, full))
            a = raw[full]
            if shape is not None:
                if int(np.prod(a.shape)) != int(np.prod(shape)):
                    raise ValueError("%s: tensor '%s' has shape %s, the config implies %s"
                                     % (model_dir, full, list(a.shape), list(shape)))
                a = a.reshape(shape)
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

        Fo, E, n_in = cfg["filter_order"], cfg["emb_dim"], cfg["num_inner_mlps"]
        self.emb = t(emb_name, (V, D))
        self.head = self.emb[:self.vocab].contiguous()   # greedy decoding never needs the padding rows
        self.lnf_w, self.lnf_b = t("backbone.ln_f.weight", (D,)), t("backbone.ln_f.bias", (D,))
        self.layers = []
        for i in range(G):
            p = "backbone.layers.%d." % i
            ly = Layer()
            ly.n1w, ly.n1b = t(p + "norm1.weight", (D,)), t(p + "norm1.bias", (D,))
            ly.in_w, ly.in_b = t(p + "mixer.in_proj.weight", (3 * D, D)), t(p + "mixer.in_proj.bias", (3 * D,))
            cw = t(p + "mixer.short_filter.weight", (3 * D, 3))
            # PyTorch cross-correlation: tap 2 multiplies the current input, taps 1 and 0 the
            # two previous ones.
            ly.c0, ly.c1, ly.c2 = cw[:, 0].contiguous(), cw[:, 1].contiguous(), cw[:, 2].contiguous()
            ly.cb = t(p + "mixer.short_filter.bias", (3 * D,))
            ly.out_w, ly.out_b = t(p + "mixer.out_proj.weight", (D, D)), t(p + "mixer.out_proj.bias", (D,))
            ly.fbias = t(p + "mixer.filter_fn.bias", (D,))
            f = p + "mixer.filter_fn."
            ly.z = t(f + "pos_emb.z", (cfg["l_max"], E))
            ly.t = t(f + "pos_emb.t", (cfg["l_max"],))
            ly.freq = t(f + "implicit_filter.1.freq", (Fo,), optional_fill=cfg["activation_freq"])
            ly.flin = []
            for j in range(n_in + 2):
                fin, fout = (E if j == 0 else Fo), (D if j == n_in + 1 else Fo)
                w = t(f + "implicit_filter.%d.weight" % (2 * j), (fout, fin))
                b = t(f + "implicit_filter.%d.bias" % (2 * j), (fout,)) if j <= n_in else None
                ly.flin.append((w, b))
            ly.deltas = t(f + "modulation.deltas", (D,))
            ly.n2w, ly.n2b = t(p + "norm2.weight", (D,)), t(p + "norm2.bias", (D,))
            ly.fc1_w, ly.fc1_b = t(p + "mlp.fc1.weight", (self.DI, D)), t(p + "mlp.fc1.bias", (self.DI,))
            ly.fc2_w, ly.fc2_b = t(p + "mlp.fc2.weight", (D, self.DI)), t(p + "mlp.fc2.bias", (D,))
            self.layers.append(ly)
        del raw

    def n_params(self):
        n = self.emb.numel() + 2 * self.D
        for ly in self.layers:
            n += sum(x.numel() for x in (ly.n1w, ly.n1b, ly.in_w, ly.in_b, ly.c0, ly.c1, ly.c2, ly.cb,
                                         ly.out_w, ly.out_b, ly.fbias, ly.z, ly.t, ly.freq, ly.deltas,
                                         ly.n2w, ly.n2b, ly.fc1_w, ly.fc1_b, ly.fc2_w, ly.fc2_b))
            n += sum(w.numel() + (b.numel() if b is not None else 0) for w, b in ly.flin)
        return n

    # ------------------------------------------------------------- filters

    def filters(self, length):
        """The long filters of every layer for `length` positions: (G, D, length), fp32.

        Same math as src/filter.c: Linear -> sin(freq * x) for every Linear but the
        last, the last without bias, then h[k][c] *= exp(-t[k] |deltas[c]|) + shift."""
        if length > self.l_max:
            raise ValueError("length %d exceeds the model's l_max %d" % (length, self.l_max))
        out = torch.empty(self.G, self.D, length, dtype=torch.float32, device=self.device)
        for g, ly in enumerate(self.layers):
            h = ly.z[:length]
            for j, (w, b) in enumerate(ly.flin):
                h = F.linear(h, w, b)
                if j < len(ly.flin) - 1:
                    h = torch.sin(ly.freq * h)
            decay = torch.exp(-ly.t[:length, None] * ly.deltas.abs()) + self.shift
            out[g] = (h * decay).t()
        return out

    # ----------------------------------------------------- parallel forward

    def forward_seq(self, tokens, spectrum, last_only=True, on_layer=None):
        """Logits of `tokens` (B, T) through the whole stack, long convolutions by FFT.

        spectrum(n) -> (G, D, n//2+1) complex: the filters' rfft at size n, with the
        filter cut to n//2 taps; n is the power of two >= 2T so the circular product
        equals the causal one on the first T outputs. on_layer(l, u, a), if given,
        receives each layer's in_proj output u (B, T, 3D) and its long-conv input
        a = v * x1 (B, T, D): the state a cached decoder continues from.
        Returns (B, vocab) logits of the last position, or (B, T, vocab)."""
        B, T = tokens.shape
        D, eps = self.D, self.eps
        n = 1
        while n < 2 * T:
            n *= 2
        spec = spectrum(n)
        r = F.embedding(tokens, self.emb)
        for l, ly in enumerate(self.layers):
            h = F.layer_norm(r, (D,), ly.n1w, ly.n1b, eps)
            u = F.linear(h, ly.in_w, ly.in_b)                       # (B, T, 3D)
            uc = torch.addcmul(ly.cb, ly.c2, u)
            uc[:, 1:].addcmul_(ly.c1, u[:, :-1])
            uc[:, 2:].addcmul_(ly.c0, u[:, :-2])
            x0, x1, v = uc[..., :D], uc[..., D:2 * D], uc[..., 2 * D:]
            a = v * x1                                              # (B, T, D)
            if on_layer is not None:
                on_layer(l, u, a)
            at = a.transpose(1, 2)                                  # (B, D, T)
            yc = torch.fft.irfft(torch.fft.rfft(at, n=n) * spec[l], n=n)[..., :T]
            y = torch.addcmul(yc.transpose(1, 2), a, ly.fbias) * x0
            r = r + F.linear(y, ly.out_w, ly.out_b)
            h = F.layer_norm(r, (D,), ly.n2w, ly.n2b, eps)
            h = F.gelu(F.linear(h, ly.fc1_w, ly.fc1_b), approximate="tanh")
            r = r + F.linear(h, ly.fc2_w, ly.fc2_b)
        if last_only:
            r = r[:, -1]
        return F.linear(F.layer_norm(r, (D,), self.lnf_w, self.lnf_b, eps), self.head)


def spectra_cache(filters):
    """spectrum(n) for Model.forward_seq, memoised per size (sizes are powers of two,
    so a whole generation makes at most log2(2L) of them)."""
    cache = {}

    def spectrum(n):
        s = cache.get(n)
        if s is None:
            taps = filters[..., :min(n // 2, filters.shape[-1])]
            s = cache[n] = torch.fft.rfft(taps, n=n)
        return s
    return spectrum

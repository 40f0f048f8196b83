#!/usr/bin/env python3
"""
torch_peer.py -- a PyTorch peer of lcsm: the same model, the same weights, three ways
to generate, timed the way lcsm-bench times lcsm.

  torch_peer.py --model DIR --algo recompute|lazy|flash --batch B --len L --prompt P
                [--device cpu|cuda] [--threads N] [--cuda-graphs] [--warmup N]
                [--latencies] [--seed S] [--dump-tokens FILE]

Prints exactly one JSON line on stdout (see README.md) and exits 0; on any error one
line {"error": "..."} and exit status 1 (2 for a bad command line).

L is the total length: a P-token prompt (random ids 7..10 = A C G T from --seed, one
row per sequence) goes through the parallel forward, then L - P decode steps run at
positions P .. L-1, each taking B tokens in and giving B greedy tokens out (argmax
over the real vocabulary; lcsm-bench's lcsm cells do the same number of steps).

Algorithms (DESIGN.md section 1):
  recompute  no cache: step t runs the whole FFT forward over tokens 0..t.
  lazy       per-layer histories of a = v * x1; y_t = sum_s h[t-s] a_s as one batched
             dot product per layer (all channels and sequences at once).
  flash      the dyadic tiling of Flash Inference, schedule of src/schedule.c: after
             the step at position t, with j = t - P and U = lowbit(j + 1), inputs
             [t+1-U, t] add into the accumulator of outputs [t+1, t+U], all layers,
             channels and sequences in one rfft/irfft (or one direct product for small
             U) per step. The prompt's effect on every later output is pushed into the
             accumulator at prefill, by one FFT.

--cuda-graphs (CUDA only; see README.md): lazy and flash run graph-ready steps
(fixed shapes, the position held in a device tensor) captured once per step shape:
lazy one graph per power-of-two history window, flash one graph per tile size (the
whole dense step plus that tile), so each decode step is one graph replay.
recompute changes shape every step and runs eagerly (reported as cuda_graphs false).

Test-only options (not part of lcsm-bench's contract): --shift F, --fft-min U,
--static (the graph-ready steps without capture, e.g. on the CPU), --dump-logits FILE.
"""

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one JSON line, not argparse's usage text
        raise UsageError(message)


def parse_args(argv):
    p = Parser(description="PyTorch peer of lcsm (see the module docstring)")
    p.add_argument("--model", required=True, help="model directory (config.json + model.safetensors)")
    p.add_argument("--algo", required=True, choices=["recompute", "lazy", "flash"])
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--len", type=int, required=True, dest="L", help="total length: prompt + generated")
    p.add_argument("--prompt", type=int, required=True, help="prompt tokens per sequence (>= 1)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: the CPUs we may use)")
    p.add_argument("--cuda-graphs", action="store_true")
    p.add_argument("--warmup", type=int, default=1, help="untimed short generations first (default 1)")
    p.add_argument("--latencies", action="store_true", help="also list every step's latency")
    p.add_argument("--seed", type=int, default=0, help="seed of the random prompt")
    p.add_argument("--dump-tokens", default=None, metavar="FILE",
                   help="write each sequence's ids (prompt, then generated), one line per sequence")
    # test-only
    p.add_argument("--shift", type=float, default=0.05, help=argparse.SUPPRESS)
    p.add_argument("--fft-min", type=int, default=0, help=argparse.SUPPRESS)  # 0: measured per tile size
    p.add_argument("--static", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dump-logits", default=None, help=argparse.SUPPRESS)
    p.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.batch < 1 or a.prompt < 1 or a.L <= a.prompt:
        raise UsageError("need --batch >= 1, --prompt >= 1 and --len > --prompt")
    if a.warmup < 0 or a.threads < 0:
        raise UsageError("--warmup and --threads must be >= 0")
    return a


def lowbit(x):
    return x & -x


def pow2_at_least(x):
    n = 1
    while n < x:
        n *= 2
    return n


def max_tile(origin, L):
    """The largest tile any step of [origin, L) runs (lcsm_schedule_max_tile)."""
    n = L - 1 - origin
    if n < 1:
        return 0
    U = 1
    while U <= n // 2:
        U *= 2
    return U


# ----------------------------------------------------------------- decoders

class Decoder(object):
    """State of B sequences of length L. The generation loop calls reset(),
    prefill(prompt) once, then step(t) for t = P .. L-1; the decoder keeps the
    token table tokens (B, L+1) and writes the greedy token of position t+1."""

    graphs_used = False

    def __init__(self, torch, model, filt, B, L, P, opts):
        self.torch, self.m, self.filt = torch, model, filt
        self.B, self.L, self.P, self.opts = B, L, P, opts
        self.dev = model.device
        self.tokens = torch.zeros(B, L + 1, dtype=torch.long, device=self.dev)
        self.logits = None  # (B, vocab) of the last prefill/step

    def greedy(self, logits):
        return logits.argmax(-1)  # first maximum on ties, as lcsm's sampler

    def set_prompt(self, prompt):
        self.tokens.zero_()
        self.tokens[:, :self.P] = prompt


class Recompute(Decoder):
    """No state: every step is the whole parallel forward over the prefix."""

    def __init__(self, *a):
        Decoder.__init__(self, *a)
        from peer_model import spectra_cache
        self.spectrum = spectra_cache(self.filt)

    def prime(self):
        n = 2
        while n <= pow2_at_least(2 * self.L):  # every FFT size a generation uses
            self.spectrum(n)
            n *= 2

    def reset(self):
        pass

    def prefill(self, prompt):
        self.set_prompt(prompt)
        self.logits = self.m.forward_seq(self.tokens[:, :self.P], self.spectrum)
        self.tokens[:, self.P] = self.greedy(self.logits)

    def step(self, t):
        self.logits = self.m.forward_seq(self.tokens[:, :t + 1], self.spectrum)
        self.tokens[:, t + 1] = self.greedy(self.logits)


class Cached(Decoder):
    """What lazy and flash share: the dense part of a step, the short-conv state, the
    history of a = v * x1 (layout chosen by the subclass), and the graph machinery.

    Eager steps index with the Python position t. Graph-ready ("static") steps keep
    the position in a device tensor `pos` and index with index_select / index_copy_,
    so one captured graph serves every step of the same shape."""

    def __init__(self, *a):
        Decoder.__init__(self, *a)
        torch, m = self.torch, self.m
        G, B, D = m.G, self.B, m.D
        self.static = self.opts.static or self.opts.cuda_graphs
        # eager: u of position t in slot t % 3; static: slot 0 = u[t-2], slot 1 = u[t-1]
        self.ring = torch.zeros(G, 3, B, 3 * D, device=self.dev)
        self.pos = torch.zeros(1, dtype=torch.long, device=self.dev)
        self.arange = torch.arange(2 * self.L + 2, dtype=torch.long, device=self.dev)
        self.logits_buf = torch.zeros(B, m.vocab, device=self.dev)
        self.graphs = {}

    # --- prefill: the parallel forward, keeping what decoding continues from
    def prefill(self, prompt):
        torch, P = self.torch, self.P
        self.set_prompt(prompt)

        def keep(l, u, a):
            self.store_prompt(l, a)               # (B, P, D)
            for k in (1, 2):                      # u of positions P-1, P-2
                if P - k >= 0:
                    slot = (P - k) % 3 if not self.static else 2 - k
                    self.ring[l, slot].copy_(u[:, P - k])

        logits = self.m.forward_seq(self.tokens[:, :P], self.spectrum, on_layer=keep)
        self.after_prefill()
        self.tokens[:, P] = self.greedy(logits)
        self.logits = logits
        self.pos.fill_(P)

    # --- the dense part of one step; mix(l, x1, v) returns y before the x0 gate
    def dense(self, t, mix):
        torch, m, F = self.torch, self.m, self.F
        D, eps = m.D, m.eps
        if self.static:
            tok = self.tokens.index_select(1, self.pos).squeeze(1)
        else:
            tok = self.tokens[:, t]
        r = F.embedding(tok, m.emb)
        for l, ly in enumerate(m.layers):
            xn = F.layer_norm(r, (D,), ly.n1w, ly.n1b, eps)
            if self.static:
                u = F.linear(xn, ly.in_w, ly.in_b)
                prev1, prev2 = self.ring[l, 1], self.ring[l, 0]
            else:
                u = self.ring[l, t % 3]
                torch.addmm(ly.in_b, xn, ly.in_w.t(), out=u)
                prev1, prev2 = self.ring[l, (t - 1) % 3], self.ring[l, (t - 2) % 3]
            uc = torch.addcmul(ly.cb, ly.c2, u)
            uc.addcmul_(ly.c1, prev1).addcmul_(ly.c0, prev2)
            if self.static:
                prev2.copy_(prev1)
                prev1.copy_(u)
            y = mix(l, t, uc[:, D:2 * D], uc[:, 2 * D:])
            y.mul_(uc[:, :D])
            r = torch.addmm(r, y, ly.out_w.t()).add_(ly.out_b)
            xn = F.layer_norm(r, (D,), ly.n2w, ly.n2b, eps)
            hid = F.gelu(torch.addmm(ly.fc1_b, xn, ly.fc1_w.t()), approximate="tanh")
            r = torch.addmm(r, hid, ly.fc2_w.t()).add_(ly.fc2_b)
        logits = F.linear(F.layer_norm(r, (D,), m.lnf_w, m.lnf_b, eps), m.head)
        nxt = self.greedy(logits)
        if self.static:
            self.logits_buf.copy_(logits)
            self.tokens.index_copy_(1, self.pos + 1, nxt.unsqueeze(1))
            self.pos.add_(1)
            self.logits = self.logits_buf
        else:
            self.tokens[:, t + 1] = nxt
            self.logits = logits

    # --- graphs
    def capture_all(self, keys, fn_of_key, pos_for_key):
        """Captures fn_of_key(k) for every key, after the warm-up runs on a side stream
        that the PyTorch docs ask for (they also fill the cuFFT plan cache). The
        warm-ups write garbage into the state, so the caller resets afterwards."""
        torch = self.torch
        for k in keys:
            fn = fn_of_key(k)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    self.pos.fill_(pos_for_key(k))
                    fn()
            torch.cuda.current_stream().wait_stream(s)
            self.pos.fill_(pos_for_key(k))
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            self.graphs[k] = g
        torch.cuda.synchronize()
        self.graphs_used = True

    def run_static(self, key, fn):
        g = self.graphs.get(key)
        if g is not None:
            g.replay()
            # A replay runs no Python: the step's `self.logits = self.logits_buf`
            # ran only while capturing, so say it again (the H100 check caught
            # the prefill's logits being reported for every captured step).
            self.logits = self.logits_buf
        else:
            fn()


class Lazy(Cached):
    """y_t = sum_{s<=t} h[t-s] a_s over the cached history, per layer as one batched
    dot product (torch.linalg.vecdot) over a (D, B, t+1) slice."""

    def __init__(self, *a):
        Cached.__init__(self, *a)
        torch, m, L = self.torch, self.m, self.L
        from peer_model import spectra_cache
        self.spectrum = spectra_cache(self.filt)
        # hist[g, c, b, s] = a_s; hrev[g, c, j] = h[L-1-j], so h[t-s] = hrev[L-1-t+s]
        self.hist = torch.zeros(m.G, m.D, self.B, L, device=self.dev)
        self.hrev = self.filt.flip(-1).contiguous()
        self.vecdot = getattr(torch.linalg, "vecdot", None)
        if self.static:
            # q[g, c, m] = h[L-1-m] for m < L, 0 beyond: the window q[L-1-t .. L-1-t+W)
            # is h[t-s] for s < W (0 for s > t), whatever power-of-two W >= t+1.
            self.q = torch.zeros(m.G, m.D, 2 * L, device=self.dev)
            self.q[..., :L] = self.hrev

    def dot(self, x, w):
        if self.vecdot is not None:
            return self.vecdot(x, w)
        return (x * w).sum(-1)

    def prime(self):
        n = 2
        while n <= pow2_at_least(2 * self.P):
            self.spectrum(n)
            n *= 2

    def reset(self):
        self.hist.zero_()
        self.ring.zero_()

    def store_prompt(self, l, a):
        self.hist[l, :, :, :self.P] = a.permute(2, 0, 1)

    def after_prefill(self):
        pass

    def mix(self, l, t, x1, v):
        m = self.m
        a = self.hist[l, :, :, t].t()                       # (B, D) view
        self.torch.mul(v, x1, out=a)
        y = self.dot(self.hist[l, :, :, :t + 1], self.hrev[l, :, None, self.L - 1 - t:]).t()
        return y.addcmul_(a, m.layers[l].fbias)

    def mix_static(self, W):
        torch, L = self.torch, self.L

        def mix(l, t, x1, v):
            a = v * x1
            self.hist[l].index_copy_(2, self.pos, a.t().unsqueeze(-1))
            win = self.q[l].index_select(1, (L - 1) - self.pos + self.arange[:W])
            y = self.dot(self.hist[l, :, :, :W], win[:, None, :]).t()
            return y.addcmul_(a, self.m.layers[l].fbias)
        return mix

    def window(self, t):
        return min(self.L, pow2_at_least(t + 1))

    def setup_static(self):
        if not self.opts.cuda_graphs:
            return
        keys = sorted(set(self.window(t) for t in range(self.P, self.L)))
        self.capture_all(keys, lambda W: (lambda: self.dense(None, self.mix_static(W))), lambda W: 0)

    def step(self, t):
        if self.static:
            W = self.window(t)
            self.run_static(W, lambda: self.dense(None, self.mix_static(W)))
        else:
            self.dense(t, self.mix)


class Flash(Cached):
    """The dyadic tiling. hist and acc are (G, B, D, len) with time last, so a tile's
    inputs hist[..., i0:i0+U] feed one rfft over every layer, sequence and channel."""

    def __init__(self, *a):
        Cached.__init__(self, *a)
        torch, m, L, P = self.torch, self.m, self.L, self.P
        from peer_model import spectra_cache
        self.spectrum = spectra_cache(self.filt)
        self.Umax = max_tile(P, L)
        pad = self.Umax if self.static else 0       # static tiles write whole tiles, past L too
        self.hist = torch.zeros(m.G, self.B, m.D, L + pad, device=self.dev)
        self.acc = torch.zeros(m.G, self.B, m.D, L + pad, device=self.dev)
        self.hdiag = (self.filt[:, :, 0] + torch.stack([ly.fbias for ly in m.layers]))[:, None]  # (G,1,D)
        # Tile spectra: taps h[0 .. 2U) at FFT size 2U. Outputs U .. 2U-1 of the circular
        # product see only taps 1 .. 2U-1 and no wrap-around: exactly the tile.
        self.sizes = []
        U = 1
        while U and U <= self.Umax:
            self.sizes.append(U)
            U *= 2
        self.spec, self.toep = {}, {}
        for U in self.sizes:
            self.spec[U] = torch.fft.rfft(self.filt[..., :2 * U], n=2 * U)[:, None]   # (G,1,D,U+1)
        # The prompt's push: outputs [P, L) from inputs [0, P) with taps [1, L): size N >= L
        # has no wrap-around on those outputs.
        self.N = pow2_at_least(L)
        self.push_spec = torch.fft.rfft(self.filt, n=self.N)[:, None]
        self.choose_methods()

    # --- tile arithmetic
    def toeplitz(self, U):
        t = self.toep.get(U)
        if t is None:
            ar = self.arange[:U]
            idx = U + ar[:, None] - ar[None, :]       # T[k, j] = h[U + k - j], in [1, 2U-1]
            h = self.filt
            if 2 * U > h.shape[-1]:  # the last tile may reach past L; those taps only feed dropped outputs
                h = self.torch.nn.functional.pad(h, (0, 2 * U - h.shape[-1]))
            t = self.toep[U] = h[:, :, idx][:, None].contiguous()   # (G,1,D,U,U)
        return t

    def tile_out(self, x, U):
        """Outputs [t+1, t+1+U) of inputs x = a[t+1-U .. t] (G, B, D, U)."""
        torch = self.torch
        if U in self.direct:
            return (self.toeplitz(U) * x.unsqueeze(-2)).sum(-1)
        X = torch.fft.rfft(x, n=2 * U)
        X.mul_(self.spec[U])
        return torch.fft.irfft(X, n=2 * U)[..., U:]

    def choose_methods(self):
        """Direct product or FFT per tile size: --fft-min, else the faster of the two
        as timed here, at setup, for every size up to 128 (larger ones: FFT; the direct
        product costs U^2 per channel)."""
        torch = self.torch
        fmin = self.opts.fft_min
        if fmin > 0:
            self.direct = set(U for U in self.sizes if U < fmin)
            return
        sync = torch.cuda.synchronize if self.dev.type == "cuda" else (lambda: None)
        self.method_ms, chosen = {}, set()
        for U in self.sizes:
            if U > 128:
                break
            x = self.hist[..., :U]
            for how in ("direct", "fft"):
                self.direct = {U} if how == "direct" else set()
                self.tile_out(x, U)
                best = float("inf")
                for _ in range(5):  # the fastest of 5: robust to a busy machine
                    sync()
                    t0 = time.perf_counter()
                    self.tile_out(x, U)
                    sync()
                    best = min(best, time.perf_counter() - t0)
                self.method_ms[(U, how)] = best * 1e3
            if self.method_ms[(U, "direct")] < self.method_ms[(U, "fft")]:
                chosen.add(U)
        self.direct = chosen

    def prime(self):
        n = 2
        while n <= pow2_at_least(2 * self.P):
            self.spectrum(n)
            n *= 2
        for U in self.sizes:  # every tile size once (plans, caches)
            self.tile_out(self.hist[..., :U], U)

    def reset(self):
        self.hist.zero_()
        self.acc.zero_()
        self.ring.zero_()

    def store_prompt(self, l, a):
        self.hist[l, :, :, :self.P] = a.transpose(1, 2)

    def after_prefill(self):
        torch, P, L, N = self.torch, self.P, self.L, self.N
        X = torch.fft.rfft(self.hist[..., :P], n=N)
        X.mul_(self.push_spec)
        self.acc[..., P:L] += torch.fft.irfft(X, n=N)[..., P:L]

    def mix(self, l, t, x1, v):
        a = self.hist[l, :, :, t]
        self.torch.mul(v, x1, out=a)
        return self.torch.addcmul(self.acc[l, :, :, t], self.hdiag[l], a)

    def mix_static(self, l, t, x1, v):
        a = v * x1
        self.hist[l].index_copy_(2, self.pos, a.unsqueeze(-1))
        acc_t = self.acc[l].index_select(2, self.pos).squeeze(-1)
        return self.torch.addcmul(acc_t, self.hdiag[l], a)

    def tile_of(self, t):
        """(U, number of outputs) of the step at position t; U = 0 when it has none."""
        j1 = t - self.P + 1
        U = lowbit(j1)
        n = min(U, self.L - (t + 1))
        return (U, n) if n > 0 else (0, 0)

    def tile(self, t):
        U, n = self.tile_of(t)
        if U:
            y = self.tile_out(self.hist[..., t + 1 - U:t + 1], U)
            self.acc[..., t + 1:t + 1 + n] += y[..., :n]

    def tile_static(self, U):
        # pos is already t + 1: inputs [pos-U, pos), outputs [pos, pos+U) (past L: padding)
        x = self.hist.index_select(3, self.pos - U + self.arange[:U])
        self.acc.index_add_(3, self.pos + self.arange[:U], self.tile_out(x, U))

    def static_fn(self, U):
        def fn():
            self.dense(None, self.mix_static)
            if U:
                self.tile_static(U)
        return fn

    def setup_static(self):
        if not self.opts.cuda_graphs:
            return
        keys = sorted(set(self.tile_of(t)[0] for t in range(self.P, self.L)))
        self.capture_all(keys, self.static_fn, lambda U: self.Umax)

    def step(self, t):
        if self.static:
            U = self.tile_of(t)[0]
            self.run_static(U, self.static_fn(U))
        else:
            self.dense(t, self.mix)
            self.tile(t)


DECODERS = {"recompute": Recompute, "lazy": Lazy, "flash": Flash}


# ------------------------------------------------------------------ driver

def generate(dec, prompt, steps, sync, record=None):
    """Prefill, then `steps` decode steps; returns (prefill_s, gen_s, per-step seconds)."""
    P = dec.P
    dec.reset()
    sync()
    t0 = time.perf_counter()
    dec.prefill(prompt)
    sync()
    t1 = time.perf_counter()
    if record is not None:
        record.append(dec.logits.float().cpu().clone())
    lat = []
    for t in range(P, P + steps):
        s0 = time.perf_counter()
        dec.step(t)
        sync()
        lat.append(time.perf_counter() - s0)
        if record is not None:
            record.append(dec.logits.float().cpu().clone())
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, lat


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_vals) - 1, int(math.ceil(q / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


def run(a):
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    from peer_model import Model

    t_setup = time.perf_counter()
    dev_name = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(dev_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device %s: this torch has no usable CUDA" % dev_name)
    if a.cuda_graphs and device.type != "cuda":
        raise RuntimeError("--cuda-graphs needs --device cuda")
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError("--device must be cpu or cuda[:N]")
    threads = a.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    if device.type == "cuda":
        if device.index is not None:  # set_device refuses a bare "cuda"
            torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = False   # fp32 means fp32, as lcsm
        torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    model = Model(a.model, device, shift=a.shift)
    if a.L > model.l_max:
        raise RuntimeError("--len %d exceeds the model's l_max %d" % (a.L, model.l_max))
    filt = model.filters(a.L)
    B, L, P = a.batch, a.L, a.prompt
    gen = torch.Generator().manual_seed(a.seed)
    prompt = torch.randint(7, 11, (B, P), generator=gen).to(device)   # A C G T

    a.cuda_graphs = bool(a.cuda_graphs and a.algo != "recompute")
    a.static = bool(a.static and a.algo != "recompute")
    dec = DECODERS[a.algo](torch, model, filt, B, L, P, a)
    dec.F = F
    dec.prime()
    if isinstance(dec, Cached):
        dec.setup_static()
    for _ in range(a.warmup):
        generate(dec, prompt, min(L - P, 32), sync)
    sync()
    setup_s = time.perf_counter() - t_setup

    record = [] if a.dump_logits else None
    prefill_s, gen_s, lat = generate(dec, prompt, L - P, sync, record)
    steps = L - P

    if a.dump_tokens:
        with open(a.dump_tokens, "w") as f:
            for row in dec.tokens.cpu().tolist():
                f.write(" ".join(str(x) for x in row) + "\n")
    if a.dump_logits:
        import numpy as np
        np.save(a.dump_logits, torch.stack(record).numpy())   # (steps+1, B, vocab)

    ms = sorted(x * 1e3 for x in lat)
    p50 = percentile(ms, 50)
    res = {
        "impl": "torch", "algo": a.algo,
        "device": "cpu" if device.type == "cpu" else "cuda:" + torch.cuda.get_device_name(device),
        "torch": torch.__version__, "batch": B, "L": L, "prompt": P,
        "setup_s": setup_s, "prefill_s": prefill_s, "gen_s": gen_s,
        "ms_per_tok": gen_s / steps * 1e3, "tok_s": B * steps / gen_s,
        "lat_ms": {"p50": p50, "p99": percentile(ms, 99), "max": ms[-1],
                   "spike_frac": sum(1 for x in ms if x > 2 * p50) / float(len(ms))},
        "cuda_graphs": bool(dec.graphs_used),
    }
    if a.latencies:
        res["latencies_ms"] = [round(x * 1e3, 4) for x in lat]
    if a.verbose:
        extra = {"threads": threads, "params": model.n_params()}
        if isinstance(dec, Flash):
            extra["direct_tiles"] = sorted(dec.direct)
            extra["method_ms"] = {"%d/%s" % k: round(v, 4) for k, v in getattr(dec, "method_ms", {}).items()}
        sys.stderr.write("torch_peer: %s\n" % json.dumps(extra))
    return res


def main(argv=None):
    try:
        a = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(json.dumps({"error": "usage: %s" % e}))
        return 2
    try:
        res = run(a)
    except Exception as e:  # one JSON line whatever failed: import, load, CUDA, memory
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sessions: the decoding state of a batch of sequences."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from . import _capi
from ._handle import Handle
from ._tokens import INT32_MAX, INT32_MIN, as_f32, as_i32, c_int_or_raise
from .errors import InvalidArgumentError, check

ALGOS = ("flash", "lazy", "eager", "modal", "smooth")


@dataclass(frozen=True)
class SessionStats:
    """Seconds spent since creation or reset (lcsm_session_stats): prefill; mixer
    (long and short convolutions and gating), of it tiles (flash tiles or eager
    pushes); dense (norms, projections, MLPs, logits); steps; state_bytes."""

    prefill_s: float
    mixer_s: float
    tiles_s: float
    dense_s: float
    steps: int
    state_bytes: int


@dataclass(frozen=True)
class Sampler:
    """A session's sampler (lcsm_sampler_params); token_hi 0 = the model's
    vocab_size; allowed None = no allowed set, else the tuple of ids sampled
    (within [token_lo, token_hi)). ``Session.set_sampler(**dataclasses.asdict(s))``
    sets it again."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    token_lo: int = 0
    token_hi: int = 0
    allowed: tuple | None = None


class Session(Handle):
    """The state of `batch` sequences decoded together (lcsm_session).

    Made by :meth:`lcsm.Model.session`. All state is allocated at creation;
    nothing per token. A session keeps its model alive. One session must not be
    used by two threads at once in C; here every call takes the session's lock,
    so such misuse serialises instead of corrupting the state (several sessions
    of one model on several threads run in parallel: ctypes releases the GIL
    during each C call).

    The sampler starts as the library's default (temperature 1, the whole real
    vocabulary); :meth:`lcsm.Model.generate` restricts it to A, C, G, T unless
    ``all_tokens=True``.

    Text (a str prompt or token) goes through the model's tokenizer
    (:attr:`lcsm.Model.tokenizer`).
    """

    _kind = "session"

    def __init__(self, model, batch: int = 1, max_len=None, algo: str = "flash", kv: str = "auto"):
        super().__init__()
        self._lock = threading.RLock()
        self._model = model
        if algo not in ALGOS:
            raise InvalidArgumentError("algo=%r: expected one of %s" % (algo, ", ".join(ALGOS)))
        opt = _capi.SessionOptions()
        _capi.lcsm_session_options_default(ctypes.byref(opt))
        code = ctypes.c_int(0)
        check(_capi.lcsm_algo_from_name(algo.encode(), ctypes.byref(code)))
        opt.batch = _arg_int(batch, "batch")
        opt.max_len = 0 if max_len is None else _arg_int(max_len, "max_len")
        opt.algo = code.value
        from .model import _weight_dtype

        opt.kv_dtype = _weight_dtype(kv, False, "kv")
        out = _capi.handle()
        with model.use() as mp:
            check(_capi.lcsm_session_create(mp, ctypes.byref(opt), ctypes.byref(out)), model._message)
            self._set(out.value)
            model._adopt(self)
        self._batch = opt.batch
        self._max_len = opt.max_len or model.l_max
        self._algo = algo
        self._n_vocab = model.n_vocab
        self._sampler = Sampler()
        self._allowed = None  # the int32 array the sampler's `allowed` points at (see set_sampler)

    def _destroy(self, ptr) -> None:
        _capi.lcsm_session_destroy(ptr)

    def close(self) -> None:
        """Destroys the session (waits for a call in flight on another thread). Harmless twice."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            super().close()

    def _message(self) -> str:
        p = self._ptr
        return _capi.text(_capi.lcsm_session_last_error(p)) if p else ""

    # ------------------------------------------------------------ properties

    @property
    def model(self):
        return self._model

    @property
    def batch(self) -> int:
        return self._batch

    @property
    def max_len(self) -> int:
        """Prompt + generated tokens the session holds."""
        return self._max_len

    @property
    def algo(self) -> str:
        return self._algo

    @property
    def position(self) -> int:
        """Tokens processed so far: the position of the next token."""
        with self._lock, self.use() as p:
            return _capi.lcsm_session_position(p)

    @property
    def stats(self) -> SessionStats:
        """Time spent so far, by where (lcsm_session_get_stats)."""
        s = _capi.SessionStats()
        with self._lock, self.use() as p:
            check(_capi.lcsm_session_get_stats(p, ctypes.byref(s)), self._message)
        return SessionStats(s.prefill_s, s.mixer_s, s.tiles_s, s.dense_s, s.steps, s.state_bytes)

    @property
    def sampler(self) -> Sampler:
        """The sampler last set (token_hi 0 = vocab_size)."""
        return self._sampler

    # ----------------------------------------------------------------- calls

    def reset(self) -> None:
        """Back to position 0 with empty state; keeps the allocations and the sampler (reseeded).
        Also makes a session usable again after a failure inside the backend."""
        with self._lock, self.use() as p:
            check(_capi.lcsm_session_reset(p), self._message)

    def set_sampler(self, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                    token_lo: int = 0, token_hi: int = 0, allowed=None) -> None:
        """Sets the sampler and reseeds its generators (lcsm_session_set_sampler).

        temperature 0 = greedy; top_k 0 = all ids; top_p 1 = all; ids sampled
        from [token_lo, token_hi), token_hi 0 = the model's vocab_size.
        `allowed`: None (default) for every id of the range, or a sequence of
        ids, up to 256 (LCSM_MAX_ALLOWED), to sample only those (the ones
        within the range; e.g. ``model.dna_ids`` for A C G T): each must lie in
        [0, vocab_size) and at least one in the range. A session with an allowed
        set samples on the host. The library copies the ids during the call
        (lcsm.h); the session also keeps its own int32 copy, the array the C
        struct pointed at, for as long as that sampler is set. Bad values raise
        InvalidArgumentError with the library's message; an empty `allowed`,
        which the C struct cannot express (n_allowed 0 means no set), is
        refused here with the same class.
        """
        seed = int(seed)
        if not 0 <= seed < 2**64:
            raise InvalidArgumentError("sampler: seed %d must be in [0, 2**64)" % seed)
        ids = None if allowed is None else _allowed_ids(allowed)
        p = _capi.SamplerParams()
        _capi.lcsm_sampler_params_default(ctypes.byref(p))
        p.temperature = float(temperature)
        p.top_k = _arg_int(top_k, "top_k")
        p.top_p = float(top_p)
        p.seed = seed
        p.token_lo = _arg_int(token_lo, "token_lo")
        p.token_hi = _arg_int(token_hi, "token_hi")
        if ids is not None:
            p.allowed = as_i32(ids)
            p.n_allowed = _arg_int(ids.shape[0], "len(allowed)")
        with self._lock, self.use() as h:
            check(_capi.lcsm_session_set_sampler(h, ctypes.byref(p)), self._message)
            self._allowed = ids
            self._sampler = Sampler(p.temperature, p.top_k, p.top_p, p.seed, p.token_lo, p.token_hi,
                                    None if ids is None else tuple(ids.tolist()))

    def _rows(self, tokens, what: str) -> np.ndarray:
        """A prompt as [batch, len]: 2-D as given, 1-D / str repeated for every sequence."""
        ids = self._model._ids(tokens, what)
        if ids.ndim == 1:
            ids = np.tile(ids, (self._batch, 1))
        if ids.ndim != 2 or ids.shape[0] != self._batch:
            raise InvalidArgumentError("%s: expected [batch=%d, len] ids, got shape %s"
                                       % (what, self._batch, ids.shape))
        c_int_or_raise(ids.shape[1], "length")
        return np.ascontiguousarray(ids)

    def _column(self, tokens, what: str) -> np.ndarray:
        """One token per sequence: [batch] (an int or a 1-character str for batch 1)."""
        ids = self._model._ids(tokens, what).reshape(-1)
        if ids.shape[0] != self._batch:
            raise InvalidArgumentError("%s: expected one token per sequence (%d), got %d"
                                       % (what, self._batch, ids.shape[0]))
        return np.ascontiguousarray(ids)

    def prefill(self, tokens) -> np.ndarray:
        """Runs a prompt through the parallel forward at position 0 (lcsm_session_prefill).

        Args:
            tokens: a str or 1-D ids (the same prompt for every sequence) or
                [batch, len] ids.

        Returns:
            float32 [batch, n_vocab]: the logits after the last prompt token.
        """
        ids = self._rows(tokens, "prefill")
        out = np.empty((self._batch, self._n_vocab), dtype=np.float32)
        with self._lock, self.use() as p:
            check(_capi.lcsm_session_prefill(p, as_i32(ids), ids.shape[1], as_f32(out)), self._message)
        return out

    def extend(self, tokens) -> np.ndarray:
        """Continues the sequences with a chunk of tokens through the parallel
        forward at the current position (lcsm_session_extend): chunked prompts
        give the logits one prompt would.

        Args:
            tokens: as for :meth:`prefill`.

        Returns:
            float32 [batch, n_vocab]: the logits after the chunk's last token.
        """
        ids = self._rows(tokens, "extend")
        out = np.empty((self._batch, self._n_vocab), dtype=np.float32)
        with self._lock, self.use() as p:
            check(_capi.lcsm_session_extend(p, as_i32(ids), ids.shape[1], as_f32(out)), self._message)
        return out

    def step(self, tokens) -> np.ndarray:
        """Feeds one token per sequence at the current position (lcsm_session_step).

        Returns:
            float32 [batch, n_vocab]: the next-token logits (padded vocabulary:
            the first vocab_size columns are the real tokens).
        """
        ids = self._column(tokens, "step")
        out = np.empty((self._batch, self._n_vocab), dtype=np.float32)
        with self._lock, self.use() as p:
            check(_capi.lcsm_session_step(p, as_i32(ids), as_f32(out)), self._message)
        return out

    def step_sample(self, tokens) -> np.ndarray:
        """Feeds one token per sequence and samples the next one of each with the
        session's sampler (lcsm_session_step_sample). Returns int32 [batch]."""
        ids = self._column(tokens, "step_sample")
        nxt = np.empty(self._batch, dtype=np.int32)
        with self._lock, self.use() as p:
            check(_capi.lcsm_session_step_sample(p, as_i32(ids), as_i32(nxt)), self._message)
        return nxt

    def generate(self, prompt, n: int) -> np.ndarray:
        """Prefills `prompt` at position 0, then samples `n` tokens per sequence
        (lcsm_generate); the last one is not fed back. Returns int32 [batch, n]."""
        ids = self._rows(prompt, "generate")
        n = c_int_or_raise(int(n), "n")
        out = np.empty((self._batch, max(n, 0)), dtype=np.int32)
        with self._lock, self.use() as p:
            check(_capi.lcsm_generate(p, as_i32(ids), ids.shape[1], n, as_i32(out)), self._message)
        return out

    def __repr__(self) -> str:
        if self.closed:
            return "<lcsm.Session closed>"
        return "<lcsm.Session batch=%d max_len=%d algo=%s position=%d>" % (
            self._batch, self._max_len, self._algo, self.position)


def _allowed_ids(allowed) -> np.ndarray:
    """The sampler's allowed set as a fresh C-contiguous int32 array."""
    if isinstance(allowed, (str, bytes)):
        raise TypeError("sampler: allowed= takes token ids, not %s" % type(allowed).__name__)
    a = np.asarray(allowed)
    if a.ndim != 1:
        raise InvalidArgumentError("sampler: allowed= must be a 1-D sequence of ids, got shape %s" % (a.shape,))
    if a.size == 0:
        raise InvalidArgumentError("sampler: allowed= is empty, so no id could be sampled "
                                   "(allowed=None samples every id of the range)")
    if a.dtype.kind not in "iu":
        raise TypeError("sampler: allowed ids must be integers (got dtype %s)" % a.dtype)
    lo, hi = int(a.min()), int(a.max())
    if lo < INT32_MIN or hi > INT32_MAX:  # the library's own check would refuse them: its class
        raise InvalidArgumentError("sampler: allowed id %d is outside the vocabulary" % (lo if lo < INT32_MIN else hi))
    return np.array(a, dtype=np.int32, order="C")


def _arg_int(value, name: str) -> int:
    v = int(value)
    if not -(2**31) <= v < 2**31:
        raise InvalidArgumentError("%s=%d does not fit a C int" % (name, v))
    return v

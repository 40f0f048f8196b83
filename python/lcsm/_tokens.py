"""Token ids in and out: array conversion and the tokenizer (private)."""

from __future__ import annotations

import ctypes

import numpy as np

from . import _capi
from .errors import InvalidArgumentError, LengthError, TokenRangeError, check

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# [CLS]: the prompt the CLI uses when none is given (lcsm.h names no special ids).
CLS = 0


def tokenize(text: str) -> np.ndarray:
    """Token ids of `text` through HyenaDNA's character tokenizer (lcsm_tokenize).

    A C G T N (either case) map to 7 8 9 10 11; any other character raises
    :class:`lcsm.TokenRangeError`. Returns a 1-D int32 array.

    This is HyenaDNA's tokenizer whatever the model: a model's own tokenizer
    (Evo's UTF-8 bytes, say) is :meth:`lcsm.Model.tokenize`, which every
    :class:`lcsm.Model` method taking text uses.
    """
    if not isinstance(text, str):
        raise TypeError("tokenize: text must be a str, not %s" % type(text).__name__)
    if "\0" in text:
        raise TokenRangeError("tokenize: the text contains a NUL character at offset %d" % text.index("\0"))
    raw = text.encode("utf-8")
    n = ctypes.c_int(0)
    check(_capi.lcsm_tokenize(raw, None, 0, ctypes.byref(n)))
    ids = np.zeros(max(n.value, 1), dtype=np.int32)
    check(_capi.lcsm_tokenize(raw, as_i32(ids), n.value, ctypes.byref(n)))
    return ids[: n.value]


def token_text(token: int) -> str:
    """Text of one HyenaDNA token id ("A", "[CLS]", ...; "?" outside the vocabulary)
    (lcsm_token_text; a model's own is :meth:`lcsm.Model.token_text`)."""
    t = int(token)
    if not INT32_MIN <= t <= INT32_MAX:
        return "?"
    return _capi.text(_capi.lcsm_token_text(t))


def detokenize(ids) -> str:
    """The text of a sequence of HyenaDNA ids: the concatenation of their token
    texts (a model's own detokenizer is :meth:`lcsm.Model.detokenize`)."""
    return "".join(token_text(t) for t in np.asarray(ids).ravel().tolist())


def as_i32(a: np.ndarray):
    return a.ctypes.data_as(_capi.P_i32)


def as_f32(a: np.ndarray):
    return a.ctypes.data_as(_capi.P_f32)


def is_text(tokens) -> bool:
    """Whether `tokens` is text: a str, or a non-empty list / tuple of str."""
    return isinstance(tokens, str) or (
        isinstance(tokens, (list, tuple)) and bool(tokens) and all(isinstance(t, str) for t in tokens))


def to_ids(tokens, what: str = "tokens", tokenizer=tokenize) -> np.ndarray:
    """Token ids as a C-contiguous int32 array of the input's shape.

    Accepts a str (through `tokenizer`, a function of a str giving its ids:
    HyenaDNA's by default, a model's own from :class:`lcsm.Model`), an int, a
    sequence of str of one length in tokens (one row each), or any array-like
    of integers. Ids that do not fit an int32 raise TokenRangeError;
    non-integer input raises TypeError.
    """
    if isinstance(tokens, str):
        return tokenizer(tokens)
    if is_text(tokens):
        rows = [tokenizer(t) for t in tokens]
        if len({len(r) for r in rows}) != 1:
            raise InvalidArgumentError("%s: the texts of one batch must have one length in tokens (got %s)"
                                       % (what, ", ".join(str(len(r)) for r in rows)))
        return np.ascontiguousarray(np.stack(rows))
    a = np.asarray(tokens)
    if a.dtype.kind not in "iu":
        if a.size == 0:
            a = a.astype(np.int32)
        else:
            raise TypeError("%s: token ids must be integers (got dtype %s)" % (what, a.dtype))
    if a.size and a.dtype != np.int32:
        lo, hi = int(a.min()), int(a.max())
        if lo < INT32_MIN or hi > INT32_MAX:
            bad = lo if lo < INT32_MIN else hi
            raise TokenRangeError("%s: token id %d does not fit an int32" % (what, bad))
    return np.ascontiguousarray(a, dtype=np.int32)


def c_int_or_raise(n: int, what: str) -> int:
    """A length or count that must fit a C int."""
    if n > INT32_MAX:
        raise LengthError("%s %d does not fit a C int" % (what, n))
    return n

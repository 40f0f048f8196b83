"""lcsm: exact, near-linear-time inference of long convolution sequence models.

Python binding of the lcsm C library (model families: HyenaDNA, safari's
long convolutions, StripedHyena and Evo 2, see :func:`archs`) on CPUs and
OpenCL devices, in pure Python over ctypes. Every call into the library goes through
:class:`ctypes.CDLL`, which releases the GIL for the duration of the call, so
other Python threads run while a model computes (and several sessions of one
model can compute on several threads at once).

Quick start::

    import lcsm
    model = lcsm.Model.default()                 # built-in HyenaDNA-tiny shape, random weights
    print(model.generate("ACGT", 32, seed=1))    # 32 new letters of A, C, G, T
    logits = model.forward("ACGTACGT")           # float32 [1, 8, n_vocab]
    ll = model.score("ACGTACGT")                 # float32 [1, 7] log-likelihoods
    lc = lcsm.Model.random("longconv", seed=1, d_model=32, l_max=256, weights="bf16")

Text goes in and out through each model's own tokenizer
(:attr:`Model.tokenizer`: HyenaDNA's characters, Evo's UTF-8 bytes, or none);
the module-level :func:`tokenize`, :func:`detokenize` and :func:`token_text`
are HyenaDNA's.

The handles (:class:`Backend`, :class:`Model`, :class:`Session`) close on
``close()``, at the end of a ``with`` block, or when garbage-collected; using a
closed one raises :class:`StateError`. Errors of the library raise subclasses
of :class:`Error`, one per ``lcsm_status``, with the library's message.

The shared library is the copy inside this package, or the file named by the
environment variable ``LCSM_LIBRARY``.
"""

from __future__ import annotations

from . import _capi
from ._tokens import detokenize, token_text, tokenize
from .backend import Backend, BackendStats, Device, backends, devices
from .errors import (
    BackendError,
    Error,
    FileError,
    FormatError,
    InvalidArgumentError,
    LengthError,
    MissingTensorError,
    NoBackendError,
    NumericError,
    OutOfMemoryError,
    ShapeError,
    StateError,
    TokenRangeError,
    UnsupportedError,
    strerror,
)
from .model import LayerInfo, Model, ModelConfig, ModelInfo, archs, default_config, supported_weight_dtypes
from .session import Sampler, Session, SessionStats

#: Path of the shared library this package loaded.
library_path = _capi.LIBRARY_PATH


def version() -> str:
    """The loaded C library's version, "MAJOR.MINOR.PATCH" (lcsm_version_string)."""
    return _capi.text(_capi.lcsm_version_string())


def _package_version() -> str:
    """The installed distribution's version when this file is that distribution's
    (pip install), else the library's (a source tree on PYTHONPATH)."""
    import os

    try:
        from importlib.metadata import distribution

        dist = distribution("lcsm")
        if os.path.samefile(str(dist.locate_file("lcsm")), os.path.dirname(os.path.abspath(__file__))):
            return dist.version
    except Exception:  # not installed, or another copy is: the library knows its version
        pass
    return version()


__version__ = _package_version()

__all__ = [
    "Backend",
    "BackendError",
    "BackendStats",
    "Device",
    "Error",
    "FileError",
    "FormatError",
    "InvalidArgumentError",
    "LayerInfo",
    "LengthError",
    "MissingTensorError",
    "Model",
    "ModelConfig",
    "ModelInfo",
    "NoBackendError",
    "NumericError",
    "OutOfMemoryError",
    "Sampler",
    "Session",
    "SessionStats",
    "ShapeError",
    "StateError",
    "TokenRangeError",
    "UnsupportedError",
    "archs",
    "backends",
    "default_config",
    "detokenize",
    "devices",
    "library_path",
    "strerror",
    "supported_weight_dtypes",
    "token_text",
    "tokenize",
    "version",
]

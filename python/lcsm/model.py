"""Models: loading, the parallel forward, scoring and generation."""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass, fields

import numpy as np

from . import _capi
from ._handle import Handle
from ._tokens import CLS, as_f32, as_i32, c_int_or_raise, is_text, to_ids, tokenize
from .backend import Backend, resolve
from .errors import InvalidArgumentError, TokenRangeError, UnsupportedError, check

# ------------------------------------------------------------------ options

# lcsm.h: lcsm_model_create_default is lcsm_model_config_default() with this seed.
DEFAULT_MODEL_SEED = 20250101


def supported_weight_dtypes() -> tuple:
    """The `weights=` values the loaded library accepts (lcsm_weight_dtype_name):
    ("f32", "f16", "bf16", "auto"); "auto" applies to :meth:`Model.load` only."""
    names = []
    while True:
        p = _capi.lcsm_weight_dtype_name(len(names))
        name = _capi.text(p)
        code = ctypes.c_int(-1)
        # past the last dtype the library answers "?" (checked first: asking
        # lcsm_weight_dtype_from_name would leave its failure as lcsm_last_error)
        if name in ("", "?") or _capi.lcsm_weight_dtype_from_name(p, ctypes.byref(code)) != 0 or \
                code.value != len(names):
            return tuple(names)
        names.append(name)


def archs() -> tuple:
    """The model families compiled into the loaded library (lcsm_arch_name), e.g.
    ("hyenadna", "longconv"): what :meth:`Model.random`'s `arch` takes and what
    :attr:`ModelInfo.arch` says."""
    out = []
    while True:
        p = _capi.lcsm_arch_name(len(out))
        if not p:
            return tuple(out)
        out.append(_capi.text(p))


def _weight_dtype(weights, new_model: bool, arg: str = "weights") -> int:
    """The lcsm_weight_dtype of a `weights=` name (lcsm_weight_dtype_from_name)."""
    if not isinstance(weights, str):
        raise InvalidArgumentError("%s=%r: expected a name, one of %s"
                                   % (arg, weights, ", ".join(supported_weight_dtypes())))
    code = ctypes.c_int(-1)
    if _capi.lcsm_weight_dtype_from_name(weights.encode(), ctypes.byref(code)) != 0:
        raise InvalidArgumentError("%s=%r: %s" % (arg, weights, _capi.text(_capi.lcsm_last_error())))
    if new_model and code.value == _capi.WEIGHTS_AUTO:
        # The library would store a new model's matrices as f32 (there is no
        # checkpoint whose types "auto" could keep): refused here, not guessed.
        raise InvalidArgumentError(
            "weights='auto' keeps the types a checkpoint stores, so it applies to Model.load() only; "
            "a new model takes weights='f32', 'f16' or 'bf16'")
    return code.value


def _model_options(weights, filter_shift, defer_spectra, new_model: bool = False,
                   modal_tiled: bool = False, lag: int = 0) -> "_capi.ModelOptions":
    code = _weight_dtype(weights, new_model)
    opt = _capi.ModelOptions()
    _capi.lcsm_model_options_default(ctypes.byref(opt))
    opt.weight_dtype = code
    if filter_shift is not None:
        opt.filter_shift = float(filter_shift)
    opt.defer_spectra = 1 if defer_spectra else 0
    opt.modal_tiled = 1 if modal_tiled else 0
    opt.lag = _cint(lag, "lag")
    return opt


def _cint(value, name: str) -> int:
    v = int(value)
    if not -(2**31) <= v < 2**31:
        raise InvalidArgumentError("%s=%d does not fit a C int" % (name, v))
    return v


# --------------------------------------------------------------------- info


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a HyenaDNA / safari Hyena LM (lcsm_model_config).

    For another family (ModelInfo.arch) the library fills the fields that
    family shares with this one (d_model, n_layer, d_inner, vocab_size,
    pad_vocab_size_multiple, l_max, layer_norm_epsilon) and leaves the others 0.
    """

    d_model: int
    n_layer: int
    d_inner: int
    vocab_size: int
    pad_vocab_size_multiple: int
    l_max: int
    emb_dim: int
    filter_order: int
    num_inner_mlps: int
    short_filter_order: int
    hyena_order: int
    activation_freq: float
    layer_norm_epsilon: float


@dataclass(frozen=True)
class ModelInfo:
    """What lcsm_model_get_info says about a model.

    Attributes:
        arch: the model family ("hyenadna", "longconv"; see :func:`lcsm.archs`).
        config: the model's shape (fields another family lacks are 0).
        n_vocab: logits per position, the padded vocabulary (>= config.vocab_size).
        n_params: weights, without the materialised filters.
        weight_bytes: device bytes of weights, filters and the tile spectra made so far.
        n_tiled_convs: long convolutions run by the tiling schedule (all layers).
        dense_bytes: device bytes of the weights alone (no filters, no spectra),
            in the types they are stored in.
        dense_bytes_f32: the same with f32 matrices, and
        dense_bytes_f16: with f16 or bf16 matrices.
        lag: lagged flash's lag (1: the plain schedule).
        state_bytes_per_token: session state per position of one sequence (the
            history and accumulator of every tiled convolution, attention's K and V).
    """

    arch: str
    config: ModelConfig
    n_vocab: int
    n_params: int
    weight_bytes: int
    n_tiled_convs: int
    dense_bytes: int
    dense_bytes_f32: int
    dense_bytes_f16: int
    lag: int
    state_bytes_per_token: int

    def __getattr__(self, name):  # info.d_model as a shortcut for info.config.d_model
        if name in ModelConfig.__dataclass_fields__:
            return getattr(self.config, name)
        raise AttributeError(name)


@dataclass(frozen=True)
class LayerInfo:
    """What one layer is (lcsm_model_get_layer); kinds as the library's short names.

    Attributes:
        norm: "layernorm", "rmsnorm" or "rmsnorm-sh" (StripedHyena's).
        mixer: "hyena".
        filter: the long filter of each stage of the mixer, comma separated
            ("implicit" for HyenaDNA's filter MLP, "explicit" for stored taps).
        mlp: "none", "plain" or "gated".
        act: the MLP's activation: "gelu-tanh", "gelu", "silu" or "none".
        n_stage: long convolutions in the mixer's chain.
        streams: D-wide streams of the input projection.
        short_taps: taps of the short causal conv (0: none).
        d_inner: MLP width.
        weight_bytes: device bytes of the layer's weights.
    """

    norm: str
    mixer: str
    filter: str
    mlp: str
    act: str
    n_stage: int
    streams: int
    short_taps: int
    d_inner: int
    weight_bytes: int


_CONFIG_NAMES = tuple(f.name for f in fields(ModelConfig))
_LAYER_NAMES = tuple(f.name for f in fields(LayerInfo))
_LAYER_TEXT = ("norm", "mixer", "filter", "mlp", "act")


def default_config() -> dict:
    """lcsm_model_config_default() as a dict (the HyenaDNA-tiny shape)."""
    c = _capi.ModelConfig()
    _capi.lcsm_model_config_default(ctypes.byref(c))
    return _capi.fields_of(c, _CONFIG_NAMES)


# The config.json keys of the families Model.random builds from JSON
# (lcsm_model_create_random_config), as lcsm reads them (src/arch_<family>.c):
# (top-level keys, keys of the nested "layer" object, aliases). Used only to
# refuse a misspelt key, which the library would ignore; a family the library
# has and this table does not takes its keys unchecked.
_FAMILY_KEYS = {
    # safari's long-convolution LM (configs/experiment/pile/h3-conv.yaml)
    "longconv": (
        ("d_model", "n_layer", "d_inner", "vocab_size", "pad_vocab_size_multiple", "max_seq_len",
         "layer_norm_epsilon", "tie_word_embeddings", "max_position_embeddings", "attn_layer_idx", "layer"),
        ("_name_", "l_max", "lam", "use_ma_smoothing", "ma_window_len", "head_dim", "channels", "smooth_freq",
         "causal"),
        {"l_max": "max_seq_len"},
    ),
}


def _family_json(arch: str, shape: dict) -> str:
    """The config.json text of a random `arch` model from Model.random's keywords."""
    cfg = dict(shape)
    if "model_type" in cfg:
        raise TypeError("Model.random(): the family is the arch= argument, not a model_type key")
    keys = _FAMILY_KEYS.get(arch)
    if keys is None and "l_max" in cfg and "max_seq_len" not in cfg:
        cfg["max_seq_len"] = cfg.pop("l_max")  # every family takes the shared shape keys (lcsm.h)
    if keys is not None:
        top, layer_keys, aliases = keys
        for alias, key in aliases.items():
            if alias in cfg:
                if key in cfg:
                    raise TypeError("Model.random(): %s and its alias %s both given" % (key, alias))
                cfg[key] = cfg.pop(alias)
        unknown = sorted(set(cfg) - set(top))
        if unknown:
            raise TypeError("Model.random(arch=%r) got unknown keys %s; the %s config.json keys are: %s"
                            % (arch, ", ".join(unknown), arch, ", ".join(top + tuple(aliases))))
        layer = cfg.get("layer")
        if layer is not None:
            if not isinstance(layer, dict):
                raise TypeError("Model.random(arch=%r): layer= must be a dict of %s" % (arch, ", ".join(layer_keys)))
            unknown = sorted(set(layer) - set(layer_keys))
            if unknown:
                raise TypeError("Model.random(arch=%r) got unknown layer keys %s; they are: %s"
                                % (arch, ", ".join(unknown), ", ".join(layer_keys)))

    def plain(v):  # numpy scalars and the like as JSON numbers
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, (bool, str)) or v is None:
            return v
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return float(v)
        raise TypeError("Model.random(): %r is not a config.json value" % (v,))

    return json.dumps(dict(model_type=arch, **plain(cfg)), allow_nan=False)


# -------------------------------------------------------------------- model


class Model(Handle):
    """A model on a backend: weights, materialised filters, read-only afterwards.

    Make one with :meth:`load`, :meth:`default` or :meth:`random`. A model may be
    shared by several sessions on several threads (each session on one thread at
    a time). It keeps its backend alive; a model opened with a backend *name*
    owns that backend and closes it with itself. ``close()`` (or leaving a
    ``with`` block, or garbage collection) closes the model's sessions first.

    Text goes in and out through the model's own tokenizer (:attr:`tokenizer`:
    HyenaDNA's characters, Evo's UTF-8 bytes, or none, when only ids work).

    All compute calls go through ctypes, which releases the GIL while the C
    library works, so other Python threads run meanwhile.
    """

    _kind = "model"

    def __init__(self, *_a, **_k):
        raise TypeError("use lcsm.Model.load(), Model.default() or Model.random()")

    @classmethod
    def _open(cls, backend, device, threads, make):
        be, owned = resolve(backend, device, threads, cls.__name__)
        self = object.__new__(cls)
        Handle.__init__(self)
        self._backend = be
        self._owns_backend = owned
        try:
            out = _capi.handle()
            with be.use() as bp:
                check(make(bp, ctypes.byref(out)))
                self._set(out.value)
                be._adopt(self)
        except BaseException:
            if owned:
                be.close()
            raise
        info = self._read_info()
        self._arch = info.arch
        self._config = info.config
        self._n_vocab = info.n_vocab
        with self.use() as p:
            self._tokenizer = _capi.text(_capi.lcsm_model_tokenizer(p))
            self._dna_ids = None
            if self._tokenizer != "none":  # "none" has no A C G T (and asking would leave an error behind)
                ids = (ctypes.c_int32 * 4)()
                if _capi.lcsm_model_dna_ids(p, ids) == 0:
                    self._dna_ids = tuple(ids)
        return self

    @classmethod
    def load(cls, path, backend="cpu", device=None, weights: str = "f32", threads: int = 0, *,
             filter_shift=None, defer_spectra: bool = False, modal_tiled: bool = False,
             lag: int = 0) -> "Model":
        """Loads `path`/config.json + `path`/model.safetensors (lcsm_model_load).

        Args:
            path: the model directory: a config.json whose model_type names the
                family (:func:`lcsm.archs`; HuggingFace HyenaDNA's, which has none,
                and safari's long-convolution layout are recognised) and a
                model.safetensors of F32, F16 or BF16 tensors.
            backend: a backend name ("cpu", "opencl"; None = $LCSM_BACKEND, else
                "cpu") or an open :class:`lcsm.Backend` to share.
            device: device of a GPU backend (with a backend name only).
            weights: storage of the weight matrices and embeddings on the device:
                "f32" (default), "f16" or "bf16" (rounded to nearest even at load;
                the rest of the model and all arithmetic stay f32), or "auto":
                each matrix as the checkpoint stores it (see
                :func:`lcsm.supported_weight_dtypes`).
            threads: CPU worker threads; 0 = one per processor (with a backend name only).
            filter_shift: added to the filters' exponential modulation; None = the
                library's default (0.05).
            defer_spectra: make the flash tile spectra when the first session needs
                them instead of at load.
            modal_tiled: also materialise the filters of modal layers (StripedHyena,
                Evo 2's hcl), so flash/lazy/eager sessions tile them; by default
                they run their recurrence in every session.
            lag: lagged flash (flash and modal sessions): the filter taps a step adds
                directly, so that large tiles spread over that many steps; 1 = the
                plain schedule, 0 = the library's choice (l_max / 256, 1 below 4096).

        Raises FileError, FormatError, MissingTensorError, ShapeError, ... with the
        library's message naming the file, tensor or field.
        """
        opt = _model_options(weights, filter_shift, defer_spectra, modal_tiled=modal_tiled, lag=lag)
        raw = os.fsencode(path)
        return cls._open(backend, device, threads,
                         lambda bp, out: _capi.lcsm_model_load(bp, raw, ctypes.byref(opt), out))

    @classmethod
    def default(cls, backend="cpu", device=None, threads: int = 0, weights: str = "f32") -> "Model":
        """The built-in default model (lcsm_model_create_default): HyenaDNA-tiny's
        shape (d_model 128, 2 layers, l_max 16384) with deterministic random weights.
        `weights` "f16" or "bf16" stores the same model's matrices rounded to that
        type (lcsm_model_create_random of the default shape and seed)."""
        if _weight_dtype(weights, new_model=True) == _capi.WEIGHTS_F32:
            return cls._open(backend, device, threads, _capi.lcsm_model_create_default)
        return cls.random(seed=DEFAULT_MODEL_SEED, backend=backend, device=device, threads=threads,
                          weights=weights)

    @classmethod
    def random(cls, arch: str = "hyenadna", seed: int = 0, backend="cpu", device=None, threads: int = 0,
               weights: str = "f32", *, filter_shift=None, defer_spectra: bool = False, modal_tiled: bool = False,
               lag: int = 0,
               **shape) -> "Model":
        """A model of family `arch` with deterministic random weights from `seed`.

        `arch` is one of :func:`lcsm.archs` ("hyenadna", "longconv"). `shape`
        gives the model's shape, as that family describes it:

        * "hyenadna" (lcsm_model_create_random, so the weights equal the C
          library's for the same seed): fields of lcsm_model_config (d_model,
          n_layer, d_inner, vocab_size, pad_vocab_size_multiple, l_max, emb_dim,
          filter_order, num_inner_mlps, short_filter_order, hyena_order,
          activation_freq, layer_norm_epsilon); the others keep
          lcsm_model_config_default's values, except d_inner, which follows
          d_model (4 * d_model) unless given.
        * any other family (lcsm_model_create_random_config): the keys of its
          config.json, given as keywords and sent as JSON with model_type =
          `arch`; the keys left out take the family's defaults. "longconv"
          (safari's long convolutions): d_model (64), n_layer (2), d_inner
          (4 * d_model), vocab_size (12), pad_vocab_size_multiple (8),
          max_seq_len (1024; l_max is accepted for it), layer_norm_epsilon, and
          layer, a dict of lam (0.003, the soft threshold of the taps),
          use_ma_smoothing (False) and ma_window_len (odd, 7), e.g.
          ``Model.random("longconv", d_model=32, l_max=256, layer=dict(lam=0.01))``.

        An unknown key raises TypeError, an unknown `arch` UnsupportedError.
        `weights`: "f32", "f16" or "bf16" ("auto" is for :meth:`load`: a new
        model has no checkpoint types to keep, InvalidArgumentError).
        `filter_shift`, `defer_spectra`, `modal_tiled` and `lag` as for :meth:`load`.
        """
        if not isinstance(arch, str) or arch not in archs():
            raise UnsupportedError("arch=%r is not a model family of this lcsm library (%s)"
                                   % (arch, ", ".join(archs())))
        seed = int(seed)
        if not 0 <= seed < 2**64:
            raise InvalidArgumentError("seed=%d must be in [0, 2**64)" % seed)
        if arch != "hyenadna":
            text = _family_json(arch, shape).encode()
            opt = _model_options(weights, filter_shift, defer_spectra, new_model=True, modal_tiled=modal_tiled,
                                 lag=lag)
            return cls._open(
                backend, device, threads,
                lambda bp, out: _capi.lcsm_model_create_random_config(bp, text, seed, ctypes.byref(opt), out),
            )
        unknown = sorted(set(shape) - set(_CONFIG_NAMES))
        if unknown:
            raise TypeError("Model.random() got unknown shape keys %s; the fields of lcsm_model_config are: %s"
                            % (", ".join(unknown), ", ".join(_CONFIG_NAMES)))
        cfg = _capi.ModelConfig()
        _capi.lcsm_model_config_default(ctypes.byref(cfg))
        if "d_model" in shape and "d_inner" not in shape:
            shape["d_inner"] = 4 * int(shape["d_model"])
        for k, v in shape.items():
            if k in _capi.MODEL_CONFIG_FLOAT_FIELDS:
                setattr(cfg, k, float(v))
            else:
                setattr(cfg, k, _cint(v, k))
        opt = _model_options(weights, filter_shift, defer_spectra, new_model=True, modal_tiled=modal_tiled,
                                 lag=lag)
        return cls._open(
            backend, device, threads,
            lambda bp, out: _capi.lcsm_model_create_random(bp, ctypes.byref(cfg), seed, ctypes.byref(opt), out),
        )

    def _destroy(self, ptr) -> None:
        _capi.lcsm_model_destroy(ptr)
        if self._owns_backend:
            self._backend.close()

    def _message(self) -> str:
        p = self._ptr
        return _capi.text(_capi.lcsm_model_last_error(p)) if p else ""

    # ---------------------------------------------------------------- info

    def _read_info(self) -> ModelInfo:
        i = _capi.ModelInfo()
        with self.use() as p:
            check(_capi.lcsm_model_get_info(p, ctypes.byref(i)), self._message)
        cfg = ModelConfig(**_capi.fields_of(i.config, _CONFIG_NAMES))
        return ModelInfo(arch=i.arch.decode("utf-8", "replace"), config=cfg, n_vocab=i.n_vocab,
                         n_params=i.n_params, weight_bytes=i.weight_bytes, n_tiled_convs=i.n_tiled_convs,
                         dense_bytes=i.dense_bytes, dense_bytes_f32=i.dense_bytes_f32,
                         dense_bytes_f16=i.dense_bytes_f16, lag=i.lag, state_bytes_per_token=i.state_bytes_per_token)

    @property
    def info(self) -> ModelInfo:
        """The model's family, shape and sizes (lcsm_model_get_info), read now."""
        return self._read_info()

    @property
    def arch(self) -> str:
        """The model family ("hyenadna", "longconv")."""
        return self._arch

    @property
    def layers(self) -> list:
        """What each layer is (lcsm_model_get_layer): a list of :class:`LayerInfo`, one per layer."""
        out = []
        li = _capi.LayerInfo()
        with self.use() as p:
            for layer in range(self._config.n_layer):
                check(_capi.lcsm_model_get_layer(p, layer, ctypes.byref(li)), self._message)
                v = _capi.fields_of(li, _LAYER_NAMES)
                for k in _LAYER_TEXT:
                    v[k] = v[k].decode("utf-8", "replace")
                out.append(LayerInfo(**v))
        return out

    @property
    def config(self) -> ModelConfig:
        return self._config

    @property
    def vocab_size(self) -> int:
        """The real vocabulary (12 for HyenaDNA); ids in [vocab_size, n_vocab) are padding."""
        return self._config.vocab_size

    @property
    def n_vocab(self) -> int:
        """Logits per position: the padded vocabulary."""
        return self._n_vocab

    @property
    def l_max(self) -> int:
        """The longest sequence the model takes."""
        return self._config.l_max

    @property
    def backend(self) -> Backend:
        """The backend the model runs on."""
        return self._backend

    def save(self, path) -> None:
        """Writes `path`/config.json + `path`/model.safetensors, creating `path` if needed
        (lcsm_model_save): weight matrices in their stored type (F16 or BF16 for
        such a model, so nothing is lost), the rest F32; :meth:`load` reads it
        back to the same weights."""
        raw = os.fsencode(path)
        with self.use() as p:
            check(_capi.lcsm_model_save(p, raw), self._message)

    # ----------------------------------------------------------- tokenizer

    @property
    def tokenizer(self) -> str:
        """The model's own tokenizer (lcsm_model_tokenizer), what every method
        taking or giving text here uses:

        * "dna": HyenaDNA's characters (A C G T N are 7 8 9 10 11, as the
          module-level :func:`lcsm.tokenize`); HyenaDNA, and long-convolution
          models of its 12-id vocabulary.
        * "byte": Evo 1 / Evo 2 (StripedHyena 2) models: ids are the UTF-8
          bytes of the text (vocabulary 512).
        * "none": a vocabulary lcsm cannot tokenize (StripedHyena-7B's BPE, say):
          text input raises :class:`lcsm.UnsupportedError`; pass token ids.
        """
        return self._tokenizer

    @property
    def dna_ids(self):
        """The ids of A, C, G and T in the model's tokenizer (lcsm_model_dna_ids), a
        tuple of 4 ints, or None for a tokenizer without them: what
        :meth:`generate` samples from by default."""
        return self._dna_ids

    def _no_text(self, what: str):
        return UnsupportedError(
            "%s: this %s model's tokenizer is 'none' (its vocabulary of %d ids, e.g. a BPE, is not one lcsm can "
            "tokenize), so it takes no text: pass token ids instead" % (what, self._arch, self._config.vocab_size))

    def _tokenize(self, text: str, what: str = "tokenize") -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError("%s: text must be a str, not %s" % (what, type(text).__name__))
        if self._tokenizer == "none":
            raise self._no_text(what)
        if "\0" in text:
            if self._tokenizer != "byte":
                raise TokenRangeError("%s: the text contains a NUL character at offset %d" % (what, text.index("\0")))
            # Evo's bytes: NUL is id 0, which a C string cannot carry; the pieces between go to the library.
            parts = [self._tokenize(t, what) for t in text.split("\0")]
            out = [parts[0]]
            for part in parts[1:]:
                out += [np.zeros(1, dtype=np.int32), part]
            return np.concatenate(out)
        raw = text.encode("utf-8")
        n = ctypes.c_int(0)
        with self.use() as p:
            check(_capi.lcsm_model_tokenize(p, raw, None, 0, ctypes.byref(n)), self._message)
            ids = np.zeros(max(n.value, 1), dtype=np.int32)
            check(_capi.lcsm_model_tokenize(p, raw, as_i32(ids), n.value, ctypes.byref(n)), self._message)
        return ids[: n.value]

    def _ids(self, tokens, what: str) -> np.ndarray:
        """Ids of `tokens` (text through the model's tokenizer) in the input's shape."""
        return to_ids(tokens, what, lambda t: self._tokenize(t, what))

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids of `text` with the model's tokenizer (lcsm_model_tokenize; see
        :attr:`tokenizer`): a 1-D int32 array.

        "dna": A C G T N (either case) are 7 8 9 10 11, any other character
        raises TokenRangeError. "byte": the text's UTF-8 bytes (a multi-byte
        character gives several ids; a NUL character id 0). "none" raises
        UnsupportedError.
        """
        return self._tokenize(text, "tokenize")

    def detokenize(self, ids) -> str:
        """Text of token ids with the model's tokenizer (lcsm_model_detokenize); the
        ids are flattened.

        "dna": the ids' token texts joined ("A", "[CLS]", ...). "byte": Evo's
        rule, each id as one character: an id below 32 (control characters,
        Evo's end of text 0) as a space, any other as the code point it names
        (ids from 256 on included). So ASCII text from 32 on comes back as it
        went in, while a multi-byte character comes back as one character per
        byte (its bytes read as Latin-1, as Evo prints them);
        ``bytes(ids).decode("utf-8")`` is the exact inverse of
        :meth:`tokenize` there. An id outside [0, n_vocab) raises
        TokenRangeError; "none" raises UnsupportedError.
        """
        a = to_ids(ids, "detokenize").ravel()
        if self._tokenizer == "none":
            raise self._no_text("detokenize")
        n = c_int_or_raise(a.shape[0], "length")
        length = ctypes.c_size_t(0)
        with self.use() as p:
            buf = ctypes.create_string_buffer(1)  # the length first, then the text
            check(_capi.lcsm_model_detokenize(p, as_i32(a), n, buf, 1, ctypes.byref(length)), self._message)
            buf = ctypes.create_string_buffer(length.value + 1)
            check(_capi.lcsm_model_detokenize(p, as_i32(a), n, buf, length.value + 1, ctypes.byref(length)),
                  self._message)
        return buf.raw[: length.value].decode("utf-8", "replace")

    def token_text(self, token: int) -> str:
        """Text of one token id with the model's tokenizer (:meth:`detokenize` of it)."""
        return self.detokenize([token])

    # ------------------------------------------------------------- forward

    def _batch_tokens(self, tokens, what: str) -> np.ndarray:
        ids = self._ids(tokens, what)
        if ids.ndim == 1:
            ids = ids.reshape(1, -1)
        if ids.ndim != 2:
            raise InvalidArgumentError("%s: expected a 1-D or 2-D array of ids, got %d dimensions" % (what, ids.ndim))
        c_int_or_raise(ids.shape[0], "batch")
        c_int_or_raise(ids.shape[1], "length")
        return np.ascontiguousarray(ids)

    def forward(self, tokens) -> np.ndarray:
        """All logits of whole sequences through the parallel (FFT) forward (lcsm_model_forward).

        Args:
            tokens: a str (through the model's tokenizer, :attr:`tokenizer`), a
                list of str of one length in tokens (one sequence each), a 1-D
                array-like of ids (one sequence) or a 2-D one ([batch, len]).

        Returns:
            float32 array [batch, len, n_vocab]: the logits after each position
            (n_vocab is the padded vocabulary; the first `vocab_size` columns are
            the real tokens).
        """
        ids = self._batch_tokens(tokens, "forward")
        B, L = ids.shape
        out = np.empty((B, L, self._n_vocab), dtype=np.float32)
        with self.use() as p:
            check(_capi.lcsm_model_forward(p, as_i32(ids), B, L, as_f32(out)), self._message)
        return out

    def score(self, tokens) -> np.ndarray:
        """Per-token log-likelihoods: log p(tokens[t+1] | tokens[:t+1]) for every t.

        The log-softmax is taken in float64 over the real vocabulary only (the
        first `vocab_size` logits of each position; the padding ids are not
        tokens), from one parallel forward.

        Args:
            tokens: as for :meth:`forward`.

        Returns:
            float32 array [batch, len - 1]. A target id in the padding range
            [vocab_size, n_vocab) raises TokenRangeError.
        """
        ids = self._batch_tokens(tokens, "score")
        logits = self.forward(ids)
        V = self._config.vocab_size
        tgt = ids[:, 1:]
        if tgt.size and int(tgt.max()) >= V:
            raise TokenRangeError("score: target id %d is padding (vocab_size %d): it has no probability"
                                  % (int(tgt.max()), V))
        x = logits[:, :-1, :V].astype(np.float64)
        m = x.max(axis=-1, keepdims=True) if x.size else x
        lse = (np.log(np.exp(x - m).sum(axis=-1, keepdims=True)) + m) if x.size else x
        picked = np.take_along_axis(x, tgt[..., None].astype(np.intp), axis=-1) if x.size else x[..., :1]
        return (picked - lse)[..., 0].astype(np.float32)

    # ------------------------------------------------------------ sessions

    def session(self, batch: int = 1, max_len=None, algo: str = "flash", kv: str = "auto") -> "Session":
        """A decoding session for `batch` sequences of up to `max_len` tokens
        (None = the model's l_max); algo "flash" (default), "lazy", "eager", "modal" or "smooth";
        kv: the attention caches' storage, "auto" (each layer's weight type), "f32",
        "f16" or "bf16". See :class:`lcsm.Session`."""
        from .session import Session

        return Session(self, batch=batch, max_len=max_len, algo=algo, kv=kv)

    def _prompt(self, prompt, batch: int):
        """(ids [B, P], text, flat): the prompt rows, whether text goes in and out,
        and whether the result is one sequence (not a list / 2-D array)."""
        text = prompt is None or is_text(prompt)
        if text and self._tokenizer == "none":
            raise self._no_text("generate")  # text in, text out: neither exists for this vocabulary
        if prompt is None or (isinstance(prompt, str) and not prompt):
            ids = np.array([CLS], dtype=np.int32)  # the CLI's empty prompt: id 0 ([CLS], Evo's end of text)
        else:
            ids = self._ids(prompt, "prompt")
            if ids.size == 0:
                ids = np.array([CLS], dtype=np.int32)
        batch = _cint(batch, "batch")
        flat = ids.ndim == 1 and batch == 1
        if ids.ndim == 1:
            ids = np.tile(ids, (max(batch, 1), 1))
        elif ids.ndim == 2:
            if batch not in (1, ids.shape[0]):
                raise InvalidArgumentError("prompt has %d rows but batch=%d" % (ids.shape[0], batch))
        else:
            raise InvalidArgumentError("prompt: expected a str, 1-D or 2-D ids, got %d dimensions" % ids.ndim)
        return np.ascontiguousarray(ids), text, flat

    def _gen_session(self, ids, n, algo, max_len, sampler):
        from .session import Session

        P = ids.shape[1]
        if max_len is None:
            max_len = P + n if P + n <= self.l_max else self.l_max
        s = Session(self, batch=ids.shape[0], max_len=max_len, algo=algo)
        try:
            s.set_sampler(**sampler)
        except BaseException:
            s.close()
            raise
        return s

    def generate(self, prompt, n: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 0, batch: int = 1, algo: str = "flash", all_tokens: bool = False,
                 stream: bool = False, max_len=None):
        """Generates `n` new tokens per sequence after `prompt` (lcsm_generate).

        Args:
            prompt: a str (through the model's tokenizer, :attr:`tokenizer`; ""
                or None: the single id 0, [CLS] or Evo's end of text, as the CLI
                does), a list of str of one length in tokens (one sequence each),
                or ids (1-D: one prompt; 2-D: [batch, len]). A model whose
                tokenizer is "none" takes ids only (text raises UnsupportedError).
            n: new tokens per sequence.
            temperature: 0 = greedy; top_k (0 = all), top_p (1 = all): the sampler.
            seed: the sampler's seed (each sequence gets its own stream).
            batch: sequences generated together; a 1-D prompt is repeated.
            algo: "flash", "lazy", "eager", "modal" or "smooth".
            all_tokens: sample from the whole vocabulary. By default only A, C,
                G, T are sampled, as the CLI does: the id range 7..10 of a "dna"
                tokenizer (token_lo/token_hi), Evo's bytes of the letters
                (:attr:`dna_ids`, as the sampler's allowed set) for "byte", and
                every id for a tokenizer without the letters ("none").
            stream: return an iterator over the tokens as they come (see :meth:`stream`).
            max_len: the session's length; default prompt + n (at most l_max), as the CLI.

        Returns:
            For a text prompt the generated text (without the prompt; through
            :meth:`detokenize`): a str, or a list of str for batch > 1 or a list
            of prompts. For an id prompt an
            int32 array: [n] for a 1-D prompt and batch 1, else [batch, n].
        """
        if stream:
            return self.stream(prompt, n, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                               batch=batch, algo=algo, all_tokens=all_tokens, max_len=max_len)
        ids, text, flat = self._prompt(prompt, batch)
        n = c_int_or_raise(int(n), "n")
        sampler = self._sampler_args(temperature, top_k, top_p, seed, all_tokens)
        with self._gen_session(ids, n, algo, max_len, sampler) as s:
            out = s.generate(ids, n)
        if text:
            rows = [self.detokenize(r) for r in out]
            return rows[0] if flat else rows
        return out[0] if flat else out

    def stream(self, prompt, n: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               seed: int = 0, batch: int = 1, algo: str = "flash", all_tokens: bool = False, max_len=None):
        """Like :meth:`generate`, but yields each new token as soon as it is sampled.

        The first token comes from the prompt's prefill (lcsm_generate for one
        token), each next one from one lcsm_session_step_sample fed the previous
        one: lcsm.h documents lcsm_generate(n) as exactly that sequence, so the
        tokens are those :meth:`generate` returns with the same arguments. Yields a str
        (text prompt: the token's :meth:`token_text`; the pieces join to
        generate's text) or an int (id prompt) per step for one sequence, a list of
        str / an int32 array [batch] for several. The session is closed when the
        iterator is exhausted, closed or garbage-collected.
        """
        ids, text, flat = self._prompt(prompt, batch)
        n = c_int_or_raise(int(n), "n")
        sampler = self._sampler_args(temperature, top_k, top_p, seed, all_tokens)
        s = self._gen_session(ids, n, algo, max_len, sampler)
        return _stream(self, s, ids, n, text, flat)

    def _sampler_args(self, temperature, top_k, top_p, seed, all_tokens) -> dict:
        """The sampler of generate / stream: by default A C G T only, as the CLI
        (tools/lcsm.c): HyenaDNA's id range, else the tokenizer's ids of the
        letters as an allowed set, else (no letters) every id."""
        args = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        if not all_tokens:
            if self._tokenizer == "dna":
                lo, hi = acgt_range()
                args.update(token_lo=lo, token_hi=hi)
            elif self._dna_ids is not None:
                args.update(allowed=self._dna_ids)
        return args

    def __repr__(self) -> str:
        if self.closed:
            return "<lcsm.Model closed>"
        c = self._config
        return "<lcsm.Model %s d_model=%d n_layer=%d l_max=%d n_vocab=%d on %s>" % (
            self._arch, c.d_model, c.n_layer, c.l_max, self._n_vocab, self._backend.name)


def _stream(model, s, ids, n, text, flat):
    # lcsm.h: lcsm_generate(n) is exactly lcsm_generate(1) followed by n - 1
    # lcsm_session_step_sample calls, each fed the previous token (the
    # generators' draw counts carry on), so this yields generate()'s tokens.
    with s:
        if n <= 0:
            s.generate(ids, 0)
            return
        cur = s.generate(ids, 1)[:, 0].copy()
        for i in range(n):
            if i:
                cur = s.step_sample(cur)
            if text:
                pieces = [model.token_text(t) for t in cur.tolist()]
                yield pieces[0] if flat else pieces
            else:
                yield int(cur[0]) if flat else cur.copy()


def acgt_range() -> tuple:
    """[lo, hi) of HyenaDNA's ids of A, C, G, T (what the CLI samples by default
    for a "dna" tokenizer): (7, 11)."""
    a, t = tokenize("AT").tolist()
    return a, t + 1

"""The C library, loaded through ctypes: where it is found, its structs and prototypes.

Private module. Everything here mirrors ``include/lcsm.h``; the rest of the
package never calls the library except through the names defined here.

The library is found in this order:

1. the environment variable ``LCSM_LIBRARY`` (a path to ``liblcsm.so``; the test
   suite uses it to run against a build tree);
2. the copy installed inside this package by ``pip install`` (``lcsm/liblcsm.so``).

Every foreign call goes through :class:`ctypes.CDLL`, which releases the GIL for
the duration of the call: other Python threads keep running while a forward, a
prefill or a generation is computing. Do not switch this to ``ctypes.PyDLL``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_longlong,
    c_size_t,
    c_ubyte,
    c_uint64,
    c_void_p,
)

_HERE = os.path.dirname(os.path.abspath(__file__))
_NAMES = {"linux": "liblcsm.so", "darwin": "liblcsm.dylib", "win32": "lcsm.dll"}


def _library_path() -> str:
    env = os.environ.get("LCSM_LIBRARY")
    if env:
        return env
    name = _NAMES.get(sys.platform, "liblcsm.so")
    return os.path.join(_HERE, name)


def _load() -> ctypes.CDLL:
    path = _library_path()
    if not os.path.exists(path):
        how = ("LCSM_LIBRARY=%s" % path) if os.environ.get("LCSM_LIBRARY") else "the package copy %s" % path
        raise ImportError(
            "lcsm: the C library was not found (%s). Install the package with `pip install .` "
            "from the lcsm repository, or point LCSM_LIBRARY at a built liblcsm.so." % how
        )
    try:
        return ctypes.CDLL(path)  # CDLL, not PyDLL: the GIL is released during every call
    except OSError as e:
        raise ImportError("lcsm: could not load %s: %s" % (path, e)) from e


LIBRARY_PATH = os.path.abspath(_library_path())
lib = _load()

# ---------------------------------------------------------------- structs
#
# Structs the library fills one at a time get RESERVED spare bytes at the end:
# should the C side grow a struct before this file learns of it, the library
# writes into the spare bytes instead of past the buffer. That keeps memory
# intact only: a field inserted in the middle (as lcsm_model_info.arch was)
# moves the ones after it, which then read wrong until mirrored here. 64 bytes
# proved too few once (lcsm_model_info grew by 72), hence 256. Structs exchanged
# as arrays (lcsm_device_info, lcsm_profile_entry) or embedded in another
# (lcsm_model_config inside lcsm_model_info) must match sizeof exactly;
# python/tests/test_abi.py checks every size and offset against the header,
# compiled.

RESERVED = 256


def _padded(fields):
    return list(fields) + [("_lcsm_reserved", c_ubyte * RESERVED)]


_BACKEND_OPTIONS_FIELDS = [
    ("n_threads", c_int),
    ("fft_threshold", c_int),
    ("cache_dir", c_char_p),
    ("device", c_char_p),
    ("profile", c_int),
]


class BackendOptions(Structure):
    _fields_ = _padded(_BACKEND_OPTIONS_FIELDS)


_BACKEND_STATS_FIELDS = [
    ("kernel_build_s", c_double),
    ("kernels_from_cache", c_int),
    ("plan_s", c_double),
    ("device_bytes_live", c_size_t),
    ("device_bytes_peak", c_size_t),
]


class BackendStats(Structure):
    _fields_ = _padded(_BACKEND_STATS_FIELDS)


class ProfileEntry(Structure):
    _fields_ = [("name", c_char_p), ("calls", c_longlong), ("seconds", c_double)]


class DeviceInfo(Structure):
    _fields_ = [
        ("index", c_int),
        ("platform", c_int),
        ("device", c_int),
        ("platform_name", c_char * 128),
        ("name", c_char * 128),
        ("type", c_char * 16),
        ("version", c_char * 128),
        ("driver", c_char * 64),
        ("global_mem_bytes", c_uint64),
        ("compute_units", c_int),
        ("max_clock_mhz", c_int),
    ]


# The integer and float fields of lcsm_model_config, in the header's order.
MODEL_CONFIG_INT_FIELDS = (
    "d_model",
    "n_layer",
    "d_inner",
    "vocab_size",
    "pad_vocab_size_multiple",
    "l_max",
    "emb_dim",
    "filter_order",
    "num_inner_mlps",
    "short_filter_order",
    "hyena_order",
)
MODEL_CONFIG_FLOAT_FIELDS = ("activation_freq", "layer_norm_epsilon")
_MODEL_CONFIG_FIELDS = [(f, c_int) for f in MODEL_CONFIG_INT_FIELDS] + [
    (f, c_float) for f in MODEL_CONFIG_FLOAT_FIELDS
]


class ModelConfigExact(Structure):
    """lcsm_model_config exactly, as embedded in lcsm_model_info."""

    _fields_ = _MODEL_CONFIG_FIELDS


class ModelConfig(Structure):
    """lcsm_model_config with spare bytes, for lcsm_model_config_default."""

    _fields_ = _padded(_MODEL_CONFIG_FIELDS)


# lcsm_model_options; weight_dtype is an enum lcsm_weight_dtype (an int in C):
# WEIGHTS_* below, matched by name through lcsm_weight_dtype_from_name.
WEIGHTS_F32, WEIGHTS_F16, WEIGHTS_BF16, WEIGHTS_AUTO = 0, 1, 2, 3
_MODEL_OPTIONS_FIELDS = [
    ("filter_shift", c_float),
    ("defer_spectra", c_int),
    ("weight_dtype", c_int),
    ("modal_tiled", c_int),
    ("lag", c_int),
    ("progress", c_void_p),
    ("progress_user", c_void_p),
]


class ModelOptions(Structure):
    _fields_ = _padded(_MODEL_OPTIONS_FIELDS)


_MODEL_INFO_FIELDS = [
    ("config", ModelConfigExact),
    ("arch", c_char * 32),
    ("n_vocab", c_int),
    ("n_params", c_size_t),
    ("weight_bytes", c_size_t),
    ("n_tiled_convs", c_int),
    ("dense_bytes", c_size_t),
    ("dense_bytes_f32", c_size_t),
    ("dense_bytes_f16", c_size_t),
    ("lag", c_int),
    ("state_bytes_per_token", c_size_t),
]


class ModelInfo(Structure):
    _fields_ = _padded(_MODEL_INFO_FIELDS)


_LAYER_INFO_FIELDS = [
    ("norm", c_char * 16),
    ("mixer", c_char * 16),
    ("filter", c_char * 64),
    ("mlp", c_char * 16),
    ("act", c_char * 16),
    ("n_stage", c_int),
    ("streams", c_int),
    ("short_taps", c_int),
    ("d_inner", c_int),
    ("weight_bytes", c_size_t),
]


class LayerInfo(Structure):
    _fields_ = _padded(_LAYER_INFO_FIELDS)


_SESSION_OPTIONS_FIELDS = [("batch", c_int), ("max_len", c_int), ("algo", c_int), ("kv_dtype", c_int),
                           ("progress", c_void_p), ("progress_user", c_void_p)]


class SessionOptions(Structure):
    _fields_ = _padded(_SESSION_OPTIONS_FIELDS)


_SAMPLER_FIELDS = [
    ("temperature", c_float),
    ("top_k", c_int),
    ("top_p", c_float),
    ("seed", c_uint64),
    ("token_lo", c_int),
    ("token_hi", c_int),
    ("allowed", POINTER(c_int32)),
    ("n_allowed", c_int),
]


class SamplerParams(Structure):
    _fields_ = _padded(_SAMPLER_FIELDS)


_SESSION_STATS_FIELDS = [
    ("prefill_s", c_double),
    ("mixer_s", c_double),
    ("tiles_s", c_double),
    ("dense_s", c_double),
    ("steps", c_longlong),
    ("state_bytes", c_size_t),
]


class SessionStats(Structure):
    _fields_ = _padded(_SESSION_STATS_FIELDS)


# Name in lcsm.h -> (ctypes class, its real fields), for the ABI test.
STRUCTS = {
    "lcsm_backend_options": (BackendOptions, _BACKEND_OPTIONS_FIELDS),
    "lcsm_backend_stats": (BackendStats, _BACKEND_STATS_FIELDS),
    "lcsm_profile_entry": (ProfileEntry, ProfileEntry._fields_),
    "lcsm_device_info": (DeviceInfo, DeviceInfo._fields_),
    "lcsm_model_config": (ModelConfigExact, _MODEL_CONFIG_FIELDS),
    "lcsm_model_options": (ModelOptions, _MODEL_OPTIONS_FIELDS),
    "lcsm_model_info": (ModelInfo, _MODEL_INFO_FIELDS),
    "lcsm_layer_info": (LayerInfo, _LAYER_INFO_FIELDS),
    "lcsm_session_options": (SessionOptions, _SESSION_OPTIONS_FIELDS),
    "lcsm_sampler_params": (SamplerParams, _SAMPLER_FIELDS),
    "lcsm_session_stats": (SessionStats, _SESSION_STATS_FIELDS),
}
# Structs whose size must equal C's sizeof (arrays and embedded members).
EXACT_SIZE = ("lcsm_profile_entry", "lcsm_device_info", "lcsm_model_config")

# ------------------------------------------------------------- prototypes

status = c_int
handle = c_void_p
P_i32 = POINTER(c_int32)
P_f32 = POINTER(c_float)
P_int = POINTER(c_int)


def _proto(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


lcsm_version = _proto("lcsm_version", None, P_int, P_int, P_int)
lcsm_version_string = _proto("lcsm_version_string", c_char_p)
lcsm_strerror = _proto("lcsm_strerror", c_char_p, status)
lcsm_last_error = _proto("lcsm_last_error", c_char_p)

lcsm_backend_options_default = _proto("lcsm_backend_options_default", None, POINTER(BackendOptions))
lcsm_backend_create = _proto(
    "lcsm_backend_create", status, c_char_p, POINTER(BackendOptions), POINTER(handle)
)
lcsm_backend_destroy = _proto("lcsm_backend_destroy", None, handle)
lcsm_backend_name = _proto("lcsm_backend_name", c_char_p, handle)
lcsm_backend_description = _proto("lcsm_backend_description", c_char_p, handle)
lcsm_backend_fft_threshold = _proto("lcsm_backend_fft_threshold", c_int, handle)
lcsm_backend_last_error = _proto("lcsm_backend_last_error", c_char_p, handle)
lcsm_backend_get_stats = _proto("lcsm_backend_get_stats", status, handle, POINTER(BackendStats))
lcsm_backend_get_profile = _proto(
    "lcsm_backend_get_profile", status, handle, POINTER(ProfileEntry), c_int, P_int, c_int
)
lcsm_backend_available = _proto("lcsm_backend_available", c_char_p, c_int)
lcsm_list_devices = _proto("lcsm_list_devices", status, c_char_p, POINTER(DeviceInfo), c_int, P_int)

lcsm_model_config_default = _proto("lcsm_model_config_default", None, POINTER(ModelConfig))
lcsm_model_options_default = _proto("lcsm_model_options_default", None, POINTER(ModelOptions))
lcsm_model_load = _proto(
    "lcsm_model_load", status, handle, c_char_p, POINTER(ModelOptions), POINTER(handle)
)
lcsm_model_create_random = _proto(
    "lcsm_model_create_random",
    status,
    handle,
    POINTER(ModelConfig),
    c_uint64,
    POINTER(ModelOptions),
    POINTER(handle),
)
lcsm_model_create_random_config = _proto(
    "lcsm_model_create_random_config",
    status,
    handle,
    c_char_p,
    c_uint64,
    POINTER(ModelOptions),
    POINTER(handle),
)
lcsm_arch_name = _proto("lcsm_arch_name", c_char_p, c_int)
lcsm_weight_dtype_name = _proto("lcsm_weight_dtype_name", c_char_p, c_int)
lcsm_weight_dtype_from_name = _proto("lcsm_weight_dtype_from_name", status, c_char_p, P_int)
lcsm_model_create_default = _proto("lcsm_model_create_default", status, handle, POINTER(handle))
lcsm_model_save = _proto("lcsm_model_save", status, handle, c_char_p)
lcsm_model_destroy = _proto("lcsm_model_destroy", None, handle)
lcsm_model_get_info = _proto("lcsm_model_get_info", status, handle, POINTER(ModelInfo))
lcsm_model_get_layer = _proto("lcsm_model_get_layer", status, handle, c_int, POINTER(LayerInfo))
lcsm_model_last_error = _proto("lcsm_model_last_error", c_char_p, handle)
lcsm_model_forward = _proto("lcsm_model_forward", status, handle, P_i32, c_int, c_int, P_f32)

lcsm_tokenize = _proto("lcsm_tokenize", status, c_char_p, P_i32, c_int, P_int)
lcsm_model_tokenizer = _proto("lcsm_model_tokenizer", c_char_p, handle)
lcsm_model_tokenize = _proto("lcsm_model_tokenize", status, handle, c_char_p, P_i32, c_int, P_int)
lcsm_model_detokenize = _proto("lcsm_model_detokenize", status, handle, P_i32, c_int, c_char_p, c_size_t,
                               POINTER(c_size_t))
lcsm_model_dna_ids = _proto("lcsm_model_dna_ids", status, handle, P_i32)
lcsm_token_text = _proto("lcsm_token_text", c_char_p, c_int32)

lcsm_algo_name = _proto("lcsm_algo_name", c_char_p, c_int)
lcsm_algo_from_name = _proto("lcsm_algo_from_name", status, c_char_p, P_int)
lcsm_session_options_default = _proto("lcsm_session_options_default", None, POINTER(SessionOptions))
lcsm_session_create = _proto(
    "lcsm_session_create", status, handle, POINTER(SessionOptions), POINTER(handle)
)
lcsm_session_destroy = _proto("lcsm_session_destroy", None, handle)
lcsm_session_last_error = _proto("lcsm_session_last_error", c_char_p, handle)
lcsm_session_reset = _proto("lcsm_session_reset", status, handle)
lcsm_session_position = _proto("lcsm_session_position", c_int, handle)
lcsm_session_prefill = _proto("lcsm_session_prefill", status, handle, P_i32, c_int, P_f32)
lcsm_session_extend = _proto("lcsm_session_extend", status, handle, P_i32, c_int, P_f32)
lcsm_session_step = _proto("lcsm_session_step", status, handle, P_i32, P_f32)
lcsm_sampler_params_default = _proto("lcsm_sampler_params_default", None, POINTER(SamplerParams))
lcsm_session_set_sampler = _proto("lcsm_session_set_sampler", status, handle, POINTER(SamplerParams))
lcsm_session_step_sample = _proto("lcsm_session_step_sample", status, handle, P_i32, P_i32)
lcsm_generate = _proto("lcsm_generate", status, handle, P_i32, c_int, c_int, P_i32)
lcsm_session_get_stats = _proto("lcsm_session_get_stats", status, handle, POINTER(SessionStats))


def text(p) -> str:
    """A C string from the library as str ("" for NULL)."""
    return p.decode("utf-8", "replace") if p else ""


def fields_of(struct, names) -> dict:
    return {n: getattr(struct, n) for n in names}

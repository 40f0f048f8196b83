"""The ctypes mirror of lcsm.h against the header, compiled: every struct's size
and every field's offset and size (lcsm_model_options.weight_dtype, the family
and byte counts of lcsm_model_info, lcsm_layer_info included), and the enum
values the binding relies on (algorithms, weight dtypes)."""

import ctypes
import os
import re

import pytest
from conftest import run_probe

from lcsm import _capi


def _layout(probe):
    sizes, fields, enums = {}, {}, {}
    for line in run_probe(probe, "layout").splitlines():
        parts = line.split()
        if parts[0] == "enum":
            enums[parts[1]] = int(parts[2])
        elif parts[1] == "sizeof":
            sizes[parts[0]] = int(parts[3])
        else:
            fields[(parts[0], parts[1])] = (int(parts[2]), int(parts[3]))
    return sizes, fields, enums


def test_structs_match_header(probe):
    sizes, fields, _ = _layout(probe)
    assert set(sizes) == set(_capi.STRUCTS), "a struct of lcsm.h is not mirrored, or the probe misses one"
    for name, (cls, real) in _capi.STRUCTS.items():
        c_fields = [f for (s, f) in fields if s == name]
        assert c_fields == [f for f, _ in real], "%s: fields differ from the header" % name
        for f, _t in real:
            off, size = fields[(name, f)]
            desc = getattr(cls, f)
            assert (desc.offset, desc.size) == (off, size), "%s.%s at %d+%d, header %d+%d" % (
                name, f, desc.offset, desc.size, off, size)
        # The known fields alone must make C's sizeof: a larger C struct has a field
        # the binding does not know (the spare bytes keep the library from writing
        # past a padded struct meanwhile, but the field must be mirrored).
        exact = type("Exact_" + name, (ctypes.Structure,), {"_fields_": real})
        assert ctypes.sizeof(exact) == sizes[name], "%s: known fields make %d bytes, the header's sizeof is %d" % (
            name, ctypes.sizeof(exact), sizes[name])
        if name in _capi.EXACT_SIZE:
            assert ctypes.sizeof(cls) == sizes[name]
        else:
            assert ctypes.sizeof(cls) >= sizes[name] + _capi.RESERVED, name


def test_enums(probe):
    _, _, enums = _layout(probe)
    for name, code in (("flash", "LCSM_ALGO_FLASH"), ("lazy", "LCSM_ALGO_LAZY"), ("eager", "LCSM_ALGO_EAGER")):
        v = ctypes.c_int(-1)
        assert _capi.lcsm_algo_from_name(name.encode(), ctypes.byref(v)) == 0
        assert v.value == enums[code]
    # lcsm_weight_dtype: the binding's constants, and the library's names both ways
    for name, code, const in (("f32", "LCSM_WEIGHTS_F32", _capi.WEIGHTS_F32),
                              ("f16", "LCSM_WEIGHTS_F16", _capi.WEIGHTS_F16),
                              ("bf16", "LCSM_WEIGHTS_BF16", _capi.WEIGHTS_BF16),
                              ("auto", "LCSM_WEIGHTS_AUTO", _capi.WEIGHTS_AUTO)):
        v = ctypes.c_int(-1)
        assert _capi.lcsm_weight_dtype_from_name(name.encode(), ctypes.byref(v)) == 0
        assert v.value == enums[code] == const
        assert _capi.text(_capi.lcsm_weight_dtype_name(const)) == name
    assert _capi.lcsm_weight_dtype_from_name(b"f64", ctypes.byref(ctypes.c_int())) == 1
    # the enum-typed fields are mirrored as c_int: C's enums must be that size
    assert enums["sizeof_lcsm_weight_dtype"] == enums["sizeof_lcsm_algo"] == ctypes.sizeof(ctypes.c_int)


@pytest.mark.parametrize("status,cls", [(1, "InvalidArgumentError"), (2, "OutOfMemoryError"), (3, "FileError"),
                                        (4, "FormatError"), (5, "MissingTensorError"), (6, "ShapeError"),
                                        (7, "UnsupportedError"), (8, "TokenRangeError"), (9, "LengthError"),
                                        (10, "StateError"), (11, "BackendError"), (12, "NoBackendError")])
def test_status_classes(status, cls):
    import lcsm

    e = lcsm.errors.error_for(status, "the message")
    assert type(e).__name__ == cls and e.status == status and str(e) == "the message"
    assert isinstance(e, lcsm.Error)
    assert lcsm.errors.error_for(status).message == lcsm.strerror(status) != "unknown status"
    assert lcsm.errors.error_for(99, "x").status == 99


def test_every_struct_and_function_is_mirrored(root):
    # What lcsm.h declares, read from the header's text: a struct or a function
    # the binding has not learnt of fails here (and the probe must print the struct).
    header = os.path.join(root, "include", "lcsm.h")
    if not os.path.isfile(header):
        pytest.skip("no include/lcsm.h")
    text = open(header, encoding="utf-8").read()
    structs = set(re.findall(r"typedef struct (lcsm_\w+) \{", text))
    assert structs == set(_capi.STRUCTS), "structs of lcsm.h vs the binding's: %s" % sorted(
        structs ^ set(_capi.STRUCTS))
    functions = set(re.findall(r"LCSM_API\s[^;{]*?\b(lcsm_\w+)\s*\(", text))
    assert len(functions) > 40
    missing = sorted(f for f in functions if not hasattr(_capi, f))
    assert not missing, "lcsm.h functions without a ctypes prototype: %s" % ", ".join(missing)

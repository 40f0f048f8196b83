"""
refutil.py -- shared helpers for the lcsm reference models (no model math).

* safetensors reader / writer written by hand (no `safetensors` package on
  Debian 12's python3-torch 1.13), byte-for-byte the same format as
  hyena_ref.py's writer: u64 LE header length N | N bytes JSON | data, the
  JSON padded with spaces so the data starts 8-byte aligned, tensors packed
  in insertion order.
* rounding of fp32 values to what a decoder sees after reading F16 / BF16.
* a small parser for the flat YAML subset used by the published Evo 2
  (Zymrael/vortex configs/evo2-*.yml, ArcInstitute/evo2 evo2/configs/*.yml)
  and StripedHyena (togethercomputer/stripedhyena configs/*.yml) configs, so
  that the converters need no PyYAML.

Imported by stripedhyena_ref.py, evo2_ref.py and tools/convert_*.py.
"""

import json
import math
import re
import struct

import numpy as np
import torch

# dtype tag -> (numpy little-endian dtype of the raw bytes, bytes per element)
ST_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
             "I32": ("<i4", 4), "F64": ("<f8", 8), "I64": ("<i8", 8)}

# torch dtype -> safetensors tag (what a checkpoint tensor is written as)
TORCH_TO_ST = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int32: "I32", torch.float64: "F64", torch.int64: "I64"}


def tensor_bytes(t, dtype):
    """Raw little-endian bytes of tensor t encoded as safetensors dtype `dtype`."""
    t = t.detach().contiguous().cpu()
    if dtype == "F32":
        a = t.to(torch.float32).numpy()
    elif dtype == "F64":
        a = t.to(torch.float64).numpy()
    elif dtype == "F16":
        a = t.to(torch.float16).numpy()      # IEEE half, round-to-nearest-even
    elif dtype == "BF16":
        # torch rounds fp32 -> bf16 to nearest-even; numpy has no bf16, so the
        # 16-bit pattern is reinterpreted as int16.  A tensor that already is
        # bf16 is not rounded twice (to(float32) is exact).
        if t.dtype != torch.bfloat16:
            t = t.to(torch.float32).to(torch.bfloat16)
        a = t.view(torch.int16).numpy().view(np.uint16)
    elif dtype == "I32":
        a = t.to(torch.int32).numpy()
    elif dtype == "I64":
        a = t.to(torch.int64).numpy()
    else:
        raise ValueError(dtype)
    return a.astype(ST_DTYPES[dtype][0], copy=False).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch.Tensor, dtype_tag), written in this order."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t, dtype in tensors:
        b = tensor_bytes(t, dtype)
        assert len(b) == t.numel() * ST_DTYPES[dtype][1]
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-(8 + len(hj))) % 8)          # pad so 8 + N is a multiple of 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> (dict name -> (dtype_tag, shape tuple, raw bytes), metadata dict).

    Raw bytes are kept so that callers can compare files exactly; use
    decode_tensor() to get an fp32 torch tensor."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        b0, b1 = h["data_offsets"]
        out[name] = (h["dtype"], tuple(h["shape"]), blob[base + b0:base + b1])
    return out, meta


def decode_tensor(dtype, shape, raw):
    """Raw safetensors bytes -> float32 (or int) torch tensor of `shape`."""
    a = np.frombuffer(raw, dtype=ST_DTYPES[dtype][0])
    if dtype == "BF16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    t = torch.from_numpy(a.copy())
    if dtype in ("F16", "F64"):
        t = t.to(torch.float32)
    return t.reshape(shape)


def round_to(t, dtype):
    """The fp32 value a decoder sees after reading `dtype` from disk."""
    if dtype == "F16":
        return t.to(torch.float16).to(torch.float32)
    if dtype == "BF16":
        return t.to(torch.bfloat16).to(torch.float32)
    return t.to(torch.float32)


def torch_dtype(tag):
    return {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[tag]


def parse_dtype_spec(spec, classes, defaults):
    """'mlp=F16,proj=BF16' -> dict class -> tag, starting from `defaults`."""
    out = dict(defaults)
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        k, _, v = item.partition("=")
        if k not in classes or v not in ("F32", "F16", "BF16"):
            raise SystemExit("bad --dtypes item %r (classes: %s; dtypes F32/F16/BF16)"
                             % (item, ", ".join(classes)))
        out[k] = v
    return out


def parse_int_list(s):
    """'1,3,5' / '[1, 3, 5]' / '' / 'none' -> [1, 3, 5] / []"""
    s = (s or "").strip().strip("[]")
    if s.lower() in ("", "none"):
        return []
    return [int(x) for x in s.replace(" ", "").split(",") if x != ""]


# -----------------------------------------------------------------------------
# flat YAML subset (key: scalar | [list]) as used by the published configs

_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def _yaml_scalar(v):
    if v == "":
        return None
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    if v.startswith("[") and v.endswith("]"):
        inner = v[1:-1].strip()
        return [] if inner == "" else [_yaml_scalar(x.strip()) for x in inner.split(",")]
    low = v.lower()
    if low in ("true", "yes", "on"):        # YAML 1.1, as PyYAML reads it
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("null", "~", "none"):
        return None if low != "none" else v   # 'None' is a plain string in YAML
    if _INT.match(v):
        return int(v)
    if _FLOAT.match(v):
        return float(v)
    if low in (".inf", "+.inf"):
        return math.inf
    return v


def parse_flat_yaml(text):
    """Ordered dict of the top-level `key: value` lines; '#' starts a comment
    (outside quotes).  Nested mappings are not used by the published configs
    and are rejected."""
    out = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line, q = [], None
        for ch in raw:                       # strip a comment outside quotes
            if q is None and ch == "#":
                break
            if ch in "'\"":
                q = None if q == ch else (ch if q is None else q)
            line.append(ch)
        line = "".join(line).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        if line[0] in " \t":
            raise ValueError("line %d: nested YAML is not supported: %r" % (lineno, raw))
        key, sep, val = line.partition(":")
        if not sep:
            raise ValueError("line %d: expected 'key: value': %r" % (lineno, raw))
        out[key.strip()] = _yaml_scalar(val.strip())
    return out


def yaml_value(v):
    """Inverse of _yaml_scalar for the types we emit."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_flat_yaml(path, cfg, header=None):
    with open(path, "w") as f:
        if header:
            for line in header.splitlines():
                f.write("# " + line + "\n")
        for k, v in cfg.items():
            f.write("%s: %s\n" % (k, yaml_value(v)))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")

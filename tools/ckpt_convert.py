"""
ckpt_convert.py -- shared part of tools/convert_stripedhyena.py and
tools/convert_evo2.py: a published PyTorch state dict (.pt / .bin, a
torch.save'd dict name -> tensor) becomes DIR/model.safetensors with the
published tensor names, in the dtypes the checkpoint stores them in.

What is dropped, and why (see /work/notes/stripedhyena.md, evo2.md):
* entries that are not tensors: Transformer Engine `*._extra_state`
  (io.BytesIO / None) in the Evo 2 .pt files -- FP8 metadata, no weights;
* `unembed.weight` when the config ties embeddings: StripedHyena's
  state_dict lists the shared weight under both names, and vortex ignores
  the copy in evo2_*.pt (the tied unembed has no parameter).  It must equal
  embedding_layer.weight for StripedHyena (same storage); for Evo 2 vortex
  never reads it, so it is dropped whatever it holds (a warning says so if
  it differs).
Everything else is written unchanged (no transposes, no Wqkv permutation:
the C loader applies the published layout rules).  The safetensors writer is
tests/reference/refutil.py's.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import refutil as ru                                   # noqa: E402


def load_state_dict(path):
    """torch.load on CPU; unwraps {'state_dict': ...} / {'model': ...} /
    {'module': ...} containers that training checkpoints use."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:                      # torch < 1.13 has no weights_only
        sd = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict) \
                and not any(torch.is_tensor(v) for v in sd.values()):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise SystemExit("%s: not a state dict (got %s)" % (path, type(sd).__name__))
    return sd


def rename(name, strip, add):
    if strip and name.startswith(strip):
        name = name[len(strip):]
    return add + name


def convert(sd, tied, strip="", add="", log=print):
    """state dict -> list of (name, tensor, safetensors dtype), in the order
    of the state dict.  `strip` removes a name prefix where present (e.g.
    'backbone.'), `add` prepends one to every name."""
    out, skipped = [], []
    emb = None
    for n, v in sd.items():
        if rename(n, strip, "") == "embedding_layer.weight" and torch.is_tensor(v):
            emb = v
    for n, v in sd.items():
        base = rename(n, strip, "")
        if not torch.is_tensor(v):
            skipped.append("%s (%s, not a tensor)" % (n, type(v).__name__))
            continue
        if tied and base == "unembed.weight":
            same = emb is not None and emb.shape == v.shape and torch.equal(emb, v)
            skipped.append("%s (tied to embedding_layer.weight%s)" % (n, "" if same else ", DIFFERS"))
            if not same:
                log("warning: %s differs from embedding_layer.weight; the tied model ignores it" % n)
            continue
        if v.is_complex():
            raise SystemExit("%s: complex tensor; the published layouts store real/imag pairs" % n)
        if v.dtype not in ru.TORCH_TO_ST:
            raise SystemExit("%s: unsupported dtype %s" % (n, v.dtype))
        out.append((rename(n, strip, add), v.contiguous(), ru.TORCH_TO_ST[v.dtype]))
    for s in skipped:
        log("skipped " + s)
    return out


def read_config(path):
    """A config file as a dict: JSON (HF config.json) or the flat YAML of the
    published configs (*.yml / *.yaml)."""
    import json
    with open(path) as f:
        text = f.read()
    if path.endswith((".yml", ".yaml")):
        return ru.parse_flat_yaml(text)
    return json.loads(text)


def write(out_dir, tensors, cfg, source):
    os.makedirs(out_dir, exist_ok=True)
    ru.write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors,
                         {"format": "pt", "source": os.path.basename(source)})
    ru.write_json(os.path.join(out_dir, "config.json"), cfg)

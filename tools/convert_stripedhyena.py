#!/usr/bin/python3
"""
convert_stripedhyena.py -- StripedHyena / Evo 1 PyTorch checkpoint -> lcsm
safetensors directory.

Usage:
  convert_stripedhyena.py CHECKPOINT.pt CONFIG OUTDIR [--strip-prefix backbone.]
                          [--add-prefix P]

CHECKPOINT: torch.save'd state dict (togethercomputer/stripedhyena or Evo 1
  pytorch_model.pt, HF pytorch-model.bin); names as published, with or
  without the HF wrapper's `backbone.` prefix.
CONFIG: the HF config.json (StripedHyenaConfig keys) or an upstream YAML
  (stripedhyena configs/7b-sh-32k-v1.yml, evo configs/evo-1-*_inference.yml);
  written to OUTDIR/config.json with its keys unchanged.
OUTDIR/model.safetensors: every tensor with its published name, shape and
  dtype (poles/residues stay F32 (D, state, 1, 2)); the tied unembed.weight
  copy and non-tensor entries are dropped (tools/ckpt_convert.py says why).
Needs python3 + torch only.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_convert as cc                              # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("checkpoint")
    ap.add_argument("config")
    ap.add_argument("outdir")
    ap.add_argument("--strip-prefix", default="", help='e.g. "backbone." (the HF wrapper)')
    ap.add_argument("--add-prefix", default="")
    a = ap.parse_args(argv)
    cfg = cc.read_config(a.config)
    for k in ("hidden_size", "num_layers", "attn_layer_idxs", "hyena_layer_idxs", "state_size"):
        if k not in cfg:
            raise SystemExit("%s: missing StripedHyena key %r" % (a.config, k))
    tied = bool(cfg.get("tie_embeddings", False))
    tensors = cc.convert(cc.load_state_dict(a.checkpoint), tied, a.strip_prefix, a.add_prefix)
    if not any(n.endswith("embedding_layer.weight") for n, _, _ in tensors):
        raise SystemExit("no embedding_layer.weight in the checkpoint (wrong --strip-prefix?)")
    cc.write(a.outdir, tensors, cfg, a.checkpoint)
    print("wrote %s: %d tensors" % (a.outdir, len(tensors)))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""
convert_evo2.py -- Evo 2 (StripedHyena 2, vortex) PyTorch checkpoint ->
lcsm safetensors directory.

Usage:
  convert_evo2.py CHECKPOINT.pt CONFIG.yml OUTDIR [--strip-prefix P] [--add-prefix P]

CHECKPOINT: a published evo2_*.pt (torch.save'd state dict, vortex names:
  embedding_layer.weight, blocks.N...., norm.scale).
CONFIG: the vortex / evo2 YAML (configs/evo2-*.yml) or a JSON with the same
  keys.  Its keys are carried unchanged into OUTDIR/config.json, and the
  YAML itself is copied to OUTDIR/config.yml.
OUTDIR/model.safetensors: tensors with their published names, shapes and
  dtypes.  Wqkv stays in the stored per-head [q|k|v] row order (the
  `column_split` permutation is the loader's job, as in vortex); dropped:
  Transformer Engine `projections._extra_state` entries and the unused
  `unembed.weight` of the tied model.
Needs python3 + torch only (the YAML subset is parsed by refutil).
"""

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_convert as cc                              # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("checkpoint")
    ap.add_argument("config")
    ap.add_argument("outdir")
    ap.add_argument("--strip-prefix", default="")
    ap.add_argument("--add-prefix", default="")
    a = ap.parse_args(argv)
    cfg = cc.read_config(a.config)
    for k in ("hidden_size", "num_layers", "attn_layer_idxs", "hcl_layer_idxs",
              "hcm_layer_idxs", "hcs_layer_idxs", "state_size"):
        if k not in cfg:
            raise SystemExit("%s: missing Evo 2 key %r" % (a.config, k))
    tied = bool(cfg.get("tie_embeddings", True))
    tensors = cc.convert(cc.load_state_dict(a.checkpoint), tied, a.strip_prefix, a.add_prefix)
    if not any(n.endswith("embedding_layer.weight") for n, _, _ in tensors):
        raise SystemExit("no embedding_layer.weight in the checkpoint (wrong --strip-prefix?)")
    cc.write(a.outdir, tensors, cfg, a.checkpoint)
    if a.config.endswith((".yml", ".yaml")):
        dst = os.path.join(a.outdir, "config.yml")
        if os.path.abspath(a.config) != os.path.abspath(dst):
            shutil.copyfile(a.config, dst)
    print("wrote %s: %d tensors" % (a.outdir, len(tensors)))


if __name__ == "__main__":
    main()

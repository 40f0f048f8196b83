#!/bin/sh
# CTest driver: run_reference.sh PYTHON OUTDIR TEST_BINARY SCRIPT [SCRIPT options...]
# Writes a random checkpoint and its logits with a PyTorch reference (SCRIPT,
# e.g. hyena_ref.py, in this folder), then compares lcsm against them. Exit 77
# (skip) when this python has no torch.
py=$1 out=$2 bin=$3 script=$4
shift 4
here=$(dirname "$0")
"$py" -c 'import torch' 2>/dev/null || { echo "SKIP: $py has no torch (apt-get install python3-torch)"; exit 77; }
"$py" "$here/$script" --out "$out" "$@" || exit 1
exec "$bin" "$out"

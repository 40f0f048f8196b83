#!/bin/sh
# test_converters.sh PYTHON OUTDIR
# Round trip of the checkpoint converters: the references write a random
# model both as model.safetensors and, with --save-pt, as the state dict the
# upstream repos distribute (.pt); tools/convert_*.py converts the .pt and the
# result must equal the reference's safetensors tensor by tensor, and its
# config.json the reference's.  Exit 0 ok, 1 failure, 77 when PYTHON has no torch.
py=$1 out=$2
[ -n "$py" ] && [ -n "$out" ] || { echo "usage: $0 PYTHON OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
tools=$here/../../tools
"$py" -c 'import torch' 2>/dev/null || { echo "SKIP: $py has no torch (apt-get install python3-torch)"; exit 77; }
mkdir -p "$out" || exit 1
fail=0
check() {   # name reference_dir converted_dir
  if "$py" "$here/compare_safetensors.py" "$2/model.safetensors" "$3/model.safetensors" \
       --json "$2/config.json" "$3/config.json"; then echo "ok $1"; else echo "FAIL $1"; fail=1; fi
}
run() { "$@" >"$out/log.txt" 2>&1 || { cat "$out/log.txt"; echo "FAIL: $*"; exit 1; }; }

# StripedHyena-7B style (untied, GQA attention), HF names with backbone.
run "$py" "$here/stripedhyena_ref.py" --style sh7b --attn-layers 1,3 --prefix backbone. \
    --out "$out/sh7b_ref" --save-pt "$out/sh7b.pt" --seed 11 --no-check
run "$py" "$tools/convert_stripedhyena.py" "$out/sh7b.pt" "$out/sh7b_ref/config.json" "$out/sh7b_conv"
check sh7b "$out/sh7b_ref" "$out/sh7b_conv"

# Evo 1 style (tied: the .pt holds unembed.weight too), backbone. stripped
# and compared with the same seed written without a prefix
run "$py" "$here/stripedhyena_ref.py" --style evo1 --attn-layers 2 --prefix backbone. \
    --out "$out/evo1_pre" --save-pt "$out/evo1.pt" --seed 12 --dtypes emb=BF16,norm=BF16 --no-check
run "$py" "$here/stripedhyena_ref.py" --style evo1 --attn-layers 2 \
    --out "$out/evo1_ref" --seed 12 --dtypes emb=BF16,norm=BF16 --no-check
run "$py" "$tools/convert_stripedhyena.py" "$out/evo1.pt" "$out/evo1_ref/config.json" "$out/evo1_conv" \
    --strip-prefix backbone.
check evo1 "$out/evo1_ref" "$out/evo1_conv"

# Evo 2 (TE _extra_state entries and a tied unembed.weight in the .pt), YAML config
run "$py" "$here/evo2_ref.py" --n-layer 4 --attn-layers 3 --out "$out/evo2_ref" \
    --save-pt "$out/evo2.pt" --seed 13 --dtypes conv=BF16,skip=BF16 --no-check
run "$py" "$tools/convert_evo2.py" "$out/evo2.pt" "$out/evo2_ref/config.yml" "$out/evo2_conv"
check evo2 "$out/evo2_ref" "$out/evo2_conv"
cmp -s "$out/evo2_ref/config.yml" "$out/evo2_conv/config.yml" && echo "ok evo2 config.yml" \
  || { echo "FAIL evo2 config.yml"; fail=1; }

exit $fail

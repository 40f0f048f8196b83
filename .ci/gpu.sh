#!/bin/bash
# The GPU run (issue 3): on a machine with the NVIDIA OpenCL driver but no
# packages (the lent H100), bring the ICD loader and -dev packages from .debs/
# (see ../shared/device/opencl-on-gpu.sh), build with the OpenCL backend, run the
# whole suite on the GPU, the CLI twice (cold and warm kernel caches) and the
# benchmark (lcsm-bench). Logs go to $OUT (or ./gpu-out).
#   .ci/gpu.sh [all|test|cli|prof|final|peercheck|peer16|paper16|paper64|paper128|lazy64cli|flash64cli|clblast|
#               families|hybrids|million|millionbench|millionrun|published|fineab|fusewidth|bandab|rest256|striped|stripedrest|shprefill]...
# (default: all; each target is a run_<name> function below)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
# GPU_PACK=1: every log goes to $out/logs and is packed into $out/logs.tgz at the end (the device
# call brings back at most 8 files); GPU_DEADLINE (seconds from now) caps each timed step through
# tmo, so that the packing runs inside the call's limit.
if [ -n "${GPU_PACK:-}" ]; then
  pack_to=$out
  out=$out/logs
  mkdir -p "$out"
  trap 'tar czf "$pack_to/logs.tgz" -C "$pack_to" logs && rm -rf "$out"' EXIT
fi
deadline=${GPU_DEADLINE:-100000}
# tmo SECONDS: SECONDS, or what is left before the deadline; fails when under 10 s are left.
tmo() {
  local t=$1 r=$((deadline - SECONDS))
  [ "$r" -lt "$t" ] && t=$r
  [ "$t" -ge 10 ] && echo "$t"
}
source .debs/opencl-on-gpu.sh > "$out/clinfo.txt" 2>&1
# cJSON's CMake package names absolute /usr paths: point them into the sysroot.
sed -i "s|\"/usr/|\"$LCSM_SYSROOT/usr/|g" "$LCSM_SYSROOT"/usr/lib/x86_64-linux-gnu/cmake/cJSON/*.cmake
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
export LCSM_CACHE_DIR=$PWD/build-gpu/cache
build() {
  local py; py=$(find_torch_python) # the PyTorch references of the suite need a torch
  cmake -S . -B build-gpu -DLCSM_OPENCL=ON -DCMAKE_BUILD_TYPE=Release ${py:+-DLCSM_PYTHON=$py} \
    > "$out/configure.txt" 2>&1 &&
    cmake --build build-gpu -j16 ${BUILD_TARGETS:+--target $BUILD_TARGETS} > "$out/build.txt" 2>&1 || { tail -n 40 "$out/configure.txt" "$out/build.txt"; exit 1; }
}
run_tests() {
  ctest --test-dir build-gpu --output-on-failure -j4 > "$out/ctest.txt" 2>&1
  grep -E "FAIL|tests passed|Failed|Skipped" "$out/ctest.txt" | head -40
}
run_cli() {
  rm -rf "$LCSM_CACHE_DIR/cli"
  for i in 1 2; do
    LCSM_CACHE_DIR=$LCSM_CACHE_DIR/cli ./build-gpu/tools/lcsm generate --backend opencl -n 256 > /dev/null 2> "$out/cli-$i.txt"
    grep -E "backend|start-up|total" "$out/cli-$i.txt"
  done
  ./build-gpu/tools/lcsm devices | tee "$out/devices.txt"
}
B=./build-gpu/bench/lcsm-bench
M768=$out/m768 # a 768x12 model of l_max 64K for the CLI runs
model768() { [ -d "$M768" ] || ./build-gpu/tools/lcsm make-model "$M768" --d-model 768 --n-layer 12 --l-max 65536 > /dev/null; }
find_torch_python() { # the first python with torch and CUDA (the H100's /usr/bin/python3 has no torch)
  for p in ${BENCH_PYTHON:-} /opt/torch/.venv/bin/python3 python3 python /opt/conda/bin/python /usr/local/bin/python3 /usr/bin/python3; do
    command -v "$p" > /dev/null 2>&1 && "$p" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
      2> /dev/null && { command -v "$p"; return; }
  done
}
# lcsm-bench cells of the 768x12 model at batch 1 and 8 against the PyTorch peer (when a torch with CUDA
# exists): LENGTH SECONDS NAME (bench/RESULTS.md, H100 tables)
peer_cells() {
  local py; py=$(find_torch_python)
  timeout "$2" $B --backends opencl --models 768x12 --batches 1,8 --lens "$1" --algos lazy,flash --budget 200 \
    ${py:+--peers torch:cuda --python $py --peer-timeout 200 --peer-algos lazy,flash} --latencies \
    --json "$out/$3.json" > "$out/$3.txt" 2>&1; cat "$out/$3.txt"
}
# the Flash Inference paper's shape (--paper) at one length, end to end: LENGTH SECONDS NAME [more options]
paper_cells() {
  timeout "$2" $B --paper --lens "$1" --budget 0 --backends opencl "${@:4}" --json "$out/$3.json" \
    > "$out/$3.txt" 2>&1; cat "$out/$3.txt"
}

run_all() { run_tests; run_cli; $B --backends opencl --models 768x12 --batches 1 --lens 4096 --algos lazy,flash; }
run_test() { run_tests; }
run_prof() { # device time per kernel (LCSM_PROFILE=1) for the 768x12 model, B=1 L=4K and B=8 up to 16K of 64K
  model768
  LCSM_PROFILE=1 ./build-gpu/tools/lcsm generate --backend opencl -m "$M768" -n 4095 --max-len 4096 --temp 0 \
    > /dev/null 2> "$out/prof-b1-4k.txt"
  LCSM_PROFILE=1 ./build-gpu/tools/lcsm generate --backend opencl -m "$M768" -n 16384 --max-len 65536 --batch 8 \
    --temp 0 > /dev/null 2> "$out/prof-b8-64k.txt"
  tail -n 30 "$out"/prof-*.txt
}
run_lazy64cli() { model768; gen64 lazy; }   # lazy at batch 8 to L = 64K (about 6 minutes)
run_flash64cli() { model768; gen64 flash; } # flash at batch 8 to L = 64K
gen64() {
  ./build-gpu/tools/lcsm generate --backend opencl -m "$M768" -n 65535 --max-len 65536 --batch 8 --algo "$1" \
    --temp 0 2>&1 >/dev/null | grep -E "total|decode"
}
run_peercheck() { # the peer against lcsm and the reference on CUDA, CUDA graphs included
  local py; py=$(find_torch_python)
  echo "torch python: ${py:-none}"
  [ -n "$py" ] && timeout 150 $py bench/peers/check_peer.py --work /tmp/peer-check --device cuda \
    --lcsm build-gpu/tools/lcsm > "$out/check_peer.txt" 2>&1; echo "check_peer rc $?"; grep -c "^ok" "$out/check_peer.txt"
  grep -v "^ok" "$out/check_peer.txt" | tail -n 8
}
run_final() { # one device call: suite, start-up, the peer's check, the 4K cells against it, the paper's mixer split
  timeout 240 bash -c "$(declare -f run_tests); out=$out; run_tests"
  run_cli
  run_peercheck
  peer_cells 4096 200 bench-h100
  timeout 120 $B --paper --paper-scale 8 --backends opencl --profile --budget 60 --json "$out/paper.json" \
    > "$out/paper.txt" 2>&1; cat "$out/paper.txt"
}
run_peer16() { peer_cells 16384 560 bench-16k; } # 16K cells, batch 1 and 8, in one call
run_paper16() { # the paper's shape at 16K (mixer split by kernel times) and 32K
  paper_cells 16384 200 paper-16k --profile
  paper_cells 32768 330 paper-32k
}
run_paper64() { paper_cells 65536 420 paper-64k; } # 2^16, flash and lazy
run_paper128() { # 2^17, one algorithm per call (PAPER_ALGO: flash, or lazy, which needs more than a call)
  paper_cells 131072 590 "paper-128k-${PAPER_ALGO:-flash}" --algos "${PAPER_ALGO:-flash}"
}
run_clblast() { # our projections against CLBlast's SGEMV / SGEMM (needs the libclblast .debs in .debs/)
  ./build-gpu/bench/lcsm-gemv-vs-clblast --d-model 768 | tee "$out/gemv-vs-clblast.txt"
}

# ---- the families round (issues 11-15): one call each
# families: the suite on the GPU (every family, attention, Hedgehog, lagged flash), the CLI, then
# A/B cells: the fused norm + projection, f32 against bf16 and f16 weights (256x8, 768x12 and the
# 4096x4 bandwidth case), lagged flash against the plain schedule at 16K
run_families() {
  timeout 300 bash -c "$(declare -f run_tests); out=$out; run_tests"
  run_cli
  for f in 0 1; do
    LCSM_CL_FUSE_NORM=$f timeout 60 $B --backends opencl --models 768x12 --batches 1,8 --lens 4096 --algos flash \
      --budget 60 --json "$out/fuse$f.json" > "$out/fuse$f.txt" 2>&1
    echo "== LCSM_CL_FUSE_NORM=$f"; grep -E "^768x12|= " "$out/fuse$f.txt"
  done
  timeout 90 $B --backends opencl --models 256x8,768x12,4096x4 --batches 1 --lens 4096 --algos flash \
    --weights f32,bf16,f16 --budget 60 --json "$out/weights.json" > "$out/weights.txt" 2>&1
  grep -E "^[0-9]+x|= " "$out/weights.txt"
  timeout 90 $B --backends opencl --models 256x8 --batches 1,8 --lens 16384 --algos plain,flash --latencies \
    --budget 60 --json "$out/lag16k.json" > "$out/lag16k.txt" 2>&1
  grep -E "^256x8|= " "$out/lag16k.txt"
}
# bench NAME SECONDS ARGS...: one lcsm-bench invocation on the GPU under tmo, its output in NAME.txt
# and NAME.json, its table rows and ratio lines echoed
bench() {
  local name=$1 t
  t=$(tmo "$2") || { echo "== $name: no time left"; return; }
  shift 2
  timeout "$t" $B --backends opencl "$@" --json "$out/$name.json" > "$out/$name.txt" 2>&1
  echo "== $name (rc $?, limit $t s)"; grep -E "^[a-z0-9-]*:?[0-9]+x[0-9]+ |^(evo2|sh)-|= " "$out/$name.txt"
}
# hybrids: the published Evo 2 7B shape (bf16 weights, its attention layers) at 8K context, batch 1
# and 8; the Evo 2 1B and StripedHyena 7B shapes (modal against flash on tiled filters: decode, and
# prefill at batch 1); lcsm against PyTorch with and without CUDA graphs in one invocation (768x12,
# batch 1 and 8, 4K, the peer's flash); a 2^20 model of 256 x 8 made, loaded and generated by the CLI
# with progress for what time is left (million_probe)
run_hybrids() {
  local py; py=$(find_torch_python)
  bench evo2-7b-b1 70 --models evo2-7b --batches 1 --lens 8192 --prompt 4096 --algos flash --weights bf16 \
    --warmup 0 --budget 0 --latencies
  bench evo2-1b 60 --models evo2-1b --batches 1,8 --lens 2048 --prompt 1024 --algos modal,flash \
    --modal-tiled --weights bf16 --warmup 0 --budget 0
  bench evo2-1b-prefill 60 --models evo2-1b --batches 1 --prefill-lens 8192,65536 --algos modal,flash \
    --modal-tiled --weights bf16 --warmup 0 --budget 0
  bench evo2-7b-b8 100 --models evo2-7b --batches 8 --lens 8192 --prompt 4096 --algos flash --weights bf16 \
    --warmup 0 --budget 0
  bench sh-7b 50 --models sh-7b --batches 1 --lens 2048 --prompt 1024 --algos modal,flash --modal-tiled \
    --weights bf16 --warmup 0 --budget 0
  bench peers-4k 80 --models 768x12 --batches 1,8 --lens 4096 --algos flash --budget 0 \
    ${py:+--peers torch:cuda+graphs,torch:cuda --python $py --peer-timeout 40} --peer-algos flash --latencies
  million_probe 100000
}
# published: the published 7B shapes at last (bf16, random weights): Evo 2 7B decoding at 8K context
# (a 7680-token prompt, then 512 steps) at batch 1 and 8, StripedHyena-7B (modal against flash on the
# tiled filters), then the Evo 2 1B cells the hybrids call lost to its deadline (64K prefill, modal B=8)
run_published() {
  bench evo2-7b-b1 110 --models evo2-7b --batches 1 --lens 8192 --prompt 7680 --algos modal --weights bf16 \
    --warmup 0 --budget 0 --latencies
  bench evo2-7b-b8 230 --models evo2-7b --batches 8 --lens 8192 --prompt 7680 --algos modal --weights bf16 \
    --warmup 0 --budget 0
  bench sh-7b 90 --models sh-7b --batches 1 --lens 1280 --prompt 1024 --algos modal,flash --modal-tiled \
    --weights bf16 --warmup 0 --budget 0
  bench evo2-1b-64k 100 --models evo2-1b --batches 1 --prefill-lens 65536 --algos modal --weights bf16 \
    --warmup 0 --budget 0
  bench evo2-1b-b8 40 --models evo2-1b --batches 8 --lens 2048 --prompt 1024 --algos modal --weights bf16 \
    --warmup 0 --budget 0
}
# striped: what the published call left: StripedHyena-7B's modal cell, Evo 2 1B's Hyena layers alone
# (decode at batch 1 and 8; prefill of 8K, 64K and 256K prompts with peak memory), the CLI's rate on
# a 2^20 model, and a per-kernel profile of Evo 2 1B's Hyena layers' decode step
run_striped() {
  bench sh-7b-modal 100 --models sh-7b --batches 1 --lens 1280 --prompt 1024 --algos modal --weights bf16 \
    --warmup 0 --budget 0
  bench evo2-1b-hyena 70 --models evo2-1b-hyena --batches 1,8 --lens 2048 --prompt 1024 --algos modal \
    --weights bf16 --warmup 0 --budget 0
  million_probe 60
  bench evo2-1b-hyena-prefill 200 --models evo2-1b-hyena --batches 1 --prefill-lens 8192,65536,262144 \
    --algos modal --weights bf16 --warmup 0 --budget 0
  local t m=/tmp/e1b L=./build-gpu/tools/lcsm
  t=$(tmo 60) || return
  $L make-model $m --arch evo2 --d-model 1920 --n-layer 25 --d-inner 5120 --l-max 2048 --weights bf16 \
    --attn-layers none > /dev/null &&
    LCSM_PROFILE=1 timeout "$t" $L generate -m $m --backend opencl --weights bf16 -n 256 --temp 0 > /dev/null \
      2> "$out/evo2-1b-prof.txt"
  echo "== evo2-1b profile (rc $?)"; tail -n 30 "$out/evo2-1b-prof.txt"
}
# make_m1m [WRAPPER...]: HyenaDNA-1M's shape (256 x 8, l_max 2^20) with random weights in $M1M (the CLI
# built first: BUILD_TARGETS may have left it out)
M1M=/tmp/m1m
make_m1m() {
  cmake --build build-gpu -j16 --target lcsm_cli > /dev/null 2>&1
  "$@" ./build-gpu/tools/lcsm make-model $M1M --d-model 256 --n-layer 8 --l-max 1048576
}
# million_probe SECONDS: the CLI generating every position of that model with progress for at most
# SECONDS (the progress lines give the rate and the ETA even when it is stopped)
million_probe() {
  local t
  t=$(tmo "$1") || return
  make_m1m > /dev/null &&
    timeout "$t" ./build-gpu/tools/lcsm generate -m $M1M --backend opencl -n 1048575 --progress > /dev/null \
      2> "$out/million-probe.txt"
  echo "== million probe (rc $?, limit $t s)"; tr '\r' '\n' < "$out/million-probe.txt" | grep -v '^ *$' | tail -n 4
  rm -rf $M1M
}
# millionbench: the million cell for 100 s only (its set-up lines and its first progress lines)
run_millionbench() {
  bench million 100 --models 256x8 --batches 1 --lens 1048576 --prompt 1 --algos flash --warmup 0 --budget 0
  grep -E "set-up|step" "$out/million.txt"
}
# millionrun: the million cell alone (every position of the 2^20 session, its per-step latencies)
run_millionrun() {
  bench million 100000 --models 256x8 --batches 1 --lens 1048576 --prompt 1 --algos flash --warmup 0 --budget 0 \
    --latencies
  grep -vE "^$" "$out/million.txt" | tail -n 40
}
# stripedrest: the StripedHyena / Evo 2 cells the striped call left: StripedHyena-7B at batch 8 (modal
# against flash on the tiled filters), flash on Evo 2 1B's tiled hcl filters for 64K and 256K prompts,
# and Evo 2 1B's Hyena layers at batch 1 with the norm fused into the projections and not (one call)
run_stripedrest() {
  bench sh-7b-b8 150 --models sh-7b --batches 8 --lens 1280 --prompt 1024 --algos modal,flash --modal-tiled \
    --weights bf16 --warmup 0 --budget 0
  bench evo2-1b-hyena-prefill-t 110 --models evo2-1b-hyena --batches 1 --prefill-lens 65536,262144 --algos flash \
    --modal-tiled --weights bf16 --warmup 0 --budget 0
  bench evo2-1b-hyena-fused 50 --models evo2-1b-hyena --batches 1 --lens 2048 --prompt 1024 --algos modal \
    --weights bf16 --warmup 0 --budget 0
  LCSM_CL_FUSE_NORM=0 bench evo2-1b-hyena-unfused 50 --models evo2-1b-hyena --batches 1 --lens 2048 --prompt 1024 \
    --algos modal --weights bf16 --warmup 0 --budget 0
}
# shprefill: StripedHyena-7B's 16 Hyena layers alone: prefill of 8K, 64K and 256K prompts by the modal
# recurrence, and of 8K and 64K by flash on the tiled filters (256K of those filters would not fit)
run_shprefill() {
  bench sh-7b-hyena-prefill 220 --models sh-7b-hyena --batches 1 --prefill-lens 8192,65536,262144 --algos modal \
    --weights bf16 --warmup 0 --budget 0
  bench sh-7b-hyena-prefill-t 130 --models sh-7b-hyena --batches 1 --prefill-lens 8192,65536 --algos flash \
    --modal-tiled --weights bf16 --warmup 0 --budget 0
}
# fusewidth: the fused norm + projection against LCSM_CL_FUSE_NORM=0 with width and weight type apart
# (it lost on Evo 2 1B's 1920-wide bf16 rows, won on 768x12's f32 ones): 1920 wide in f32, 768 wide in bf16
run_fusewidth() {
  local i fuse
  for i in 1 2; do
    for fuse in 1 0; do
      LCSM_CL_FUSE_NORM=$fuse bench evo2-1b-hyena-f32-fuse$fuse-$i 50 --models evo2-1b-hyena --batches 1 \
        --lens 2048 --prompt 1024 --algos modal --weights f32 --repeats 3 --warmup 0 --budget 0
      LCSM_CL_FUSE_NORM=$fuse bench 768x12-bf16-fuse$fuse-$i 40 --models 768x12 --batches 1 --lens 4096 \
        --algos flash --weights bf16 --repeats 3 --budget 0
    done
  done
}
# fineab: spread tiles unit by unit (16 channels) from 2^16 on against whole 64-channel batches at every
# size (LCSM_CL_SPREAD_UNIT=64, the earlier rule), 256 x 8 at 2^17 (its largest tile 2^16), alternating
run_fineab() {
  local i
  for i in 1 2; do
    LCSM_CL_SPREAD_FINE=65536 bench fine-128k-$i 90 --models 256x8 --batches 1 --lens 131072 --algos flash \
      --warmup 0 --budget 0 --latencies
    LCSM_CL_SPREAD_UNIT=64 bench batch-128k-$i 90 --models 256x8 --batches 1 --lens 131072 --algos flash \
      --warmup 0 --budget 0 --latencies
  done
}
# bandab: lagged flash's band in partial sums of 16 taps per work-item (the GPU default) against 256 (with
# bands up to 64 taps in the step kernel: the earlier rule), at 16K (lag 64) and 2^17 (lag 512), 256 x 8
# at batch 1 with per-step latencies; then spread parts of 16 channels instead of 64 at 2^17 (worst step)
run_bandab() {
  bench band16-16k 30 --models 256x8 --batches 1 --lens 16384 --algos flash --budget 0 --latencies
  LCSM_CL_BAND_TAPS=256 bench band256-16k 30 --models 256x8 --batches 1 --lens 16384 --algos flash --budget 0 \
    --latencies
  bench band16-128k 100 --models 256x8 --batches 1 --lens 131072 --algos flash --warmup 0 --budget 0 --latencies
  LCSM_CL_BAND_TAPS=256 bench band256-128k 100 --models 256x8 --batches 1 --lens 131072 --algos flash --warmup 0 \
    --budget 0 --latencies
  LCSM_CL_SPREAD_UNIT=16 bench unit16-128k 100 --models 256x8 --batches 1 --lens 131072 --algos flash --warmup 0 \
    --budget 0 --latencies
}
# rest256: the 256K-token prefills the earlier calls left: StripedHyena-7B's Hyena layers by the modal
# recurrence (the prompt now taken in buffer-sized chunks by the library) and Evo 2 1B's Hyena layers by
# flash on the tiled hcl filters; then the fused-norm A/B of Evo 2 1B's Hyena layers, three repeats each
run_rest256() {
  bench sh-7b-hyena-prefill-256k 200 --models sh-7b-hyena --batches 1 --prefill-lens 262144 --algos modal \
    --weights bf16 --warmup 0 --budget 0
  bench evo2-1b-hyena-prefill-t-256k 150 --models evo2-1b-hyena --batches 1 --prefill-lens 262144 --algos flash \
    --modal-tiled --weights bf16 --warmup 0 --budget 0
  bench evo2-1b-hyena-fused3 60 --models evo2-1b-hyena --batches 1 --lens 2048 --prompt 1024 --algos modal \
    --weights bf16 --warmup 0 --budget 0 --repeats 3
  LCSM_CL_FUSE_NORM=0 bench evo2-1b-hyena-unfused3 60 --models evo2-1b-hyena --batches 1 --lens 2048 --prompt 1024 \
    --algos modal --weights bf16 --warmup 0 --budget 0 --repeats 3
}
# million: HyenaDNA-1M's shape (256 x 8), l_max 2^20: the model made and loaded by the CLI (start-up),
# then every position generated with lagged flash in one lcsm-bench session (total, per-step latency,
# peak device memory; a progress line every 65536 steps)
run_million() {
  local t T=
  [ -x /usr/bin/time ] && T="/usr/bin/time -f %es,%MKiB"
  make_m1m $T > "$out/million-make.txt" 2>&1
  echo "== make-model"; tail -n 2 "$out/million-make.txt"
  t=$(tmo 120) || return
  $T timeout "$t" ./build-gpu/tools/lcsm generate -m $M1M --backend opencl -n 8 --progress > /dev/null \
    2> "$out/million-load.txt"
  echo "== load (rc $?)"; tr '\r' '\n' < "$out/million-load.txt" | grep -v '^ *$' | tail -n 6
  rm -rf $M1M
  bench million 100000 --models 256x8 --batches 1 --lens 1048576 --prompt 1 --algos flash --warmup 0 --budget 0 \
    --latencies
  grep -vE "^$" "$out/million.txt" | tail -n 24
}

build
[ $# -eq 0 ] && set -- all
for what in "$@"; do
  if declare -F "run_$what" > /dev/null; then "run_$what"; else echo "gpu.sh: no target '$what'" >&2; fi
done

#!/bin/bash
# The GPU run (issue 3): on a machine with the NVIDIA OpenCL driver but no
# packages (the lent H100), bring the ICD loader and -dev packages from .debs/
# (see ../shared/device/opencl-on-gpu.sh), build with the OpenCL backend, run the
# whole suite on the GPU, the CLI twice (cold and warm kernel caches) and the
# benchmark (lcsm-bench). Logs go to $OUT (or ./gpu-out).
#   .ci/gpu.sh [test|cli|bench|paper|paper-long|paper64|paper128|lazy64|flash64|prof|final|paper16|peer16|clblast|peercheck|all]...   (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
source .debs/opencl-on-gpu.sh > "$out/clinfo.txt" 2>&1
# cJSON's CMake package names absolute /usr paths: point them into the sysroot.
sed -i "s|\"/usr/|\"$LCSM_SYSROOT/usr/|g" "$LCSM_SYSROOT"/usr/lib/x86_64-linux-gnu/cmake/cJSON/*.cmake
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
export LCSM_CACHE_DIR=$PWD/build-gpu/cache
build() {
  cmake -S . -B build-gpu -DLCSM_OPENCL=ON -DCMAKE_BUILD_TYPE=Release > "$out/configure.txt" 2>&1 &&
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
run_bench_quick() { # ~1 minute: part of `all`
  $B --backends opencl --models 768x12 --batches 1 --lens 4096 --algos lazy,flash --json "$out/bench-4k.json" |
    tee "$out/bench-4k.txt"
}
run_bench() { # lcsm-bench (bench/RESULTS.md, H100 tables): OpenCL against the PyTorch peer on CUDA
  for b in ${BENCH_BATCHES:-1 8}; do # ~6 minutes each: run one per device call (BENCH_BATCHES=1, then 8)
    $B --backends opencl --models 768x12 --batches $b --lens 4096,16384 --algos lazy,eager,flash --budget 180 \
      --peers torch:cuda --peer-timeout 240 --python "${BENCH_PYTHON:-/usr/bin/python3}" --latencies \
      --json "$out/bench-b$b.json" | tee "$out/bench-b$b.txt"
  done
}
run_paper() { # the Flash Inference paper's setting (bench/RESULTS.md): mixer split, then the two longest lengths
  $B --paper --paper-scale 4 --backends opencl --profile --json "$out/paper-mixer.json" | tee "$out/paper-mixer.txt"
}
run_paper_long() { # the preset's longest length, end to end (no budget: the static estimate would skip lazy)
  $B --paper --lens 131072 --budget 0 --backends opencl --json "$out/paper-long.json" | tee "$out/paper-long.txt"
}
run_lazy64() { # ~7 minutes on an H100: too long to share a 10-minute call with flash
  $B --backends opencl --models 768x12 --batches 8 --lens 65536 --algos lazy --budget 0 \
    --json "$out/lazy-64k.json" | tee "$out/lazy-64k.txt"
}
run_flash64() {
  $B --backends opencl --models 768x12 --batches 8 --lens 4096,65536 --algos flash \
    --json "$out/flash-64k.json" | tee "$out/flash-64k.txt"
}
run_prof() { # device time per kernel (LCSM_PROFILE=1) for the 768x12 model, B=1 L=4K and B=8 up to 16K of 64K
  [ -d "$out/m768" ] || ./build-gpu/tools/lcsm make-model "$out/m768" --d-model 768 --n-layer 12 --l-max 65536 > /dev/null
  LCSM_PROFILE=1 ./build-gpu/tools/lcsm generate --backend opencl -m "$out/m768" -n 4095 --max-len 4096 --temp 0 \
    > /dev/null 2> "$out/prof-b1-4k.txt"
  LCSM_PROFILE=1 ./build-gpu/tools/lcsm generate --backend opencl -m "$out/m768" -n 16384 --max-len 65536 --batch 8 \
    --temp 0 > /dev/null 2> "$out/prof-b8-64k.txt"
  for b in 1 8; do ./build-gpu/tools/lcsm generate --backend opencl -m "$out/m768" -n 4095 --max-len 4096 --batch $b \
    --temp 0 2>&1 >/dev/null | grep total; done
  tail -n 30 "$out"/prof-*.txt
}
run_lazy64cli() { # lazy at batch 8 to L = 64K (about 6 minutes)
  [ -d "$out/m768" ] || ./build-gpu/tools/lcsm make-model "$out/m768" --d-model 768 --n-layer 12 --l-max 65536 > /dev/null
  ./build-gpu/tools/lcsm generate --backend opencl -m "$out/m768" -n 65535 --max-len 65536 --batch 8 --algo lazy \
    --temp 0 2>&1 >/dev/null | grep -E "total|decode"
}
run_flash64cli() { # flash at batch 8 to L = 64K
  [ -d "$out/m768" ] || ./build-gpu/tools/lcsm make-model "$out/m768" --d-model 768 --n-layer 12 --l-max 65536 > /dev/null
  ./build-gpu/tools/lcsm generate --backend opencl -m "$out/m768" -n 65535 --max-len 65536 --batch 8 \
    --temp 0 2>&1 >/dev/null | grep -E "total|decode"
}
find_torch_python() { # the first python with torch and CUDA (the H100's /usr/bin/python3 has no torch)
  for p in ${BENCH_PYTHON:-} /opt/torch/.venv/bin/python3 python3 python /opt/conda/bin/python /usr/local/bin/python3 /usr/bin/python3; do
    command -v "$p" > /dev/null 2>&1 && "$p" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
      2> /dev/null && { command -v "$p"; return; }
  done
}
run_final() { # one device call: suite, start-up, peers' check on CUDA, batch 1 and 8 against the peers, paper shape
  timeout 240 bash -c "$(declare -f run_tests); out=$out; run_tests"
  run_cli
  PY=$(find_torch_python)
  echo "torch python: ${PY:-none} $($PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' 2>&1)"
  [ -n "$PY" ] && timeout 100 $PY bench/peers/check_peer.py --work /tmp/peer-check --device cuda \
    --lcsm build-gpu/tools/lcsm > "$out/check_peer.txt" 2>&1; echo "check_peer rc $?"; tail -n 5 "$out/check_peer.txt"
  timeout 200 $B --backends opencl --models 768x12 --batches 1,8 --lens 4096 --algos lazy,flash --budget 120 \
    ${PY:+--peers torch:cuda --python $PY --peer-timeout 60 --peer-algos lazy,flash} --latencies \
    --json "$out/bench-h100.json" > "$out/bench-h100.txt" 2>&1; cat "$out/bench-h100.txt"
  timeout 120 $B --paper --paper-scale 8 --backends opencl --profile --budget 60 --json "$out/paper.json" \
    > "$out/paper.txt" 2>&1; cat "$out/paper.txt"
}
run_paper16() { # the paper's shape at 16K (mixer split by kernel times) and 32K (end to end)
  timeout 200 $B --paper --lens 16384 --profile --budget 0 --backends opencl --json "$out/paper-16k.json" \
    > "$out/paper-16k.txt" 2>&1; cat "$out/paper-16k.txt"
  timeout 330 $B --paper --lens 32768 --budget 0 --backends opencl --json "$out/paper-32k.json" \
    > "$out/paper-32k.txt" 2>&1; cat "$out/paper-32k.txt"
}
run_clblast() { # our projections against CLBlast's SGEMV / SGEMM (needs the libclblast .debs in .debs/)
  ./build-gpu/bench/lcsm-gemv-vs-clblast --d-model 768 | tee "$out/gemv-vs-clblast.txt"
}
run_paper64() { # the paper's shape at 2^16, flash and lazy end to end
  timeout 420 $B --paper --lens 65536 --budget 0 --backends opencl --json "$out/paper-64k.json" \
    > "$out/paper-64k.txt" 2>&1; cat "$out/paper-64k.txt"
}
run_paper128() { # the paper's shape at 2^17, one algorithm per call (PAPER_ALGO: flash or lazy)
  timeout 590 $B --paper --lens 131072 --algos ${PAPER_ALGO:-flash} --budget 0 --backends opencl \
    --json "$out/paper-128k-${PAPER_ALGO:-flash}.json" > "$out/paper-128k-${PAPER_ALGO:-flash}.txt" 2>&1
  cat "$out/paper-128k-${PAPER_ALGO:-flash}.txt"
}
run_peer16() { # 16K cells against the PyTorch peer on CUDA, batch 1 and 8, in one call
  PY=$(find_torch_python)
  timeout 560 $B --backends opencl --models 768x12 --batches 1,8 --lens 16384 --algos lazy,flash --budget 200 \
    ${PY:+--peers torch:cuda --python $PY --peer-timeout 200 --peer-algos lazy,flash} --latencies \
    --json "$out/bench-16k.json" > "$out/bench-16k.txt" 2>&1; cat "$out/bench-16k.txt"
}
run_peercheck() { # the peer against lcsm and the reference on CUDA, CUDA graphs included
  PY=$(find_torch_python)
  echo "torch python: ${PY:-none}"
  [ -n "$PY" ] && timeout 150 $PY bench/peers/check_peer.py --work /tmp/peer-check --device cuda \
    --lcsm build-gpu/tools/lcsm > "$out/check_peer.txt" 2>&1; echo "check_peer rc $?"; grep -c "^ok" "$out/check_peer.txt"
  grep -v "^ok" "$out/check_peer.txt" | tail -n 8
}
build
[ $# -eq 0 ] && set -- all
for what in "$@"; do
  case $what in
    test) run_tests ;;
    cli) run_cli ;;
    bench) run_bench ;;
    paper) run_paper ;;
    paper-long) run_paper_long ;;
    lazy64) run_lazy64 ;;
    flash64) run_flash64 ;;
    prof) run_prof ;;
    flash64cli) run_flash64cli ;;
    lazy64cli) run_lazy64cli ;;
    final) run_final ;;
    paper16) run_paper16 ;;
    clblast) run_clblast ;;
    paper64) run_paper64 ;;
    peercheck) run_peercheck ;;
    paper128) run_paper128 ;;
    peer16) run_peer16 ;;
    all) run_tests; run_cli; run_bench_quick ;;
  esac
done

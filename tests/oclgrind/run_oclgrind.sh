#!/bin/bash
# Our OpenCL kernels under Oclgrind, the OpenCL device simulator that checks
# every memory access against its buffer (and local memory) and, with
# --data-races, every pair of accesses of a launch; --check-api reports
# OpenCL API misuse. Runs, each a separate Oclgrind process:
#   1-3. lcsm generate on a tiny model (2 layers, D 8, l_max 64, FFT tiles from
#        size 4, a 20-token prompt through the FFT prefill): flash greedy, lazy
#        at batch 3 with top-k sampling on the device, eager at batch 2;
#   4.   test_parity (LCSM_TEST_QUICK): the parallel forward and every algorithm
#        against the CPU, also with a 16-point FFT cap (the blocked path);
#   5-6. test_dense and test_conv (LCSM_TEST_QUICK): every projection and
#        convolution kernel path on small shapes.
# Any error Oclgrind reports in one of our kernels, any API error, or a run
# that fails, fails the test. Errors inside VkFFT's generated kernels (named
# VkFFT_*) are not ours: they are counted and printed, never a failure.
# (--uninitialized is not used: Oclgrind 21.10's plugin stops with "Unsupported
# instruction: freeze" on our kernels, and flags buffers zeroed by
# clEnqueueFillBuffer.)
#
#   tests/oclgrind/run_oclgrind.sh BUILD_DIR
#
# Exit 77 (skip) without oclgrind (Debian: apt-get install oclgrind;
# tools/setup-debian.sh --tests installs it).
set -u
build=${1:?usage: run_oclgrind.sh BUILD_DIR}
command -v oclgrind >/dev/null || { echo "SKIP: oclgrind not installed"; exit 77; }
lcsm="$build/tools/lcsm"
work=$(mktemp -d "${TMPDIR:-/tmp}/lcsm_oclgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Kernels built from source (a fresh cache): Oclgrind then shows source lines.
export LCSM_CACHE_DIR="$work/cache" OPENBLAS_NUM_THREADS=1 LCSM_TEST_QUICK=1 LCSM_TEST_BACKENDS=opencl
unset LCSM_DEVICE # Oclgrind is the only platform its processes see
fail=0 ours=0 vkfft=0 t_all=$SECONDS

"$lcsm" make-model "$work/tiny" --d-model 8 --n-layer 2 --l-max 64 >/dev/null || { echo "FAIL make-model"; exit 1; }

# check NAME LOG: Oclgrind's messages in LOG, by kernel.
check() {
  local name=$1 log=$2
  # A message: a line at column 0, then tab-indented lines, one of them
  # "Kernel: NAME" (none for an API error). Prints "KERNEL<TAB>first line".
  awk '
    /^[^ \t]/ { if (msg != "") print (kern == "" ? "-" : kern) "\t" msg; msg = $0; kern = "" ; next }
    /^\tKernel: / { sub(/^\tKernel: /, ""); kern = $0 }
    END { if (msg != "") print (kern == "" ? "-" : kern) "\t" msg }
  ' "$log" | grep -v $'\tOclgrind: [0-9]* errors generated' >"$work/msgs" || true
  local n_ours n_vk
  n_vk=$(grep -c '^VkFFT' "$work/msgs")
  n_ours=$(grep -vc '^VkFFT' "$work/msgs")
  vkfft=$((vkfft + n_vk))
  ours=$((ours + n_ours))
  if [ "$n_ours" -gt 0 ]; then
    echo "FAIL $name: $n_ours Oclgrind messages in our kernels or the API:"
    grep -v '^VkFFT' "$work/msgs" | sort | uniq -c | sort -rn | head -20 | sed 's/^/    /'
    echo "    (full log:)"
    grep -v '^$' "$log" | head -60 | sed 's/^/    /'
    fail=1
  fi
  [ "$n_vk" -gt 0 ] && echo "     $name: $n_vk messages inside VkFFT's kernels (not ours, not counted)"
  return 0
}

# run NAME CMD...: CMD under Oclgrind; it must succeed and its log be clean.
run() {
  local name=$1 t0=$SECONDS was=$fail
  shift
  fail=0
  oclgrind --data-races --check-api --max-errors 200 --log "$work/$name.log" "$@" >"$work/$name.out" 2>&1
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $name: exit $rc: $*"
    tail -20 "$work/$name.out" | sed 's/^/    /'
    fail=1
  fi
  touch "$work/$name.log"
  check "$name" "$work/$name.log"
  [ "$fail" -eq 0 ] && echo "ok   $name ($((SECONDS - t0)) s)"
  fail=$((fail | was))
}

prompt=ACGTACGTACGTACGTACGT
LCSM_FFT_THRESHOLD=4 run generate_flash "$lcsm" generate -m "$work/tiny" -p $prompt -n 24 --temp 0 --backend opencl
LCSM_FFT_THRESHOLD=4 run generate_lazy "$lcsm" generate -m "$work/tiny" -p $prompt -n 12 --batch 3 --algo lazy \
  --top-k 3 --seed 5 --backend opencl
LCSM_FFT_THRESHOLD=4 run generate_eager "$lcsm" generate -m "$work/tiny" -p ACGT -n 12 --batch 2 --algo eager \
  --backend opencl
run test_parity "$build/tests/test_parity"
run test_dense "$build/tests/test_dense"
run test_conv "$build/tests/test_conv"

echo "oclgrind: $((SECONDS - t_all)) s; $ours messages in our kernels or the API, $vkfft inside VkFFT's kernels" \
  "(excluded); $([ $fail -eq 0 ] && echo passed || echo FAILED)"
exit $fail

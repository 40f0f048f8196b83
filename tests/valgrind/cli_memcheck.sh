#!/bin/sh
# The lcsm CLI under valgrind memcheck: every run must be free of memory errors
# and of definite or indirect leaks. Runs: generate with the built-in model and
# each algorithm, a batch, info, make-model + generate -m DIR, and the error
# paths of a missing model directory, a corrupt config.json, a truncated
# safetensors file and bad arguments (each must end in the CLI's own exit code,
# 1 or 2, with valgrind clean).
#
#   tests/valgrind/cli_memcheck.sh BUILD/tools/lcsm [WORKDIR]
#
# Needs valgrind (tools/setup-debian.sh --tests installs it). CTest runs it as
# `cli_memcheck` (label valgrind) when configured with -DLCSM_VALGRIND=ON; the
# `valgrind` preset does that. Only the CPU backend: PoCL's and the OpenCL ICD
# loader's own allocations are not ours to judge.
#
# Suppressions (valgrind.supp) are for third-party libraries only, each with its
# reason. Whatever a run reports is printed in full.
set -eu
lcsm=${1:?usage: cli_memcheck.sh LCSM_BINARY [WORKDIR]}
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/lcsm_memcheck.XXXXXX")}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
# FFTW wisdom of the first run is reused by the others (start-up under valgrind
# is mostly FFTW planning otherwise); the cache itself is exercised that way.
export LCSM_CACHE_DIR="$work/cache"
export LCSM_BACKEND=cpu
# Without it the CLI sets it and executes itself again (tools/lcsm.c), and
# valgrind does not follow an exec: the runs would go unchecked.
export OPENBLAS_NUM_THREADS=1
VG_ERR=99 # valgrind's exit code when it found something; the CLI uses 0, 1 and 2
vg="valgrind --quiet --error-exitcode=$VG_ERR --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --num-callers=30 --suppressions=$here/valgrind.supp"

runs=0
failed=0
# run EXPECTED_EXIT NAME ARGS...: the CLI under memcheck, its exit code checked.
run() {
  want=$1
  name=$2
  shift 2
  runs=$((runs + 1))
  t0=$(date +%s)
  # shellcheck disable=SC2086
  set +e
  $vg "$lcsm" "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  set -e
  t1=$(date +%s)
  if [ "$rc" -eq "$want" ]; then
    echo "ok    $name ($((t1 - t0)) s): lcsm $*"
  else
    failed=$((failed + 1))
    if [ "$rc" -eq "$VG_ERR" ]; then
      echo "FAIL  $name: valgrind found errors or leaks: lcsm $*"
    else
      echo "FAIL  $name: exit $rc, want $want: lcsm $*"
    fi
    sed 's/^/      /' "$work/$name.err"
  fi
}

run 0 generate_flash generate -n 64 --seed 1
run 0 generate_lazy generate -n 64 --algo lazy --seed 2
run 0 generate_eager generate -n 32 --algo eager --batch 2 -p ACGTACGT --seed 3
run 0 info info
run 0 make_model make-model "$work/model" --d-model 32 --n-layer 2 --l-max 512 --seed 4
run 0 generate_dir generate -m "$work/model" -n 48 -p GATTACA --batch 3 --top-k 3 --temp 0.8
run 0 info_dir info -m "$work/model"
# Error paths: the message, exit 1, nothing leaked on the way out.
run 1 missing_dir generate -m "$work/no-such-model"
mkdir -p "$work/bad_config"
cp "$work/model/model.safetensors" "$work/bad_config/"
printf '{"d_model": 32, "n_layer": ' >"$work/bad_config/config.json"
run 1 bad_config generate -m "$work/bad_config"
mkdir -p "$work/truncated"
cp "$work/model/config.json" "$work/truncated/"
size=$(wc -c <"$work/model/model.safetensors")
head -c $((size - 64)) "$work/model/model.safetensors" >"$work/truncated/model.safetensors" # header intact, data short
run 1 truncated_weights info -m "$work/truncated"
run 2 bad_argument generate -n -5
run 2 unknown_command frobnicate

echo "cli_memcheck: $runs runs, $failed failed (logs in $work)"
[ "$failed" -eq 0 ]

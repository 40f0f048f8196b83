#!/bin/bash
# The CLI under real memory limits: `ulimit -v` (address space) at several
# levels, each command under a time limit. Every run must end within the limit
# in success (exit 0) or a clean error (exit 1 with "out of memory" in its
# message); a hang (the time limit), a signal or any other exit status fails.
# The highest level must succeed, so the test cannot pass by failing everything.
#
#   tests/cli_ulimit.sh BUILD/tools/lcsm [LEVELS_MIB...]
#
# Levels default to $LCSM_ULIMIT_LEVELS, else "100 150 200 250 300 350 400 450
# 500 600 800 1200" (MiB). LCSM_ULIMIT_TIMEOUT: seconds per run (default 60; a
# run takes well under a second, a hang forever). The CPU backend only: PoCL
# itself aborts when a lazily made buffer cannot be allocated (an assertion in
# pocl_create_migration_commands, PoCL 3.1).
#
# Before the fix (cpu/cpu_blas.c, tools/lcsm.c), most levels between 100 and
# 500 MiB hung: OpenBLAS retried a failed 128 MiB work-buffer allocation
# forever, inside a projection or in its worker thread, which exit() waited for.
#
# On a machine with many processors OpenBLAS's own initialisation, which runs
# when the library is loaded and so before main() (where the CLI keeps OpenBLAS
# single-threaded), starts a thread per processor and aborts when the limit
# leaves no room for their stacks (seen on a 16-core host at 100..800 MiB).
# That is not lcsm's to catch; the runs here set OPENBLAS_NUM_THREADS=1, as the
# README asks of programs that run under tight limits.
set -u
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
exe=${1:?usage: cli_ulimit.sh LCSM_EXE [LEVELS_MIB...]}
shift
levels=${*:-${LCSM_ULIMIT_LEVELS:-100 150 200 250 300 350 400 450 500 600 800 1200}}
limit_s=${LCSM_ULIMIT_TIMEOUT:-60}
work=$(mktemp -d "${TMPDIR:-/tmp}/lcsm_cli_ulimit.XXXXXX")
trap 'rm -rf "$work"' EXIT

commands=(
  "generate -n 64"
  "generate -n 32 --algo lazy --batch 2 -p ACGTACGTACGTACGT"
  "info"
)
fail=0 runs=0 ok=0 oom=0 top_ok=1
top=$(for l in $levels; do echo "$l"; done | sort -n | tail -1)
t0=$SECONDS
for mib in $levels; do
  for cmd in "${commands[@]}"; do
    runs=$((runs + 1))
    # shellcheck disable=SC2086
    (ulimit -v $((mib * 1024)) && exec timeout -s KILL "$limit_s" "$exe" $cmd) >"$work/out" 2>"$work/err"
    rc=$?
    what="ulimit -v ${mib} MiB: lcsm $cmd"
    if [ "$rc" -eq 0 ]; then
      ok=$((ok + 1))
    elif [ "$rc" -eq 1 ] && grep -q "out of memory" "$work/err"; then
      oom=$((oom + 1))
    else
      if [ "$rc" -eq 137 ]; then
        echo "FAIL $what: still running after ${limit_s} s (a hang), killed"
      elif [ "$rc" -gt 128 ]; then
        echo "FAIL $what: killed by signal $((rc - 128))"
      elif [ "$rc" -eq 1 ]; then
        echo "FAIL $what: exit 1 without an out-of-memory message"
      else
        echo "FAIL $what: exit status $rc"
      fi
      sed 's/^/    /' "$work/err" | tail -5
      fail=1
    fi
    if [ "$rc" -ne 0 ] && [ "$mib" = "$top" ]; then top_ok=0; fi
    printf '%5s MiB  exit %3s  %s\n' "$mib" "$rc" "$cmd"
  done
done
if [ "$top_ok" -ne 1 ]; then
  echo "FAIL the highest level ($top MiB) did not succeed for every command"
  fail=1
fi
echo "cli_ulimit: $runs runs in $((SECONDS - t0)) s: $ok succeeded, $oom out of memory (clean), $([ $fail -eq 0 ] && echo 'no hang, signal or other status' || echo FAILED)"
exit $fail

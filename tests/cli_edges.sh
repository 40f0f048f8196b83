#!/bin/bash
# Edges of the lcsm CLI (tools/lcsm.c):
#  - `generate -n 16384` on the built-in model (l_max 16384) works: the session
#    is what lcsm_generate needs, prompt + N - 1 positions (the last sampled
#    token is not fed back); -n 16385 is refused as too long (exit 1);
#  - empty strings where a directory or a name is meant (-m "", --backend "",
#    make-model "") are usage errors (exit 2), not a lookup of /config.json;
#  - make-model into a directory whose file names do not fit a path fails with
#    "path too long" and writes nothing (it used to report success).
#
#   tests/cli_edges.sh BUILD/tools/lcsm
set -u
exe=${1:?usage: cli_edges.sh LCSM_EXE}
work=$(mktemp -d "${TMPDIR:-/tmp}/lcsm_cli_edges.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail=0 checks=0

# expect WANT_RC NAME ARGS...: runs the CLI, checks its exit status.
expect() {
  local want=$1 name=$2
  shift 2
  checks=$((checks + 1))
  "$exe" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, want $want: lcsm $*"
    sed 's/^/    /' "$work/$name.err" | head -5
    fail=1
    return 1
  fi
  echo "ok   $name: lcsm $*"
}
# grep_in NAME FILE PATTERN: the named run's stdout/stderr matches.
grep_in() {
  checks=$((checks + 1))
  if ! grep -q -- "$3" "$work/$1.$2"; then
    echo "FAIL $1: $2 does not contain '$3'"
    sed 's/^/    /' "$work/$1.$2" | head -5
    fail=1
  fi
}
no_grep_in() {
  checks=$((checks + 1))
  if grep -q -- "$3" "$work/$1.$2"; then
    echo "FAIL $1: $2 contains '$3'"
    fail=1
  fi
}

# The whole l_max: 1 prompt token ([CLS]) + 16384 new, 16384 positions.
if expect 0 full_lmax generate -n 16384 --temp 0; then
  grep_in full_lmax err "max_len 16384"
  len=$(tr -d '\n' <"$work/full_lmax.out" | wc -c)
  checks=$((checks + 1))
  if [ "$len" -ne 16384 ]; then echo "FAIL full_lmax: $len letters, want 16384"; fail=1; fi
fi
expect 1 past_lmax generate -n 16385 && grep_in past_lmax err "too long"
expect 0 prompt_len generate -p ACGTACGT -n 9 --temp 0 && grep_in prompt_len err "max_len 16"
expect 0 no_new_tokens generate -p ACGT -n 0 && grep_in no_new_tokens err "max_len 4"

# Empty strings.
expect 2 empty_model generate -m "" && grep_in empty_model err "\-\-model" && no_grep_in empty_model err "/config.json"
expect 2 empty_model_info info -m ""
expect 2 empty_model_eq generate --model=
expect 2 empty_backend generate --backend ""
expect 2 empty_dir make-model ""
expect 0 empty_prompt generate -p "" -n 4 # documented: the single token [CLS]

# make-model into a directory of 4080 bytes: config.json would fit below 4096
# bytes, model.safetensors not.
deep="$work/deep"
mkdir "$deep"
seg=$(printf 'd%.0s' $(seq 200))
while [ $((${#deep} + 201)) -le 4080 ]; do deep="$deep/$seg"; mkdir "$deep"; done
last=$((4080 - ${#deep} - 1))
deep="$deep/$(printf 'e%.0s' $(seq "$last"))"
mkdir "$deep"
checks=$((checks + 1))
[ "${#deep}" -eq 4080 ] || { echo "FAIL the deep directory has ${#deep} bytes, want 4080"; fail=1; }
expect 1 long_dir make-model "$deep" --d-model 8 --l-max 16 && grep_in long_dir err "path too long"
checks=$((checks + 1))
if [ -n "$(ls -A "$deep")" ]; then echo "FAIL long_dir: make-model wrote $(ls "$deep")"; fail=1; fi
expect 1 long_dir_load generate -m "$deep" -n 2 && grep_in long_dir_load err "path too long"

echo "cli_edges: $checks checks, $([ $fail -eq 0 ] && echo 'all passed' || echo FAILED)"
exit $fail

#!/bin/sh
# CTest driver of the Python binding's tests:
#   run_pytest.sh PYTHON SOURCE_DIR LIBRARY [CLI]
# Runs `PYTHON -m pytest python/tests` from SOURCE_DIR against the build tree's
# LIBRARY (LCSM_LIBRARY) and the package sources in python/ (PYTHONPATH), with
# the CLI for the comparison tests. Exit 77 (skip) when pytest or numpy is missing.
py=$1 src=$2 lib=$3 cli=${4:-}
"$py" -c 'import pytest, numpy' 2>/dev/null || {
  echo "SKIP: $py lacks pytest or numpy (apt-get install python3-pytest python3-numpy)"
  exit 77
}
cd "$src" || exit 1
export LCSM_LIBRARY="$lib" PYTHONPATH="$src/python${PYTHONPATH:+:$PYTHONPATH}"
[ -n "$cli" ] && export LCSM_CLI="$cli"
exec "$py" -m pytest -q -rs python/tests

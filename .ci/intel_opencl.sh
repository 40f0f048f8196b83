#!/bin/bash
# The OpenCL tests on a third OpenCL implementation: Intel's OpenCL CPU runtime
# from PyPI (intel-opencl-rt with intel-cmplr-lib-rt), next to PoCL.
#
#   .ci/intel_opencl.sh [BUILD_DIR]      (default build; a configured, built tree)
#
# The runtime goes into a virtual environment under BUILD_DIR (pip; about 300 MB
# downloaded, 830 MB installed); an ICD directory under BUILD_DIR names only its
# libintelocl.so, and OCL_ICD_VENDORS points the system's ICD loader (ocl-icd)
# at it, so that every test, also test_cl_fft and test_cl_cache (which take the
# first platform), runs on Intel's runtime; the plain step ran them on PoCL. The wheel's own libOpenCL.so (Intel's ICD loader)
# stays off the library path: libintelocl.so finds its dependencies through its
# RUNPATH ($ORIGIN), so LD_LIBRARY_PATH is not touched. LCSM_DEVICE=intel asks
# for the Intel device by name; a check first makes sure it is the one that
# runs (a missing device would otherwise make the tests skip).
#
# Tests: the OpenCL suite (*.opencl), test_parity, test_sample, test_cl_fft,
# test_cl_cache; not the failure-injection tests (test_alloc_fail.opencl,
# test_dev_alloc_fail: they check lcsm's own error paths, which PoCL covers, and
# take 6.5 min on this runtime). LCSM_INTEL_OCL_VERSION overrides the pinned
# version (the one last checked here).
set -euo pipefail
build=${1:-build}
version=${LCSM_INTEL_OCL_VERSION:-2026.2.0}
venv="$build/intel-opencl-venv"
vendors="$build/intel-opencl-vendors"
if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "intel-opencl-rt==$version" "intel-cmplr-lib-rt==$version"
lib=$(find "$(cd "$venv" && pwd)" -name libintelocl.so -print -quit)
if [ -z "$lib" ]; then
  echo "intel_opencl: libintelocl.so not found in $venv" >&2
  exit 1
fi
rm -rf "$vendors"
mkdir -p "$vendors"
echo "$lib" >"$vendors/intel-cpu.icd"
export OCL_ICD_VENDORS="$(cd "$vendors" && pwd)"
export LCSM_DEVICE=intel
export LCSM_CACHE_DIR="$build/cache" # as the tests have it: nothing written to $HOME
"$build/tools/lcsm" devices --backend opencl
if ! "$build/tools/lcsm" generate -n 16 --backend opencl >/dev/null 2>"$build/intel-opencl-check.err" ||
  ! grep -q "Intel(R) OpenCL" "$build/intel-opencl-check.err"; then
  echo "intel_opencl: the Intel OpenCL device does not run lcsm:" >&2
  cat "$build/intel-opencl-check.err" >&2
  exit 1
fi
grep "backend" "$build/intel-opencl-check.err"
ctest --test-dir "$build" --output-on-failure -R '\.opencl$|^test_parity$|^test_sample$|^test_cl_fft$|^test_cl_cache$' \
  -E '^test_alloc_fail\.opencl$'

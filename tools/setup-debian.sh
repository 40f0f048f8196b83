#!/bin/sh
# Installs what lcsm needs on Debian 12 (bookworm) or a derivative.
#   tools/setup-debian.sh           build dependencies
#   tools/setup-debian.sh --tests   plus what the tests need (PyTorch for the
#                                   reference model, pytest, numpy and venv for
#                                   the Python binding, PoCL for OpenCL on the CPU,
#                                   Clang with libFuzzer for the fuzz preset,
#                                   valgrind for the valgrind preset, Oclgrind
#                                   for the oclgrind test, python3-venv for the
#                                   Intel OpenCL runtime of .ci/run)
# Runs apt-get as root, through sudo when not root. Safe to run again.
set -eu
pkgs="build-essential cmake pkg-config libfftw3-dev libopenblas-dev libcjson-dev
      ocl-icd-opencl-dev opencl-headers libvkfft-dev"
if [ "${1:-}" = "--tests" ]; then
  pkgs="$pkgs python3 python3-torch python3-numpy python3-pytest python3-venv pocl-opencl-icd clang libclang-rt-dev valgrind oclgrind"
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
echo "setup-debian: installed $(echo $pkgs | wc -w) packages"

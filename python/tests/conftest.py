"""Shared fixtures of the Python binding's tests.

Run against a build tree:      LCSM_LIBRARY=build/liblcsm.so PYTHONPATH=python python3 -m pytest python/tests
Run against the installed package (pip install ".[test]"):   python -m pytest python/tests

Environment:
  LCSM_LIBRARY       the liblcsm.so to test (else the installed package's copy)
  LCSM_CLI           the lcsm command-line tool (else build/tools/lcsm when it exists)
  LCSM_TORCH_PYTHON  a python with torch for the PyTorch reference (else this one, else /usr/bin/python3)
  LCSM_EXPECT_INSTALLED=1  also check that lcsm and its library come from an installed package

Comparisons with another process (the CLI, the C probe) must be bitwise, so the
FFT work has to be planned the same way in both. lcsm.h: the CPU backend's
results are reproducible for the same options, threads and FFT threshold, and
a fixed threshold with LCSM_FFTW_EFFORT=estimate makes them bitwise repeatable
(a measured threshold or measured plans may differ by a few ulps); so the suite
fixes the threshold and asks FFTW for estimated plans, unless the environment
already says otherwise.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("LCSM_FFT_THRESHOLD", "32")
os.environ.setdefault("LCSM_FFTW_EFFORT", "estimate")
if "LCSM_CACHE_DIR" not in os.environ:
    os.environ["LCSM_CACHE_DIR"] = tempfile.mkdtemp(prefix="lcsm-pytest-cache-")
    atexit.register(shutil.rmtree, os.environ["LCSM_CACHE_DIR"], True)

import numpy as np  # noqa: E402

import lcsm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
THRESHOLD = int(os.environ["LCSM_FFT_THRESHOLD"])


def pytest_report_header(config):
    return [
        "lcsm %s (package %s) from %s" % (lcsm.version(), lcsm.__version__, os.path.dirname(lcsm.__file__)),
        "library %s; backends %s" % (lcsm.library_path, ", ".join(lcsm.backends())),
    ]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def model():
    """The built-in default model (D 128, 2 layers, l_max 16384) on the CPU."""
    with lcsm.Model.default() as m:
        yield m


@pytest.fixture(scope="session")
def small():
    """A small random model (D 32, 2 layers, l_max 256) on the CPU, fast for many calls."""
    with lcsm.Model.random(seed=7, d_model=32, n_layer=2, l_max=256) as m:
        yield m


@pytest.fixture(scope="session")
def small_dir(small, tmp_path_factory):
    """The small model saved to a directory."""
    d = tmp_path_factory.mktemp("small_model")
    small.save(d)
    return str(d)


# A small model of the long-convolution family, smoothing on (Model.random's JSON path).
LONGCONV_SHAPE = dict(d_model=32, n_layer=2, l_max=256, layer=dict(lam=0.01, use_ma_smoothing=True, ma_window_len=5))


@pytest.fixture(scope="session")
def longconv():
    """A small random long-convolution model (D 32, 2 layers, l_max 256) on the CPU."""
    with lcsm.Model.random("longconv", seed=11, **LONGCONV_SHAPE) as m:
        yield m


@pytest.fixture(scope="session")
def longconv_dir(longconv, tmp_path_factory):
    """The small long-convolution model saved to a directory."""
    d = tmp_path_factory.mktemp("longconv_model")
    longconv.save(d)
    return str(d)


@pytest.fixture(scope="session")
def cli():
    named = os.environ.get("LCSM_CLI")
    path = named or os.path.join(ROOT, "build", "tools", "lcsm")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        if named:  # asked for by name: its absence is an error, not a skip
            pytest.fail("LCSM_CLI=%s is not an executable" % named)
        pytest.skip("no lcsm CLI (build it, or set LCSM_CLI): %s" % path)
    return path


@pytest.fixture(scope="session")
def probe(tmp_path_factory):
    """tests/c/lcsm_probe.c compiled against the liblcsm.so this binding loaded.

    Links through a symlink named after the library's soname in a private
    directory, so the probe runs the very file the binding loaded."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    header = os.path.join(ROOT, "include", "lcsm.h")
    if not cc or not os.path.isfile(header):
        pytest.skip("no C compiler or no include/lcsm.h to build the probe")
    d = tmp_path_factory.mktemp("probe")
    lib = os.path.realpath(lcsm.library_path)
    for name in ("liblcsm.so", "liblcsm.so.0"):
        os.symlink(lib, d / name)
    exe = str(d / "lcsm_probe")
    cmd = [cc, "-std=c11", "-O1", "-o", exe, os.path.join(HERE, "c", "lcsm_probe.c"), "-I", os.path.dirname(header),
           "-L", str(d), "-llcsm", "-Wl,-rpath," + str(d)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        pytest.fail("building the probe failed:\n%s\n%s" % (" ".join(cmd), r.stderr))
    return exe


def run_probe(exe, *args) -> str:
    r = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode:
        raise AssertionError("lcsm_probe %s failed: %s" % (args[:1], r.stderr))
    return r.stdout


def probe_floats(exe, *args) -> np.ndarray:
    words = run_probe(exe, *args).split()
    return np.array([int(w, 16) for w in words], dtype=np.uint32).view(np.float32)


def rel_err(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def torch_python():
    """A python interpreter that has torch, or None."""
    cands = [os.environ.get("LCSM_TORCH_PYTHON"), sys.executable, "/usr/bin/python3"]
    for py in cands:
        if py and os.path.exists(py):
            r = subprocess.run([py, "-c", "import torch, numpy"], capture_output=True)
            if r.returncode == 0:
                return py
    return None

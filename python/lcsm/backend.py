"""Backends (compute devices) and device listing."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from . import _capi
from ._handle import Handle
from .errors import InvalidArgumentError, check


def backends() -> list:
    """Names of the backends compiled into the loaded library (lcsm_backend_available),
    e.g. ``["cpu", "opencl"]``.

    A name in the list may still find no device on this machine (see :func:`devices`).
    """
    out = []
    while True:
        p = _capi.lcsm_backend_available(len(out))
        if not p:
            return out
        out.append(_capi.text(p))


@dataclass(frozen=True)
class Device:
    """One device of a backend (lcsm_device_info). `index` (or "platform:device")
    is what the `device` arguments accept."""

    index: int
    platform: int
    device: int
    platform_name: str
    name: str
    type: str
    version: str
    driver: str
    global_mem_bytes: int
    compute_units: int
    max_clock_mhz: int


def devices(backend: str = "opencl") -> list:
    """The devices backend `backend` can run on (lcsm_list_devices), as :class:`Device` objects.

    Raises :class:`lcsm.NoBackendError` when the backend is not compiled in or
    finds no platform.
    """
    n = ctypes.c_int(0)
    name = backend.encode()
    check(_capi.lcsm_list_devices(name, None, 0, ctypes.byref(n)))
    while True:
        cap = max(n.value, 1)
        arr = (_capi.DeviceInfo * cap)()
        check(_capi.lcsm_list_devices(name, arr, cap, ctypes.byref(n)))
        if n.value <= cap:
            break
    out = []
    for d in arr[: n.value]:
        out.append(
            Device(
                index=d.index,
                platform=d.platform,
                device=d.device,
                platform_name=d.platform_name.decode("utf-8", "replace"),
                name=d.name.decode("utf-8", "replace"),
                type=d.type.decode("utf-8", "replace"),
                version=d.version.decode("utf-8", "replace"),
                driver=d.driver.decode("utf-8", "replace"),
                global_mem_bytes=d.global_mem_bytes,
                compute_units=d.compute_units,
                max_clock_mhz=d.max_clock_mhz,
            )
        )
    return out


@dataclass(frozen=True)
class BackendStats:
    """Start-up costs and device memory of a backend (lcsm_backend_stats)."""

    kernel_build_s: float
    kernels_from_cache: bool
    plan_s: float
    device_bytes_live: int
    device_bytes_peak: int


class Backend(Handle):
    """A compute backend: ``"cpu"`` (always there) or ``"opencl"`` (when compiled in).

    Args:
        name: backend name.
        device: device of a GPU backend (index, "platform:device" or a
            case-insensitive part of the name); None = $LCSM_DEVICE, else the first GPU.
        threads: worker threads of the CPU backend; 0 = one per processor.
        fft_threshold: tile size from which tiles use FFTs (a power of two >= 2);
            0 = measure at start ($LCSM_FFT_THRESHOLD if set).
        cache_dir: FFTW wisdom / kernel binaries; None = $LCSM_CACHE_DIR or
            ~/.cache/lcsm; "" disables caching.
        profile: time every kernel on the device (see :meth:`profile`).

    Results of the CPU backend are reproducible run to run for the same
    options, thread count and FFT threshold; a measured threshold
    (fft_threshold 0) or measured FFTW plans may move the logits by a few ulps
    between runs, so a fixed `fft_threshold` with the environment variable
    LCSM_FFTW_EFFORT=estimate makes them bitwise repeatable (lcsm.h).

    Models keep their backend alive; closing a backend closes its models (and
    their sessions) first. Several models and sessions may use one backend from
    several threads.
    """

    _kind = "backend"

    def __init__(self, name: str = "cpu", *, device=None, threads: int = 0, fft_threshold: int = 0,
                 cache_dir=None, profile: bool = False):
        super().__init__()
        if not isinstance(name, str):
            raise TypeError("backend name must be a str")
        opt = _capi.BackendOptions()
        _capi.lcsm_backend_options_default(ctypes.byref(opt))
        opt.n_threads = int(threads)
        opt.fft_threshold = int(fft_threshold)
        # lcsm.h: the option strings are read during lcsm_backend_create only (the
        # backend keeps no pointer to them); these locals hold them until it returns.
        cache_raw = os.fsencode(cache_dir) if cache_dir is not None else None
        device_raw = str(device).encode() if device is not None else None
        opt.cache_dir = cache_raw
        opt.device = device_raw
        opt.profile = 1 if profile else 0
        out = _capi.handle()
        check(_capi.lcsm_backend_create(name.encode(), ctypes.byref(opt), ctypes.byref(out)))
        self._set(out.value)

    def _destroy(self, ptr) -> None:
        _capi.lcsm_backend_destroy(ptr)

    def _message(self) -> str:
        p = self._ptr
        return _capi.text(_capi.lcsm_backend_last_error(p)) if p else ""

    @property
    def name(self) -> str:
        """The backend's name ("cpu", "opencl")."""
        with self.use() as p:
            return _capi.text(_capi.lcsm_backend_name(p))

    @property
    def description(self) -> str:
        """One line describing the device."""
        with self.use() as p:
            return _capi.text(_capi.lcsm_backend_description(p))

    @property
    def fft_threshold(self) -> int:
        """The FFT threshold in effect (measured or given)."""
        with self.use() as p:
            return _capi.lcsm_backend_fft_threshold(p)

    @property
    def stats(self) -> BackendStats:
        """Start-up costs so far and device memory held (lcsm_backend_get_stats)."""
        s = _capi.BackendStats()
        with self.use() as p:
            check(_capi.lcsm_backend_get_stats(p, ctypes.byref(s)), self._message)
        return BackendStats(s.kernel_build_s, bool(s.kernels_from_cache), s.plan_s, s.device_bytes_live,
                            s.device_bytes_peak)

    def profile(self, reset: bool = False) -> list:
        """Device time per kernel, most expensive first: a list of (name, calls, seconds).

        Needs a backend created with ``profile=True`` (or LCSM_PROFILE=1) on a
        device backend; raises :class:`lcsm.UnsupportedError` otherwise.
        """
        n = ctypes.c_int(0)
        with self.use() as p:
            check(_capi.lcsm_backend_get_profile(p, None, 0, ctypes.byref(n), 0), self._message)
            cap = max(n.value, 1)
            arr = (_capi.ProfileEntry * cap)()
            check(_capi.lcsm_backend_get_profile(p, arr, cap, ctypes.byref(n), 1 if reset else 0), self._message)
        return [(_capi.text(e.name), e.calls, e.seconds) for e in arr[: min(n.value, cap)]]

    def __repr__(self) -> str:
        if self.closed:
            return "<lcsm.Backend closed>"
        return "<lcsm.Backend %s: %s>" % (self.name, self.description)


def resolve(backend, device, threads, owner: str):
    """(Backend, owned) for a backend argument: a name opens a new one (owned)."""
    if isinstance(backend, Backend):
        if device is not None or threads:
            raise InvalidArgumentError(
                "%s: device= and threads= apply when the backend is given by name, not to an open Backend" % owner
            )
        return backend, False
    if backend is None:
        backend = os.environ.get("LCSM_BACKEND") or "cpu"
    if not isinstance(backend, str):
        raise TypeError("%s: backend must be a name or an lcsm.Backend" % owner)
    return Backend(backend, device=device, threads=threads), True


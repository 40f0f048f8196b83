"""Deterministic ownership of the C handles (private).

A :class:`Handle` wraps one C pointer. Calls on it run inside ``use()``, which
raises :class:`lcsm.StateError` once the handle is closed and counts the calls
in flight; ``close()`` marks the handle closed at once (new calls are refused),
waits for the calls in flight, closes the dependants (a model's sessions, a
backend's models) and only then destroys the C object. Closing twice does
nothing; garbage collection closes too. So a C handle is never destroyed while
Python can still reach it through another object, and the library's rule
"sessions before their model, models before their backend" always holds.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager

from .errors import StateError


class Handle:
    _kind = "handle"

    def __init__(self):
        self._ptr = None
        self._cv = threading.Condition(threading.Lock())
        self._busy = 0
        self._dependants = weakref.WeakSet()

    def _set(self, ptr) -> None:
        self._ptr = ptr

    @property
    def closed(self) -> bool:
        """True once close() was called (or the object never opened)."""
        return self._ptr is None

    @contextmanager
    def use(self):
        """Yields the C pointer for the duration of one or more calls."""
        with self._cv:
            ptr = self._ptr
            if ptr is None:
                raise StateError("this lcsm %s is closed" % self._kind)
            self._busy += 1
        try:
            yield ptr
        finally:
            with self._cv:
                self._busy -= 1
                if self._busy == 0:
                    self._cv.notify_all()

    def _adopt(self, child: "Handle") -> None:
        """Registers a dependant (closed before this handle is destroyed). Call inside use()."""
        with self._cv:
            self._dependants.add(child)

    def _destroy(self, ptr) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Destroys the C object: waits for calls in flight and closes what depends on it first.
        Harmless when already closed."""
        cv = getattr(self, "_cv", None)
        if cv is None:  # __init__ did not get far
            return
        with cv:
            ptr = self._ptr
            if ptr is None:
                return
            self._ptr = None  # from here on, use() refuses
            while self._busy:
                cv.wait()
            children = list(self._dependants)
        for child in children:
            child.close()
        self._destroy(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be half torn down
            pass

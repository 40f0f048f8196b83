"""Exceptions: one class per ``lcsm_status`` of the C library, all under :class:`Error`.

Each carries the library's message (``str(e)`` / ``e.message``: the calling
thread's ``lcsm_last_error()`` right after the failed call, which is that call's
own message even when other threads share the model) and the status code
(``e.status``, an int equal to the C enum value). Where the binding refuses an
argument itself before calling the library, it raises the class of the status
the library would have returned.

Each class also derives from the closest built-in exception, so
``except ValueError`` catches a bad token, ``except OSError`` a missing file.
"""

from __future__ import annotations

from . import _capi


class Error(Exception):
    """Base class of every error the lcsm library reports.

    Attributes:
        status: the ``lcsm_status`` code (int), e.g. 8 for LCSM_ERR_TOKEN_RANGE.
        message: the library's message for this failure.
    """

    status = -1

    def __init__(self, message: str = "", status: int | None = None):
        if status is not None:
            self.status = status
        self.message = message or strerror(self.status)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(Error, ValueError):
    """LCSM_ERR_INVALID_ARGUMENT: a bad size, option value or argument."""

    status = 1


class OutOfMemoryError(Error, MemoryError):
    """LCSM_ERR_OUT_OF_MEMORY: a host or device allocation failed."""

    status = 2


class FileError(Error, OSError):
    """LCSM_ERR_IO: a file could not be opened, read or written."""

    status = 3


class FormatError(Error, ValueError):
    """LCSM_ERR_FORMAT: a malformed or truncated model file or config."""

    status = 4


class MissingTensorError(FormatError):
    """LCSM_ERR_MISSING_TENSOR: a tensor the model needs is not in the file."""

    status = 5


class ShapeError(FormatError):
    """LCSM_ERR_SHAPE: a tensor's shape disagrees with the config."""

    status = 6


class UnsupportedError(Error, NotImplementedError):
    """LCSM_ERR_UNSUPPORTED: valid input this version does not handle."""

    status = 7


class TokenRangeError(Error, ValueError):
    """LCSM_ERR_TOKEN_RANGE: a token id outside [0, n_vocab), or text the tokenizer refuses."""

    status = 8


class LengthError(Error, ValueError):
    """LCSM_ERR_LENGTH: a sequence longer than the session's max_len or the model's l_max."""

    status = 9


class StateError(Error, RuntimeError):
    """LCSM_ERR_STATE: a call out of order, a failed session, or a closed handle."""

    status = 10


class BackendError(Error, RuntimeError):
    """LCSM_ERR_BACKEND: the backend failed (a driver or library error)."""

    status = 11


class NoBackendError(Error, LookupError):
    """LCSM_ERR_NO_BACKEND: unknown backend name, not compiled in, or no platform."""

    status = 12


class NumericError(Error, ArithmeticError):
    """LCSM_ERR_NUMERIC: the arithmetic gave NaN or infinity (the message names the position)."""

    status = 13


_BY_STATUS = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        OutOfMemoryError,
        FileError,
        FormatError,
        MissingTensorError,
        ShapeError,
        UnsupportedError,
        TokenRangeError,
        LengthError,
        StateError,
        BackendError,
        NoBackendError,
        NumericError,
    )
}


def strerror(status: int) -> str:
    """The library's short description of a status code (lcsm_strerror)."""
    return _capi.text(_capi.lcsm_strerror(status))


def error_for(status: int, message: str = "") -> Error:
    """The exception for `status`, with `message` (the library's text if empty)."""
    cls = _BY_STATUS.get(status)
    return cls(message) if cls else Error(message, status)


def check(status: int, handle_message=None) -> None:
    """Raises the error of a failed C call; call it right after the call, on the same thread.

    The message is this thread's lcsm_last_error(); `handle_message` (a callable
    returning the handle's last error) is the fallback should it be empty.
    """
    if status == 0:
        return
    msg = _capi.text(_capi.lcsm_last_error())
    if not msg and handle_message is not None:
        msg = handle_message()
    raise error_for(status, msg)

"""Stops asked for by signals: Ctrl-C and SIGTERM end a command cleanly, never half-way.

Kept apart from the pipeline so every command installs the handlers without importing HDF5 or
numpy (``verify`` and ``--help`` start in a fraction of the time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

from .errors import Interrupted, Terminated

log = logging.getLogger(__name__)


class _Deferral:
    """Stops (Ctrl-C, SIGTERM) that arrive while a worker is being started wait until it is
    registered: raised half-way, they would leave a worker terminate() does not know of."""

    depth = 0
    pending: BaseException | None = None


class _Requested:
    """The last stop a signal asked for since handlers were installed (see raise_if_stopped)."""

    exc: BaseException | None = None


def raise_if_stopped() -> None:
    """Raise a stop asked for by a signal again: Python drops an exception raised while it runs
    a weakref callback or ``__del__``, so long loops call this between steps."""
    if _Requested.exc is not None:
        raise _Requested.exc


def requested_stop() -> BaseException | None:
    """The stop a signal asked for in this command (None: none). A stop raised inside C or
    Cython code (h5py's lock) can come out as another error (SystemError): the command reports
    the stop it was."""
    return _Requested.exc


def stop_or_defer(exc: BaseException) -> None:
    """Raise ``exc`` (from a signal handler) now, or when the worker start in hand is done."""
    if _Deferral.depth:
        _Deferral.pending = _Deferral.pending or exc
        return
    raise exc


class StopSignals:
    """Ctrl-C and SIGTERM stop an extraction cleanly (the file in hand is finished or discarded,
    what was done is reported); SIGTERM also terminates the worker processes of ``executor`` at
    once and is acted on once. A second Ctrl-C exits at once (exit 130). A stop that arrives
    while a worker starts waits until the worker is known (see stop_or_defer)."""

    def __init__(self) -> None:
        self.executor: Any = None
        self._count = 0

    def install(self) -> StopSignals:
        """Handle SIGINT and SIGTERM from now on (main thread only; elsewhere a no-op)."""
        import threading

        _Requested.exc = None

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)
        return self

    def install_until_restored(self) -> Callable[[], None]:
        """:meth:`install`, returning what puts the previous handlers back (for a command run
        in-process: tests, notebooks)."""
        import sys

        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        hook = sys.unraisablehook
        self.install()

        def quiet_stops(unraisable: Any) -> None:
            # a stop raised inside a weakref callback or __del__ is dropped by Python; it is
            # raised again by raise_if_stopped(), so its "Exception ignored" report is noise
            if not isinstance(unraisable.exc_value, KeyboardInterrupt):
                hook(unraisable)

        sys.unraisablehook = quiet_stops

        def restore() -> None:
            sys.unraisablehook = hook
            with contextlib.suppress(ValueError):  # not the main thread: nothing was installed
                for sig, handler in saved.items():
                    signal.signal(sig, handler)

        return restore

    def _handle(self, signum: int, frame: Any) -> None:
        term = signum == signal.SIGTERM
        if term and self.executor is not None:
            kill = getattr(self.executor, "terminate_workers", None)
            if kill is not None:
                kill()
        if stop_pending() or (term and self._count):  # already stopping
            return
        self._count += 1
        if self._count == 1:
            _Requested.exc = Terminated() if term else KeyboardInterrupt()
            stop_or_defer(_Requested.exc)
        else:
            log.error("interrupted twice: exiting now; re-run the same command to resume")
            os._exit(Interrupted.exit_code)


def stop_pending() -> bool:
    """Whether a deferred stop is waiting to be raised."""
    return _Deferral.pending is not None


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A section in which :func:`stop_or_defer` holds stops back; they are raised at its end."""
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
    if not _Deferral.depth and _Deferral.pending is not None:
        exc, _Deferral.pending = _Deferral.pending, None
        raise exc


#: Commands that only read: a stop leaves nothing behind (nothing kept, nothing to resume).
READ_ONLY_COMMANDS = ("verify", "check", "explore")


def interrupted_message(command: str) -> str:
    """The line shown when Ctrl-C or SIGTERM stops ``command``: what is true of its output."""
    if command in READ_ONLY_COMMANDS:
        return f"interrupted; {command} writes nothing, so nothing was changed: run it again"
    if command == "export":  # staged files are removed (export.record.staged)
        return "interrupted; nothing of this export was kept: the folder is as before it"
    return "interrupted; finished files are kept: run the same command again to resume"

"""Worker processes for extract and export: the one place that starts a process pool.

:class:`WorkerPool` wraps :class:`concurrent.futures.ProcessPoolExecutor` (forkserver where
available) so that its workers

* leave Ctrl-C to the parent, which finishes or discards the work in hand;
* end themselves when the parent is gone (``kill -9``, an OOM kill): a watch thread waits on
  the parent's pidfd (or polls it) and, before exiting, removes the temporary files the worker
  was writing (:func:`own_temp`); an idle worker would otherwise wait for work forever and keep
  the forkserver and the resource tracker alive;
* are known to the pool as they start (the child processes that appear while ``submit``
  runs), so it terminates exactly its own workers without private attributes of the executor.

Nothing here imports numpy, h5py or OpenCV; workers import what their tasks need.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .stops import signals_deferred

#: Temporary files this (worker) process is writing: removed if the parent dies meanwhile.
_OWN_TEMPS: set[str] = set()


def default_workers(small: bool = False, cap: int | None = None) -> int:
    """Worker processes when the user gave none: the CPU count (at most ``cap``), or 1 for a
    job too small to repay starting processes."""
    if small:
        return 1
    n = os.cpu_count() or 1
    return max(1, min(n, cap)) if cap is not None else n


@contextlib.contextmanager
def own_temp(path: str | os.PathLike[str]) -> Iterator[None]:
    """Mark ``path`` as a temporary file this process is writing until the block ends: if the
    parent of a pool worker dies meanwhile, the worker removes it before exiting."""
    key = os.fspath(path)
    _OWN_TEMPS.add(key)
    try:
        yield
    finally:
        _OWN_TEMPS.discard(key)


def _remove_own_temps() -> None:
    for p in list(_OWN_TEMPS):
        with contextlib.suppress(OSError):
            os.unlink(p)


def _exit_when_gone(parent: int) -> None:
    """Block until process ``parent`` ends, then remove this worker's temp files and exit."""
    try:
        fd = os.pidfd_open(parent)  # exact: a reused pid cannot keep the worker alive
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        import select

        select.select([fd], [], [])
    else:
        import time

        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except OSError:  # gone, or the pid now belongs to someone else's process
                break
    _remove_own_temps()
    os._exit(1)


def _init_worker(parent: int, init: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Runs first in every worker: ignore Ctrl-C, watch the parent, then the caller's init."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_when_gone, args=(parent,), name="renderme360-parent-watch", daemon=True
    ).start()
    if init is not None:
        init(*initargs)


class WorkerPool:
    """A process pool whose workers watch the parent and are known by process (see module doc).

    Use as a context manager: leaving it normally waits for the work in hand; leaving it with
    an exception (a failed task, Ctrl-C, SIGTERM) terminates the workers at once.
    """

    def __init__(
        self,
        workers: int,
        preload: Sequence[str] = (),
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        forkserver = "forkserver" in mp.get_all_start_methods()
        ctx = mp.get_context("forkserver" if forkserver else "spawn")
        if forkserver and preload:
            mp.get_context("forkserver").set_forkserver_preload(list(preload))  # imported once
        self.workers = max(1, workers)
        self.procs: dict[int, Any] = {}  # pid -> the worker's Process handle
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(os.getpid(), initializer, initargs),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)``; returns its Future.

        The pool starts its workers inside ``submit``: the processes this process gained during
        the call are recorded as this pool's workers, and a Ctrl-C or SIGTERM arriving meanwhile
        is held back until they are known (then a Ctrl-C terminates them)."""
        import multiprocessing as mp

        try:
            with signals_deferred():
                before = {id(p) for p in mp.active_children()}
                fut = self._pool.submit(fn, *args)
                for p in mp.active_children():
                    if id(p) not in before and p.pid is not None:
                        self.procs[p.pid] = p
                return fut
        except KeyboardInterrupt:
            self.terminate_workers()
            raise

    def terminate_workers(self) -> None:
        """SIGTERM every worker (safe inside a signal handler: no waiting, no locks)."""
        for proc in list(self.procs.values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                proc.terminate()

    def terminate(self) -> None:
        """Stop now: terminate the workers, wait until each is gone (SIGKILL after 5 s), fail
        what is queued, release the pool."""
        import time

        self.terminate_workers()
        deadline = time.monotonic() + 5
        for proc in list(self.procs.values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                proc.join(timeout=max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()
                    proc.join(timeout=5)
        # the pool now finds its workers gone and fails what is queued; no Future.cancel():
        # Python 3.11's pool fails a cancelled future with a traceback in its manager thread
        self._pool.shutdown(wait=True, cancel_futures=False)

    def close(self) -> None:
        """Wait for the work in hand (queued work is dropped), then release the pool."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

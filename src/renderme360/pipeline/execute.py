"""Run plan units: in this process, in a process pool, or on a dask cluster (one interface).

A unit is executed by :func:`run_unit` wherever it lands; it opens its source once, writes each
task's file atomically and returns what it wrote. Results stream back as units finish so the
caller can journal them; nothing here decides what to write.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import DiskFullError, Renderme360Error, SMCFormatError, UsageError
from ..output.outdir import OutputDir, PendingDigest, Written
from ..tasks import Options, Unit
from ..writers import WriteContext, get_writer

if TYPE_CHECKING:
    from concurrent.futures import Future

log = logging.getLogger(__name__)

# Files whose checksum may still be computing while the next ones are written (each holds its
# bytes until hashed: a few MB at most).
HASH_DEPTH = 3


@dataclass
class UnitResult:
    """What one unit wrote (task key -> file) and which tasks failed, with the reason."""

    done: list[tuple[str, Written]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    fatal: str | None = None  # a failure that stops the whole run (disk full)


def iter_unit(unit: Unit, out_dir: str, options: Options) -> Iterator[tuple[str, Written | str]]:
    """Execute a unit task by task, yielding (key, Written) or (key, error message).

    Raises DiskFullError (stop everything) and KeyboardInterrupt; other per-file problems
    (a corrupt blob) are yielded as messages so the rest of the unit still gets written.
    """
    try:
        st = os.stat(unit.source.path)
    except OSError as exc:
        raise SMCFormatError(f"{unit.source.path}: cannot read ({exc.strerror})") from exc
    if (st.st_size, st.st_mtime_ns) != (unit.source.size, unit.source.mtime_ns):
        raise SMCFormatError(f"{unit.source.path}: changed since it was planned; run again")
    out = OutputDir(out_dir)
    hashing: deque[tuple[str, PendingDigest]] = deque()  # files in place, digest in progress
    with WriteContext(out, unit.source.path, options) as ctx:
        for task in unit.tasks:
            try:
                got = get_writer(task.writer)(ctx, task)
            except DiskFullError:
                raise
            except Renderme360Error as exc:
                yield task.key, str(exc)
                continue
            if isinstance(got, PendingDigest):
                hashing.append((task.key, got))
            else:
                yield task.key, got
            while hashing and (len(hashing) > HASH_DEPTH or hashing[0][1].done()):
                key, pending = hashing.popleft()
                yield key, pending.written()
        while hashing:
            key, pending = hashing.popleft()
            yield key, pending.written()


def run_unit(unit: Unit, out_dir: str, options: Options) -> UnitResult:
    """Execute a whole unit and collect its results (the picklable worker entry point)."""
    result = UnitResult()
    try:
        for key, got in iter_unit(unit, out_dir, options):
            if isinstance(got, Written):
                result.done.append((key, got))
            else:
                result.failed.append((key, got))
    except DiskFullError as exc:
        result.fatal = str(exc)
    except Renderme360Error as exc:
        done = {k for k, _ in result.done} | {k for k, _ in result.failed}
        result.failed.extend((t.key, str(exc)) for t in unit.tasks if t.key not in done)
    return result


class Executor(Protocol):
    """Runs units and yields (unit index, result) as each finishes."""

    def run(
        self, units: list[Unit], out_dir: str, options: Options
    ) -> Iterator[tuple[int, UnitResult]]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Everything in this process, one unit after another."""

    def run(
        self, units: list[Unit], out_dir: str, options: Options
    ) -> Iterator[tuple[int, UnitResult]]:
        for i, unit in enumerate(units):
            yield i, run_unit(unit, out_dir, options)

    def close(self) -> None:
        """Nothing to release."""


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which finishes or discards the work in hand."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _FutureExecutor:
    """Shared logic of pool-like executors: bounded submission, results as they complete."""

    window = 4

    def _submit(self, unit: Unit, out_dir: str, options: Options) -> Any:
        raise NotImplementedError

    def _cancel(self, futures: Iterable[Any]) -> None:
        for f in futures:
            f.cancel()

    def run(
        self, units: list[Unit], out_dir: str, options: Options
    ) -> Iterator[tuple[int, UnitResult]]:
        pending: dict[Any, int] = {}
        next_i = 0
        try:
            while next_i < len(units) or pending:
                while next_i < len(units) and len(pending) < self.window:
                    pending[self._submit(units[next_i], out_dir, options)] = next_i
                    next_i += 1
                for fut in self._wait_some(list(pending)):
                    i = pending.pop(fut)
                    yield i, fut.result()
        finally:
            self._cancel(pending)

    def _wait_some(self, futures: list[Any]) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return list(done)


class ProcessExecutor(_FutureExecutor):
    """Units in worker processes (h5py does not run in parallel within one process)."""

    def __init__(self, workers: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max(1, workers)
        self.window = self.workers * 3
        ctx = mp.get_context(
            "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        )
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_ignore_sigint)

    def _submit(self, unit: Unit, out_dir: str, options: Options) -> Future[UnitResult]:
        return self._pool.submit(run_unit, unit, out_dir, options)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(_FutureExecutor):
    """Units on an existing dask.distributed cluster (``pip install renderme360[cluster]``)."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(
                "--scheduler needs dask.distributed: pip install 'renderme360[cluster]'"
            ) from None
        _check_reachable(address)
        try:
            self._client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the dask scheduler at {address}: {exc}") from exc
        workers = self._client.scheduler_info().get("workers", {})
        self.window = max(4, 3 * sum(w.get("nthreads", 1) for w in workers.values()))

    def _submit(self, unit: Unit, out_dir: str, options: Options) -> Any:
        return self._client.submit(run_unit, unit, out_dir, options, pure=False)

    def run(
        self, units: list[Unit], out_dir: str, options: Options
    ) -> Iterator[tuple[int, UnitResult]]:
        from distributed import as_completed

        queue = iter(enumerate(units))
        index: dict[str, int] = {}
        running = as_completed()

        def submit_next() -> None:
            for i, unit in queue:
                fut = self._submit(unit, out_dir, options)
                index[fut.key] = i
                running.add(fut)
                return

        for _ in range(self.window):
            submit_next()
        try:
            for fut in running:
                i = index.pop(fut.key)
                yield i, fut.result()
                submit_next()
        finally:
            running.clear()

    def close(self) -> None:
        self._client.close()


def _check_reachable(address: str) -> None:
    """Fail fast, with a clear message, when nothing listens at a tcp:// scheduler address."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return  # other transports (tls://, inproc://) are left to dask
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the dask scheduler at {address}: {exc}") from exc


# Below this many bytes to write, starting worker processes (each imports h5py) costs more than
# it saves, so the default runs in-process. An explicit --workers is always obeyed.
SMALL_JOB_BYTES = 256 * 10**6


def default_workers(total_bytes: int | None = None) -> int:
    """Workers when the user gave none: the CPU count, or 1 for a small job."""
    if total_bytes is not None and total_bytes < SMALL_JOB_BYTES:
        return 1
    return os.cpu_count() or 1


def make_executor(
    workers: int | None = None, scheduler: str | None = None, total_bytes: int | None = None
) -> Executor:
    """The executor for ``--workers`` / ``--scheduler`` (default: :func:`default_workers`)."""
    if scheduler:
        return DaskExecutor(scheduler)
    n = workers if workers is not None else default_workers(total_bytes)
    if n < 1:
        raise UsageError("--workers must be at least 1")
    return SerialExecutor() if n == 1 else ProcessExecutor(n)

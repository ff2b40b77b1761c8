"""Run plan units: in this process, in a process pool, or on a dask cluster (one interface).

A unit is executed by :func:`run_unit` wherever it lands; it opens its source once, writes each
task's file atomically and returns what it wrote. Results stream back as units finish so the
caller can journal them; nothing here decides what to write.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import (
    DiskFullError,
    Renderme360Error,
    SMCFormatError,
    UsageError,
    one_line,
)
from ..output.outdir import OutputDir, PendingDigest, Written
from ..output.read import Record
from ..smc.source import Stamp, same_version, stamp_of, stat_source
from ..tasks import Options, Task, Unit
from ..workers import WorkerPool, default_workers
from ..writers import WriteContext, get_writer

if TYPE_CHECKING:
    from concurrent.futures import Future

log = logging.getLogger(__name__)

# Files whose checksum may still be computing while the next ones are written (each holds its
# bytes until hashed: a few MB at most).
HASH_DEPTH = 3


@dataclass
class UnitResult:
    """What one unit wrote (one record per file) and which tasks failed, with the reason."""

    done: list[Record] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    fatal: str | None = None  # a failure that stops the whole run (disk full)
    tracebacks: list[tuple[str, str]] = field(default_factory=list)  # (task key, traceback)
    fetched: dict[str, int] = field(default_factory=dict)  # requests, bytes read from the source


@dataclass(frozen=True)
class Unexpected:
    """A failure no check anticipated (a bug, a library error): one line for the user, the
    traceback for ``-v`` and the journal."""

    message: str
    traceback: str

    @classmethod
    def of(cls, exc: BaseException, where: str) -> Unexpected:
        import traceback

        first = (str(exc).strip().splitlines() or [""])[0]
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(f"{where}: unexpected error: {type(exc).__name__}: {first}".rstrip(), text)


def iter_unit(
    unit: Unit, out_dir: str, options: Options, fetched: dict[str, int] | None = None
) -> Iterator[tuple[Task, Written | str | Unexpected]]:
    """Execute a unit task by task, yielding (task, Written) or (task, error message).

    Raises DiskFullError (stop everything) and KeyboardInterrupt; other per-file problems
    (a corrupt blob) are yielded as messages so the rest of the unit still gets written.
    ``fetched`` receives the requests and bytes read from the source.
    """
    planned = stamp_of(unit.source)
    if _CONFIRMED.get(unit.source.location) != planned:
        _check_unchanged(unit, "since it was planned; run again")
    out = _output_dir(out_dir)
    hashing: deque[tuple[Task, PendingDigest]] = deque()  # files in place, digest in progress
    confirmed = planned if unit.source.url else None  # opening it asks no HEAD again
    with WriteContext(out, unit.source.location, options, confirmed) as ctx:
        if ctx.remote:
            ctx.plan_reads(
                [
                    (t.offset, t.nbytes)
                    for t in unit.tasks
                    if t.writer == "blob" and t.offset is not None
                ]
            )
        for task in unit.tasks:
            try:
                got = get_writer(task.writer)(ctx, task)
            except DiskFullError:
                raise
            except Renderme360Error as exc:
                yield task, str(exc)
                continue
            except Exception as exc:  # fails this file only; the traceback goes to the journal
                yield task, Unexpected.of(exc, f"{unit.source.path}: {task.key}")
                continue
            if isinstance(got, PendingDigest):
                hashing.append((task, got))
            else:
                yield task, got
            while hashing and (len(hashing) > HASH_DEPTH or hashing[0][1].done()):
                done_task, pending = hashing.popleft()
                yield done_task, pending.written()
        while hashing:
            done_task, pending = hashing.popleft()
            yield done_task, pending.written()
        if fetched is not None and ctx.remote:
            fetched.update(ctx.fetched())


def _check_unchanged(unit: Unit, when: str) -> None:
    """SMCFormatError naming the source when it is not the version the plan was made from
    (size and mtime; a remote file's ETag too)."""
    try:
        now = stat_source(unit.source.location)
    except OSError as exc:
        why = exc.strerror if isinstance(exc.strerror, str) else one_line(exc)
        raise SMCFormatError(f"{unit.source.path}: cannot read ({why})") from exc
    if not same_version(now, stamp_of(unit.source)):
        raise SMCFormatError(f"{unit.source.path}: changed {when}")


_OUT: OutputDir | None = None

#: Remote sources this process found unchanged at the end of its last unit of them: the next
#: unit of that version skips its before-check (a HEAD request per unit; the after-check of every
#: unit still runs, so what was read is always from the version planned).
_CONFIRMED: dict[str, Stamp] = {}


def _output_dir(out_dir: str) -> OutputDir:
    """The OutputDir of ``out_dir``, kept from one unit to the next so its folders are
    validated and created once per run, not once per unit. Every run starts by removing
    ``.tmp`` (and ends removing empty folders): a missing ``.tmp`` means a new run, so
    nothing known from the last one is trusted."""
    global _OUT
    if _OUT is None or str(_OUT.root) != out_dir or not os.path.isdir(_OUT.tmp):
        _OUT = OutputDir(out_dir)
    return _OUT


def run_unit(unit: Unit, out_dir: str, options: Options) -> UnitResult:
    """Execute a whole unit and collect its results (the picklable worker entry point)."""
    result = UnitResult()
    size, mtime = unit.source.size, unit.source.mtime_ns
    try:
        for task, got in iter_unit(unit, out_dir, options, result.fetched):
            key = task.key
            if isinstance(got, Written):
                result.done.append(
                    Record(
                        key,
                        got.path,
                        got.bytes,
                        got.sha256,
                        task.modality,
                        task.role,
                        task.variant,
                        size,
                        mtime,
                    )
                )
            elif isinstance(got, Unexpected):
                result.failed.append((key, got.message))
                result.tracebacks.append((key, got.traceback))
            else:
                result.failed.append((key, got))
        if unit.source.url:  # what was read must come from the version planned
            try:
                _check_unchanged(unit, "during extraction")
                _CONFIRMED[unit.source.location] = stamp_of(unit.source)
            except SMCFormatError as exc:
                _CONFIRMED.pop(unit.source.location, None)
                result.failed.extend((r.key, str(exc)) for r in result.done)
                result.done.clear()
                raise
    except DiskFullError as exc:
        result.fatal = str(exc)
    except Exception as exc:  # the unit could not go on: its remaining tasks fail with the reason
        if isinstance(exc, Renderme360Error):
            message = str(exc)
        else:
            bad = Unexpected.of(exc, unit.source.path)
            message = bad.message
            result.tracebacks.append(("", bad.traceback))
        done = {r.key for r in result.done} | {k for k, _ in result.failed}
        result.failed.extend((t.key, message) for t in unit.tasks if t.key not in done)
    return result


class Executor(Protocol):
    """Runs units and yields (unit index, result) as each finishes."""

    def run(
        self, units: list[Unit], out_dir: str, options: Options
    ) -> Iterator[tuple[int, UnitResult]]: ...

    def close(self) -> None: ...

    def terminate(self) -> None: ...


class SerialExecutor:
    """Everything in this process, one unit after another."""

    def run(
        self, units: list[Unit], out_dir: str, options: Options
    ) -> Iterator[tuple[int, UnitResult]]:
        for i, unit in enumerate(units):
            yield i, run_unit(unit, out_dir, options)

    def close(self) -> None:
        """Nothing to release."""

    def terminate(self) -> None:
        """Nothing runs elsewhere: the interrupted unit already stopped in this process."""


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
    """Units in worker processes (h5py does not run in parallel within one process); the
    workers watch this process and end with it (:class:`renderme360.workers.WorkerPool`)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.window = self.workers * 3
        self._pool = WorkerPool(self.workers)

    def _submit(self, unit: Unit, out_dir: str, options: Options) -> Future[UnitResult]:
        # Submitting may start a worker; the pool holds a Ctrl-C or SIGTERM back until the
        # worker is known, so terminate() reaches it.
        return self._pool.submit(run_unit, unit, out_dir, options)

    def terminate_workers(self) -> None:
        """Send SIGTERM to every worker process (safe inside a signal handler: no waiting)."""
        self._pool.terminate_workers()

    def terminate(self) -> None:
        """Stop now: terminate the workers, drop queued units, reap every worker."""
        self._pool.terminate()

    def close(self) -> None:
        self._pool.close()


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

    def terminate(self) -> None:
        """Units already on the cluster finish there; nothing more is submitted."""


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


def make_executor(
    workers: int | None = None, scheduler: str | None = None, total_bytes: int | None = None
) -> Executor:
    """The executor for ``--workers`` / ``--scheduler`` (default: the CPU count, or 1 for a
    job below :data:`SMALL_JOB_BYTES`)."""
    if scheduler:
        return DaskExecutor(scheduler)
    small = total_bytes is not None and total_bytes < SMALL_JOB_BYTES
    n = workers if workers is not None else default_workers(small=small)
    if n < 1:
        raise UsageError("--workers must be at least 1")
    return SerialExecutor() if n == 1 else ProcessExecutor(n)

"""``extract --staging DIR --staging-max SIZE``: whole SMC files copied next to the extraction.

For full selections of remote files a local copy can be faster than ranged reads while
extracting: each file is copied into DIR with parallel range requests (one
:class:`~renderme360.smc.source.ByteSource`), the next performance's files are fetched while the
current one extracts, and a performance's copies are removed as soon as it ends. The bytes held
in DIR (copies in place and in progress) never exceed SIZE: a copy waits for room, a file that
cannot fit beside its own performance's other copies is read remotely instead, and a file
larger than SIZE alone is refused before anything starts, by name.

The copy keeps the source's identity: a unit reads the copy (``SourceId.url``) but is planned,
fingerprinted and recorded under the source's own path or URL; the copy gets the source's
modification time, and the source is asked again after the copy (a file that changed while it
was copied is not used).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import Renderme360Error, SMCFormatError, UsageError
from ..output.confined import create_new, private_folder, sibling_tmp
from ..output.reports import human_bytes
from ..smc.source import ByteSource, same_version, source_id, stamp_of, stat_source
from ..tasks import SourceId

#: A run's copies are in DIR/renderme360-staging-{pid}-{random}/, removed when it ends.
STAGING_PREFIX = "renderme360-staging-"
#: One ranged request of a copy (neighbouring ones are fetched in parallel by ByteSource).
CHUNK = 8 << 20
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"1.5TiB"``, ``"123456"`` -> bytes (UsageError otherwise).
    K/M/G/T are powers of 1000, KiB/MiB/GiB/TiB powers of 1024."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise UsageError(f"--staging-max {text!r}: give a size like 500M, 20G or 1.5T")
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * (1024 if m.group(3) else 1000) ** power)


class Staging:
    """Copies of the source files of a batch, within a byte budget (see the module)."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int, surveys: Sequence[Any]):
        self.max_bytes = max_bytes
        self.order = [s.perf.key for s in surveys]
        self.sources = {s.perf.key: _sources_of(s) for s in surveys}
        largest = max(
            (src for srcs in self.sources.values() for src in srcs), key=_size, default=None
        )
        if largest is not None and largest.size > max_bytes:
            raise UsageError(
                f"--staging-max {human_bytes(max_bytes)} is smaller than the largest source file, "
                f"{largest.path} ({human_bytes(largest.size)}): raise it, or leave out --staging"
            )
        Path(folder).mkdir(parents=True, exist_ok=True)
        remove_stale(Path(folder))
        prefix = f"{STAGING_PREFIX}{os.getpid()}-"
        self.dir = private_folder(Path(folder), prefix)
        self.held = 0  # bytes reserved: copies in place or being written
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.copies: dict[str, dict[str, Path | str]] = {}  # key -> source path -> copy or error
        self.fetched: dict[str, dict[str, int]] = {}
        self.threads: dict[str, threading.Thread] = {}

    # ------------------------------------------------------------ hooks of extract_batch
    def before(self, req: Any, s: Any) -> None:
        """Have this performance's copies (fetched ahead, or now), start fetching the next
        one's, and point the units at the copies."""
        key = s.perf.key
        self._start(key)
        self.threads[key].join()
        i = self.order.index(key) if key in self.order else -1
        if 0 <= i < len(self.order) - 1:
            self._start(self.order[i + 1])  # prefetch while this one extracts
        if s.plan is not None:
            copies = self.copies.get(key, {})
            _repoint(s.plan.units, copies)
            _repoint(s.remaining, copies)

    def after(self, req: Any, s: Any, outcome: Any) -> None:
        """The performance ended: remove its copies, count what copying them fetched."""
        key = s.perf.key
        thread = self.threads.get(key)
        if thread is not None:
            thread.join()
        for src in self.sources.get(key, []):
            copy = self.copies.get(key, {}).get(src.path)
            if isinstance(copy, Path):
                self._release(copy, src.size)
        for k in ("requests", "bytes"):
            n = self.fetched.get(key, {}).get(k, 0)
            outcome.fetched[k] = outcome.fetched.get(k, 0) + n

    def close(self) -> None:
        """Stop fetching and remove every copy (also after Ctrl-C or an error)."""
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        for t in self.threads.values():
            t.join()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ copies
    def _start(self, key: str) -> None:
        if key in self.threads:
            return
        t = threading.Thread(
            target=self._stage, args=(key,), name=f"renderme360-stage-{key}", daemon=True
        )
        self.threads[key] = t
        t.start()

    def _stage(self, key: str) -> None:
        """Copy a performance's files one by one, each when there is room for it."""
        copies: dict[str, Path | str] = {}
        self.copies[key] = copies
        stats = self.fetched.setdefault(key, {})
        own = 0  # bytes of this performance's copies: a file that cannot fit beside them is
        for src in sorted(self.sources.get(key, []), key=_size):  # read remotely instead
            if self.stop.is_set() or own + src.size > self.max_bytes:
                continue
            if not self._reserve(src.size):
                return
            own += src.size
            target = self.dir / f"{self.order.index(key)}-{len(copies)}.smc"
            try:
                _copy(src, target, self.stop, stats)
            except (OSError, Renderme360Error) as exc:
                self._release(target, src.size)
                own -= src.size
                copies[src.path] = str(exc)  # that file is read remotely
                continue
            copies[src.path] = target

    def _reserve(self, nbytes: int) -> bool:
        with self.cond:
            while self.held + nbytes > self.max_bytes and not self.stop.is_set():
                self.cond.wait()
            if self.stop.is_set():
                return False
            self.held += nbytes
            return True

    def _release(self, path: Path, nbytes: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with self.cond:
            self.held -= nbytes
            self.cond.notify_all()


def remove_stale(folder: Path) -> list[Path]:
    """Remove the copies of runs that were killed (kill -9, power loss): run folders in
    ``folder`` whose process is gone; return them. A live run's folder is never touched."""
    removed = []
    for d in folder.glob(f"{STAGING_PREFIX}*"):
        pid = d.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or d.is_symlink() or not d.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or another user's): kept
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _size(src: SourceId) -> int:
    return src.size


def _sources_of(s: Any) -> list[SourceId]:
    """The source files a survey will read (none when it has nothing to do)."""
    if s.complete or s.error or (s.plan is None and not s.compacted):
        return []
    if s.plan is not None:
        return list(s.plan.sources.values())
    return [source_id(p) for p in s.perf.files.values()]


def _repoint(units: Sequence[Any], copies: dict[str, Path | str]) -> None:
    """Units read the copies (same identity, other location)."""
    for unit in units:
        copy = copies.get(unit.source.path)
        if isinstance(copy, Path) and unit.source.url != str(copy):
            src = unit.source
            unit.source = SourceId(src.path, src.size, src.mtime_ns, str(copy), src.etag)


def _copy(src: SourceId, target: Path, stop: threading.Event, stats: dict[str, int]) -> None:
    """Copy ``src`` into ``target`` with parallel ranged reads; the copy gets the source's
    mtime; SMCFormatError when the source is not (any more) the version planned."""
    part = sibling_tmp(target)
    ranges = [(o, min(CHUNK, src.size - o)) for o in range(0, src.size, CHUNK)]
    try:
        with ByteSource.open(src.location) as source, os.fdopen(create_new(part), "wb") as f:
            if not same_version(source.stamp, stamp_of(src)):
                raise SMCFormatError(f"{src.path}: changed since it was planned")
            for data in source.iter_ranges(ranges):
                if stop.is_set():
                    raise SMCFormatError(f"{src.path}: copy stopped")
                f.write(data)
            for k, v in source.stats.as_dict().items():
                stats[k] = stats.get(k, 0) + v
        if not same_version(stat_source(src.location), stamp_of(src)):
            raise SMCFormatError(f"{src.path}: changed while it was copied")
        if src.mtime_ns:
            os.utime(part, ns=(src.mtime_ns, src.mtime_ns))
        os.replace(part, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise


def staging_from_flags(
    folder: str | None, max_size: str | None, surveys: Sequence[Any], scheduler: str | None = None
) -> Staging | None:
    """The staging of ``--staging DIR --staging-max SIZE`` (None without ``--staging``); not
    with a dask scheduler, whose workers read the sources themselves."""
    if folder is not None and scheduler:
        raise UsageError("--staging copies files on this machine: not with --scheduler")
    if folder is None:
        if max_size is not None:
            raise UsageError("--staging-max goes with --staging DIR")
        return None
    if max_size is None:
        raise UsageError("--staging DIR needs --staging-max SIZE (the most DIR may hold)")
    return Staging(folder, parse_size(max_size), surveys)

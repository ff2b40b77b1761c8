"""Record what a run wrote: the journal (resume), the lock, manifest.json and the marker.

The journal holds one line per finished file; the manifest is written from it when a performance
completes, and the completion marker (``.extraction_complete``) last of all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import LockedError, UnsafeNameError
from ..output.layout import COMPLETE_MARKER, JOURNAL, LOCK, MANIFEST
from ..output.outdir import OutputDir, Written, open_own_file
from ..output.read import Record, read_manifest


def load_records(out_dir: Path) -> dict[str, Record]:
    """Files known to be in place: the last manifest plus the journal of an unfinished run."""
    records: dict[str, Record] = {}
    manifest = read_manifest(out_dir)
    fields = Record.__dataclass_fields__
    for item in manifest.get("files", []) if manifest else []:
        if all(f in item for f in fields):  # previews and reports are not task records
            records[item["key"]] = Record(**{f: item[f] for f in fields})
    for line in _journal_lines(out_dir):
        try:
            rec = Record(**json.loads(line))
        except (ValueError, TypeError):
            continue  # a line cut short by a crash, a selections or error line
        records[rec.key] = rec
    return records


def _journal_lines(out_dir: Path) -> Iterator[str]:
    """Lines of the journal; a planted link (symbolic, or a hard link to a file elsewhere) is
    not our journal and gives none."""
    try:
        fd = open_own_file(out_dir / JOURNAL, os.O_RDONLY, "read")
    except (OSError, UnsafeNameError):
        return
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        yield from f


def recorded_scopes(out_dir: Path) -> list[dict[str, Any]]:
    """Selections already extracted into a folder (its union so far), as recorded dicts.

    From ``manifest.json`` (``selections``; older manifests: ``selection`` and
    ``cameras_selected``) and from the journal of an unfinished run, which records its
    selections before writing its first file.
    """
    found: list[dict[str, Any]] = []
    manifest = read_manifest(out_dir)
    if manifest:
        listed = manifest.get("selections")
        if isinstance(listed, list):
            found.extend(d for d in listed if isinstance(d, dict))
        elif isinstance(manifest.get("selection"), dict):
            found.append({**manifest["selection"], "camera_ids": manifest.get("cameras_selected")})
    for line in _journal_lines(out_dir):
        if line.startswith('{"selections"'):
            try:
                listed = json.loads(line)["selections"]
            except (ValueError, KeyError, TypeError):
                continue
            found.extend(d for d in listed if isinstance(d, dict) and d not in found)
    return found


class Journal:
    """Append-only record of finished files, flushed after every batch of lines."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL
        if self.path.is_symlink():  # never append through a link planted in the output folder
            self.path.unlink()
        fd = open_own_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "append to")
        self._f = os.fdopen(fd, "a", encoding="utf-8")  # kept open for the run

    def add_scopes(self, scopes: Iterable[Mapping[str, Any]]) -> None:
        """Record the selections this run extracts, before its first file (see recorded_scopes)."""
        self._f.write(json.dumps({"selections": list(scopes)}) + "\n")
        self._f.flush()

    def add(self, records: Iterable[Record]) -> None:
        self._f.write("".join(json.dumps(r.to_dict()) + "\n" for r in records))
        self._f.flush()

    def add_error(self, key: str, traceback: str) -> None:
        """Record the traceback of an unexpected failure (a line resume skips: no Record)."""
        doc = {"error": key, "traceback": traceback, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._f.write(json.dumps(doc) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def remove_marker(out_dir: Path) -> None:
    """Mark a performance incomplete before changing it."""
    with contextlib.suppress(FileNotFoundError):
        (out_dir / COMPLETE_MARKER).unlink()


@contextlib.contextmanager
def performance_lock(out: OutputDir, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on a performance folder for the duration of an extraction.

    The lock is an OS file lock, released by the kernel if the process dies, so a killed run
    never leaves a stale lock behind.
    """
    import fcntl

    out.ensure_root()
    path = out.root / LOCK
    fd = open_own_file(path, os.O_RDWR | os.O_CREAT, "lock")  # truncated below: never another file
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise LockedError(
                f"{out.root}: another renderme360 process (pid {holder}) is extracting into "
                "this folder; wait for it or use --wait"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def write_manifest(
    out: OutputDir,
    *,
    plan_doc: Mapping[str, Any],
    records: Mapping[str, Record],
    extra_files: Iterable[Written],
    timings: Mapping[str, float],
) -> Written:
    """Write manifest.json: tool version, options, sources, every file with size and sha256."""
    files = sorted(
        [r.to_dict() for r in records.values()]
        + [
            {"key": w.path, "path": w.path, "bytes": w.bytes, "sha256": w.sha256}
            for w in extra_files
        ],
        key=lambda d: d["path"],
    )
    counts: dict[str, int] = {}
    for r in records.values():
        counts[r.modality] = counts.get(r.modality, 0) + 1
    doc = {
        "tool": "renderme360",
        "version": __version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **plan_doc,
        "counts": dict(sorted(counts.items())),
        "total_files": len(files),
        "total_bytes": sum(f["bytes"] for f in files),
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "files": files,
    }
    return out.write_text(MANIFEST, json.dumps(doc, indent=1) + "\n")


def write_marker(
    out: OutputDir,
    fingerprint: str,
    files: int,
    total_bytes: int,
    sync: bool = False,
    selections: list[dict[str, Any]] | None = None,
) -> None:
    """Write ``.extraction_complete`` last, after every other file is in place.

    ``sync`` first flushes all written data to disk (``os.sync``): for network filesystems, or
    when power loss must not leave a marker above unwritten data. Without it, resume still
    checks that every manifest file is in place with its size before trusting the marker.
    """
    if sync and hasattr(os, "sync"):
        os.sync()
    doc = {
        "fingerprint": fingerprint,
        "files": files,
        "bytes": total_bytes,
        "selections": selections or [],
        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "version": __version__,
    }
    out.write_text(COMPLETE_MARKER, json.dumps(doc) + "\n")
    _fsync_path(out.root / COMPLETE_MARKER)
    _fsync_path(out.root)


def _fsync_path(path: Path) -> None:
    """Make one file's content (or a folder's entries) durable; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory
    finally:
        os.close(fd)

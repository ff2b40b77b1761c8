"""An export folder's bookkeeping: the lock, the staged writes, the record (``export.json``)
that lets a re-run reuse unchanged work and remove stale files, and the commit at the end.

Every export goes through :func:`staged`; the training exports end with :func:`finish`.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import NotRegularFileError, Renderme360Error
from ..output.layout import LOCK
from ..output.lock import FolderLock
from ..safeopen import read_regular_text
from ..smc.source import Location, RemotePath, stat_source
from .files import ExportDir
from .summary import ExportSummary

if TYPE_CHECKING:
    from ..loader.performance import Performance

#: The record of what an export wrote, read back by the next run into the same folder.
RECORD = "export.json"


def same_output(prev: dict[str, Any], entry: dict[str, Any], dst: Path) -> bool:
    """A reduced copy from an earlier run is reused only when it was made from the same source
    with the same factor and the file is still the one that run wrote (size and mtime): an
    interrupted run that replaced it, or a hand edit, makes it be written again."""
    if any(prev.get(k) != v for k, v in entry.items()):
        return False
    try:
        st = os.stat(dst, follow_symlinks=False)
    except OSError:
        return False
    return prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns


def _check_references(out: ExportDir, refs: list[str], what: str) -> None:
    """Every file the model names is, seen from the export folder, a regular file (a staged
    one under its temporary name; ``lstat`` of the path as the trainer will open it, so a
    symlink, a FIFO or a relative path that misses is caught): otherwise the export fails and
    DEST stays as it was."""
    bad: list[str] = []
    root = str(out.root)
    staged = out.staged_names()
    for rel in refs:
        path = os.path.join(root, rel)
        path = staged.get(path, path)
        try:
            mode = os.lstat(path).st_mode
        except OSError as exc:
            bad.append(f"{rel}: {exc.strerror}")
            continue
        if not stat.S_ISREG(mode):
            bad.append(f"{rel}: not a regular file")
    if bad:
        raise Renderme360Error(
            f"{len(bad)} of {len(refs)} files {what} names do not open from {out.root} "
            f"(first: {bad[0]}); nothing was written"
        )


def file_stamp(path: Location) -> str:
    """``path:size:mtime_ns`` of a source file (a URL: its redacted address, size, mtime and
    ETag as the server says): a change makes a re-run redo what it made."""
    if isinstance(path, RemotePath):
        st = stat_source(path)
        return f"{path}:{st.size}:{st.mtime_ns}:{st.etag}"
    st_local = os.stat(path)
    return f"{os.path.abspath(path)}:{st_local.st_size}:{st_local.st_mtime_ns}"


@contextmanager
def staged(dest: Path, wait: bool = False) -> Iterator[tuple[ExportDir, dict[str, Any]]]:
    """The export folder, locked, and its previous record; on any failure what this run wrote
    (staged files, new folders) is removed, so the folder is as before the run or complete.

    Another export into the same folder holds its lock: exit 4 naming the folder (or, with
    ``wait``, wait for it). Leftovers of an interrupted run are removed only under the lock, so
    a running export's staged files are never taken for leftovers."""
    out = ExportDir(dest)

    def busy(holder: str) -> str:
        return (
            f"{out.root}: another renderme360 process (pid {holder}) is writing into this "
            "folder; wait for it or use --wait"
        )

    ok = False
    try:
        with FolderLock(out.root / LOCK, busy, wait) as lock:
            try:
                previous = _open_dest(out)
                yield out, previous
                ok = True
            finally:
                if not ok:
                    out.abort()
                lock.remove()  # held until now: nothing of this run stays behind
    finally:
        if not ok:
            out.abort()  # the folders this run made, now that the lock file is gone


def _open_dest(out: ExportDir) -> dict[str, Any]:
    """Remove leftovers of an interrupted run (under the lock) and read the previous record."""
    out.remove_leftovers()
    previous: dict[str, Any] = {}
    rec = out.root / RECORD
    if rec.is_file() and not rec.is_symlink():
        try:
            doc = json.loads(read_regular_text(rec))
            previous = doc.get("files", {}) if isinstance(doc, dict) else {}
        except (OSError, ValueError, NotRegularFileError):
            previous = {}
    return previous if isinstance(previous, dict) else {}


def finish(
    out: ExportDir,
    previous: dict[str, Any],
    files: dict[str, Any],
    summary: ExportSummary,
    readme: str,
    t0: float,
    refs: tuple[str, list[str]],
) -> ExportSummary:
    """Check every referenced file, write README.txt, rename everything into place, remove
    what the previous run wrote and this one did not, write the record last."""
    _check_references(out, refs[1], refs[0])
    out.write_bytes("README.txt", readme.encode())
    files["README.txt"] = {}
    out.commit()  # everything is written: into place, then stale files go, the record last
    for rel in sorted(set(previous) - set(files)):
        if out.remove(rel):
            summary.removed_stale += 1
    summary.seconds = round(time.perf_counter() - t0, 3)
    doc = {
        "tool": f"renderme360 {__version__}",
        "format": summary.format,
        "summary": {k: v for k, v in summary.to_dict().items() if k != "seconds"},
        "files": files,
    }
    files[RECORD] = {}
    out.write_bytes(RECORD, json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    out.commit()
    return summary


class SourceStamps:
    """Stamps of the sources of one performance's images (an extracted file's own stamp; for
    SMC files the item and the stamps of the files), kept in the record beside each output."""

    def __init__(self, perf: Performance) -> None:
        self.perf = perf
        self._smc: str | None = None

    def __call__(self, kind: str, cam: str, frame: int, src: Path | None) -> str:
        """The stamp of ``kind`` (``color``/``mask``) of ``cam`` and ``frame``, read from
        ``src`` (None: from the SMC files)."""
        if src is not None:
            return file_stamp(src)
        if self._smc is None:
            files = sorted(self.perf.smc_files.items())
            self._smc = ";".join(file_stamp(p) for _, p in files)
        return f"{kind}/{cam}/{frame}@{self._smc}"

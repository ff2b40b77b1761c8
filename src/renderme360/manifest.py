"""Record what was written: the resume journal, manifest.json, reports, marker, lock, MANIFEST.csv.

The journal (``.journal.jsonl``) gets one line per file as soon as it is in place, so a killed run
resumes without redoing finished files; ``manifest.json`` and the reports are written at the end,
and the completion marker last of all.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import LockedError, SMCFormatError, UnsafeNameError
from .fsutil import OutputDir, Written
from .layout import (
    BATCH_MANIFEST,
    COMPLETE_MARKER,
    EXTRACTION_INFO,
    FOLDERS,
    MANIFEST,
    SIZE_SUMMARY,
    SOURCE_FOLDERS,
)

JOURNAL = ".journal.jsonl"
LOCK = ".lock"
STATE_FILES = {JOURNAL, LOCK, COMPLETE_MARKER, MANIFEST}


@dataclass(frozen=True)
class Record:
    """One file in place: the task that made it, where it is, its size and checksum."""

    key: str
    path: str
    bytes: int
    sha256: str
    modality: str
    role: str
    variant: str
    source_size: int
    source_mtime_ns: int

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (what ``asdict`` gives, without its deep-copy cost)."""
        return dict(self.__dict__)


def load_records(out_dir: Path) -> dict[str, Record]:
    """Files known to be in place: the last manifest plus the journal of an unfinished run."""
    records: dict[str, Record] = {}
    manifest = read_manifest(out_dir)
    fields = Record.__dataclass_fields__
    for item in manifest.get("files", []) if manifest else []:
        if all(f in item for f in fields):  # previews and reports are not task records
            records[item["key"]] = Record(**{f: item[f] for f in fields})
    journal = out_dir / JOURNAL
    if journal.is_file() and not journal.is_symlink():  # a planted link is not our journal
        with open(journal, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = Record(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line cut short by a crash
                records[rec.key] = rec
    return records


class Journal:
    """Append-only record of finished files, flushed after every batch of lines."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL
        if self.path.is_symlink():  # never append through a link planted in the output folder
            self.path.unlink()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o644)
        self._f = os.fdopen(fd, "a", encoding="utf-8")  # kept open for the run

    def add(self, records: Iterable[Record]) -> None:
        self._f.write("".join(json.dumps(r.to_dict()) + "\n" for r in records))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a performance folder, or None when absent or unreadable."""
    try:
        with open(out_dir / MANIFEST, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    """The completion marker's content, or None when the performance is not complete."""
    try:
        with open(out_dir / COMPLETE_MARKER, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


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
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise UnsafeNameError(f"refusing to lock {path}: it is a symlink") from None
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
    out: OutputDir, fingerprint: str, files: int, total_bytes: int, sync: bool = False
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


def files_in_place(out_dir: Path) -> bool:
    """Whether every file the manifest lists exists with its recorded size (stat only)."""
    doc = read_manifest(out_dir)
    if doc is None or not isinstance(doc.get("files"), list):
        return False
    for item in doc["files"]:
        try:
            if not path_exists_with_size(out_dir, item["path"], item["bytes"]):
                return False
        except (KeyError, TypeError, ValueError):
            return False
    return True


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KB`` (powers of 1000, as disks are sold)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def size_summary(records: Iterable[Record], layout: str) -> str:
    """size_summary.txt: bytes per source folder and per modality, and the total."""
    by_source: dict[str, int] = {}
    by_mod: dict[tuple[str, str], list[int]] = {}
    total = 0
    for r in records:
        folder = SOURCE_FOLDERS.get(r.role, r.role) if layout == "separate" else "(combined)"
        by_source[folder] = by_source.get(folder, 0) + r.bytes
        entry = by_mod.setdefault((folder, FOLDERS.get(r.modality, r.modality)), [0, 0])
        entry[0] += 1
        entry[1] += r.bytes
        total += r.bytes
    out = io.StringIO()
    out.write(
        "Size summary (bytes written by the extraction; previews and reports not counted)\n\n"
    )
    for folder in sorted(by_source):
        out.write(
            f"{folder + '/':<14} {by_source[folder]:>16,} bytes  "
            f"{human_bytes(by_source[folder]):>9}\n"
        )
        for (f, mod), (n, b) in sorted(by_mod.items()):
            if f == folder:
                out.write(f"  {mod + '/':<14} {n:>8,} files {b:>16,} bytes  {human_bytes(b):>9}\n")
    out.write(f"\nTOTAL          {total:>16,} bytes  {human_bytes(total):>9}\n")
    return out.getvalue()


def extraction_info(plan_doc: Mapping[str, Any], records: Iterable[Record], layout: str) -> str:
    """extraction_info.txt: what is where, from which source file, with which options."""
    out = io.StringIO()
    out.write(f"RenderMe360 extraction of {plan_doc['actor']}_{plan_doc['performance']}\n")
    out.write(f"written by renderme360 {__version__} on {time.strftime('%Y-%m-%d %H:%M')}\n\n")
    out.write("Source files:\n")
    for role, src in plan_doc["sources"].items():
        where = SOURCE_FOLDERS[role] + "/" if layout == "separate" else "(merged into this folder)"
        out.write(f"  {role:<5} {src['path']}  ({src['size']:,} bytes)  ->  {where}\n")
    out.write("\nOptions:\n")
    for k, v in {**plan_doc["selection"], "layout": layout, **plan_doc["options"]}.items():
        out.write(f"  {k}: {v}\n")
    for note in plan_doc.get("notes", []):
        out.write(f"  note: {note}\n")
    folders: dict[str, int] = {}
    for r in records:
        top = "/".join(r.path.split("/")[: 2 if layout == "separate" else 1])
        folders[top] = folders.get(top, 0) + 1
    out.write("\nWhat is where (files per folder):\n")
    for folder, n in sorted(folders.items()):
        out.write(f"  {folder + '/':<28} {n:>8,}\n")
    out.write(
        "\nConventions: images/masks/UV/scan masks are the stored bytes, byte-identical; "
        "frames are frame_NNNNNN (6 digits), cameras cam_XX; calibration RT maps camera to "
        "world (OpenCV axes, metres); keypoint and FLAME npz files hold every frame with data "
        "and its id in frame_ids.\n"
    )
    if plan_doc.get("warnings"):
        out.write("\nWarnings:\n")
        out.writelines(f"  - {w}\n" for w in plan_doc["warnings"])
    out.write(
        "\nmanifest.json lists every file with its size and sha256; "
        "`renderme360 verify` re-checks them.\n"
    )
    return out.getvalue()


BATCH_FIELDS = [
    "subject",
    "performance",
    "status",
    "cameras",
    "frames",
    "bytes",
    "seconds",
    "error",
    "finished_at",
]


def append_batch_row(out_root: Path, row: Mapping[str, Any]) -> None:
    """Append one line to ``OUT/MANIFEST.csv`` (header written when the file is new)."""
    path = out_root / BATCH_MANIFEST
    if path.is_symlink():
        raise SMCFormatError(f"refusing to append to {path}: it is a symlink")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BATCH_FIELDS, extrasaction="ignore")
    new = not path.exists()
    if new:
        writer.writeheader()
    writer.writerow({**row, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    out_root.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def is_state_file(rel: str) -> bool:
    """Files of the tool's own bookkeeping (not listed in the manifest)."""
    return rel in STATE_FILES or rel.startswith(".tmp/")


def path_exists_with_size(root: Path, rel: str, size: int) -> bool:
    """Whether ``root/rel`` is a regular file of ``size`` bytes (a symlink does not count)."""
    try:
        st = os.lstat(root / rel)
    except OSError:
        return False
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_size == size


__all__ = [
    "EXTRACTION_INFO",
    "SIZE_SUMMARY",
    "Journal",
    "Record",
    "append_batch_row",
    "extraction_info",
    "files_in_place",
    "load_records",
    "performance_lock",
    "size_summary",
    "write_manifest",
    "write_marker",
]

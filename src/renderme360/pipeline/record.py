"""Record what a run wrote: the journal (resume), the lock, the file lists, the manifest and
the marker.

The journal holds one line per finished file; when a performance completes, manifest.jsonl and
SHA256SUMS are written from it as streams (sorted on disk), then the summary manifest.json, and
the completion marker (``.extraction_complete``) last of all. Nothing here holds one object per
file of a fresh extraction.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import UnsafeNameError
from ..output.confined import TMP_DIR, create_new, fixed_tmp, fsync_path, named_scratch
from ..output.layout import CHECKSUMS, COMPLETE_MARKER, FILE_LIST, JOURNAL, LOCK, MANIFEST
from ..output.lock import FolderLock
from ..output.outdir import OutputDir, Written, open_own_file
from ..output.read import (
    Record,
    as_record,
    bounded_lines,
    decode_line,
    folder_layouts,
    iter_lines,
    parse_record_line,
    path_exists_with_size,
    read_manifest,
    record_fields,
)
from ..output.reports import Tally
from ..textsafe import finite_json

_q = json.encoder.encode_basestring_ascii


def record_line(r: Record) -> str:
    """One journal / file-list line (JSON, the keys of :meth:`Record.to_dict`). Written by hand:
    at 300,000 files a performance, ``json.dumps`` per line is a visible cost."""
    return (
        f'{{"key":{_q(r.key)},"path":{_q(r.path)},"bytes":{int(r.bytes)},'
        f'"sha256":{_q(r.sha256)},"modality":{_q(r.modality)},"role":{_q(r.role)},'
        f'"variant":{_q(r.variant)},"source_size":{int(r.source_size)},'
        f'"source_mtime_ns":{int(r.source_mtime_ns)}}}\n'
    )


def extra_line(w: Written) -> str:
    """File-list line of a preview or report (not made by a plan task: no origin fields)."""
    return (
        f'{{"key":{_q(w.path)},"path":{_q(w.path)},"bytes":{int(w.bytes)},'
        f'"sha256":{_q(w.sha256)}}}\n'
    )


def checksum_line(sha256: str, path: str) -> str:
    """One ``sha256sum`` line (text mode: two spaces). Paths are the tool's own validated
    names, so none needs the backslash escaping coreutils uses for newlines."""
    return f"{sha256}  {path}\n"


def _previous_records(out_dir: Path) -> Iterator[Record]:
    """Records of the file lists a folder may hold from earlier runs, oldest first: an
    old-format manifest.json, manifest.jsonl, then an interrupted run's journal (each line
    read by :func:`decode_line`: no json.loads for a line in the form the tool writes)."""
    doc = read_manifest(out_dir)
    if doc is not None and isinstance(doc.get("files"), list):
        yield from filter(None, map(as_record, doc["files"]))
    for lines in (iter_lines(out_dir / FILE_LIST), _journal_lines(out_dir)):
        yield from filter(None, map(parse_record_line, lines))


def _latest_in_place(out_dir: Path) -> Iterator[Record]:
    """The latest record of each file earlier runs recorded, if the file is still in place with
    its size. Two streaming passes; memory grows only with what earlier runs recorded."""
    last: dict[str, int] = {}  # key -> index of its last record (the last line wins)
    for i, rec in enumerate(_previous_records(out_dir)):
        last[rec.key] = i
    if not last:
        return
    for i, rec in enumerate(_previous_records(out_dir)):
        if last.get(rec.key) == i and path_exists_with_size(out_dir, rec.path, rec.bytes):
            yield rec


@dataclass
class ResumeState:
    """What a run starts from: which recorded files are in place and current for the plan."""

    done: set[str] = field(default_factory=set)  # "role\0key" of files that need no rewrite

    def is_done(self, role: str, key: str) -> bool:
        """Whether the planned file ``key`` of source ``role`` is in place and up to date."""
        return f"{role}\0{key}" in self.done


def scan_previous(out_dir: Path, is_current: Callable[[Record], bool]) -> ResumeState:
    """Which recorded files are in place and match the current plan (``is_current``); reads
    the earlier file lists as streams and writes nothing (for the survey)."""
    state = ResumeState()
    if out_dir.is_dir():
        for rec in _latest_in_place(out_dir):
            if is_current(rec):
                state.done.add(f"{rec.role}\0{rec.key}")
    return state


def consolidate_journal(out_dir: Path, is_current: Callable[[Record], bool]) -> ResumeState:
    """Start a run: fold the earlier file lists and journal into a fresh journal holding, once
    per file, the latest record of every file still in place (and the selections an interrupted
    run recorded); return what is done.

    A fresh extraction holds nothing per file. The journal is replaced atomically (the earlier
    lists stay until the run finishes), so a crash here loses nothing.
    """
    journal = out_dir / JOURNAL
    if journal.is_symlink():
        journal.unlink()
    elif journal.exists():  # a planted hard link is refused as the journal would refuse it
        os.close(open_own_file(journal, os.O_RDONLY, "append to"))
    state = ResumeState()
    if not any(p.is_file() for p in (out_dir / MANIFEST, out_dir / FILE_LIST, journal)):
        return state
    notes = [d for d in map(decode_line, _journal_lines(out_dir)) if isinstance(d, dict)]
    tmp = fixed_tmp(out_dir / JOURNAL)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover (or a planted link): never written through
    with os.fdopen(create_new(tmp), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, allow_nan=False) + "\n" for d in notes)
        for rec in _latest_in_place(out_dir):
            f.write(record_line(rec))
            if is_current(rec):
                state.done.add(f"{rec.role}\0{rec.key}")
    os.replace(tmp, journal)
    return state


def iter_journal(out_dir: Path) -> Iterator[Record]:
    """Records of the journal, in the order written (lines cut short are skipped)."""
    for line in _journal_lines(out_dir):
        rec = parse_record_line(line)
        if rec is not None:
            yield rec


def _journal_lines(out_dir: Path) -> Iterator[str]:
    """Lines of the journal; a planted link (symbolic, or a hard link to a file elsewhere) is
    not our journal and gives none."""
    try:
        fd = open_own_file(out_dir / JOURNAL, os.O_RDONLY, "read")
    except (OSError, UnsafeNameError):
        return
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        yield from bounded_lines(f, out_dir / JOURNAL)


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
        doc = decode_line(line) if line.startswith('{"selections"') else None
        listed = doc.get("selections") if isinstance(doc, dict) else None
        if isinstance(listed, list):
            found.extend(d for d in listed if isinstance(d, dict) and d not in found)
    return found


def recorded_form(out_dir: Path) -> dict[str, str]:
    """``{"layout", "image_mode"}`` a folder was extracted with, as far as it tells: from
    ``manifest.json``, the journal of an unfinished run, and (layout) the folders present.
    A key is absent when nothing says; a value may hold two names joined by " and " when the
    folder already mixes two."""
    found: dict[str, set[str]] = {"layout": set(), "image_mode": set()}
    docs = [read_manifest(out_dir) or {}]
    for line in _journal_lines(out_dir):  # only the selection lines are parsed
        doc = decode_line(line) if line.startswith('{"selections"') else None
        if isinstance(doc, dict):
            docs.append(doc)
    for doc in docs:
        options = doc.get("options")
        for key, value in (
            ("layout", doc.get("layout")),
            ("image_mode", doc.get("image_mode", options.get("image_mode")
                                   if isinstance(options, dict) else None)),
        ):  # fmt: skip
            if isinstance(value, str):
                found[key].add(value)
    found["layout"] |= folder_layouts(out_dir)
    return {k: " and ".join(sorted(v)) for k, v in found.items() if v}


#: The end of an unexpected failure's traceback kept in the journal (a line of it stays far
#: below output.read.MAX_LINE, so resume never refuses the tool's own journal).
TRACEBACK_CHARS = 64_000


class Journal:
    """Append-only record of finished files, flushed after every batch of lines."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL
        if self.path.is_symlink():  # never append through a link planted in the output folder
            self.path.unlink()
        fd = open_own_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "append to")
        self._f = os.fdopen(fd, "a", encoding="utf-8")  # kept open for the run

    def add_scopes(self, scopes: Iterable[Mapping[str, Any]], **form: str) -> None:
        """Record the selections this run extracts, before its first file (see recorded_scopes),
        and its ``layout`` and ``image_mode`` (see recorded_form)."""
        doc = {"selections": list(scopes), **form}
        self._f.write(json.dumps(doc, allow_nan=False) + "\n")
        self._f.flush()

    def add(self, records: Iterable[Record]) -> None:
        self._f.write("".join(map(record_line, records)))
        self._f.flush()

    def add_error(self, key: str, traceback: str) -> None:
        """Record the traceback of an unexpected failure (a line resume skips: no Record)."""
        tail = traceback[-TRACEBACK_CHARS:]  # its end says where; a line stays below MAX_LINE
        doc = {"error": key, "traceback": tail, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._f.write(json.dumps(doc, allow_nan=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def remove_marker(out_dir: Path) -> None:
    """Mark a performance incomplete before changing it."""
    with contextlib.suppress(FileNotFoundError):
        (out_dir / COMPLETE_MARKER).unlink()


@contextlib.contextmanager
def performance_lock(out: OutputDir, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of a performance folder for the duration of an extraction
    (:class:`renderme360.output.lock.FolderLock`: a killed run never leaves a stale lock)."""
    out.ensure_root()

    def busy(holder: str) -> str:
        return (
            f"{out.root}: another renderme360 process (pid {holder}) is extracting into "
            "this folder; wait for it or use --wait"
        )

    with FolderLock(out.root / LOCK, busy, wait):
        yield


#: Lines sorted in memory at once when the file lists are written; beyond this, sorted runs go
#: to ``.tmp/`` and are merged (memory stays flat however many files a performance has).
SORT_RUN_LINES = 20_000


class FileListWriter:
    """Writes manifest.jsonl and SHA256SUMS: every task record of the journal sorted by key,
    one line per file (a key recorded twice keeps its last record), then previews and reports.

    Sorting is external (runs of :data:`SORT_RUN_LINES` under ``.tmp/``, then a merge), so the
    lists are identical however the files were written (resumed, in parallel) while memory
    does not grow with the file count. Use: :meth:`add_journal` (or :meth:`add_record`),
    :meth:`write_records` (fills :attr:`tally`), :meth:`add_extra`, :meth:`commit`.
    """

    def __init__(self, out: OutputDir, layout: str) -> None:
        self.out = out
        self.tally = Tally(layout)
        self.total_files = 0
        self.total_bytes = 0
        self._buffer: list[str] = []
        self._runs: list[Path] = []
        self._seq = 0
        self._extra: set[str] = set()
        self._tmp = out.ensure_dir(TMP_DIR)
        self._list_tmp = named_scratch(self._tmp, FILE_LIST)
        self._sums_tmp = named_scratch(self._tmp, CHECKSUMS)
        self._lf: Any = None
        self._sf: Any = None

    def add_journal(self) -> None:
        """Every record of the journal (earlier runs' files first, then this run's). A line in
        the exact form :func:`record_line` writes is taken as it is, without decoding it."""
        for line in _journal_lines(self.out.root):
            fields = record_fields(line)
            if fields is None:
                rec = parse_record_line(line)
                if rec is not None:
                    self.add_record(rec)
                continue
            key, path, nbytes, sha, modality, role = fields[:6]
            end = "" if line.endswith("\n") else "\n"
            self._add_sort_line(
                f"{key}\t{self._seq:012d}\t{nbytes}\t{modality}\t{role}\t{path}\t{sha}\t{line}{end}"
            )

    def add_record(self, rec: Record) -> None:
        """One task record. Besides the JSON line, the sort line carries what the merge needs
        without parsing JSON again (no field holds a tab: paths are validated names, and JSON
        escapes tabs)."""
        self._add_sort_line(
            f"{rec.key}\t{self._seq:012d}\t{rec.bytes}\t{rec.modality}\t{rec.role}\t"
            f"{rec.path}\t{rec.sha256}\t{record_line(rec)}"
        )

    def _add_sort_line(self, line: str) -> None:
        self._buffer.append(line)
        self._seq += 1
        if len(self._buffer) >= SORT_RUN_LINES:
            self._spill()

    def _spill(self) -> None:
        self._buffer.sort()
        path = named_scratch(self._tmp, f"filelist-run-{len(self._runs):05d}")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(self._buffer)
        self._runs.append(path)
        self._buffer = []

    def _merged(self) -> Iterator[str]:
        import heapq

        self._buffer.sort()
        if not self._runs:
            yield from self._buffer
            return
        files = [open(p, encoding="utf-8") for p in self._runs]  # noqa: SIM115
        try:
            yield from heapq.merge(*files, self._buffer)
        finally:
            for f in files:
                f.close()

    def _open(self) -> None:
        if self._lf is None:
            self._lf = open(self._list_tmp, "w", encoding="utf-8")  # noqa: SIM115
            self._sf = open(self._sums_tmp, "w", encoding="utf-8")  # noqa: SIM115

    def write_records(self) -> Tally:
        """Sort the task records, drop superseded ones, write them; return their tally."""
        self._open()
        held: list[str] | None = None
        for line in self._merged():
            parts = line.split("\t", 7)
            if held is not None and held[0] != parts[0]:
                self._emit(held)
            held = parts
        if held is not None:
            self._emit(held)
        for p in self._runs:
            p.unlink()
        self._runs, self._buffer = [], []
        return self.tally

    def _emit(self, parts: list[str]) -> None:
        _key, _seq, nbytes, modality, role, path, sha, line = parts
        size = int(nbytes)
        self._lf.write(line)
        if sha:
            self._sf.write(checksum_line(sha, path))
        self.total_files += 1
        self.total_bytes += size
        self.tally.add_fields(path, size, modality, role)

    def add_extra(self, w: Written) -> None:
        """A preview or report, after the task records (listed with its checksum, not counted
        as extracted data)."""
        self._open()
        if w.path in self._extra:
            return
        self._extra.add(w.path)
        self._lf.write(extra_line(w))
        if w.sha256:
            self._sf.write(checksum_line(w.sha256, w.path))
        self.total_files += 1
        self.total_bytes += w.bytes

    def commit(self) -> None:
        """Close both lists and rename them into place."""
        self._open()
        self._lf.close()
        self._sf.close()
        os.replace(self._list_tmp, self.out.root / FILE_LIST)
        os.replace(self._sums_tmp, self.out.root / CHECKSUMS)

    def abort(self) -> None:
        """Close without putting anything in place (``.tmp`` is cleaned by the caller)."""
        for f in (self._lf, self._sf):
            if f is not None:
                f.close()


#: 2: manifest.json is a summary; the files are listed in manifest.jsonl and SHA256SUMS.
#: (Earlier folders, without the number, hold every file in manifest.json under "files".)
MANIFEST_FORMAT = 2


def write_manifest(
    out: OutputDir,
    *,
    plan_doc: Mapping[str, Any],
    listed: FileListWriter,
    timings: Mapping[str, float],
) -> Written:
    """Write manifest.json: tool version, options, sources, counts and totals; the files
    themselves are in manifest.jsonl (size, sha256, origin) and SHA256SUMS."""
    doc = {
        "tool": "renderme360",
        "version": __version__,
        "manifest_format": MANIFEST_FORMAT,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **plan_doc,
        "counts": dict(sorted(listed.tally.counts.items())),
        "total_files": listed.total_files,
        "total_bytes": listed.total_bytes,
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "file_list": FILE_LIST,
        "checksums": CHECKSUMS,
    }
    return out.write_text(MANIFEST, json.dumps(finite_json(doc), indent=1, allow_nan=False) + "\n")


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
    out.write_text(COMPLETE_MARKER, json.dumps(doc, allow_nan=False) + "\n")
    fsync_path(out.root / COMPLETE_MARKER)
    fsync_path(out.root)

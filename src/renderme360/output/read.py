"""Read an extracted performance folder back: manifest, marker, and what files are in place.

Used by ``verify``, ``preview``, resume and the loader; paths come from :mod:`.layout` only.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import CorruptOutputError, NotRegularFileError
from ..safeopen import open_regular
from .layout import (
    COMPLETE_MARKER,
    FILE_LIST,
    FIXED_PATHS,
    FOLDERS,
    JOURNAL,
    MANIFEST,
    SOURCE_FOLDERS,
    OutputPath,
    image_path,
    parse_path,
)

#: (modality, camera, frame) of one extracted item; camera/frame None when the item has none.
ItemKey = tuple[str, "str | None", "int | None"]


# Not frozen, for speed (one per file; see tasks.Task). Treated as immutable all the same.
@dataclass
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


_RECORD_FIELDS = tuple(Record.__dataclass_fields__)


def as_record(entry: Any) -> Record | None:
    """A file-list entry as a Record, or None when it is not a task record (previews, reports,
    selection lines of a journal) or is malformed."""
    if not isinstance(entry, dict):
        return None
    try:
        return Record(**{f: entry[f] for f in _RECORD_FIELDS})
    except (KeyError, TypeError):
        return None


# The exact form of a line pipeline.record.record_line writes when no string needs escaping
# (printable ASCII without quote or backslash; integers as Python prints them). Such a line
# decodes to the same values with json.loads; anything else takes json.loads.
_STR = r'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"'
_INT = r"(0|-?[1-9][0-9]*)"
_RECORD_LINE_RE = re.compile(
    rf'\{{"key":{_STR},"path":{_STR},"bytes":{_INT},"sha256":{_STR},"modality":{_STR},'
    rf'"role":{_STR},"variant":{_STR},"source_size":{_INT},"source_mtime_ns":{_INT}\}}\n?'
)


def record_fields(line: str) -> tuple[str, ...] | None:
    """The nine fields of a line in the exact form the tool writes, as text (key, path,
    bytes, sha256, modality, role, variant, source_size, source_mtime_ns); None otherwise."""
    m = _RECORD_LINE_RE.fullmatch(line)
    return None if m is None else m.groups()


def decode_line(line: str) -> Record | dict[str, Any] | None:
    """The one reader of journal and file-list lines: a Record for a task record, the object
    for any other JSON object (selections, errors, previews), None for anything else (a line
    cut short by a crash). Lines in the exact form the tool writes are read by one regular
    expression, the rest by ``json.loads``: json.loads of 300,000 lines is a visible share of
    an extraction."""
    fields = record_fields(line)
    if fields is not None:
        key, path, nbytes, sha, modality, role, variant, size, mtime = fields
        return Record(key, path, int(nbytes), sha, modality, role, variant, int(size), int(mtime))
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    rec = as_record(doc)
    return doc if rec is None else rec


def parse_record_line(line: str) -> Record | None:
    """A journal or file-list line as a Record, or None for any other line (selections,
    previews, a line cut short); see :func:`decode_line`."""
    rec = decode_line(line)
    return rec if isinstance(rec, Record) else None


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a JSON Lines file of the output folder; a symlink planted there, or anything
    that is not a regular file (a FIFO: never blocks), gives none; a line longer than MAX_LINE
    is refused."""
    try:
        raw = open_regular(path)
    except (OSError, NotRegularFileError):
        return
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        yield from bounded_lines(f, path)


#: The longest line read from a file list or journal, in characters. The tool's lines are a
#: few hundred characters (a record) to a few KB (a selection, a traceback): a longer line was
#: not written by it, and reading it whole would cost twice its size in memory.
MAX_LINE = 1 << 20


def bounded_lines(f: IO[str], path: str | os.PathLike[str], limit: int = MAX_LINE) -> Iterator[str]:
    """The lines of an open text file, each read with at most ``limit`` characters in memory;
    a longer line raises CorruptOutputError naming the file and the line number."""
    n = 0
    while line := f.readline(limit + 1):
        n += 1
        if len(line) > limit:
            raise CorruptOutputError(
                f"{os.fspath(path)}: line {n} is longer than {limit:,} characters: refused "
                "(no line the tool writes is; the file was damaged or planted)"
            )
        yield line


def iter_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of a JSON Lines file, one line at a time; a line cut short by a crash is skipped,
    a line longer than MAX_LINE is refused (CorruptOutputError), and a symlink planted in the
    output folder is not read."""
    yield from json_objects(iter_lines(path))


def json_objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects among ``lines``; a line cut short by a crash (or anything else that is
    not a JSON object) is skipped."""
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            yield doc


def iter_file_entries(out_dir: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every file a performance folder's manifest lists (path, bytes, sha256, origin), streamed.

    Reads ``manifest.jsonl`` line by line; a folder written before it existed keeps its list
    inside ``manifest.json`` (``"files"``), which is then read whole.
    """
    out_dir = Path(out_dir)
    doc = read_manifest(out_dir)
    if doc is not None and isinstance(doc.get("files"), list):
        yield from (e for e in doc["files"] if isinstance(e, dict))
    elif doc is not None:
        yield from iter_json_lines(out_dir / FILE_LIST)


def has_file_list(out_dir: Path, doc: dict[str, Any] | None = None) -> bool:
    """Whether a folder's manifest has its file list (inside it, or in manifest.jsonl)."""
    doc = read_manifest(out_dir) if doc is None else doc
    if doc is None:
        return False
    return isinstance(doc.get("files"), list) or (Path(out_dir) / FILE_LIST).is_file()


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when absent, unreadable or not an object."""
    try:
        with open_regular(path) as f:
            doc = json.load(f)
    except (OSError, ValueError, NotRegularFileError):
        return None
    return doc if isinstance(doc, dict) else None


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a performance folder, or None when absent or unreadable."""
    return _read_json_object(Path(out_dir) / MANIFEST)


def folder_layouts(out_dir: Path) -> set[str]:
    """The layouts a performance folder's own folders show: ``separate`` (``from_anno/``,
    ``from_raw/``, ``from_smc/``) and/or ``combined`` (modality folders at its top)."""
    out_dir = Path(out_dir)
    found = set()
    if any((out_dir / name).is_dir() for name in SOURCE_FOLDERS.values()):
        found.add("separate")
    if any((out_dir / name).is_dir() for name in FOLDERS.values()):
        found.add("combined")
    return found


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    """The completion marker's content, or None when the performance is not complete."""
    return _read_json_object(Path(out_dir) / COMPLETE_MARKER)


def files_in_place(out_dir: Path) -> bool:
    """Whether every file the manifest lists exists with its recorded size (stat only, the
    list read as a stream)."""
    if not has_file_list(out_dir):
        return False
    for item in iter_file_entries(out_dir):
        try:
            if not path_exists_with_size(out_dir, item["path"], item["bytes"]):
                return False
        except (KeyError, TypeError, ValueError):
            return False
    return True


def path_exists_with_size(root: Path, rel: str, size: int) -> bool:
    """Whether ``root/rel`` is a regular file of ``size`` bytes (a symlink does not count)."""
    try:
        st = os.lstat(root / rel)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def recorded_paths(out_dir: Path) -> Iterator[str]:
    """Relative paths of every file the manifest lists and the journal of an unfinished run
    records: the files a reader of the folder may open (anything else in it was not written
    by the tool)."""
    yield from iter_manifest_paths(out_dir)
    for line in iter_lines(Path(out_dir) / JOURNAL):
        rec = decode_line(line)
        if isinstance(rec, Record) and isinstance(rec.path, str):
            yield rec.path


def manifest_paths(out_dir: Path) -> list[str]:
    """Relative paths of every file the manifest lists ([] without a readable manifest).
    A list of a real performance's ~300,000 paths; :func:`iter_manifest_paths` streams them."""
    return list(iter_manifest_paths(out_dir))


def iter_manifest_paths(out_dir: Path) -> Iterator[str]:
    """Relative paths of every file the manifest lists, one at a time (lines of the file list
    through :func:`decode_line`: the tool's own lines without ``json.loads``)."""
    out_dir = Path(out_dir)
    doc = read_manifest(out_dir)
    if doc is not None and isinstance(doc.get("files"), list):
        entries: Iterable[Any] = doc["files"]
    elif doc is not None:
        entries = map(decode_line, iter_lines(out_dir / FILE_LIST))
    else:
        return
    for e in entries:
        path = e.path if isinstance(e, Record) else e.get("path") if isinstance(e, dict) else None
        if isinstance(path, str):
            yield path


def choose_sources(
    rels: Iterable[str],
    preference: Callable[[OutputPath], Sequence[str | None]],
    accept: Callable[[OutputPath], bool] = lambda p: True,
) -> dict[ItemKey, tuple[str, OutputPath]]:
    """One path per item: where several source folders hold the same item, the folder earliest
    in ``preference(parsed)`` wins (roles ``anno``/``raw``/``smc``; None is the combined layout).

    Paths the layout does not know, sources missing from the preference and paths ``accept``
    refuses are left out.
    """
    chosen: dict[ItemKey, tuple[str, OutputPath]] = {}
    rank: dict[ItemKey, int] = {}
    for rel in rels:
        p = parse_path(rel)
        if p is None or not accept(p):
            continue
        order = preference(p)
        if p.source not in order:
            continue
        key = (p.modality, p.camera, p.frame)
        r = order.index(p.source)
        if key not in rank or r < rank[key]:
            rank[key] = r
            chosen[key] = (rel, p)
    return chosen


def frames_by_camera(
    chosen: dict[ItemKey, tuple[str, OutputPath]], modality: str
) -> dict[str, dict[int, str]]:
    """Camera -> frame -> relative path of one per-camera, per-frame modality (images, masks)."""
    out: dict[str, dict[int, str]] = {}
    for (m, cam, frame), (rel, _p) in chosen.items():
        if m == modality and cam is not None and frame is not None:
            out.setdefault(cam, {})[frame] = rel
    return out


class FrameFiles:
    """``frame -> relative path`` of one camera's images (or masks), where one source folder
    wins over another (lower rank first). Held as a bit set of frames per source folder and the
    extension they share (paths in another form are kept one by one): a 300,000-file folder is
    not listed in memory to choose a few preview frames."""

    _MAX_BIT = 1 << 20  # frames beyond this (never seen in practice) are kept one by one

    def __init__(self, modality: str, camera: str) -> None:
        self.modality, self.camera = modality, camera
        self._sources: dict[int, tuple[str | None, str]] = {}  # rank -> (source role, ext)
        self._bits: dict[int, int] = {}  # rank -> bit set of frames
        self._odd: dict[tuple[int, int], str] = {}  # (rank, frame) -> path

    def _path(self, source: str | None, frame: int, ext: str) -> str:
        prefix = "" if source is None else SOURCE_FOLDERS[source] + "/"
        return prefix + image_path(self.modality, self.camera, frame, ext)

    def add(self, rank: int, p: OutputPath, rel: str) -> None:
        """Record one file (``p`` its parsed path) of the source folder ranked ``rank``."""
        frame = p.frame if p.frame is not None else -1
        pattern = self._sources.setdefault(rank, (p.source, p.ext))
        if (
            pattern == (p.source, p.ext)
            and 0 <= frame < self._MAX_BIT
            and rel == self._path(p.source, frame, p.ext)
        ):
            self._bits[rank] = self._bits.get(rank, 0) | (1 << frame)
        else:
            self._odd.setdefault((rank, frame), rel)

    def _has(self, rank: int, frame: int) -> bool:
        if 0 <= frame < self._MAX_BIT and (self._bits.get(rank, 0) >> frame) & 1:
            return True
        return (rank, frame) in self._odd

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and any(self._has(r, frame) for r in self._sources)

    def __getitem__(self, frame: int) -> str:
        for rank in sorted(self._sources):
            if (rank, frame) in self._odd:
                return self._odd[(rank, frame)]
            if self._has(rank, frame):
                source, ext = self._sources[rank]
                return self._path(source, frame, ext)
        raise KeyError(frame)

    def __iter__(self) -> Iterator[int]:
        frames: set[int] = {f for _r, f in self._odd}
        for bits in self._bits.values():
            frames.update(_bit_positions(bits))
        return iter(sorted(frames))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def items(self) -> Iterator[tuple[int, str]]:
        """(frame, path) pairs, by frame."""
        return ((f, self[f]) for f in self)

    def get(self, frame: int, default: str | None = None) -> str | None:
        try:
            return self[frame]
        except KeyError:
            return default

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (FrameFiles, dict)):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    # unhashable, as a class with __eq__ is; typeshed declares object.__hash__ a method, so
    # mypy wants an ignore to learn it (then hash() of one is an error it reports)
    __hash__ = None  # type: ignore[assignment]


def _bit_positions(bits: int) -> Iterator[int]:
    """Positions of the set bits of a non-negative integer, ascending."""
    data = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    for i, byte in enumerate(data):
        while byte:
            low = byte & -byte
            yield i * 8 + low.bit_length() - 1
            byte ^= low


def calibration_path(source: str | None) -> str:
    """Relative path of ``all_cameras.npz`` of one source folder (None: combined layout)."""
    prefix = "" if source is None else SOURCE_FOLDERS[source] + "/"
    return prefix + FIXED_PATHS["calibration_all"]


def read_calibration(out_dir: Path, source: str | None = None) -> dict[str, dict[str, Any]]:
    """``{camera: {"K", "D", "RT"}}`` from an extracted ``all_cameras.npz`` (RT camera-to-world)."""
    import numpy as np

    from ..formats.npz import read_npz

    path = Path(out_dir) / calibration_path(source)
    with open_regular(path) as f:
        z = read_npz(f, ("camera_ids", "K", "D", "RT"), str(path))
    ids = [str(c) for c in np.asarray(z["camera_ids"])]
    return {c: {k: z[k][i] for k in ("K", "D", "RT")} for i, c in enumerate(ids)}

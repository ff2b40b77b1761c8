"""Human-readable reports of an extraction: size_summary.txt, extraction_info.txt, MANIFEST.csv."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..modalities import STREAMS
from ..textsafe import printable
from .layout import (
    BATCH_MANIFEST,
    CHECKSUMS,
    FILE_LIST,
    FOLDERS,
    MANIFEST,
    SOURCE_FOLDERS,
    frame_of_name,
    stream_camera,
    top_folder,
)
from .outdir import open_own_file
from .read import Record


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KB`` (powers of 1000, as disks are sold)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Tally:
    """Counts gathered while a file list streams by: what the reports and summaries say,
    without keeping the records (bounded by modalities, folders, cameras and frames)."""

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.files = 0
        self.bytes = 0
        self.counts: dict[str, int] = {}
        self.by_mod: dict[tuple[str, str], list[int]] = {}  # (role, modality) -> [files, bytes]
        self.folders: dict[str, int] = {}
        self.cameras: set[str] = set()
        self.frames: set[int] = set()
        self._stream_cameras: dict[str, str | None] = {}  # folder -> camera (None: no stream)

    def add(self, r: Record) -> None:
        """Count one task record."""
        self.add_fields(r.path, r.bytes, r.modality, r.role)

    def add_fields(self, path: str, nbytes: int, modality: str, role: str) -> None:
        """Count one task file from its path, size, modality and source role."""
        self.files += 1
        self.bytes += nbytes
        self.counts[modality] = self.counts.get(modality, 0) + 1
        entry = self.by_mod.get((role, modality))
        if entry is None:
            entry = self.by_mod[(role, modality)] = [0, 0]
        entry[0] += 1
        entry[1] += nbytes
        top = top_folder(path, self.layout)
        self.folders[top] = self.folders.get(top, 0) + 1
        if modality in STREAMS:
            folder, _, name = path.rpartition("/")
            camera = self._stream_cameras.get(folder, "")
            if camera == "":  # each folder is parsed once: 300,000 files lie in 120 of them
                camera = self._stream_cameras[folder] = stream_camera(folder)
            frame = None if camera is None else frame_of_name(name)
            if camera is not None and frame is not None:
                self.cameras.add(camera)
                self.frames.add(frame)

    @classmethod
    def of(cls, records: Iterable[Record], layout: str) -> Tally:
        """The tally of some records."""
        t = cls(layout)
        for r in records:
            t.add(r)
        return t


def size_summary(records: Iterable[Record] | Tally, layout: str) -> str:
    """size_summary.txt: bytes per source folder and per modality, and the total."""
    tally = records if isinstance(records, Tally) else Tally.of(records, layout)
    by_source: dict[str, int] = {}
    by_mod: dict[tuple[str, str], list[int]] = {}
    total = 0
    for (role, modality), (n, nbytes) in tally.by_mod.items():
        folder = SOURCE_FOLDERS.get(role, role) if layout == "separate" else "(combined)"
        by_source[folder] = by_source.get(folder, 0) + nbytes
        entry = by_mod.setdefault((folder, FOLDERS.get(modality, modality)), [0, 0])
        entry[0] += n
        entry[1] += nbytes
        total += nbytes
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


def _write_selections(out: io.StringIO, selections: Sequence[Mapping[str, Any]]) -> None:
    """The selections a folder holds (its union), one line each, camera rules with their ids."""
    out.write(
        "\nSelections extracted into this folder (it holds their union):\n"
        if len(selections) > 1
        else "\nSelection extracted into this folder:\n"
    )
    for i, sel in enumerate(selections, 1):
        shown = {k: v for k, v in sel.items() if k != "camera_ids"}
        ids = sel.get("camera_ids")
        if isinstance(ids, list) and sel.get("cameras") != ",".join(map(str, ids)):
            shown["cameras"] = f"{shown.get('cameras')} -> {','.join(map(str, ids))}"
        lead = f"  {i}. " if len(selections) > 1 else "  "
        out.write(lead + "; ".join(f"{k}: {v}" for k, v in shown.items()) + "\n")


def extraction_info(
    plan_doc: Mapping[str, Any], records: Iterable[Record] | Tally, layout: str
) -> str:
    """extraction_info.txt: what is where, from which source file, with which options."""
    tally = records if isinstance(records, Tally) else Tally.of(records, layout)
    out = io.StringIO()
    out.write(f"RenderMe360 extraction of {plan_doc['actor']}_{plan_doc['performance']}\n")
    out.write(f"written by renderme360 {__version__} on {time.strftime('%Y-%m-%d %H:%M')}\n\n")
    out.write("Source files:\n")
    for role, src in plan_doc["sources"].items():
        where = SOURCE_FOLDERS[role] + "/" if layout == "separate" else "(merged into this folder)"
        out.write(f"  {role:<5} {src['path']}  ({src['size']:,} bytes)  ->  {where}\n")
    _write_selections(out, plan_doc.get("selections") or [plan_doc["selection"]])
    out.write("\nOptions:\n")
    for k, v in {"layout": layout, **plan_doc["options"]}.items():
        out.write(f"  {k}: {v}\n")
    for note in plan_doc.get("notes", []):
        out.write(f"  note: {note}\n")
    out.write("\nWhat is where (files per folder):\n")
    for folder, n in sorted(tally.folders.items()):
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
        f"\n{FILE_LIST} lists every file with its size and sha256 ({MANIFEST} sums them up); "
        f"`renderme360 verify` re-checks them, and so does `sha256sum -c {CHECKSUMS}` run "
        "in this folder.\n"
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
    "source_files",  # --delete-source: deleted or kept, and why
]


def append_batch_row(out_root: Path, row: Mapping[str, Any]) -> None:
    """Append one line to ``OUT/MANIFEST.csv``; the header is written by whoever finds the file
    empty while holding its lock, so concurrent batches write exactly one header."""
    import fcntl

    path = out_root / BATCH_MANIFEST
    stamped = {**row, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out_root.mkdir(parents=True, exist_ok=True)
    fd = open_own_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "append to")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=BATCH_FIELDS, extrasaction="ignore")
        if os.fstat(fd).st_size == 0:
            writer.writeheader()
        writer.writerow({k: printable(v) if isinstance(v, str) else v for k, v in stamped.items()})
        data = buf.getvalue().encode("utf-8")
        while data:  # O_APPEND: every write lands at the end, under the lock
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def fetched_line(fetched: Iterable[Mapping[str, int]]) -> str:
    """What reading remote sources cost (``"; fetched ..."``, "" when nothing was fetched: local
    sources count nothing), also in manifest.json and ``--json``."""
    counts = list(fetched)
    nbytes = sum(f.get("bytes", 0) for f in counts)
    requests = sum(f.get("requests", 0) for f in counts)
    if not requests:
        return ""
    return f"; fetched {human_bytes(nbytes)} in {requests:,} requests from remote sources"

"""Re-check an extracted performance against its manifest and, optionally, its SMC source.

Every listed file must exist as a regular file with its recorded size and sha256; with a source,
copied images/masks/UV/scan masks must equal the stored bytes and arrays must equal the stored
values.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NotFoundError, Renderme360Error
from .output.layout import COMPLETE_MARKER, parse_path
from .output.outdir import sha256_file
from .output.read import path_exists_with_size, read_manifest


@dataclass
class VerifyReport:
    """What verify checked and what it found wrong (one message per bad file)."""

    folder: str
    checked: int = 0
    checked_against_source: int = 0
    problems: list[str] = field(default_factory=list)
    complete: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and self.complete


def verify(
    folder: str | os.PathLike[str],
    source_root: str | os.PathLike[str] | None = None,
    on_file: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every file of ``manifest.json``; compare with the SMC files under ``source_root``."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise NotFoundError(f"{folder}: no readable manifest.json (not an extraction folder?)")
    report = VerifyReport(str(folder), complete=(folder / COMPLETE_MARKER).is_file())
    if not report.complete:
        report.problems.append(f"{COMPLETE_MARKER} missing: the extraction did not finish")
    files = manifest.get("files", [])
    for item in files:
        rel, size, digest = item["path"], item["bytes"], item.get("sha256", "")
        report.checked += 1
        if not path_exists_with_size(folder, rel, size):
            what = "missing" if not (folder / rel).exists() else "wrong size or not a regular file"
            report.problems.append(f"{rel}: {what}")
        elif digest and sha256_file(folder / rel) != digest:
            report.problems.append(f"{rel}: content differs from manifest (sha256)")
        if on_file:
            on_file(1)
    if source_root is not None:
        _against_source(folder, manifest, Path(source_root), report)
    return report


def _against_source(
    folder: Path, manifest: dict[str, Any], root: Path, report: VerifyReport
) -> None:
    from .pipeline.discover import discover
    from .smc.reader import ExtractionReader

    actor, perf = manifest["actor"], manifest["performance"]
    found = discover(root, actor, perf)
    files = next((p.files for p in found if p.performance == perf), {})
    readers: dict[str, ExtractionReader] = {}
    try:
        for item in manifest.get("files", []):
            role = item.get("role")
            if role not in files or item.get("variant") != "copy":
                continue
            if role not in readers:
                readers[role] = ExtractionReader(files[role])
            blob = _blob_of(item)
            if blob is None:
                continue
            try:
                stored = readers[role].read_blob(*blob)
            except Renderme360Error as exc:
                report.problems.append(f"{item['path']}: not in the source ({exc})")
                continue
            report.checked_against_source += 1
            path = folder / item["path"]
            if not path.is_file() or hashlib.sha256(stored).hexdigest() != sha256_file(path):
                report.problems.append(
                    f"{item['path']}: differs from the stored bytes in {files[role]}"
                )
    finally:
        for r in readers.values():
            r.close()


_BLOB_KINDS = {"images": "color", "masks": "mask", "uv": "uv", "scan_masks": "scan_mask"}


def _blob_of(item: dict[str, Any]) -> tuple[str, str | None, int | None] | None:
    """(kind, camera, frame) of a copied image file, from its path."""
    parsed = parse_path(item["path"])
    mod = item.get("modality")
    if parsed is None or parsed.modality != mod or mod not in _BLOB_KINDS:
        return None
    return (_BLOB_KINDS[mod], parsed.camera, parsed.frame)

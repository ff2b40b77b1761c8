"""Read an extracted performance folder back: manifest, marker, and what files are in place.

Used by ``verify``, ``preview``, resume and the loader; paths come from :mod:`.layout` only.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import COMPLETE_MARKER, MANIFEST


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


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when absent, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a performance folder, or None when absent or unreadable."""
    return _read_json_object(Path(out_dir) / MANIFEST)


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    """The completion marker's content, or None when the performance is not complete."""
    return _read_json_object(Path(out_dir) / COMPLETE_MARKER)


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


def path_exists_with_size(root: Path, rel: str, size: int) -> bool:
    """Whether ``root/rel`` is a regular file of ``size`` bytes (a symlink does not count)."""
    try:
        st = os.lstat(root / rel)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size

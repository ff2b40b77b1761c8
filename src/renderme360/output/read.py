"""Read an extracted performance folder back: manifest, marker, and what files are in place.

Used by ``verify``, ``preview``, resume and the loader; paths come from :mod:`.layout` only.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import COMPLETE_MARKER, FIXED_PATHS, MANIFEST, SOURCE_FOLDERS, OutputPath, parse_path

#: (modality, camera, frame) of one extracted item; camera/frame None when the item has none.
ItemKey = tuple[str, "str | None", "int | None"]


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


def manifest_paths(out_dir: Path) -> list[str]:
    """Relative paths of every file the manifest lists ([] without a readable manifest)."""
    doc = read_manifest(out_dir)
    files = doc.get("files") if doc else None
    if not isinstance(files, list):
        return []
    return [f["path"] for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]


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


def calibration_path(source: str | None) -> str:
    """Relative path of ``all_cameras.npz`` of one source folder (None: combined layout)."""
    prefix = "" if source is None else SOURCE_FOLDERS[source] + "/"
    return prefix + FIXED_PATHS["calibration_all"]


def read_calibration(out_dir: Path, source: str | None = None) -> dict[str, dict[str, Any]]:
    """``{camera: {"K", "D", "RT"}}`` from an extracted ``all_cameras.npz`` (RT camera-to-world)."""
    import numpy as np

    with np.load(Path(out_dir) / calibration_path(source), allow_pickle=False) as z:
        ids = [str(c) for c in z["camera_ids"]]
        return {c: {k: z[k][i] for k in ("K", "D", "RT")} for i, c in enumerate(ids)}

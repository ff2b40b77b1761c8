"""An extracted performance folder read back for the loader: the folder backend of ``load``.

It answers the same questions as the SMC backend (:mod:`renderme360.loader.smc_source`) from the
files ``extract`` wrote, in either layout ("separate": ``from_anno/``, ``from_raw/``,
``from_smc/``; "combined": one tree). Every path is parsed by :func:`.layout.parse_path` and one
copy per item is chosen by :func:`.read.choose_sources` with the combined layout's preference
(images and audio from raw, the rest from anno). The folder is listed once; nothing is decoded.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidIdError, NotFoundError, SMCFormatError, UsageError
from ..formats.npz import npz_members, read_npz
from ..modalities import STREAMS, blob_modality
from ..safeopen import is_regular, open_regular, read_regular, read_regular_text
from . import layout
from .layout import OutputPath
from .read import ItemKey, choose_sources, folder_layouts, frames_by_camera, recorded_paths
from .walk import walk


def looks_extracted(path: Path) -> bool:
    """Whether ``path`` is a folder ``extract`` wrote (a source folder or a modality folder)."""
    if not path.is_dir():
        return False
    names = set(layout.SOURCE_FOLDERS.values()) | set(layout.FOLDERS.values())
    names |= {layout.MANIFEST, layout.COMPLETE_MARKER}
    return any((path / n).exists() for n in names)


def _relative_files(root: Path) -> list[str]:
    """Every file under root as a relative POSIX path (hidden folders and previews skipped)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != layout.VISUALIZATION]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        out.extend(prefix + f for f in filenames)
    return out


class ExtractedFolder:
    """One extracted performance folder ``OUT/{actor}_{perf}`` (either layout)."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFoundError(f"{self.root}: no such folder")
        self.roles = [
            role for role, name in layout.SOURCE_FOLDERS.items() if (self.root / name).is_dir()
        ]
        if not self.roles and not looks_extracted(self.root):
            raise NotFoundError(
                f"{self.root}: not an extracted performance folder "
                "(no from_anno/, from_raw/, from_smc/ or modality folders)"
            )
        if len(folder_layouts(self.root)) > 1:  # one layout would hide the other's files
            raise UsageError(
                f"{self.root} holds both layouts (from_anno/, from_raw/ or from_smc/ of "
                "--layout separate, and modality folders of --layout combined at its top); "
                "extract again into an empty folder with one --layout"
            )

    def __repr__(self) -> str:
        return f"ExtractedFolder({str(self.root)!r})"

    @property
    def complete(self) -> bool:
        """Whether ``extract`` finished this folder: its ``.extraction_complete`` marker is a
        regular file (written last). False while an extraction runs or after an interruption."""
        try:
            return stat.S_ISREG(os.lstat(self.root / layout.COMPLETE_MARKER).st_mode)
        except OSError:
            return False

    # ------------------------------------------------------------------ where things are
    def _order(self, modality: str) -> tuple[str | None, ...]:
        """Source roles to read ``modality`` from, best first (None: the combined layout)."""
        if not self.roles:
            return (None,)
        return tuple(r for r in layout.source_order(modality) if r in self.roles)

    def _fixed(self, modality: str, name: str) -> Path | None:
        """The best source's copy of a fixed file (``FIXED_PATHS[name]``), or None."""
        for role in self._order(modality):
            prefix = "" if role is None else layout.source_prefix(role, "separate")
            path = self.root / (prefix + layout.FIXED_PATHS[name])
            if self._recorded(prefix + layout.FIXED_PATHS[name]) and is_regular(path):
                return path
        return None

    @cached_property
    def _listed(self) -> frozenset[str]:
        """Paths the manifest (or an unfinished run's journal) records: only these are read;
        a file planted in the folder (a symlink to elsewhere, an extra frame) is not."""
        return frozenset(recorded_paths(self.root))

    def _recorded(self, rel: str) -> bool:
        return rel in self._listed

    @cached_property
    def _items(self) -> dict[ItemKey, tuple[str, OutputPath]]:
        """Per-camera and per-frame files the manifest records and the folder holds, one copy
        each (the folder is listed once)."""
        listed = self._listed
        return choose_sources(
            (rel for rel in _relative_files(self.root) if rel in listed),
            lambda p: self._order(p.modality),
            accept=lambda p: p.camera is not None or p.frame is not None,
        )

    def _item(self, modality: str, cam: str | None, frame: int | None) -> Path | None:
        found = self._items.get((modality, cam, frame))
        return None if found is None else self.root / found[0]

    @cached_property
    def _blobs(self) -> dict[str, dict[str, dict[int, str]]]:
        return {
            m: {c: dict(sorted(f.items())) for c, f in frames_by_camera(self._items, m).items()}
            for m in STREAMS
        }

    # ------------------------------------------------------------------ metadata
    def _info(self, modality: str) -> dict[str, Any]:
        """``metadata/info.json`` of the source folder that holds ``modality`` best, or {}."""
        for role in self._order("metadata"):
            if role is not None and not self.holds(modality, role):
                continue
            prefix = "" if role is None else layout.source_prefix(role, "separate")
            path = self.root / (prefix + layout.FIXED_PATHS["metadata_json"])
            if self._recorded(prefix + layout.FIXED_PATHS["metadata_json"]) and is_regular(path):
                try:
                    doc = json.loads(read_regular_text(path, _MAX_JSON_BYTES))
                except (OSError, ValueError, SMCFormatError) as exc:
                    raise SMCFormatError(f"{path}: unreadable metadata ({exc})") from exc
                return doc if isinstance(doc, dict) else {}
        return {}

    @cached_property
    def ids(self) -> tuple[str, str]:
        """(actor, performance) from metadata, else from the folder name."""
        info = self._info("metadata")
        actor, perf = info.get("actor_id"), info.get("performance")
        if isinstance(actor, str) and isinstance(perf, str):
            return actor, perf
        parsed = layout.parse_performance_dir(self.root.name)
        if parsed is None:
            raise NotFoundError(
                f"{self.root}: no metadata/info.json and the folder name is not "
                "{actor}_{performance}"
            )
        return parsed

    def resolution(self) -> tuple[int, int] | None:
        """(height, width) of the colour images as recorded in metadata, or None."""
        res = self._info("images").get("camera_info", {}).get("resolution")
        if isinstance(res, list) and len(res) == 2 and all(isinstance(x, int) for x in res):
            return res[0], res[1]
        return None

    def num_frames(self) -> int | None:
        """``num_frame`` recorded for the file holding the audio (for audio/frame alignment)."""
        n = self._info("audio").get("camera_info", {}).get("num_frame")
        return n if isinstance(n, int) and n > 0 else None

    def holds(self, modality: str, role: str | None = None) -> bool:
        """Whether the folder (or one source folder of it) holds ``modality``."""
        if role is not None:
            prefix = layout.source_prefix(role, "separate") + layout.FOLDERS[modality]
            return (self.root / prefix).is_dir()
        return HOLDS[modality](self)

    # ------------------------------------------------------------------ calibration
    def calibration(self) -> dict[str, dict[str, np.ndarray]]:
        """``{cam: {"K", "D", "RT"}}`` (RT camera-to-world); {} when none was extracted.

        Read from ``calibration/all_cameras.npz`` (of the preferred source folder), else from
        the ``cam_XX.npz`` files; :meth:`calibration_conflicts` compares the other copies.
        """
        p = self._fixed("calibration", "calibration_all")
        if p is not None:
            return _read_calibration_all(p)
        return {cam: _read_calibration_cam(path) for cam, path in self._calibration_cam_files()}

    def calibration_one(self, cam: str) -> dict[str, np.ndarray] | None:
        """Always None: a folder may hold copies of the calibration to compare, so one camera
        is answered from the whole (:meth:`calibration` and its conflicts)."""
        return None

    def _calibration_cam_files(
        self, role: str | Literal[False] | None = False
    ) -> list[tuple[str, Path]]:
        """``(cam, cam_XX.npz)`` of the chosen copies (``role`` False) or of one source folder."""
        cams = sorted({k[1] for k in self._items if k[0] == "calibration" and k[1]})
        if role is False:
            return [(c, p) for c in cams if (p := self._item("calibration", c, None)) is not None]
        prefix = "" if role is None else layout.source_prefix(role, "separate")
        rels = [(c, prefix + layout.calibration_camera_path(c)) for c in cams]
        return [(c, self.root / rel) for c, rel in rels if self._recorded(rel)]

    def calibration_conflicts(self) -> list[CalibrationConflict]:
        """Where the folder's calibration copies disagree with the one :meth:`calibration` reads.

        Every copy is compared: ``all_cameras.npz``, ``cameras.json`` and the ``cam_XX.npz``
        files of every source folder, camera by camera (K, D, RT beyond float round-off, and
        cameras present in one copy only). [] when they agree. Reads ~N small files.
        """
        reference = self.calibration()
        if not reference:
            return []
        ref_path = (
            self._fixed("calibration", "calibration_all") or self._calibration_cam_files()[0][1]
        )
        out = []
        for role in self._order("calibration"):
            prefix = "" if role is None else layout.source_prefix(role, "separate")
            copies: list[tuple[str, Any]] = []
            for name, read in (
                ("calibration_all", _read_calibration_all),
                ("calibration_json", _read_calibration_json),
            ):
                path = self.root / (prefix + layout.FIXED_PATHS[name])
                if self._recorded(prefix + layout.FIXED_PATHS[name]) and path != ref_path:
                    copies.append(
                        (path.relative_to(self.root).as_posix(), lambda p=path, r=read: r(p))
                    )
            cam_files = self._calibration_cam_files(role)
            if cam_files:
                shown = prefix + layout.calibration_camera_path("XX")
                copies.append(
                    (shown, lambda f=cam_files: {c: _read_calibration_cam(p) for c, p in f})
                )
            for shown, read in copies:
                try:
                    copy = read()
                except SMCFormatError as exc:
                    out.append(CalibrationConflict(shown, (), f"unreadable ({exc})"))
                    continue
                # strict JSON cannot hold NaN/Inf: cameras.json names such cameras "left_out"
                noted = copy.pop(_LEFT_OUT, {})
                ref = {c: v for c, v in reference.items() if c not in noted}
                out.extend(
                    _compare_calibration(shown, ref, copy, cam_files=shown.endswith("XX.npz"))
                )
        return out

    # ------------------------------------------------------------------ images and masks
    def cameras(self, kind: str) -> list[str]:
        """Cameras holding ``kind`` ("color" or "mask") frames, sorted."""
        return sorted(self._blobs[blob_modality(kind)])

    def frames(self, kind: str, cam: str) -> list[int]:
        """Frames of ``kind`` stored for one camera, ascending ([] when none)."""
        return list(self._blobs[blob_modality(kind)].get(cam, {}))

    def path(self, kind: str, cam: str, frame: int) -> Path | None:
        """The file holding a colour image or mask, or None when absent."""
        return self._item(blob_modality(kind), cam, frame)

    def blob(self, kind: str, cam: str, frame: int) -> bytes | None:
        """Stored bytes of a colour image or mask, or None when absent."""
        p = self.path(kind, cam, frame)
        return None if p is None else read_regular(p)

    # ------------------------------------------------------------------ keypoints, FLAME
    def keypoints2d_cameras(self) -> list[str]:
        """Cameras with a 2D keypoint file, sorted."""
        return sorted(k[1] for k in self._items if k[0] == "keypoints2d" and k[1])

    def keypoints2d(self, cam: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(frame_ids (M,), keypoints (M, 106, 2)) of one camera, or None."""
        p = self._item("keypoints2d", cam, None)
        if p is None:
            return None
        z = _load_npz(p, ("frame_ids", "keypoints"))
        return z["frame_ids"], z["keypoints"]

    def keypoints3d(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(frame_ids (M,), keypoints (M, 73, 3)), or None."""
        p = self._fixed("keypoints3d", "keypoints3d")
        if p is None:
            return None
        z = _load_npz(p, ("frame_ids", "keypoints"))
        return z["frame_ids"], z["keypoints"]

    def flame(self, fields: Sequence[str] | None = None) -> dict[str, np.ndarray] | None:
        """``{"frame_ids": (M,), field: (M, ...)}`` (only ``fields`` if given), or None."""
        p = self._fixed("flame", "flame")
        if p is None:
            return None
        if fields:
            with _npz_file(p) as f:
                stored = [n for n in npz_members(f, str(p)) if n != "frame_ids"]
            missing = [n for n in fields if n not in stored]
            if missing:
                raise InvalidIdError(
                    f"{p}: no FLAME field(s) {', '.join(missing)} (stored: {', '.join(stored)})"
                )
        if fields is None:
            z = _load_npz(p)
            if "frame_ids" not in z:
                raise SMCFormatError(f"{p}: no array(s) frame_ids")
            return z
        return _load_npz(p, ("frame_ids", *fields))

    # ------------------------------------------------------------------ UV, scan, audio
    def uv_frames(self) -> list[int]:
        """Frames with a UV texture, ascending."""
        return sorted(k[2] for k in self._items if k[0] == "uv" and k[2] is not None)

    def uv_bytes(self, frame: int) -> bytes | None:
        """Stored bytes of one UV texture, or None."""
        p = self._item("uv", None, frame)
        return None if p is None else read_regular(p)

    def scan(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(vertices (V, 3) at stored precision, faces (F, 3) int64) of the scan mesh, or None."""
        p = self._fixed("scan", "scan")
        if p is None:
            return None
        from plyfile import PlyData

        try:
            with open_regular(p) as f:
                ply = PlyData.read(f)
            v = ply["vertex"].data
            vertices = np.stack([v["x"], v["y"], v["z"]], axis=1)
            raw = ply["face"].data["vertex_indices"]
            faces = np.stack(raw).astype(np.int64) if len(raw) else np.zeros((0, 3), np.int64)
        except (OSError, ValueError, KeyError) as exc:
            raise SMCFormatError(f"{p}: unreadable PLY ({exc})") from exc
        return vertices, faces

    def audio(self) -> tuple[np.ndarray, int] | None:
        """(samples as stored, sample_rate), from ``audio_data.npz`` (else ``audio.wav``)."""
        p = self._fixed("audio", "audio_npz")
        if p is not None:
            z = _load_npz(p, ("audio", "sample_rate"))
            return z["audio"], int(z["sample_rate"])
        p = self._fixed("audio", "audio_wav")
        if p is None:
            return None
        import soundfile

        with open_regular(p) as f:
            data, rate = soundfile.read(f, dtype="float32", always_2d=False)
        return data, int(rate)


#: Calibration copies agree when every value is within this of the one read (float round-off).
CALIBRATION_TOLERANCE = {"rtol": 1e-6, "atol": 1e-9}


@dataclass(frozen=True)
class CalibrationConflict:
    """One calibration copy of a folder that disagrees with the copy the loader reads."""

    file: str  # relative path of the copy (``calibration/cam_XX.npz`` for the per-camera files)
    cameras: tuple[str, ...]  # the cameras concerned (empty: the whole file)
    what: str  # what differs

    def __str__(self) -> str:
        cams = f" camera(s) {', '.join(self.cameras)}:" if self.cameras else ""
        return f"{self.file}:{cams} {self.what}"


def _compare_calibration(
    shown: str,
    reference: dict[str, dict[str, np.ndarray]],
    copy: dict[str, dict[str, np.ndarray]],
    cam_files: bool,
) -> list[CalibrationConflict]:
    out = []
    if not cam_files:  # per-camera files may cover fewer cameras: a missing file is no conflict
        only_ref = sorted(set(reference) - set(copy))
        if only_ref:
            out.append(CalibrationConflict(shown, tuple(only_ref), "missing from this copy"))
    only_copy = sorted(set(copy) - set(reference))
    if only_copy:
        out.append(CalibrationConflict(shown, tuple(only_copy), "not in the copy read"))
    for key in ("K", "D", "RT"):
        differ = []
        for cam in sorted(set(reference) & set(copy)):
            a, b = np.asarray(reference[cam][key]), np.asarray(copy[cam][key])
            a, b = a.reshape(-1) if key == "D" else a, b.reshape(-1) if key == "D" else b
            if a.shape != b.shape or not _same_values(a, b):
                differ.append(cam)
        if differ:
            out.append(
                CalibrationConflict(shown, tuple(differ), f"{key} differs from the copy read")
            )
    return out


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Two copies of a calibration array agree: the same bytes, or equal within round-off
    where NaN matches NaN and an infinity the same infinity (NaN != NaN must not make an
    untouched folder's copies "disagree")."""
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return True
    try:
        return bool(np.allclose(a, b, equal_nan=True, **CALIBRATION_TOLERANCE))
    except TypeError:  # not numeric
        return False


def _read_calibration_all(path: Path) -> dict[str, dict[str, np.ndarray]]:
    z = _load_npz(path, ("camera_ids", "K", "D", "RT"))
    return {
        str(c): {"K": z["K"][i], "D": z["D"][i], "RT": z["RT"][i]}
        for i, c in enumerate(z["camera_ids"].tolist())
    }


def _read_calibration_cam(path: Path) -> dict[str, np.ndarray]:
    z = _load_npz(path, ("K", "D", "RT"))
    return {k: z[k] for k in ("K", "D", "RT")}


#: The key of cameras.json naming cameras whose calibration JSON cannot hold (NaN, Inf).
_LEFT_OUT = "left_out"


def _read_calibration_json(path: Path) -> dict[str, Any]:
    """``cameras.json``: ``{"cameras": {cam: {"K", "D", "RT"}}}`` as float64 arrays, and under
    ``"left_out"`` the cameras it names as left out (``{cam: why}``)."""
    try:
        doc = json.loads(read_regular_text(path, _MAX_JSON_BYTES))
        out: dict[str, Any] = {
            str(cam): {k: np.asarray(v[k], dtype=np.float64) for k in ("K", "D", "RT")}
            for cam, v in doc["cameras"].items()
        }
        out[_LEFT_OUT] = {str(c): str(w) for c, w in dict(doc.get(_LEFT_OUT, {})).items()}
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SMCFormatError(f"{path}: unreadable calibration ({exc!r})") from exc


#: metadata/info.json and cameras.json are a few kB; a larger one is not read.
_MAX_JSON_BYTES = 64 << 20


def _npz_file(path: Path) -> Any:
    """An npz of the folder opened as a regular file (a symlink or FIFO is refused)."""
    try:
        return open_regular(path)
    except OSError as exc:
        raise SMCFormatError(f"{path}: unreadable npz ({exc})") from exc


def _holds_fixed(modality: str, *names: str) -> Callable[[ExtractedFolder], bool]:
    """A folder holds ``modality`` when the best source's copy of one of the fixed files
    ``names`` (keys of ``FIXED_PATHS``) exists."""
    return lambda f: any(f._fixed(modality, n) is not None for n in names)


#: Whether the folder holds each modality the loader reads, by modality name (the folder
#: backend's registry; the SMC backend's is ``loader.smc_source.HOLDS``).
HOLDS: dict[str, Callable[[ExtractedFolder], bool]] = {
    "calibration": lambda f: bool(f.calibration()),
    "images": lambda f: bool(f._blobs["images"]),
    "masks": lambda f: bool(f._blobs["masks"]),
    "keypoints2d": lambda f: any(k[0] == "keypoints2d" for k in f._items),
    "keypoints3d": _holds_fixed("keypoints3d", "keypoints3d"),
    "flame": _holds_fixed("flame", "flame"),
    "uv": lambda f: any(k[0] == "uv" for k in f._items),
    "scan": _holds_fixed("scan", "scan"),
    "audio": _holds_fixed("audio", "audio_npz", "audio_wav"),
}


def _load_npz(path: Path, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` (all when None; no pickles), each checked against
    its declared size and the budget before it is read (formats.npz); a missing one refused."""
    with _npz_file(path) as f:
        return read_npz(f, names, str(path))

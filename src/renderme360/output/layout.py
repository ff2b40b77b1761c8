"""One table of every output path: what ``extract`` writes and where, and the parsers back.

Every relative path the tool writes is produced here from validated ids, and every path read back
(verify, preview, resume counts, the loader) is parsed here, so the layout contract has a single
place to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..modalities import MODALITIES as MODALITIES  # re-exported: the one tuple of names
from ..modalities import SPECS, STREAMS, spec

#: In the combined layout, which file's copy wins when both hold a modality.
PREFERRED_SOURCE = {s.name: s.preferred for s in SPECS}


def source_order(modality: str) -> tuple[str, ...]:
    """Source roles to read a modality from, best first (the combined layout's preference)."""
    if PREFERRED_SOURCE.get(modality) == "raw":
        return ("raw", "smc", "anno")
    return ("anno", "smc", "raw")


#: Folder of each modality inside a source folder.
FOLDERS = {s.name: s.folder for s in SPECS}

SOURCE_FOLDERS = {"anno": "from_anno", "raw": "from_raw", "smc": "from_smc"}

EXTRACTION_INFO = "extraction_info.txt"
SIZE_SUMMARY = "size_summary.txt"
MANIFEST = "manifest.json"
#: Every file with its size, sha256 and origin, one JSON object per line (read as a stream).
FILE_LIST = "manifest.jsonl"
#: ``sha256sum -c`` list of every file with a checksum, paths relative to the performance folder.
CHECKSUMS = "SHA256SUMS"
COMPLETE_MARKER = ".extraction_complete"
JOURNAL = ".journal.jsonl"
LOCK = ".lock"
VISUALIZATION = "visualization"
BATCH_MANIFEST = "MANIFEST.csv"


def performance_dir(actor: str, performance: str) -> str:
    """Folder of one performance under the output root: ``{actor}_{perf}``."""
    return f"{actor}_{performance}"


def source_prefix(role: str, layout: str) -> str:
    """Prefix of a source file's modality folders: ``from_anno/`` etc., or ``""`` if combined."""
    return "" if layout == "combined" else SOURCE_FOLDERS[role] + "/"


def frame_file(frame: int, ext: str) -> str:
    """``frame_000017.jpg``."""
    return f"frame_{frame:06d}.{ext}"


def blob_path(modality: str, cam: str | None, frame: int | None, ext: str) -> str:
    """Path of one blob of a blob modality, shaped by what it is per (camera and/or frame):
    ``images/cam_25/frame_000000.jpg``, ``uv_textures/frame_000000.jpg``,
    ``scan_masks/cam_25.png``."""
    s = spec(modality)
    if s.per_frame:
        if frame is None:
            raise ValueError(f"{modality}: a path of it names a frame")
        name = frame_file(frame, ext)
        return f"{s.folder}/cam_{cam}/{name}" if s.per_camera else f"{s.folder}/{name}"
    return f"{s.folder}/cam_{cam}.{ext}"


def image_path(modality: str, cam: str, frame: int, ext: str) -> str:
    """``images/cam_25/frame_000000.jpg`` or ``masks/cam_25/frame_000000.png``."""
    return blob_path(modality, cam, frame, ext)


def uv_path(frame: int, ext: str) -> str:
    """``uv_textures/frame_000000.jpg``."""
    return blob_path("uv", None, frame, ext)


def scan_mask_path(cam: str, ext: str) -> str:
    """``scan_masks/cam_25.png``."""
    return blob_path("scan_masks", cam, None, ext)


def keypoints2d_path(cam: str) -> str:
    """``keypoints2d/cam_25.npz``."""
    return f"{FOLDERS['keypoints2d']}/cam_{cam}.npz"


def calibration_camera_path(cam: str) -> str:
    """``calibration/cam_25.npz``."""
    return f"{FOLDERS['calibration']}/cam_{cam}.npz"


FIXED_PATHS = {
    "calibration_all": "calibration/all_cameras.npz",
    "calibration_json": "calibration/cameras.json",
    "metadata_json": "metadata/info.json",
    "metadata_txt": "metadata/info.txt",
    "audio_wav": "audio/audio.wav",
    "audio_mp3": "audio/audio.mp3",
    "audio_npz": "audio/audio_data.npz",
    "keypoints3d": "keypoints3d/all_frames.npz",
    "flame": "flame/all_frames.npz",
    "scan": "scan/mesh.ply",
}

#: Root folder of the previews.
VISUALIZATION_FILES = {
    "contact_sheet": VISUALIZATION + "/cameras_frame_{frame:06d}.jpg",
    "masks_overlay": VISUALIZATION + "/masks_overlay.jpg",
    "keypoints_overlay": VISUALIZATION + "/keypoints_overlay.jpg",
    "camera_rig": VISUALIZATION + "/camera_rig.png",
}


# ---------------------------------------------------------------------------- parsers
@dataclass(frozen=True)
class OutputPath:
    """What a relative output path names (the inverse of the path functions above).

    ``source`` is the role of the source folder (``anno``, ``raw``, ``smc``) or None in the
    combined layout; ``camera`` and ``frame`` are set when the path names them.
    """

    source: str | None
    modality: str
    camera: str | None = None
    frame: int | None = None
    ext: str = ""


_ROLE_OF_FOLDER = {folder: role for role, folder in SOURCE_FOLDERS.items()}
_MODALITY_OF_FOLDER = {folder: m for m, folder in FOLDERS.items()}
_FIXED_MODALITY = {path: path.split("/")[0] for path in FIXED_PATHS.values()}
_CAM = r"cam_(?P<cam>[0-9]{2})"
_FRAME = r"frame_(?P<frame>[0-9]{1,9})"
_EXT = r"\.(?P<ext>[A-Za-z0-9]{1,8})"


def _blob_pattern(modality: str) -> str:
    """The regex of :func:`blob_path`'s paths of a blob modality."""
    s = spec(modality)
    if s.per_camera and s.per_frame:
        return rf"{s.folder}/{_CAM}/{_FRAME}{_EXT}"
    if s.per_frame:
        return rf"{s.folder}/{_FRAME}{_EXT}"
    return rf"{s.folder}/{_CAM}{_EXT}"


_PATTERNS = [
    *((s.name, re.compile(_blob_pattern(s.name))) for s in SPECS if s.is_blob),
    ("keypoints2d", re.compile(rf"{FOLDERS['keypoints2d']}/{_CAM}\.(?P<ext>npz)")),
    ("calibration", re.compile(rf"{FOLDERS['calibration']}/{_CAM}\.(?P<ext>npz)")),
]


def split_source(rel: str) -> tuple[str | None, str]:
    """``from_anno/images/...`` -> (``"anno"``, ``"images/..."``); (None, rel) without a prefix."""
    head, sep, rest = rel.partition("/")
    if sep and head in _ROLE_OF_FOLDER:
        return _ROLE_OF_FOLDER[head], rest
    return None, rel


def parse_path(rel: str) -> OutputPath | None:
    """Parse a relative path ``extract`` writes; None for anything else (reports, previews)."""
    source, inner = split_source(rel)
    if inner in _FIXED_MODALITY:
        folder = _FIXED_MODALITY[inner]
        return OutputPath(source, _MODALITY_OF_FOLDER[folder], ext=inner.rpartition(".")[2])
    for modality, pattern in _PATTERNS:
        m = pattern.fullmatch(inner)
        if m:
            groups = m.groupdict()
            frame = groups.get("frame")
            return OutputPath(
                source,
                modality,
                camera=groups.get("cam"),
                frame=None if frame is None else int(frame),
                ext=m["ext"],
            )
    return None


_STREAM_FOLDERS = "|".join(FOLDERS[m] for m in STREAMS)
_STREAM_FOLDER_RE = re.compile(rf"(?:{_STREAM_FOLDERS})/{_CAM}")
_FRAME_NAME_RE = re.compile(rf"{_FRAME}{_EXT}")


def stream_camera(folder: str) -> str | None:
    """Camera of an image or mask folder (``from_raw/images/cam_03`` -> ``"03"``), else None.
    With :func:`frame_of_name`, what :func:`parse_path` says of the files in it."""
    m = _STREAM_FOLDER_RE.fullmatch(split_source(folder)[1])
    return None if m is None else m["cam"]


def frame_of_name(name: str) -> int | None:
    """Frame of an image or mask file name (``frame_000012.jpg`` -> 12), else None."""
    m = _FRAME_NAME_RE.fullmatch(name)
    return None if m is None else int(m["frame"])


def top_folder(rel: str, layout: str) -> str:
    """The modality folder a file lies in: ``from_anno/images`` (separate) or ``images``."""
    return "/".join(rel.split("/")[: 2 if layout == "separate" else 1])


def parent_folder(rel: str) -> str:
    """The folder holding a file: ``from_anno/images/cam_25`` for one of its frames."""
    return rel.rsplit("/", 1)[0]


_PERFORMANCE_DIR = re.compile(r"(?P<actor>[0-9]{4})_(?P<perf>[a-z][0-9]{1,3}(?:_[a-z0-9]{1,16})?)")


def parse_performance_dir(name: str) -> tuple[str, str] | None:
    """``0026_e0`` -> ``("0026", "e0")`` (the inverse of :func:`performance_dir`); else None."""
    m = _PERFORMANCE_DIR.fullmatch(name)
    return (m["actor"], m["perf"]) if m else None

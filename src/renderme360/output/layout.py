"""One table of every output path: what ``extract`` writes and where.

Every relative path the tool writes is produced here from validated ids, so the layout contract
has a single place to change.
"""

from __future__ import annotations

#: Modalities a user can select, in the order they are planned and reported.
MODALITIES = (
    "metadata",
    "calibration",
    "images",
    "masks",
    "audio",
    "keypoints2d",
    "keypoints3d",
    "flame",
    "uv",
    "scan",
    "scan_masks",
)
#: In the combined layout, which file's copy wins when both hold a modality.
PREFERRED_SOURCE = {m: "raw" if m in ("images", "audio") else "anno" for m in MODALITIES}

#: Folder of each modality inside a source folder.
FOLDERS = {
    "metadata": "metadata",
    "calibration": "calibration",
    "images": "images",
    "masks": "masks",
    "audio": "audio",
    "keypoints2d": "keypoints2d",
    "keypoints3d": "keypoints3d",
    "flame": "flame",
    "uv": "uv_textures",
    "scan": "scan",
    "scan_masks": "scan_masks",
}

SOURCE_FOLDERS = {"anno": "from_anno", "raw": "from_raw", "smc": "from_smc"}

EXTRACTION_INFO = "extraction_info.txt"
SIZE_SUMMARY = "size_summary.txt"
MANIFEST = "manifest.json"
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


def image_path(modality: str, cam: str, frame: int, ext: str) -> str:
    """``images/cam_25/frame_000000.jpg`` or ``masks/cam_25/frame_000000.png``."""
    return f"{FOLDERS[modality]}/cam_{cam}/{frame_file(frame, ext)}"


def uv_path(frame: int, ext: str) -> str:
    """``uv_textures/frame_000000.jpg``."""
    return f"{FOLDERS['uv']}/{frame_file(frame, ext)}"


def scan_mask_path(cam: str, ext: str) -> str:
    """``scan_masks/cam_25.png``."""
    return f"{FOLDERS['scan_masks']}/cam_{cam}.{ext}"


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

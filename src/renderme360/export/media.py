"""What ``export talkinghead`` and ``export clips`` share: argument checks, the face points a
crop box is made from, the calibration of a crop, a source stamp for re-runs, the summary."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..errors import EmptySelectionError, Renderme360Error, UsageError
from ..naming import camera_key
from .record import file_stamp
from .select import perf_name
from .video import CRF, CROPS, PRESET, Framing, check_size

if TYPE_CHECKING:
    from ..loader.performance import Performance
    from ..smc.source import Location

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")
CAMERA_CONVENTION = (
    "OpenCV: K with the top-left pixel's centre at (0, 0); D = k1 k2 p1 p2 k3; c2w maps camera "
    "to world (x right, y down, z forward), metres; w2c its inverse. K is the crop's: a "
    "full-size pixel u lands at (u + 0.5 - x0) * width / w - 0.5."
)


@dataclass
class MediaSummary:
    """What a video export wrote (the CLI prints it; ``--json`` prints it whole)."""

    format: str
    dest: str
    takes: list[str]
    cameras: list[str]
    fps: int
    size: int
    crop: str
    videos: int = 0
    frames: int = 0
    seconds_of_video: float = 0.0
    reused: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def note_lines(self) -> list[str]:
        """Things the user should know (takes left out, no audio, differing calibration)."""
        return list(self.notes)

    def result_lines(self) -> list[str]:
        made = self.videos - self.reused
        return [
            f"{self.format}: {self.videos} video(s) of {len(self.cameras)} camera(s) from "
            f"{len(self.takes)} take(s), {self.frames} frames at {self.fps} fps "
            f"({self.seconds_of_video:.1f} s), {made} encoded, {self.reused} reused, "
            f"{self.seconds:.2f} s",
            f"wrote {self.dest} (how to use it: README.txt there)",
        ]


def check_args(fps: int, size: int, crop: str) -> None:
    """One-line refusals of ``--fps``, ``--size`` and ``--crop``."""
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 240:
        raise UsageError(f"--fps must be a whole number of frames per second 1..240, got {fps!r}")
    check_size(size)
    if crop not in CROPS:
        raise UsageError(f"--crop must be one of {', '.join(CROPS)}, got {crop!r}")


def check_name(name: str) -> str:
    """``--name``: the folder and file stem (letters, digits, ``_ . + -``; no path)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError(f"--name must be letters, digits and _.+- (1-80, no path), got {name!r}")
    return name


def image_camera(perf: Performance, camera: int | str) -> str:
    """``camera`` as an id, or exit 6 naming the cameras of ``perf`` that have images."""
    cam = camera_key(camera)
    have = list(perf.image_camera_ids)
    if cam not in have:
        raise EmptySelectionError(
            f"{perf_name(perf)}: no images for camera {cam} "
            f"(cameras with images: {', '.join(have) or 'none'})"
        )
    return cam


def face_points(perf: Performance, camera: str, frames: np.ndarray) -> np.ndarray:
    """(N, 2) pixel keypoints of ``camera`` in ``frames``: its 2D keypoints, or else the 3D
    keypoints projected through its calibration; Renderme360Error when it has neither."""
    wanted = np.unique(frames)
    if camera in perf.keypoints2d_camera_ids:
        f2, k2 = perf.keypoints2d(camera)
        rows = np.isin(np.asarray(f2), wanted)
        if rows.any():
            return np.asarray(k2, dtype=np.float64)[rows].reshape(-1, 2)
    if perf.has("keypoints3d"):
        f3, k3 = perf.keypoints3d()
        rows = np.isin(np.asarray(f3), wanted)
        pts = np.asarray(k3, dtype=np.float64)[rows].reshape(-1, 3)
        cam = perf.camera(camera)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if len(pts):
            return cam.project(pts[cam.to_camera(pts)[:, 2] > 0])
    raise Renderme360Error(
        f"{perf_name(perf)}: camera {camera} has no 2D or 3D keypoints in the exported frames "
        "for a face crop; use --crop full"
    )


def camera_doc(cam: Any, how: Framing) -> dict[str, Any]:
    """``camera.json``: the crop's K, D, c2w (OpenCV convention) and the box it comes from."""
    crop = cam.cropped(how.box, how.width, how.height)
    return {
        "camera": cam.id,
        "width": how.width,
        "height": how.height,
        "K": crop.K.tolist(),
        "D": np.asarray(cam.D, dtype=np.float64).tolist(),
        "c2w": np.asarray(cam.c2w, dtype=np.float64).tolist(),
        "w2c": crop.w2c.tolist(),
        "crop": how.to_dict(),
        "source_size": [cam.width, cam.height],
        "convention": CAMERA_CONVENTION,
    }


def source_stamp(perf: Performance) -> str:
    """What a performance was read from, with sizes and times: a change makes a re-run
    encode again rather than reuse."""
    files = perf.smc_files
    paths: list[Location] = [p for _, p in sorted(files.items())]
    root = perf.folder
    if not paths and root is not None:
        paths.extend([p for p in (Path(root) / "manifest.json", Path(root)) if p.exists()][:1])
    return f"{perf_name(perf)}@{';'.join(file_stamp(p) for p in paths)}"


def key_of(**what: Any) -> str:
    """A short hash of what an output is made from (tool, encoder settings, sources, choices)."""
    doc = dict(what, tool=__version__, crf=CRF, preset=PRESET)
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def dumps(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1) + "\n").encode()

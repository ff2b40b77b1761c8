"""Deterministic generator of synthetic, faithful RenderMe360 SMC (HDF5) files.

Tests, the demo and the benchmarks need SMC files without downloading ~300 GB per subject. The
files written here follow the layout of the real releases (see the format notes: groups,
attributes, dtypes, encoded JPEG/PNG blobs, camera-to-world calibration) and reproduce the quirks
a robust reader must survive:

* root string attributes stored as ``bytes`` in some files and ``str`` in others;
* exactly one 3-channel mask PNG per expression anno file (all others are 8-bit grayscale);
* a keypoint frame missing entirely and another stored as an empty dataset;
* 2-D keypoints only for some of the frontal cameras 18..32;
* release-500 speech parts s1/s2/s4/s5/s6 with images in camera ``25`` only and a
  ``Camera/00`` group holding nothing but audio;
* calibration of all 60 cameras (release 21) or only of the cameras under ``Camera`` (release 500).

Content is geometrically consistent: the bright ellipse "head" in each image and its mask are the
projection of the moving head through that camera, and the stored 2-D keypoints are exact
projections of the stored 3-D keypoints through the stored calibration, distortion included
(2-D index ``33 + i`` is 3-D index ``i``; the first 33 2-D points are the face contour).

Everything derives from ``seed`` through :class:`numpy.random.SeedSequence` (never Python's
randomised ``hash``), datasets are created with ``track_times=False`` and files are written to a
temporary name and renamed into place, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np

from .camera import Camera
from .errors import UnsafeNameError, UsageError
from .formats.flame import FlameModel, flame_model_from_dict
from .formats.flame import pose as flame_pose
from .formats.image import encode
from .naming import FRONTAL_CAMERAS, performance_kind, validate_actor, validate_performance
from .output.confined import replacing

log = logging.getLogger(__name__)

#: Image size (height, width) per named resolution. "small" keeps height != width so that
#: transposed reads are caught, and is tiny so tests stay fast; "full" is the real sensor.
RESOLUTIONS: dict[str, tuple[int, int]] = {"small": (96, 120), "full": (2048, 2448)}
#: Releases whose file layout can be generated: 21 subjects (2023) and 500 subjects (2024).
RELEASES: tuple[int, ...] = (21, 500)
#: Number of cameras of the rig (``Camera`` attr ``num_device``).
NUM_DEVICES = 60
#: Root attribute marking a file as written by :func:`synthesize` (so it may be replaced).
SYNTH_MARK = "renderme360_synthetic"
#: World position of the head centre (metres); world "up" is -y.
HEAD_CENTER = np.array([-0.04, -0.50, 0.00])
#: The frontal camera: it always holds images (speech parts of release 500 hold only this one).
FRONT_CAMERA = "25"
NUM_KEYPOINTS_2D = 106
NUM_KEYPOINTS_3D = 73
#: Rows of a 2-D keypoint array that are projections of the 3-D keypoints, in order:
#: ``kp2d[KP3D_INDEX_IN_KP2D] == project(kp3d)``, i.e. 2-D index ``33 + i`` is 3-D index ``i``. The
#: first 33 rows (the face contour) are projections of points not stored in ``Keypoints3d``.
KP3D_INDEX_IN_KP2D = np.arange(NUM_KEYPOINTS_2D - NUM_KEYPOINTS_3D, NUM_KEYPOINTS_2D)
AUDIO_SAMPLE_RATE = 48000
#: Video frame rate used to size the audio track (frames / FPS seconds).
FPS = 30
#: Speech parts that the 500-subject release stores with a single camera (``25``).
SINGLE_CAMERA_SPEECH = frozenset({1, 2, 4, 5, 6})

_FULL_WIDTH = 2448
_FULL_FOCAL = 4700.0
_GRAIN = 5  # background grain: uniform +-5 grey levels at half resolution
_HEAD_SEMI_AXES = (0.085, 0.115)  # half width, half height of the head silhouette (metres)
_FLAME_VERTS = 5023
_UV_SIZE = 256
_Ellipse = tuple[float, float, float, float]  # centre u, v and semi-axes a, b in pixels
_SKIN_TONES = ("yellow", "white", "black", "brown")
_SKIN_BGR = {
    "yellow": (150.0, 190.0, 225.0),
    "white": (175.0, 200.0, 235.0),
    "black": (60.0, 80.0, 110.0),
    "brown": (95.0, 130.0, 175.0),
}


# --------------------------------------------------------------------------------------- rig


def make_rig(
    num_cameras: int = NUM_DEVICES, seed: int = 0, resolution: str = "full"
) -> dict[str, dict[str, np.ndarray]]:
    """Build a plausible camera rig around the head, laid out like the real 60-camera rig.

    Cameras ``00``..``50`` stand in 17 columns of 3 (elevation tiers ~+30, ~+3 and ~-24 degrees
    as seen from the head, world up being -y), ~19 degrees apart in azimuth, 1.2-1.3 m from the
    head; column 8 (cameras 24..26) and column 9 (27..29) straddle the front of the face (world
    -z), so camera ``25`` is frontal and 18..32 span about +-40 degrees around the front. Camera
    ``51`` looks down from behind; ``52``..``59`` form a closer ring (1.0-1.15 m) just below eye
    level, every ~40 degrees. Ids beyond 59 continue that ring at +15 degrees elevation. Every
    camera looks at the head within a couple of centimetres (seeded jitter), with a slight roll.

    Parameters
    ----------
    num_cameras
        Number of cameras, ids ``00`` .. ``{num_cameras-1:02d}`` (1..100).
    seed
        Seed of the jitter on positions, aim, roll, intrinsics and distortion.
    resolution
        Key of :data:`RESOLUTIONS`; the focal length (~4700 px at 2448 px width) and the principal
        point scale with the image size. Extrinsics and distortion do not depend on it.

    Returns
    -------
    dict
        ``{'00': {'K': (3, 3) float64, 'D': (5,) float64, 'RT': (4, 4) float64}, ...}`` where
        ``RT`` maps camera to world coordinates (OpenCV axes: x right, y down, z forward; its
        columns are the camera axes in world coordinates and ``RT[:3, 3]`` the camera centre)
        and ``D`` holds small OpenCV distortion coefficients ``k1, k2, p1, p2, k3``.
    """
    _check_int("num_cameras", num_cameras, 1, 100)
    _check_int("seed", seed, 0, None)
    height, width = _resolution(resolution)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5219]))
    scale = width / _FULL_WIDTH
    rig: dict[str, dict[str, np.ndarray]] = {}
    for i in range(num_cameras):
        azimuth, elevation, distance = _rig_slot(i)
        azimuth = math.radians(azimuth + rng.uniform(-1.0, 1.0))
        elevation = math.radians(elevation + rng.uniform(-1.0, 1.0))
        distance += rng.uniform(-0.03, 0.03)
        direction = np.array(
            [
                math.cos(elevation) * math.sin(azimuth),
                -math.sin(elevation),  # up is -y
                math.cos(elevation) * math.cos(azimuth),
            ]
        )
        centre = HEAD_CENTER + distance * direction
        target = HEAD_CENTER + rng.uniform(-0.015, 0.015, size=3)
        rotation = _look_at(centre, target, roll=math.radians(rng.uniform(-1.0, 1.0)))
        rt = np.eye(4)
        rt[:3, :3] = rotation
        rt[:3, 3] = centre
        focal = _FULL_FOCAL * scale * (1.0 + rng.uniform(-0.005, 0.005))
        k = np.array(
            [
                [focal, 0.0, (width - 1) / 2.0 + rng.uniform(-0.02, 0.02) * width],
                [0.0, focal * (1.0 + rng.uniform(-0.001, 0.001)), 0.0],
                [0.0, 0.0, 1.0],
            ]
        )
        k[1, 2] = (height - 1) / 2.0 + rng.uniform(-0.02, 0.02) * height
        d = np.array(
            [
                rng.uniform(-0.03, 0.03),  # k1: a few pixels at the corners of a 2448x2048 image
                rng.uniform(-0.05, 0.05),  # k2
                rng.uniform(-2e-4, 2e-4),  # p1
                rng.uniform(-2e-4, 2e-4),  # p2
                0.0,  # k3
            ]
        )
        rig[f"{i:02d}"] = {"K": k, "D": d, "RT": rt}
    return rig


#: Elevation (degrees above the head, world up is -y) of the three tiers of the main columns.
_TIERS = (30.0, 3.0, -24.0)
_COLUMNS = 17
_COLUMN_STEP = 19.2  # degrees of azimuth between columns; columns 8 and 9 straddle the front


def _rig_slot(index: int) -> tuple[float, float, float]:
    """Nominal (azimuth, elevation, distance) of camera ``index``; azimuth 180 = front (-z)."""
    if index < 3 * _COLUMNS:
        column, tier = divmod(index, 3)
        return 180.0 + (column - 8.5) * _COLUMN_STEP, _TIERS[tier], 1.27
    if index == 3 * _COLUMNS:
        return -7.0, 30.0, 1.30  # looking down from behind
    j = index - 3 * _COLUMNS - 1  # the closer ring: 52..59, then extra ids
    return 33.0 + 40.0 * (j % 9) + 20.0 * (j // 9), -2.5 + 17.5 * (j // 9), 1.08


def _look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """Camera-to-world rotation of a camera at ``centre`` looking at ``target``, image-down ~ +y."""
    z = target - centre
    z /= np.linalg.norm(z)
    down = np.array([0.0, 1.0, 0.0])  # world up is -y
    y = down - (down @ z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    c, s = math.cos(roll), math.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    return np.column_stack([x, y, z])


def project_points(
    points: np.ndarray, k: np.ndarray, rt: np.ndarray, d: np.ndarray | None = None
) -> np.ndarray:
    """Project world points (n, 3) to pixels (n, 2) through a camera-to-world ``rt``.

    ``x_cam = inv(RT) @ X``, ``x = x_cam / z``, OpenCV distortion ``d`` (none if omitted), then
    ``K``: the convention of the stored keypoints (see :meth:`renderme360.camera.Camera.project`).
    """
    camera = Camera("", np.asarray(k), np.zeros(5) if d is None else np.asarray(d), rt, 0, 0)
    return camera.project(points)


def select_image_cameras(count: int, num_cameras: int = NUM_DEVICES) -> list[str]:
    """Ids of the ``count`` cameras that hold colour images, sorted.

    Always includes ``25`` and, for ``count >= 3``, the frontal ``22`` and ``28``; the remaining
    ids are spread evenly over ``00``..``59`` (nearest unused id to evenly spaced targets).
    """
    _check_int("cameras", count, 1, num_cameras)
    chosen: list[int] = [int(FRONT_CAMERA)] if int(FRONT_CAMERA) < num_cameras else []
    if count >= 3:
        chosen += [c for c in (22, 28) if c < num_cameras]
    chosen = chosen[:count]
    remaining = count - len(chosen)
    for target in np.linspace(0, num_cameras - 1, remaining) if remaining else ():
        free = [c for c in range(num_cameras) if c not in chosen]
        t = float(target)
        chosen.append(min(free, key=lambda c: (abs(c - t), c)))
    return [f"{c:02d}" for c in sorted(chosen)]


# ---------------------------------------------------------------------------------- synthesize


#: Which scene method writes each modality and a release-21 performance whose files hold it,
#: by modality name (tests/test_modalities.py synthesises each one and walks it through).
WRITERS: dict[str, tuple[str, str]] = {
    "metadata": ("write_root_attrs", "h0"),
    "calibration": ("write_calibration", "h0"),
    "images": ("write_images", "h0"),
    "masks": ("write_masks", "h0"),
    "audio": ("write_audio", "s1"),
    "keypoints2d": ("write_keypoints", "h0"),
    "keypoints3d": ("write_keypoints", "h0"),
    "flame": ("write_expression_extras", "e0"),
    "uv": ("write_expression_extras", "e0"),
    "scan": ("write_expression_extras", "e0"),
    "scan_masks": ("write_expression_extras", "e0"),
}


def synthesize(
    out: str | os.PathLike[str],
    subject: str = "0026",
    performances: Sequence[str] = ("e0", "s1_all", "h0", "h1_2bk"),
    release: int = 21,
    cameras: int = 4,
    frames: int = 3,
    resolution: str = "small",
    seed: int = 0,
) -> list[Path]:
    """Write synthetic SMC files of one subject under ``out``; return the paths written, sorted.

    Parameters
    ----------
    out
        Root folder. Release 21 writes ``anno/{subject}/{subject}_{perf}_anno.smc`` and
        ``raw/{subject}/{subject}_{perf}_raw.smc``; release 500 writes
        ``{subject}/{subject}_{perf}_raw.smc``. Existing files written by this function (they
        carry the root attribute :data:`SYNTH_MARK`) are replaced atomically; any other file at
        a target path (a real download, say) is refused before anything is written.
    subject
        4-digit actor id.
    performances
        Performance names (``e*`` expression, ``s*`` speech, ``h*`` head; other kinds are
        written like head parts). A single string is taken as one name; duplicates are ignored.
    release
        21 (anno + raw file per performance) or 500 (one file per performance).
    cameras
        How many of the 60 cameras hold colour images (and masks), 1..60; see
        :func:`select_image_cameras`. Release-500 speech parts s1/s2/s4/s5/s6 ignore it and use
        camera ``25`` only.
    frames
        Frames per camera (>= 1); audio lasts ``max(frames / 30, 0.1)`` seconds.
    resolution
        Key of :data:`RESOLUTIONS`.
    seed
        Non-negative seed: the same arguments give byte-identical files.

    Raises
    ------
    UsageError
        Any invalid argument (one-line message), or a target path holding a file this
        function did not write.
    """
    subject, perfs = _check_names(subject, performances)
    if release not in RELEASES or isinstance(release, bool):
        raise UsageError(f"unknown release {release!r}: expected one of {list(RELEASES)}")
    _check_int("cameras", cameras, 1, NUM_DEVICES)
    _check_int("frames", frames, 1, None)
    _check_int("seed", seed, 0, None)
    height, width = _resolution(resolution)
    root = Path(out)
    rig = make_rig(NUM_DEVICES, seed, resolution)
    meta = _subject_meta(subject, seed)
    targets = {perf: _targets(root, subject, perf, release) for perf in perfs}
    for paths in targets.values():
        for path in paths:
            _refuse_foreign(path)
    written: list[Path] = []
    for perf in perfs:
        image_cams = select_image_cameras(cameras)
        if release == 500 and _single_camera_speech(perf):
            image_cams = [FRONT_CAMERA]
        scene = _Scene(subject, perf, frames, height, width, seed, rig, image_cams, meta)
        if release == 21:
            anno, raw = targets[perf]
            _write_atomic(anno, scene.write_anno_21)
            _write_atomic(raw, scene.write_raw_21)
        else:
            (path,) = targets[perf]
            _write_atomic(path, scene.write_500)
        written += targets[perf]
    return sorted(written)


def _targets(root: Path, subject: str, perf: str, release: int) -> list[Path]:
    """The file(s) one performance is written to, in the release's layout."""
    if release == 21:
        return [
            root / "anno" / subject / f"{subject}_{perf}_anno.smc",
            root / "raw" / subject / f"{subject}_{perf}_raw.smc",
        ]
    return [root / subject / f"{subject}_{perf}_raw.smc"]


def _refuse_foreign(path: Path) -> None:
    """Refuse a target path that holds anything but a file written by :func:`synthesize`.

    Synthetic ids are real subject ids (``0026``): pointed at a real dataset, ``synth`` must not
    replace a downloaded file.
    """
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_symlink() and path.is_file():
        try:
            with h5py.File(path, "r", locking=False) as f:
                if SYNTH_MARK in f.attrs:
                    return
        except (OSError, ValueError, RuntimeError, KeyError):
            pass  # unreadable: not ours
    raise UsageError(
        f"refusing to overwrite {path}: it was not written by 'renderme360 synth' "
        "(real data?); choose another folder"
    )


# ------------------------------------------------------------------------------- validation


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{name} must be {bound}, got {value}")


def _resolution(resolution: object) -> tuple[int, int]:
    if not isinstance(resolution, str) or resolution not in RESOLUTIONS:
        raise UsageError(f"unknown resolution {resolution!r}: expected one of {list(RESOLUTIONS)}")
    return RESOLUTIONS[resolution]


def _check_names(subject: object, performances: object) -> tuple[str, list[str]]:
    try:
        subject = validate_actor(subject)
    except UnsafeNameError:
        raise UsageError(f"invalid subject {subject!r}: expected 4 digits like '0026'") from None
    if isinstance(performances, str):
        performances = [performances]
    if not isinstance(performances, Sequence) or not performances:
        raise UsageError("performances must be a non-empty sequence of names like 'e0'")
    perfs: list[str] = []
    for perf in performances:
        try:
            validate_performance(perf)
        except UnsafeNameError:
            raise UsageError(
                f"invalid performance {perf!r}: expected a name like e0, s1_all, h1_2bk"
            ) from None
        if perf not in perfs:
            perfs.append(perf)
    return subject, perfs


def _speech_index(perf: str) -> int | None:
    m = re.match(r"s([0-9]+)", perf)
    return int(m.group(1)) if m else None


def _single_camera_speech(perf: str) -> bool:
    return _speech_index(perf) in SINGLE_CAMERA_SPEECH


# ------------------------------------------------------------------------------- randomness


def _rng(seed: int, *keys: int | str) -> np.random.Generator:
    """Independent, reproducible stream per (seed, keys); strings hashed with CRC-32."""
    words = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def _subject_meta(subject: str, seed: int) -> dict[str, str | int | float]:
    rng = _rng(seed, "meta", subject)
    return {
        "actor_id": subject,
        "capture_date": f"2023{int(rng.integers(3, 10)):02d}{int(rng.integers(1, 29)):02d}",
        "age": int(rng.integers(18, 61)),
        "color": _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))],
        "gender": ("female", "male")[int(rng.integers(2))],
        "height": round(float(rng.uniform(1.55, 1.92)), 2),
        "weight": round(float(rng.uniform(48.0, 95.0)), 1),
    }


# ------------------------------------------------------------------------------------ scene


@dataclass
class _Scene:
    """Everything one performance's files show: head motion, cameras, and how to write them."""

    subject: str
    perf: str
    frames: int
    height: int
    width: int
    seed: int
    rig: dict[str, dict[str, np.ndarray]]
    image_cams: list[str]
    meta: dict[str, str | int | float]
    kind: str = field(init=False)
    face: np.ndarray = field(init=False)
    poses: list[tuple[np.ndarray, np.ndarray]] = field(init=False)

    def __post_init__(self) -> None:
        self.kind = performance_kind(self.perf)
        self.face = _face_template(_rng(self.seed, "face", self.subject))
        phase = _rng(self.seed, "motion", self.subject, self.perf).uniform(0, 2 * math.pi, 4)
        self.poses = [_head_pose(f, phase) for f in range(self.frames)]

    # ---- geometry
    def face_points(self, frame: int) -> np.ndarray:
        """The 106 face points of ``frame`` in world coordinates."""
        rotation, shift = self.poses[frame]
        return HEAD_CENTER + (self.face - HEAD_CENTER) @ rotation.T + shift

    def ellipse(self, cam: str, frame: int) -> _Ellipse:
        """Centre and semi-axes (pixels) of the head silhouette seen by ``cam``."""
        calib = self.rig[cam]
        rt, k = calib["RT"], calib["K"]
        centre = HEAD_CENTER + self.poses[frame][1]
        depth = float((centre - rt[:3, 3]) @ rt[:3, 2])
        (u, v) = project_points(centre[None], k, rt, calib["D"])[0]
        return u, v, k[0, 0] * _HEAD_SEMI_AXES[0] / depth, k[1, 1] * _HEAD_SEMI_AXES[1] / depth

    @property
    def keypoint_cams(self) -> list[str]:
        """Image cameras with 2-D keypoints: the frontal ones but the last when there are >= 2."""
        frontal = [c for c in self.image_cams if c in FRONTAL_CAMERAS]
        return frontal[:-1] if len(frontal) >= 2 else frontal

    @property
    def missing_frame(self) -> int | None:
        """Keypoint frame absent from the file (frames >= 3 only)."""
        return self.frames // 2 if self.frames >= 3 else None

    @property
    def empty_frame(self) -> int | None:
        """Keypoint frame stored as a zero-length dataset (frames >= 3 only)."""
        return self.frames - 1 if self.frames >= 3 else None

    # ---- file contents
    def write_root_attrs(self, f: h5py.File, as_bytes: Sequence[str]) -> None:
        attrs = dict(self.meta, performance_part=self.perf)
        f.attrs[SYNTH_MARK] = "synthetic data: not a RenderMe360 recording"
        for name in (
            "actor_id",
            "performance_part",
            "capture_date",
            "age",
            "color",
            "gender",
            "height",
            "weight",
        ):
            value = attrs[name]
            if isinstance(value, str):
                f.attrs[name] = np.bytes_(value.encode()) if name in as_bytes else value
            elif isinstance(value, int):
                f.attrs[name] = np.int64(value)
            else:
                f.attrs[name] = np.float64(value)

    def camera_group(self, f: h5py.File) -> h5py.Group:
        group = f.create_group("Camera")
        group.attrs["num_device"] = np.int64(NUM_DEVICES)
        group.attrs["num_frame"] = np.int64(self.frames)
        group.attrs["resolution"] = np.array([self.height, self.width], dtype=np.int64)
        return group

    def write_images(self, camera: h5py.Group) -> None:
        skin = np.array(_SKIN_BGR[str(self.meta["color"])], dtype=np.float32)
        for cam in self.image_cams:
            base = _base_image(_rng(self.seed, "image", self.subject, self.perf, int(cam)), self)
            color = camera.require_group(cam).create_group("color")
            for frame in range(self.frames):
                image = _draw_head(base, self.ellipse(cam, frame), skin)
                _blob(color, str(frame), _encode(".jpg", image))

    def write_masks(self, camera: h5py.Group) -> None:
        three_channel = None
        if self.kind == "expression":
            three_channel = (self.image_cams[0], 1 if self.frames > 1 else 0)
        for cam in self.image_cams:
            group = camera.require_group(cam).create_group("mask")
            for frame in range(self.frames):
                mask = _ellipse_mask(self.height, self.width, self.ellipse(cam, frame))
                if (cam, frame) == three_channel:
                    mask = cv2.merge([mask, mask, mask])
                _blob(group, str(frame), _encode(".png", mask))

    def write_audio(self, camera: h5py.Group) -> None:
        group = camera.require_group("00").create_group("audio")
        _dataset(group, "audio", _audio(_rng(self.seed, "audio", self.subject, self.perf), self))
        _dataset(group, "sample_rate", np.int64(AUDIO_SAMPLE_RATE))

    def write_calibration(self, f: h5py.File, cams: Sequence[str]) -> None:
        group = f.create_group("Calibration")
        for cam in cams:
            sub = group.create_group(cam)
            for name in ("K", "D", "RT"):
                _dataset(sub, name, self.rig[cam][name])

    def write_keypoints(self, f: h5py.File) -> None:
        kp3d = f.create_group("Keypoints3d")
        kp3d.attrs["num_frame"] = np.int64(self.frames)
        for frame in range(self.frames):
            if frame == self.missing_frame:
                continue
            if frame == self.empty_frame:
                _dataset(kp3d, str(frame), np.zeros((0, 3)))
            else:
                _dataset(kp3d, str(frame), self.face_points(frame)[KP3D_INDEX_IN_KP2D])
        kp2d = f.create_group("Keypoints2d")
        kp2d.attrs["num_frame"] = np.int64(self.frames)
        for i, cam in enumerate(self.keypoint_cams):
            group = kp2d.create_group(cam)
            calib = self.rig[cam]
            for frame in range(self.frames):
                if i == 0 and frame == self.missing_frame:
                    continue
                if i == 0 and frame == self.empty_frame:
                    _dataset(group, str(frame), np.zeros((0,), dtype=np.float32))
                    continue
                uv = project_points(self.face_points(frame), calib["K"], calib["RT"], calib["D"])
                _dataset(group, str(frame), uv.astype(np.float32))

    def write_expression_extras(self, f: h5py.File) -> None:
        rng = _rng(self.seed, "flame", self.subject, self.perf)
        shape = _rng(self.seed, "shape", self.subject).normal(0.0, 0.5, 100).astype(np.float32)
        model = flame_like_model(self.seed)
        albedo = _albedo(rng)
        exp_base = rng.normal(0.0, 0.4, 50)
        exp_freq = rng.uniform(0.2, 0.9, 50)
        tex = rng.normal(0.0, 0.3, 50).astype(np.float32)
        lit = rng.normal(0.0, 0.2, (9, 3)).astype(np.float32)
        lit[0] = 3.0
        flame = f.create_group("FLAME")
        flame.attrs["num_frame"] = np.int64(self.frames)
        uv_group = f.create_group("UV_texture")
        for frame in range(self.frames):
            rotation, shift = self.poses[frame]
            rotvec = cv2.Rodrigues(rotation)[0].ravel()
            exp = exp_base + 0.3 * np.sin(exp_freq * frame)
            jaw = np.array([0.08 + 0.05 * math.sin(0.9 * frame), 0.0, 0.0])
            eyes = np.array([0.02 * math.sin(0.6 * frame), 0.03 * math.cos(0.4 * frame), 0.0])
            joint_poses = np.stack([rotvec, 0.2 * rotvec, jaw, eyes, eyes])
            verts = flame_pose(model, shape, exp, joint_poses, shift)
            values = {
                "global_pose": rotvec,
                "neck_pose": 0.2 * rotvec,
                "jaw_pose": jaw,
                "left_eye_pose": eyes,
                "right_eye_pose": eyes,
                "trans": shift,
                "shape": shape,
                "exp": exp,
                "verts": verts,
                "albedos": albedo,
                "cam": np.array([9.0, 0.002 * frame, -0.001 * frame]),
                "lit": lit,
                "tex": tex,
            }
            group = flame.create_group(str(frame))
            for name, value in values.items():
                _dataset(group, name, np.asarray(value, dtype=np.float32))
            texture = np.clip(albedo.transpose(1, 2, 0) * (235.0 + 4.0 * math.sin(frame)), 0, 255)
            _blob(uv_group, str(frame), _encode(".jpg", texture.astype(np.uint8)))
        vertices, faces = _head_scan(self.height >= RESOLUTIONS["full"][0], rng)
        scan = f.create_group("Scan")
        _dataset(scan, "vertex", vertices)
        _dataset(scan, "vertex_indices", faces)
        scan_mask = f.create_group("ScanMask")
        for cam in self.image_cams:
            u, v, a, b = self.ellipse(cam, 0)
            mask = _ellipse_mask(self.height, self.width, (u, v, 1.05 * a, 1.05 * b))
            _blob(scan_mask, cam, _encode(".png", mask))

    # ---- whole files
    def write_anno_21(self, f: h5py.File) -> None:
        """Release-21 anno file: masks, all-camera calibration, keypoints, FLAME/UV/scan."""
        self.write_root_attrs(f, as_bytes=("actor_id", "gender"))
        self.write_masks(self.camera_group(f))
        self.write_calibration(f, sorted(self.rig))
        self.write_keypoints(f)
        if self.kind == "expression":
            self.write_expression_extras(f)

    def write_raw_21(self, f: h5py.File) -> None:
        """Release-21 raw file: colour images and, for speech parts, audio in ``Camera/00``."""
        self.write_root_attrs(f, as_bytes=())
        camera = self.camera_group(f)
        self.write_images(camera)
        if self.kind == "speech":
            self.write_audio(camera)

    def write_500(self, f: h5py.File) -> None:
        """Release-500 file: images, audio, calibration of the cameras under ``Camera``."""
        self.write_root_attrs(f, as_bytes=("capture_date",))
        camera = self.camera_group(f)
        self.write_images(camera)
        if self.kind == "speech":
            self.write_audio(camera)
        self.write_calibration(f, sorted(camera))


def _head_pose(frame: int, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small smooth head motion: rotation about the head centre and a few-mm translation."""
    yaw = 0.06 * math.sin(0.7 * frame + phase[0])
    pitch = 0.04 * math.sin(0.5 * frame + phase[1])
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    shift = 0.006 * np.array(
        [math.sin(0.9 * frame + phase[2]), math.sin(0.6 * frame + phase[3]), math.sin(0.4 * frame)]
    )
    return r_yaw @ r_pitch, shift


def _face_template(rng: np.random.Generator) -> np.ndarray:
    """106 points on the front of a head-sized ellipsoid (~0.13 m across), facing world -z.

    The first 33 run along the jaw from ear to ear (the contour of the 106-point set); the other
    73 are scattered over the face (their 3-D positions are what ``Keypoints3d`` stores).
    """
    contour = NUM_KEYPOINTS_2D - NUM_KEYPOINTS_3D
    jaw = np.linspace(-70.0, 70.0, contour)
    theta = np.radians(np.concatenate([jaw, rng.uniform(-55.0, 55.0, NUM_KEYPOINTS_3D)]))
    jaw_phi = -10.0 - 35.0 * np.cos(np.radians(jaw) * 1.2)
    phi = np.radians(np.concatenate([jaw_phi, rng.uniform(-40.0, 35.0, NUM_KEYPOINTS_3D)]))
    radii = np.array([0.08, 0.105, 0.095])
    direction = np.stack(
        [np.sin(theta) * np.cos(phi), -np.sin(phi), -np.cos(theta) * np.cos(phi)], axis=1
    )
    return HEAD_CENTER + direction * radii


# ----------------------------------------------------------------------------------- images


def _base_image(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """Studio background of one camera: smooth colour gradient plus fine seeded grain (uint8).

    Drawn at half resolution and bilinearly upsampled (cheap at 2448x2048); the grain makes
    full-resolution JPEGs (q95) weigh ~0.6-0.8 MB like real ones. Drawn once per camera and
    reused for every frame.
    """
    h, w = scene.height, scene.width
    hh, hw = (h + 1) // 2, (w + 1) // 2
    top = rng.uniform(40.0, 90.0, 3).astype(np.float32)
    bottom = top + rng.uniform(20.0, 60.0, 3).astype(np.float32)
    side = rng.uniform(-15.0, 15.0, 3).astype(np.float32)
    rows = top + (bottom - top) * np.linspace(0.0, 1.0, hh, dtype=np.float32)[:, None]
    cols = side * np.linspace(0.0, 1.0, hw, dtype=np.float32)[:, None]
    image = (rows[:, None, :] + cols[None, :, :]).astype(np.int16)
    image += rng.integers(-_GRAIN, _GRAIN + 1, (hh, hw, 3), dtype=np.int16)
    np.clip(image, 0, 255, out=image)
    return cv2.resize(image.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def _ellipse_box(
    height: int, width: int, ellipse: _Ellipse
) -> tuple[slice, slice, np.ndarray] | None:
    """Bounding box of an ellipse clipped to the image and its normalised radius^2 inside it."""
    u, v, a, b = ellipse
    x0, x1 = max(0, math.floor(u - a)), min(width, math.ceil(u + a) + 1)
    y0, y1 = max(0, math.floor(v - b)), min(height, math.ceil(v + b) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = (np.arange(x0, x1, dtype=np.float32) - np.float32(u)) / np.float32(a)
    ys = (np.arange(y0, y1, dtype=np.float32) - np.float32(v)) / np.float32(b)
    return slice(y0, y1), slice(x0, x1), xs[None, :] ** 2 + ys[:, None] ** 2


def _ellipse_mask(height: int, width: int, ellipse: _Ellipse) -> np.ndarray:
    """0/255 uint8 silhouette of the ellipse."""
    mask = np.zeros((height, width), dtype=np.uint8)
    box = _ellipse_box(height, width, ellipse)
    if box is not None:
        rows, cols, r2 = box
        mask[rows, cols][r2 <= 1.0] = 255
    return mask


def _draw_head(base: np.ndarray, ellipse: _Ellipse, skin: np.ndarray) -> np.ndarray:
    """Copy of ``base`` with a shaded skin-coloured ellipse (keeps a little of the grain)."""
    image = base.copy()
    box = _ellipse_box(base.shape[0], base.shape[1], ellipse)
    if box is None:
        return image
    rows, cols, r2 = box
    patch = image[rows, cols]
    shade = np.clip(1.0 - r2, 0.0, 1.0, dtype=np.float32)
    np.sqrt(shade, out=shade)
    shade *= np.float32(0.65 * 0.75)
    shade += np.float32(0.65 * 0.45)
    lit = patch.astype(np.float32)
    lit *= np.float32(0.35)
    lit += skin * shade[..., None]
    np.clip(lit, 0.0, 255.0, out=lit)
    np.copyto(patch, lit, casting="unsafe", where=(r2 <= 1.0)[..., None])
    return image


def _encode(ext: str, image: np.ndarray) -> bytes:
    return encode(image, ext)


# ------------------------------------------------------------------------------ other data


def _audio(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """(n, 2) float32 stereo in [-1, 1): two tones per channel, a slow envelope and noise."""
    n = max(round(AUDIO_SAMPLE_RATE * scene.frames / FPS), AUDIO_SAMPLE_RATE // 10)
    t = np.arange(n, dtype=np.float64) / AUDIO_SAMPLE_RATE
    tones = rng.uniform(110.0, 880.0, (2, 2))
    envelope = 0.6 + 0.4 * np.sin(2 * math.pi * 3.0 * t)
    channels = [
        envelope * (0.3 * np.sin(2 * math.pi * f0 * t) + 0.1 * np.sin(2 * math.pi * f1 * t))
        for f0, f1 in tones
    ]
    audio = np.stack(channels, axis=1) + rng.normal(0.0, 0.01, (n, 2))
    return np.clip(audio, -1.0, np.nextafter(1.0, 0.0)).astype(np.float32)


#: FLAME's kinematic tree: global (root), neck, jaw, left eye, right eye (2**32 - 1: no parent).
_FLAME_KINTREE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
_FLAME_DIRECTIONS = 400  # 300 shape + 100 expression directions, as FLAME 2020/2023
_FLAME_FACES = 9976


@functools.lru_cache(maxsize=4)
def _flame_like_arrays(seed: int) -> tuple[tuple[str, np.ndarray | str], ...]:
    """The arrays of :func:`write_flame_model` (cached: every expression take poses them)."""
    rng = _rng(seed, "flame-model")
    i = np.arange(_FLAME_VERTS) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / _FLAME_VERTS)
    azimuth = math.pi * (1.0 + 5.0**0.5) * i
    unit = np.stack(
        [np.sin(polar) * np.cos(azimuth), -np.cos(polar), -np.sin(polar) * np.sin(azimuth)], axis=1
    )  # world axes: up is -y, the face looks along -z
    v_template = HEAD_CENTER + unit * np.array([0.078, 0.105, 0.092])
    # joints: root at the centre, neck below it, jaw low in front, the eyes high in front
    weights = np.zeros((_FLAME_VERTS, 5))
    lower, front = np.clip(unit[:, 1], 0.0, 1.0), np.clip(-unit[:, 2], 0.0, 1.0)
    weights[:, 1] = 0.8 * lower**3
    weights[:, 2] = 0.9 * (lower * front) ** 2 * (1.0 - weights[:, 1])
    for j, side in ((3, 1.0), (4, -1.0)):
        eye = HEAD_CENTER + np.array([0.03 * side, -0.03, -0.085])
        weights[:, j] = np.exp(-((np.linalg.norm(v_template - eye, axis=1) / 0.012) ** 2))
    weights[:, 0] = np.clip(1.0 - weights[:, 1:].sum(axis=1), 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = weights.T / weights.sum(axis=0)[:, None]  # each joint: mean of its vertices
    shapedirs = np.zeros((_FLAME_VERTS, 3, _FLAME_DIRECTIONS), dtype=np.float32)
    for start, count in ((0, 100), (300, 50)):  # the coefficients RenderMe360 stores
        freq = rng.uniform(2.0, 9.0, (count, 3))
        phase = rng.uniform(0.0, 2 * math.pi, count)
        wave = np.sin(unit @ freq.T + phase)  # (V, count) smooth fields over the head
        shapedirs[:, :, start : start + count] = 1e-3 * unit[:, :, None] * wave[:, None, :]
    posedirs = 2e-4 * np.sin(unit @ rng.uniform(1.0, 4.0, (3, 36)))[:, None, :] * unit[:, :, None]
    k = np.arange(_FLAME_FACES)
    faces = np.stack([k, k + 1, k + 34], axis=1) % _FLAME_VERTS
    return (
        ("f", faces.astype(np.uint32)),
        ("v_template", v_template),
        ("shapedirs", shapedirs),
        ("posedirs", posedirs),
        ("J_regressor", regressor),
        ("weights", weights),
        ("kintree_table", _FLAME_KINTREE),
        ("J", regressor @ v_template),
        ("bs_style", "lbs"),
        ("bs_type", "lrotmin"),
    )


def flame_like_model(seed: int = 0) -> FlameModel:
    """The FLAME-like model whose poses synth stores as ``FLAME/{frame}/verts``."""
    return flame_model_from_dict(dict(_flame_like_arrays(seed)))


def write_flame_model(
    path: str | os.PathLike[str],
    seed: int = 0,
    wrap: Callable[[str, np.ndarray], object] | None = None,
) -> Path:
    """Write a small FLAME-like ``.pkl`` with the structure of FLAME 2020's ``generic_model.pkl``
    (``v_template``, ``shapedirs`` (V, 3, 300 + 100), ``posedirs``, ``J_regressor``,
    ``weights``, ``kintree_table``, ``f``, ``J``, ...): the model synth's expression takes
    were posed with (``seed`` as :func:`synthesize`'s), so ``--flame-model`` matches them.

    ``wrap(name, array)`` may replace arrays by other objects before pickling, as FLAME's file
    holds ``chumpy`` arrays and a ``scipy.sparse`` ``J_regressor`` (tests pass stand-ins)."""
    import pickle

    out = {k: (wrap(k, v) if wrap and isinstance(v, np.ndarray) else v)
           for k, v in _flame_like_arrays(seed)}  # fmt: skip
    target = Path(path)
    with replacing(target) as tmp:
        tmp.write_bytes(pickle.dumps(out, protocol=2))
    return target


def _albedo(rng: np.random.Generator) -> np.ndarray:
    """(3, 256, 256) float32 albedo map in [0, 1]: smooth skin-like colour (BGR order)."""
    ys = np.linspace(0.0, 1.0, _UV_SIZE, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, _UV_SIZE, dtype=np.float32)[None, :]
    base = rng.uniform(0.45, 0.8, 3).astype(np.float32)
    pattern = 0.08 * np.sin(6.0 * xs + 3.0 * ys) * np.cos(5.0 * ys)
    channels = [np.clip(c + pattern * (1.0 + 0.3 * k), 0.0, 1.0) for k, c in enumerate(base)]
    return np.stack(channels).astype(np.float32)


def _head_scan(full: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Closed, consistently outward-oriented UV-sphere head mesh in world coordinates.

    ~500 vertices at small resolution, ~130k at full; (n, 3) float64 and (m, 3) int32.
    """
    n_lat, n_lon = (256, 512) if full else (20, 26)
    polar = np.pi * np.arange(1, n_lat) / n_lat
    azimuth = 2.0 * np.pi * np.arange(n_lon) / n_lon
    sin_p, cos_p = np.sin(polar)[:, None], np.cos(polar)[:, None]
    ring = np.stack(
        np.broadcast_arrays(sin_p * np.cos(azimuth), -cos_p, sin_p * np.sin(azimuth)), axis=-1
    ).reshape(-1, 3)
    unit = np.vstack([[0.0, -1.0, 0.0], ring, [0.0, 1.0, 0.0]])  # top pole is up (-y)
    bumps = 1.0 + 0.03 * np.sin(3.0 * unit[:, 0] + 2.0 * unit[:, 1]) * np.cos(4.0 * unit[:, 2])
    radii = np.array([0.09, 0.12, 0.10]) * (1.0 + rng.normal(0.0, 0.005, 3))
    vertices = HEAD_CENTER + unit * radii * bumps[:, None]

    idx = 1 + np.arange((n_lat - 1) * n_lon).reshape(n_lat - 1, n_lon)
    nxt = np.roll(idx, -1, axis=1)
    top, bottom = 0, len(unit) - 1
    a, b = idx[:-1].ravel(), nxt[:-1].ravel()
    c, d = nxt[1:].ravel(), idx[1:].ravel()
    faces = np.concatenate(
        [
            np.stack([np.full(n_lon, top), nxt[0], idx[0]], axis=1),
            np.stack([a, b, c], axis=1),
            np.stack([a, c, d], axis=1),
            np.stack([idx[-1], nxt[-1], np.full(n_lon, bottom)], axis=1),
        ]
    ).astype(np.int32)
    p0, p1, p2 = (unit[faces[:, i]] for i in range(3))
    if np.einsum("ij,ij->", p0, np.cross(p1, p2)) < 0:  # make normals point outward
        faces = faces[:, ::-1].copy()
    return vertices, faces


# ------------------------------------------------------------------------------------ HDF5


def _dataset(group: h5py.Group, name: str, data: np.ndarray | np.generic) -> None:
    group.create_dataset(name, data=data, track_times=False)


def _blob(group: h5py.Group, name: str, payload: bytes) -> None:
    """Store encoded image bytes as a 1-D uint8 dataset, as the real files do."""
    _dataset(group, name, np.frombuffer(payload, dtype=np.uint8))


def _write_atomic(path: Path, fill: Callable[[h5py.File], None]) -> None:
    """Write an HDF5 file under a temporary name in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique hidden name beside the target (not mkstemp: its 0600 mode would stick).
    with replacing(path) as tmp, h5py.File(tmp, "w-", track_order=False) as f:
        fill(f)
    log.debug("wrote %s", path)


#: The Python line the demo suggests: load the extracted folder given as argument.
LOAD_SNIPPET = "import sys, renderme360 as rm; p = rm.load(sys.argv[1]); print(p.camera_ids)"


def demo_guide(data: Path, extracted: Path, first: str = "0026_e0") -> str:
    """What ``renderme360 demo`` prints last: where it wrote (absolute paths) and the next
    commands, runnable as printed: the program by the full path of the running interpreter's
    bin folder, so the virtualenv need not be activated or on PATH."""
    import shlex
    import sys

    def q(p: object) -> str:
        return shlex.quote(str(p))

    data, extracted = Path(os.path.abspath(data)), Path(os.path.abspath(extracted))
    perf = extracted / first
    bin_dir = Path(sys.executable).parent
    exe = bin_dir / "renderme360"
    prog = q(exe) if exe.is_file() else f"{q(sys.executable)} -m renderme360"
    lines = [
        f"\nThe demo wrote everything under {data.parent}",
        f"  synthetic SMC files: {data}",
        f"  extracted:           {extracted}",
        f"Look at:  {perf / 'extraction_info.txt'}",
        f"          {perf / 'visualization'}",
        "Next (each line runs as printed):",
        f"  {prog} verify {q(perf)} --source {q(data)}",
        f"  {prog} check {q(perf)}",
        f"  {prog} explore {q(data)}",
        f"  {q(sys.executable)} -c {q(LOAD_SNIPPET)} {q(perf)}",
    ]
    if (bin_dir / "activate").is_file():
        lines.append(f"Or activate first: source {q(bin_dir / 'activate')}; then: renderme360 ...")
    return "\n".join(lines)

"""Prove the geometry of a performance: reproject 3D keypoints into every annotated camera.

For every camera with 2D keypoints, the 3D keypoints of the same frames are projected through
that camera's calibration (``c2w`` camera-to-world, OpenCV axes, distortion) and compared with
the stored 2D points: the dataset's 73 3D keypoints are its 106-point 2D set minus the 33 contour
points, so 2D index ``33 + i`` is 3D index ``i``. Per camera it also reports where the optical
axis points relative to the rig centre (the point the cameras' axes pass closest to): a camera
whose axis points away, or that sees the keypoints behind it, has a pose read the wrong way
(e.g. ``RT`` taken as world-to-camera). Pure computation; the CLI renders the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from ..camera import RigFrame
from ..errors import SMCFormatError, UsageError
from ..textsafe import finite_json

if TYPE_CHECKING:
    from ..camera import Camera
    from .performance import Performance

#: Default threshold on the overall median reprojection error (pixels).
MAX_ERROR_PX = 2.0
#: A camera whose optical axis is further than this from the rig centre's direction is flagged.
AXIS_LIMIT_DEG = 30.0
#: Frames of 3D keypoints projected into the cameras without 2D keypoints (evenly spread).
VIEW_FRAMES = 20
#: Per-camera problems (the ``problems`` of a CameraReport; any of them fails the check).
INVERTED, HIGH_ERROR, OUT_OF_VIEW, COPIES = (
    "INVERTED?",
    "ERROR ABOVE THRESHOLD",
    "HEAD OUT OF VIEW",
    "CALIBRATION COPIES DISAGREE",
)


@dataclass
class CameraReport:
    """Reprojection and pose facts of one camera."""

    camera: str
    frames: int
    points: int
    median_px: float | None
    max_px: float | None
    behind: int  # keypoints projected from behind the camera (z <= 0)
    outside: int | None  # keypoints in front but outside the image (None: image size unknown)
    azimuth_deg: float  # around the rig centre from the frontal view (camera.RigFrame), -180..180
    elevation_deg: float  # above (+) or below (-) the rig centre; world up is -y
    axis_offset_deg: float  # angle between the optical axis and the direction to the rig centre
    axis_miss_m: float  # distance from the rig centre to the optical axis (metres)
    distance_m: float  # camera centre to rig centre (metres)
    inverted: bool  # pose looks inverted (axis points away or keypoints behind the camera)
    problems: list[str] = field(default_factory=list)  # empty: this camera is "ok"


@dataclass
class CheckReport:
    """Result of :func:`check_geometry`."""

    performance: str
    rig_center: list[float]
    max_error_px: float
    cameras: list[CameraReport] = field(default_factory=list)
    median_px: float | None = None
    max_px: float | None = None
    points: int = 0
    calibration_conflicts: list[str] = field(default_factory=list)  # copies that disagree
    left_out: list[str] = field(default_factory=list)  # cameras not checked, and why
    incomplete: bool = False  # an unfinished extracted folder, checked with --allow-incomplete

    @property
    def ok(self) -> bool:
        """Whether the overall median error is within the threshold, no pose looks inverted and
        the folder's calibration copies agree."""
        return (
            self.median_px is not None
            and self.median_px <= self.max_error_px
            and not any(c.problems for c in self.cameras)
            and not self.calibration_conflicts
        )

    def table(self, show_all: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
        """Column names, one text row per camera shown, and notes: the report for people.

        Cameras with keypoints and flagged cameras are shown (every calibrated one with
        ``show_all``); the others are summed up in a note.
        """
        headers = ["camera", "frames", "points", "median px", "max px", "azimuth", "elevation"]
        headers += ["axis vs rig centre", "pose"]
        shown = [c for c in self.cameras if show_all or c.points or c.problems]
        rows = [
            [
                c.camera,
                str(c.frames),
                str(c.points),
                _px(c.median_px),
                _px(c.max_px),
                f"{c.azimuth_deg:+.0f}°",
                f"{c.elevation_deg:+.0f}°",
                f"{c.axis_offset_deg:.1f}° off, passes {c.axis_miss_m * 100:.1f} cm",
                (", ".join(c.problems) or "ok")
                + (f" ({c.behind} points behind)" if c.behind else ""),
            ]
            for c in shown
        ]
        notes = list(self.left_out)
        others = [c for c in self.cameras if c not in shown]
        if others:
            worst = max(c.axis_offset_deg for c in others)
            notes.append(
                f"{len(others)} other calibrated cameras (no 2D keypoints): optical axes within "
                f"{worst:.1f}° of the rig centre (--all lists them)"
            )
        x, y, z = self.rig_center
        notes.append(f"rig centre (where the optical axes meet): ({x:.3f}, {y:.3f}, {z:.3f}) m")
        notes.append(
            "azimuth: around the rig centre from the frontal cameras' side (+ towards their image "
            "right); elevation: above (+) the rig centre, world up -y"
        )
        return headers, rows, notes

    def verdict(self) -> str:
        """One line: OK or FAILED, the overall errors, the threshold, inverted cameras."""
        line = (
            f"{self.performance}: {'OK' if self.ok else 'FAILED'}: median {_px(self.median_px)} "
            f"px, max {_px(self.max_px)} px over {self.points:,} points "
            f"(threshold {self.max_error_px:g} px on the median)"
        )
        for problem, what in (
            (INVERTED, "pose looks inverted"),
            (HIGH_ERROR, f"median error above {self.max_error_px:g} px"),
            (OUT_OF_VIEW, "3D keypoints outside the image"),
        ):
            flagged = [c.camera for c in self.cameras if problem in c.problems]
            if flagged:
                line += f"; {what} for camera(s) {', '.join(flagged)}"
        if self.left_out:
            line += "; " + "; ".join(self.left_out)
        if self.incomplete:
            line += "; the folder is an incomplete extraction (checked with --allow-incomplete)"
        if self.calibration_conflicts:
            line += "; calibration copies disagree: " + "; ".join(self.calibration_conflicts)
        return line

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``--json`` document)."""
        doc = asdict(self)
        doc["ok"] = self.ok
        doc["convention"] = "RT camera-to-world, OpenCV axes; 2D index 33+i = 3D index i"
        return finite_json(doc)  # an infinite error is null: the document is strict JSON


def _px(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}" if value < 100 else f"{value:,.0f}"


class AxisFacts(TypedDict):
    """Where a camera stands and looks relative to the rig (the fields of CameraReport)."""

    azimuth_deg: float
    elevation_deg: float
    axis_offset_deg: float
    axis_miss_m: float
    distance_m: float


def axis_facts(camera: Camera, rig: RigFrame) -> AxisFacts:
    """Where a camera stands and looks relative to the rig (the fields of CameraReport)."""
    to_centre = rig.centre - camera.center
    dist = float(np.linalg.norm(to_centre))
    along = camera.forward @ to_centre
    cos = float(np.clip(along / dist, -1.0, 1.0)) if dist else 1.0
    azimuth, elevation = rig.angles(camera.center)
    return {
        "azimuth_deg": azimuth,
        "elevation_deg": elevation,
        "axis_offset_deg": float(np.degrees(np.arccos(cos))),
        "axis_miss_m": float(np.linalg.norm(to_centre - along * camera.forward)),
        "distance_m": dist,
    }


def _in_view(camera: Camera, points: np.ndarray) -> tuple[int, int | None]:
    """(points behind the camera, points in front but outside its image or None if unsized)."""
    z = camera.to_camera(points)[:, 2]
    behind = int((z <= 0).sum())
    if not camera.width or not camera.height:
        return behind, None
    uv = camera.project(points[z > 0])
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] < camera.width - 0.5)
    inside &= (uv[:, 1] >= -0.5) & (uv[:, 1] < camera.height - 0.5)
    return behind, int((~inside).sum())


def _problems(cam: CameraReport, tested: int, max_error_px: float) -> list[str]:
    """What is wrong with one camera: an inverted-looking pose, a median error above the
    threshold, or the 3D keypoints (the head) mostly outside its image."""
    problems = []
    if cam.axis_offset_deg > AXIS_LIMIT_DEG or (tested and cam.behind > tested // 2):
        problems.append(INVERTED)
    if cam.median_px is not None and cam.median_px > max_error_px:
        problems.append(HIGH_ERROR)
    if INVERTED not in problems and cam.outside is not None and cam.outside > tested // 2:
        problems.append(OUT_OF_VIEW)
    return problems


def keypoint_pairs(
    performance: Performance, camera: str, kp3d: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame ids, 2D points (M, 73, 2), 3D points (M, 73, 3)) of the frames both sets hold."""
    ids2, pts2 = performance.keypoints2d(camera)
    ids3, pts3 = kp3d
    if pts2.ndim != 3 or pts3.ndim != 3 or pts2.shape[2] != 2 or pts3.shape[2] != 3:
        raise SMCFormatError(
            f"camera {camera}: keypoint arrays have shapes {pts2.shape} and {pts3.shape}"
        )
    offset = pts2.shape[1] - pts3.shape[1]  # 106 - 73 = 33 contour points
    if offset < 0:
        raise SMCFormatError(
            f"camera {camera}: {pts2.shape[1]} 2D keypoints but {pts3.shape[1]} 3D keypoints"
        )
    common, i2, i3 = np.intersect1d(ids2, ids3, assume_unique=True, return_indices=True)
    return common, pts2[i2, offset:], pts3[i3]


def check_geometry(performance: Performance, max_error_px: float = MAX_ERROR_PX) -> CheckReport:
    """Reproject the 3D keypoints into every camera with 2D keypoints; see the module docstring.

    Raises
    ------
    IncompleteError
        An extracted folder without its completion marker, unless loaded with
        ``load(..., allow_incomplete=True)``.
    UsageError
        Nothing to check: no calibration, no 2D keypoints, no 3D keypoints, or no frame both hold.
    """
    if not 0 <= max_error_px < float("inf"):  # also refuses NaN
        raise UsageError(f"--max-error must be a finite number >= 0, got {max_error_px}")
    perf = performance
    perf.require_complete()
    name = f"{perf.actor}_{perf.performance}"
    hint = perf.single_file_hint("renderme360 check")  # before any listing: no loader warning
    refused = perf.calibration_problems
    left_out = [f"camera {c} left out: its calibration {why}" for c, why in refused.items()]
    if not perf.cameras:
        if refused:
            raise UsageError(f"{name}: no usable calibration to check ({'; '.join(left_out)})")
        raise UsageError(f"{name}: no calibration to check" + (f"; {hint}" if hint else ""))
    cams2d = [c for c in perf.keypoints2d_camera_ids if c in perf.cameras]
    if not cams2d:
        raise UsageError(f"{name}: no camera has 2D keypoints and calibration; nothing to check")
    if "keypoints3d" not in perf.modalities:
        raise UsageError(f"{name}: no 3D keypoints; nothing to check")
    kp3d = perf.keypoints3d()
    rig = RigFrame.of({c: cam.c2w for c, cam in perf.cameras.items()})
    report = CheckReport(name, [float(x) for x in rig.centre], float(max_error_px))
    report.calibration_conflicts = [str(c) for c in perf.calibration_conflicts]
    report.left_out, report.incomplete = left_out, not perf.complete
    errors = []
    conflicting = {c for conflict in perf.calibration_conflicts for c in conflict.cameras}
    pick = np.unique(np.linspace(0, len(kp3d[0]) - 1, VIEW_FRAMES).round().astype(int))
    head = kp3d[1][pick].reshape(-1, 3) if len(kp3d[0]) else np.zeros((0, 3))
    head = head[np.isfinite(head).all(axis=1)]
    for cam_id, camera in perf.cameras.items():
        med = top = None
        points = frames = 0
        tested = head  # cameras without 2D keypoints: does the head sit in front, in the image?
        if cam_id in cams2d:
            ids, pts2, pts3 = keypoint_pairs(perf, cam_id, kp3d)
            if len(ids):
                tested = pts3.reshape(-1, 3)
                err = np.linalg.norm(camera.project(tested) - pts2.reshape(-1, 2), axis=1)
                err = np.where(np.isfinite(err), err, np.inf)
                errors.append(err)
                med, top = float(np.median(err)), float(err.max())
                points, frames = int(err.size), len(ids)
        cam_report = CameraReport(cam_id, frames, points, med, top, *_in_view(camera, tested),
                                  **axis_facts(camera, rig), inverted=False)  # fmt: skip
        cam_report.problems = _problems(cam_report, len(tested), max_error_px)
        if cam_id in conflicting:
            cam_report.problems.append(COPIES)
        cam_report.inverted = INVERTED in cam_report.problems
        report.cameras.append(cam_report)
    if not errors or not sum(e.size for e in errors):
        raise UsageError(f"{name}: no frame holds both 2D and 3D keypoints; nothing to check")
    pooled = np.concatenate(errors)
    report.median_px, report.max_px, report.points = (
        float(np.median(pooled)),
        float(pooled.max()),
        int(pooled.size),
    )
    return report

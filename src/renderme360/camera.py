"""One calibrated camera of the rig, with its convention in its names (numpy only).

RenderMe360 stores ``RT`` camera-to-world with OpenCV camera axes (x right, y down, z forward),
metres, world "up" = -y; ``K`` is the 3x3 intrinsic matrix and ``D`` OpenCV's five distortion
coefficients ``k1, k2, p1, p2, k3``. :class:`Camera` keeps them under unambiguous names
(``c2w``, ``w2c``) and converts to what renderers want (``to_opengl``, ``scaled``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .naming import FRONTAL_CAMERAS

#: Flips OpenCV camera axes (x right, y down, z forward) to OpenGL's (x right, y up, z backward).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
#: World "up" of the dataset: -y (the world follows OpenCV's y-down habit).
WORLD_UP = np.array([0.0, -1.0, 0.0])


def calibration_problem(calibration: Mapping[str, object]) -> str | None:
    """Why one camera's ``K``/``D``/``RT`` cannot be used, or None: a value that is NaN or
    infinite (or not numeric). The one test every reader applies before a camera is used;
    the stored arrays themselves are kept as they are (extraction copies them byte-exact)."""
    bad = []
    for name in ("K", "D", "RT"):
        try:
            arr = np.asarray(calibration[name], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            bad.append(f"{name} missing or not numeric")
            continue
        if not np.isfinite(arr).all():
            bad.append(f"{name} holds NaN or infinite values")
    return "; ".join(bad) or None


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera: intrinsics ``K`` (3, 3), distortion ``D`` (5,), pose ``c2w`` (4, 4).

    ``c2w`` maps a point from camera to world coordinates (OpenCV axes, metres); its columns are
    the camera's x, y, z axes in the world and ``c2w[:3, 3]`` its centre. ``width`` and ``height``
    are the size in pixels of the images ``K`` refers to.
    """

    id: str
    K: np.ndarray
    D: np.ndarray
    c2w: np.ndarray
    width: int
    height: int

    @property
    def w2c(self) -> np.ndarray:
        """World-to-camera (4, 4) extrinsic, the rigid inverse of ``c2w`` (OpenCV axes)."""
        rotation, centre = self.c2w[:3, :3], self.c2w[:3, 3]
        out = np.eye(4)
        out[:3, :3] = rotation.T
        out[:3, 3] = -rotation.T @ centre
        return out

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (3,)."""
        return self.c2w[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """Unit optical axis (camera +z) in world coordinates (3,)."""
        z = self.c2w[:3, 2]
        return z / np.linalg.norm(z)

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World points (N, 3) in this camera's OpenCV coordinates (N, 3); z > 0 is in front."""
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        return (points - self.c2w[:3, 3]) @ self.c2w[:3, :3]  # = R^T (X - C)

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) of world points (N, 3), distortion applied.

        The OpenCV model: ``x = X_cam / Z_cam``, radial ``1 + k1 r^2 + k2 r^4 + k3 r^6`` and
        tangential ``p1, p2`` terms, then ``K``. Points behind the camera are projected all the
        same (their pixels are meaningless); check ``to_camera(p)[:, 2] > 0`` when it matters.
        """
        cam = self.to_camera(points_world)
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        k1, k2, p1, p2, k3 = (list(np.asarray(self.D, dtype=np.float64).ravel()) + [0.0] * 5)[:5]
        if k1 or k2 or p1 or p2 or k3:
            r2 = x * x + y * y
            radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            x, y = (
                x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
            )
        k = self.K
        u = k[0, 0] * x + k[0, 1] * y + k[0, 2]
        v = k[1, 1] * y + k[1, 2]
        return np.stack([u, v], axis=1)

    def to_opengl(self) -> np.ndarray:
        """Camera-to-world (4, 4) with OpenGL camera axes (x right, y up, z backward).

        What NeRF/nerfstudio/Blender expect as ``transform_matrix``: ``c2w @ diag(1, -1, -1, 1)``.
        """
        return self.c2w @ OPENCV_TO_OPENGL

    def scaled(self, k: int) -> Camera:
        """This camera for an image decoded at ``1/k`` size (``image(..., scale=k)``).

        ``K`` keeps OpenCV's pixel-centre convention (the top-left pixel's centre is (0, 0)), so a
        full-size pixel ``u`` lands at ``(u + 0.5) / k - 0.5`` in the reduced image: ``fx, fy`` are
        divided by ``k`` and ``c' = (c + 0.5) / k - 0.5``. Plain ``K / k`` would be off by
        ``(k - 1) / (2k)`` reduced pixels (0.375 px at ``k = 4``). Width and height are rounded
        up, as JPEG decoders do.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"scale must be a positive integer, got {k!r}")
        if k == 1:
            return self
        intrinsics = self.K.astype(np.float64, copy=True)
        intrinsics[:2, :] /= k
        intrinsics[:2, 2] += 0.5 / k - 0.5
        return replace(
            self,
            K=intrinsics,
            width=math.ceil(self.width / k),
            height=math.ceil(self.height / k),
        )

    def cropped(self, box: tuple[int, int, int, int], width: int, height: int) -> Camera:
        """This camera for the pixels ``box = (x0, y0, w, h)`` resized to ``width x height``.

        In corner coordinates (pixel centres at ``u + 0.5``) the crop shifts by ``x0, y0`` and
        scales by ``width / w``, ``height / h``; back in OpenCV's pixel-centre convention a
        full-size pixel ``u`` lands at ``(u + 0.5 - x0) * width / w - 0.5``. Distortion and
        pose are unchanged (a crop and a resize are affine in the image plane).
        """
        x0, y0, w, h = (int(v) for v in box)
        if w <= 0 or h <= 0 or width <= 0 or height <= 0:
            raise ValueError(f"empty crop {box} -> {width}x{height}")
        sx, sy = width / w, height / h
        intrinsics = self.K.astype(np.float64, copy=True)
        intrinsics[0, :] *= sx
        intrinsics[1, :] *= sy
        intrinsics[0, 2] = (self.K[0, 2] + 0.5 - x0) * sx - 0.5
        intrinsics[1, 2] = (self.K[1, 2] + 0.5 - y0) * sy - 0.5
        return replace(self, K=intrinsics, width=int(width), height=int(height))

    def __repr__(self) -> str:
        c = self.center
        return (
            f"Camera({self.id!r}, {self.width}x{self.height}, f={self.K[0, 0]:.1f}, "
            f"center=({c[0]:.3f}, {c[1]:.3f}, {c[2]:.3f}))"
        )


def rig_center(c2ws: Mapping[str, np.ndarray]) -> np.ndarray:
    """The point closest (least squares) to every camera's optical axis: what the rig looks at.

    ``c2ws`` maps camera ids to camera-to-world (4, 4) poses; with fewer than two cameras, or
    parallel axes, the mean camera centre.
    """
    a, b = np.zeros((3, 3)), np.zeros(3)
    for c2w in c2ws.values():
        m = np.asarray(c2w, dtype=np.float64)
        d = m[:3, 2] / (np.linalg.norm(m[:3, 2]) or 1.0)
        proj = np.eye(3) - np.outer(d, d)
        a += proj
        b += proj @ m[:3, 3]
    if len(c2ws) < 2 or np.linalg.matrix_rank(a) < 3:
        return np.mean([np.asarray(m, dtype=np.float64)[:3, 3] for m in c2ws.values()], axis=0)
    return np.linalg.solve(a, b)


@dataclass(frozen=True, eq=False)
class RigFrame:
    """Where the rig stands: the one definition of every azimuth and elevation the package reports.

    ``centre`` is :func:`rig_center` (the head); ``front`` the unit horizontal direction
    (perpendicular to world up, -y) from the centre towards the frontal cameras
    (``naming.FRONTAL_CAMERAS`` among those given; world -z when none is). For a point (a camera
    centre), :meth:`angles` gives its **azimuth** around the centre: the angle of its horizontal
    direction from ``front``, in degrees in [-180, 180), positive towards ``up x front`` (the
    image right of a frontal camera); and its **elevation**: the angle above (+) or below (-)
    the horizontal plane through the centre.
    """

    centre: np.ndarray
    front: np.ndarray

    @classmethod
    def of(cls, c2ws: Mapping[str, np.ndarray]) -> RigFrame:
        """The frame of a rig (``{id: c2w}``; pass every calibrated camera for stable angles)."""
        centre = rig_center(c2ws)
        frontal = [c for c in c2ws if c in FRONTAL_CAMERAS]
        front = np.zeros(3)
        for c in frontal:
            v = np.asarray(c2ws[c], dtype=np.float64)[:3, 3] - centre
            front += v / (np.linalg.norm(v) or 1.0)
        front -= (front @ WORLD_UP) * WORLD_UP
        if np.linalg.norm(front) < 1e-9:
            front = np.array([0.0, 0.0, -1.0])
        return cls(centre, front / np.linalg.norm(front))

    @property
    def side(self) -> np.ndarray:
        """Unit horizontal direction of azimuth +90 degrees: ``up x front``."""
        return np.cross(WORLD_UP, self.front)

    def angles(self, point: np.ndarray) -> tuple[float, float]:
        """``(azimuth, elevation)`` in degrees of a world point (e.g. a camera centre)."""
        v = np.asarray(point, dtype=np.float64) - self.centre
        az = math.degrees(math.atan2(float(v @ self.side), float(v @ self.front)))
        el = math.degrees(
            math.atan2(float(v @ WORLD_UP), float(np.hypot(v @ self.side, v @ self.front)))
        )
        return (az + 180.0) % 360.0 - 180.0, el

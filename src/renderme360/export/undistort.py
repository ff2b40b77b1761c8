"""Undistorted pinhole views for renderers that model no distortion and a centred principal point.

3D Gaussian Splatting's rasterizer (GaussianAvatars and its successors) knows only a field of
view: it maps NDC 0 to pixel ``(S - 1) / 2`` (``ndc2Pix``), derives the focal length from FovX and
the image width, and has no distortion. :func:`pinholes` gives every camera a target pinhole with
square pixels and the principal point exactly at ``((W - 1) / 2, (H - 1) / 2)`` (OpenCV's
pixel-centre convention), the optical axis unchanged, cropped to the largest centred rectangle
whose pixels all sample inside the source image. :func:`run_undistort` (a worker task) decodes an
image and its mask at a reduced size (JPEG: in the DCT), resamples both through one remap map per
camera (cached in the worker) and composites the image on the background with the mask.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera import Camera
from ..errors import Renderme360Error, UsageError
from ..formats.image import encode
from .conventions import DOWNSCALES, project_opencv, reduced_size
from .files import write_atomic
from .reduce import reduce_bytes

#: Background colours the images can be composited on (GaussianAvatars' --white_background).
BACKGROUNDS = {"white": 255, "black": 0}


@dataclass(frozen=True)
class Pinhole:
    """A distortion-free camera with square pixels and a centred principal point."""

    f: float  # focal length in pixels (fx = fy)
    width: int
    height: int

    @property
    def cx(self) -> float:
        """Principal point x, OpenCV pixel-centre origin: exactly (W - 1) / 2."""
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2.0

    def K(self) -> np.ndarray:
        """OpenCV 3x3 intrinsics (pixel-centre origin)."""
        return np.array([[self.f, 0.0, self.cx], [0.0, self.f, self.cy], [0.0, 0.0, 1.0]])

    @property
    def angle_x(self) -> float:
        """Horizontal field of view (radians): 2 atan(W / 2f), as 3DGS's focal2fov."""
        return 2.0 * math.atan(self.width / (2.0 * self.f))

    @property
    def angle_y(self) -> float:
        return 2.0 * math.atan(self.height / (2.0 * self.f))


def reduced_K(cam: Camera, k: int) -> np.ndarray:
    """OpenCV K of the image decoded at 1/k (pixel-centre convention, :meth:`Camera.scaled`)."""
    return np.asarray(cam.scaled(k).K, dtype=np.float64)


def valid_extent(K: np.ndarray, D: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Half extents (a, b) of the largest centred rectangle ``[-a, a] x [-b, b]`` of normalised,
    undistorted image coordinates whose every point projects (with distortion) inside the
    source pixels ``[0, width - 1] x [0, height - 1]``: the axis extents first, then shrunk
    uniformly (bisection) until the rectangle's boundary and a grid inside it fit."""
    K = np.asarray(K, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64).ravel()
    cx, cy = K[0, 2], K[1, 2]
    if not (0 < cx < width - 1 and 0 < cy < height - 1):
        raise Renderme360Error(f"principal point ({cx:.1f}, {cy:.1f}) lies outside the image")
    edges = np.array([[0, cy], [width - 1, cy], [cx, 0], [cx, height - 1]], dtype=np.float64)
    und = undistort_points(edges, K, D)
    a0, b0 = min(abs(und[0, 0]), abs(und[1, 0])), min(abs(und[2, 1]), abs(und[3, 1]))
    t = np.linspace(-1.0, 1.0, 129)
    grid = np.stack(np.meshgrid(t, t), axis=-1).reshape(-1, 2)

    def fits(s: float) -> bool:
        xy = grid * np.array([s * a0, s * b0])
        pts = np.column_stack([xy, np.ones(len(xy))])
        uv = project_opencv(pts, np.eye(4), K, D)
        tol = 1e-6
        return bool(np.all((uv >= -tol) & (uv <= np.array([width - 1, height - 1]) + tol)))

    lo, hi = 0.0, 1.0
    if fits(1.0):
        lo = 1.0
    else:
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    if lo <= 0.0:
        raise Renderme360Error("distortion leaves no valid region around the principal point")
    return lo * a0, lo * b0


def undistort_points(uv: np.ndarray, K: np.ndarray, D: np.ndarray, iters: int = 100) -> np.ndarray:
    """Normalised undistorted coordinates (N, 2) of distorted pixels (N, 2): the fixed-point
    iteration OpenCV's undistortPoints uses, run to convergence (numpy only)."""
    k1, k2, p1, p2, k3 = (list(np.asarray(D, dtype=np.float64).ravel()) + [0.0] * 5)[:5]
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    xd = (uv[:, 0] - K[0, 2]) / K[0, 0]
    yd = (uv[:, 1] - K[1, 2]) / K[1, 1]
    x, y = xd.copy(), yd.copy()
    for _ in range(iters):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return np.stack([x, y], axis=1)


def pinholes(
    cams: dict[str, Camera], k: int, size: int | None = None
) -> tuple[dict[str, Pinhole], int]:
    """Target pinhole per camera (one image size for all) and the decode factor to use.

    At decode factor ``k`` the source is ``floor(w / k) x floor(h / k)`` pixels; each camera's
    focal length is the mean of its reduced fx and fy; the common size is the smallest of the
    cameras' largest centred crops. ``size`` (a target width) picks the largest ``k`` whose
    crop is at least that wide and scales every focal length so the crop spans ``size`` pixels.
    """
    if size is not None:
        for kk in sorted(DOWNSCALES, reverse=True):
            found, _ = pinholes(cams, kk)
            width = next(iter(found.values())).width
            if width >= size or kk == 1:
                break
        if size < 16:
            raise UsageError(f"--size must be at least 16 pixels, got {size}")
        s = (size - 1) / (width - 1)
        out = {c: Pinhole(p.f * s, size, math.floor((p.height - 1) * s) + 1)
               for c, p in found.items()}  # fmt: skip
        return out, kk
    per: dict[str, tuple[float, int, int]] = {}
    for c, cam in cams.items():
        K = reduced_K(cam, k)
        w, h = reduced_size(cam.width, cam.height, k)
        try:
            a, b = valid_extent(K, cam.D, w, h)
        except Renderme360Error as exc:
            raise Renderme360Error(f"camera {c}: {exc}") from None
        f = (K[0, 0] + K[1, 1]) / 2.0
        per[c] = (f, math.floor(2 * a * f + 1), math.floor(2 * b * f + 1))
    width = min(w for _, w, _ in per.values())
    height = min(h for _, _, h in per.values())
    if width < 2 or height < 2:
        raise Renderme360Error(f"undistorted images would be {width}x{height} pixels")
    return {c: Pinhole(f, width, height) for c, (f, _, _) in per.items()}, k


@dataclass(frozen=True)
class UndistortTask:
    """Decode an image and its mask at 1/k, undistort both to ``pinhole``, composite, write."""

    image_dst: str  # staged (temporary) names, renamed into place when the export is complete
    mask_dst: str
    k: int
    width: int  # full-resolution size the calibration states
    height: int
    K: tuple[float, ...]  # OpenCV K of the reduced image (row-major 3x3)
    D: tuple[float, ...]
    pinhole: Pinhole
    background: int  # 0 or 255
    image_src: str | None = None
    image_data: bytes | None = None
    mask_src: str | None = None
    mask_data: bytes | None = None


_MAPS: OrderedDict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()


def _remap_maps(task: UndistortTask) -> tuple[np.ndarray, np.ndarray]:
    """One remap map per camera (a worker keeps the last few: tasks come camera by camera)."""
    import cv2

    key = (task.K, task.D, task.pinhole)
    maps = _MAPS.get(key)
    if maps is None:
        K = np.array(task.K, dtype=np.float64).reshape(3, 3)
        size = (task.pinhole.width, task.pinhole.height)
        m1, m2 = cv2.initUndistortRectifyMap(
            K, np.array(task.D), None, task.pinhole.K(), size, cv2.CV_16SC2
        )
        maps = _MAPS[key] = (m1, m2)
        while len(_MAPS) > 4:
            _MAPS.popitem(last=False)
    return maps


def undistort_pair(task: UndistortTask) -> tuple[np.ndarray, np.ndarray]:
    """The composited BGR image and the undistorted mask of one task (uint8)."""
    import cv2

    def load(src: str | None, data: bytes | None) -> bytes:
        return data if data is not None else Path(src or "").read_bytes()

    where = task.image_src or task.image_dst
    try:
        img = reduce_bytes(load(task.image_src, task.image_data), task.k, False, task.width,
                           task.height)  # fmt: skip
        where = task.mask_src or task.mask_dst
        mask = reduce_bytes(load(task.mask_src, task.mask_data), task.k, True, task.width,
                            task.height)  # fmt: skip
    except Renderme360Error as exc:
        raise Renderme360Error(f"{where}: {exc}") from None
    m1, m2 = _remap_maps(task)
    out = cv2.remap(img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.remap(mask, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = alpha.astype(np.uint16)[..., None]
    mixed = out.astype(np.uint16) * a + np.uint16(task.background) * (255 - a) + 127
    return (mixed // 255).astype(np.uint8), alpha


def run_undistort(task: UndistortTask) -> int:
    """Do one task (in a worker process); returns the bytes written."""
    image, mask = undistort_pair(task)
    total = 0
    for dst, arr in ((task.image_dst, image), (task.mask_dst, mask)):
        try:
            enc = encode(arr, ".png")
        except Renderme360Error:
            raise Renderme360Error(f"{dst}: cannot encode PNG") from None
        write_atomic(Path(dst), enc)
        total += len(enc)
    return total

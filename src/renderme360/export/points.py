"""COLMAP ``points3D`` from keypoints: a frame's 3D keypoints, each tracked in the images whose
cameras have its 2D keypoint (2D index ``33 + i`` is 3D index ``i``), coloured from a reduced
decode of those images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import Renderme360Error
from ..formats.image import area_reduce, decode, pixel_budget
from . import colmap_model as cm
from .conventions import PIXEL_CENTER, intrinsics, project_opencv, w2c_from_c2w
from .summary import ExportSummary

if TYPE_CHECKING:
    from ..loader.performance import Performance


def keypoint_points(
    perf: Performance,
    frame: int,
    cams: list[str],
    images: list[cm.Image],
    k: int,
    summary: ExportSummary,
) -> list[cm.Point3D]:
    """3D keypoints of ``frame`` with tracks in the images whose cameras have 2D keypoints."""
    try:
        f3, k3 = perf.keypoints3d()
    except Renderme360Error:
        summary.notes.append("no 3D keypoints: points3D is empty")
        return []
    hit = np.flatnonzero(np.asarray(f3) == frame)
    if not hit.size:
        summary.notes.append(f"no 3D keypoints for frame {frame}: points3D is empty")
        return []
    pts3 = np.asarray(k3[hit[0]], dtype=np.float64)
    tracks: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(pts3))}
    errors: dict[int, list[float]] = {i: [] for i in range(len(pts3))}
    have2d = set(perf.keypoints2d_camera_ids)
    colours: dict[int, list[np.ndarray]] = {i: [] for i in range(len(pts3))}
    for im, c in zip(images, cams, strict=True):
        if c not in have2d:
            continue
        f2, k2 = perf.keypoints2d(c)
        hit2 = np.flatnonzero(np.asarray(f2) == frame)
        if not hit2.size:
            continue
        kp = np.asarray(k2[hit2[0]], dtype=np.float64)
        offset = _keypoint_offset(len(kp), len(pts3))
        if offset is None:
            summary.notes.append(
                f"camera {c}: {len(kp)} 2D keypoints do not match {len(pts3)} 3D ones; no track"
            )
            continue
        ok = np.all(np.isfinite(kp), axis=1)
        xys = (kp[ok] + PIXEL_CENTER) / k
        index = np.cumsum(ok) - 1  # 2D keypoint -> position among the written ones
        ids = [cm.INVALID_POINT3D] * len(xys)
        cam = perf.cameras[c]
        intr = intrinsics(cam.K, cam.D, cam.width, cam.height, k)
        w2c = w2c_from_c2w(cam.c2w)
        proj = project_opencv(pts3, w2c, intr.opencv_K(), intr.dist) + PIXEL_CENTER
        for i in range(len(pts3)):
            j = offset + i
            if j >= len(kp) or not ok[j] or not np.all(np.isfinite(pts3[i])):
                continue
            pos = int(index[j])
            ids[pos] = i + 1
            tracks[i].append((im.image_id, pos))
            errors[i].append(float(np.linalg.norm(proj[i] - xys[pos])))
        im.xys, im.point3d_ids = xys, ids
        _sample_colours(perf, c, frame, kp, offset, len(pts3), colours)
    points = []
    for i, xyz in enumerate(pts3):
        if not np.all(np.isfinite(xyz)):
            continue
        err = float(np.mean(errors[i])) if errors[i] else -1.0
        rgb = tuple(int(v) for v in np.median(colours[i], axis=0)) if colours[i] else (128,) * 3
        points.append(cm.Point3D(i + 1, xyz, rgb, err, tracks[i]))  # type: ignore[arg-type]
    summary.points3d = len(points)
    summary.observations = sum(len(p.track) for p in points)
    if points and not summary.observations:
        summary.notes.append("no camera has 2D keypoints for this frame: points have no track")
    return points


def _keypoint_offset(n2d: int, n3d: int) -> int | None:
    """Row of the 2D keypoints that 3D keypoint 0 corresponds to: the dataset's 73 3D points are
    its 106 2D points minus the 33 face-contour points (2D ``33 + i`` = 3D ``i``); equal counts
    map one to one."""
    if (n2d, n3d) == (106, 73):
        return 33
    if n2d == n3d:
        return 0
    return None


def _sample_colours(
    perf: Performance,
    cam: str,
    frame: int,
    kp: np.ndarray,
    offset: int,
    n3d: int,
    colours: dict[int, list[np.ndarray]],
) -> None:
    """Colour of each observed point in this camera, from a 1/8-size DCT-domain decode (a few
    milliseconds per image): the initial colour splatting codebases give each point."""
    try:
        data = perf.image_bytes(cam, frame)
        c = perf.cameras[cam]
        img, done = decode(data, scale=8, max_pixels=pixel_budget(c.width, c.height))
    except Renderme360Error:
        return
    img = area_reduce(img, 8 // done, exact=False)  # a PNG is decoded whole
    h, w = img.shape[:2]
    for i in range(n3d):
        j = offset + i
        if j >= len(kp) or not np.all(np.isfinite(kp[j])):
            continue
        x, y = ((kp[j] + PIXEL_CENTER) / 8).astype(int)
        if 0 <= x < w and 0 <= y < h:
            colours[i].append(img[y, x, ::-1].astype(np.float64))  # BGR -> RGB

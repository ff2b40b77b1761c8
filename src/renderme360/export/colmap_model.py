"""COLMAP sparse model (cameras, images, points3D) in COLMAP's binary and text layouts.

Layout as documented by COLMAP (https://colmap.github.io/format.html), little-endian:
cameras.bin  u64 n, then per camera: u32 id, i32 model id, u64 width, u64 height, f64 params[]
images.bin   u64 n, then per image: u32 id, f64 qw qx qy qz, f64 tx ty tz, u32 camera id,
             name NUL-terminated, u64 n2d, then per 2D point: f64 x, f64 y, u64 point3D id
             (2**64-1 = none)
points3D.bin u64 n, then per point: u64 id, f64 x y z, u8 r g b, f64 error, u64 track length,
             then per element: u32 image id, u32 point2D index
Poses are world-to-camera; pixel coordinates put the top-left image corner at (0, 0).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .conventions import Intrinsics

#: COLMAP camera model ids and parameter names (src/colmap/sensor/models.h).
MODELS: dict[str, tuple[int, tuple[str, ...]]] = {
    "PINHOLE": (1, ("fx", "fy", "cx", "cy")),
    "OPENCV": (4, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2")),
    "FULL_OPENCV": (
        6,
        ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    ),
}
INVALID_POINT3D = 2**64 - 1


@dataclass(frozen=True)
class Camera:
    camera_id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass
class Image:
    image_id: int
    qvec: np.ndarray  # (4,) w, x, y, z (world-to-camera)
    tvec: np.ndarray  # (3,)
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (N, 2) corner origin
    point3d_ids: list[int] = field(default_factory=list)  # (N,), INVALID_POINT3D when none


@dataclass
class Point3D:
    point3d_id: int
    xyz: np.ndarray  # (3,)
    rgb: tuple[int, int, int]
    error: float
    track: list[tuple[int, int]]  # (image id, point2D index)


def camera_from_intrinsics(camera_id: int, intr: Intrinsics) -> Camera:
    """PINHOLE without distortion, OPENCV with k3 == 0, FULL_OPENCV otherwise (k3 kept)."""
    k1, k2, p1, p2, k3 = intr.dist
    base = (intr.fx, intr.fy, intr.cx, intr.cy)
    if not intr.distorted:
        return Camera(camera_id, "PINHOLE", intr.width, intr.height, base)
    if k3 == 0.0:
        return Camera(camera_id, "OPENCV", intr.width, intr.height, (*base, k1, k2, p1, p2))
    return Camera(
        camera_id,
        "FULL_OPENCV",
        intr.width,
        intr.height,
        (*base, k1, k2, p1, p2, k3, 0.0, 0.0, 0.0),
    )


def _check_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if b"\0" in raw or not raw or any(c in name for c in "\n\r "):
        raise ValueError(f"COLMAP image name must be non-empty without NUL/space/newline: {name!r}")
    return raw


def cameras_bin(cameras: Sequence[Camera]) -> bytes:
    out = [struct.pack("<Q", len(cameras))]
    for c in cameras:
        model_id, names = MODELS[c.model]
        if len(c.params) != len(names):
            raise ValueError(f"{c.model} takes {len(names)} parameters, got {len(c.params)}")
        out.append(struct.pack("<IiQQ", c.camera_id, model_id, c.width, c.height))
        out.append(struct.pack(f"<{len(c.params)}d", *c.params))
    return b"".join(out)


def images_bin(images: Sequence[Image]) -> bytes:
    out = [struct.pack("<Q", len(images))]
    for im in images:
        out.append(struct.pack("<I4d3dI", im.image_id, *im.qvec, *im.tvec, im.camera_id))
        out.append(_check_name(im.name) + b"\0")
        xys = np.asarray(im.xys, dtype=np.float64).reshape(-1, 2)
        out.append(struct.pack("<Q", len(xys)))
        if len(xys):
            rec = np.zeros(len(xys), dtype=[("x", "<f8"), ("y", "<f8"), ("id", "<u8")])
            rec["x"], rec["y"] = xys[:, 0], xys[:, 1]
            rec["id"] = np.asarray(im.point3d_ids, dtype=np.uint64)
            out.append(rec.tobytes())
    return b"".join(out)


def points3d_bin(points: Sequence[Point3D]) -> bytes:
    out = [struct.pack("<Q", len(points))]
    for p in points:
        out.append(struct.pack("<Q3d3Bd", p.point3d_id, *p.xyz, *p.rgb, p.error))
        out.append(struct.pack("<Q", len(p.track)))
        if p.track:
            out.append(np.asarray(p.track, dtype="<u4").tobytes())
    return b"".join(out)


def _num(x: float) -> str:
    return repr(float(x))  # shortest text that reads back to the same double


def cameras_txt(cameras: Sequence[Camera]) -> str:
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(cameras)}",
    ]
    for c in cameras:
        params = " ".join(_num(v) for v in c.params)
        lines.append(f"{c.camera_id} {c.model} {c.width} {c.height} {params}")
    return "\n".join(lines) + "\n"


def images_txt(images: Sequence[Image]) -> str:
    # COLMAP's figure: 2D points that observe a 3D point (not every 2D point), per image
    n_obs = sum(sum(1 for p in im.point3d_ids if p != INVALID_POINT3D) for im in images)
    mean = n_obs / len(images) if images else 0
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(images)}, mean observations per image: {mean}",
    ]
    for im in images:
        _check_name(im.name)
        pose = " ".join(_num(v) for v in (*im.qvec, *im.tvec))
        lines.append(f"{im.image_id} {pose} {im.camera_id} {im.name}")
        pts = []
        for (x, y), pid in zip(np.asarray(im.xys).reshape(-1, 2), im.point3d_ids, strict=True):
            pts.append(f"{_num(x)} {_num(y)} {-1 if pid == INVALID_POINT3D else pid}")
        lines.append(" ".join(pts))
    return "\n".join(lines) + "\n"


def points3d_txt(points: Sequence[Point3D]) -> str:
    mean = sum(len(p.track) for p in points) / len(points) if points else 0
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(points)}, mean track length: {mean}",
    ]
    for p in points:
        xyz = " ".join(_num(v) for v in p.xyz)
        track = " ".join(f"{i} {j}" for i, j in p.track)
        rgb = " ".join(str(int(c)) for c in p.rgb)
        lines.append(f"{p.point3d_id} {xyz} {rgb} {_num(p.error)} {track}")
    return "\n".join(lines) + "\n"


def model_files(
    cameras: Sequence[Camera],
    images: Sequence[Image],
    points: Sequence[Point3D],
    text: bool = False,
) -> dict[str, bytes]:
    """File name -> content of a sparse model folder (``.bin``, and ``.txt`` when ``text``)."""
    files = {
        "cameras.bin": cameras_bin(cameras),
        "images.bin": images_bin(images),
        "points3D.bin": points3d_bin(points),
    }
    if text:
        files["cameras.txt"] = cameras_txt(cameras).encode()
        files["images.txt"] = images_txt(images).encode()
        files["points3D.txt"] = points3d_txt(points).encode()
    return files

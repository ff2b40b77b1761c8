"""Camera conventions of the dataset, COLMAP and nerfstudio, and the conversions between them.

The dataset's ``K`` is OpenCV's: the centre of the top-left pixel is at (0, 0). COLMAP and
nerfstudio put the top-left *corner* of the image at (0, 0), so the centre of the top-left pixel is
at (0.5, 0.5) and their principal point is ``cx + 0.5, cy + 0.5``. With that corner origin, reducing
an image by an integer factor k divides fx, fy, cx, cy exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Renderme360Error
from ..formats.image import SCALES

#: Added to an OpenCV (pixel-centre origin) coordinate to get a corner-origin one.
PIXEL_CENTER = 0.5

#: ``c2w_opencv @ OPENCV_TO_OPENGL`` flips the camera's y and z axes (x right, y up, z backward).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])

#: ``--downscale`` factors: the image module's reduction factors (one list for every decoder).
DOWNSCALES = SCALES

CONVENTIONS_TEXT = """\
Conventions (renderme360 export)
- World: the dataset's world frame, metres; world "up" is -y.
- Dataset K (OpenCV): the centre of the top-left pixel is at (0, 0).
- COLMAP and nerfstudio: the top-left image corner is at (0, 0), the centre of the top-left
  pixel at (0.5, 0.5). Principal point written here: cx = cx_opencv + 0.5, cy = cy_opencv + 0.5.
  nerfstudio's own COLMAP converter copies COLMAP's principal point unchanged and casts rays
  through pixel centres at +0.5, so transforms.json uses the same corner-origin numbers.
- A dataset 2D keypoint (x, y) is at (x + 0.5, y + 0.5) in these files' pixel coordinates.
- Downscale by k (2, 4, 8): fx, fy, cx, cy (corner origin) divided by k; width and height are
  floor(w / k), floor(h / k): when w or h is not a multiple of k the partial last column/row of
  output pixels is cropped (right/bottom edge), which leaves the intrinsics unchanged.
  The loader's perf.image(scale=k) and Camera.scaled(k) keep libjpeg's rounded-up size,
  ceil(w / k) x ceil(h / k), instead: for such sizes they are one pixel larger than these files.
  Distortion coefficients do not change with scale.
- nerfstudio transform_matrix: camera-to-world with OpenGL camera axes (x right, y up,
  z backward) = c2w_opencv @ diag(1, -1, -1, 1). camera_model OPENCV: k1 k2 p1 p2 (and k3).
- COLMAP images: world-to-camera rotation as a quaternion (qw, qx, qy, qz) and translation t,
  OpenCV camera axes: x_cam = R x_world + t. Cameras: PINHOLE when all distortion coefficients are
  zero, OPENCV (k1 k2 p1 p2) when k3 is zero, FULL_OPENCV (k1 k2 p1 p2 k3 k4 k5 k6, with k4..k6 = 0)
  when k3 is not zero, so that no coefficient is dropped.
"""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics with a corner-origin principal point, plus OpenCV distortion."""

    fx: float
    fy: float
    cx: float  # corner origin (COLMAP / nerfstudio)
    cy: float
    width: int
    height: int
    dist: tuple[float, float, float, float, float]  # k1, k2, p1, p2, k3

    @property
    def distorted(self) -> bool:
        return any(d != 0.0 for d in self.dist)

    def opencv_K(self) -> np.ndarray:
        """The 3x3 OpenCV matrix (pixel-centre origin) of these intrinsics."""
        return np.array(
            [
                [self.fx, 0.0, self.cx - PIXEL_CENTER],
                [0.0, self.fy, self.cy - PIXEL_CENTER],
                [0.0, 0.0, 1.0],
            ]
        )


def intrinsics(K: np.ndarray, D: np.ndarray, width: int, height: int, k: int = 1) -> Intrinsics:
    """Corner-origin intrinsics of an OpenCV ``K``/``D`` camera reduced by an integer factor ``k``.

    ``K[0, 1]`` (skew) must be zero: none of the target formats has a skew term.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise Renderme360Error(f"intrinsic matrix must be a finite 3x3 array, got {K.shape}")
    if abs(K[0, 1]) > 1e-9 * max(abs(K[0, 0]), 1.0):
        raise Renderme360Error("intrinsic matrix has a skew term, which COLMAP/nerfstudio lack")
    if k not in DOWNSCALES:
        raise Renderme360Error(f"downscale must be one of {DOWNSCALES}, got {k}")
    d = np.zeros(5)
    D = np.asarray(D, dtype=np.float64).ravel()
    if not np.all(np.isfinite(D)):
        raise Renderme360Error("distortion coefficients must be finite (NaN or Inf found)")
    if D.size > 5 and np.any(D[5:] != 0):
        raise Renderme360Error(f"only 5 distortion coefficients are supported, got {D.size}")
    d[: min(5, D.size)] = D[:5]
    w, h = reduced_size(width, height, k)
    return Intrinsics(
        fx=float(K[0, 0]) / k,
        fy=float(K[1, 1]) / k,
        cx=(float(K[0, 2]) + PIXEL_CENTER) / k,
        cy=(float(K[1, 2]) + PIXEL_CENTER) / k,
        width=w,
        height=h,
        dist=tuple(float(x) for x in d),  # type: ignore[arg-type]
    )


def reduced_size(width: int, height: int, k: int) -> tuple[int, int]:
    """Image size after reducing by ``k``: floor division (partial edge pixels are cropped)."""
    return int(width) // k, int(height) // k


def rigid_c2w(c2w: np.ndarray) -> np.ndarray:
    """``c2w`` with its rotation made exactly orthonormal (nearest rotation), centre unchanged.

    Calibration files store rotations to finite precision; quaternions and ``R.T`` inverses need
    an exact rotation. A matrix far from a rotation (a reflection, a scale) is an error.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise Renderme360Error(f"camera pose must be a finite 4x4 matrix, got {c2w.shape}")
    R = c2w[:3, :3]
    u, _s, vt = np.linalg.svd(R)
    Rn = u @ vt
    if np.linalg.det(Rn) < 0 or np.abs(Rn - R).max() > 1e-3:
        raise Renderme360Error("camera pose rotation is not a rotation (reflection or scale)")
    out = np.eye(4)
    out[:3, :3] = Rn
    out[:3, 3] = c2w[:3, 3]
    return out


def w2c_from_c2w(c2w: np.ndarray) -> np.ndarray:
    """World-to-camera 4x4 from camera-to-world (exact rigid inverse of :func:`rigid_c2w`)."""
    c2w = rigid_c2w(c2w)
    R = c2w[:3, :3].T
    out = np.eye(4)
    out[:3, :3] = R
    out[:3, 3] = -R @ c2w[:3, 3]
    return out


def c2w_to_nerfstudio(c2w: np.ndarray) -> np.ndarray:
    """nerfstudio ``transform_matrix``: camera-to-world with OpenGL camera axes."""
    return rigid_c2w(c2w) @ OPENCV_TO_OPENGL


def nerfstudio_to_c2w(transform_matrix: np.ndarray) -> np.ndarray:
    """Inverse of :func:`c2w_to_nerfstudio`: camera-to-world with OpenCV camera axes."""
    return np.asarray(transform_matrix, dtype=np.float64) @ OPENCV_TO_OPENGL


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix, with w >= 0 (Hamilton, as COLMAP)."""
    R = np.asarray(R, dtype=np.float64)
    m00, m01, m02 = R[0]
    m10, m11, m12 = R[1]
    m20, m21, m22 = R[2]
    trace = m00 + m11 + m22
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s]
    elif m00 > m11 and m00 > m22:
        s = 2.0 * np.sqrt(1.0 + m00 - m11 - m22)
        q = [(m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s]
    elif m11 > m22:
        s = 2.0 * np.sqrt(1.0 + m11 - m00 - m22)
        q = [(m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m22 - m00 - m11)
        q = [(m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s]
    qa = np.array(q)
    qa /= np.linalg.norm(qa)
    return -qa if qa[0] < 0 else qa


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion (w, x, y, z); the quaternion need not be normalised."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def project_opencv(
    points: np.ndarray, w2c: np.ndarray, K: np.ndarray, dist: tuple[float, ...] | np.ndarray
) -> np.ndarray:
    """Project world points with OpenCV's pinhole + (k1, k2, p1, p2, k3) model (numpy only)."""
    p = np.asarray(points, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    x, y = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    k1, k2, p1, p2, k3 = (list(dist) + [0.0] * 5)[:5]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=1)

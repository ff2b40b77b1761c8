"""Exports for training: conventions, the COLMAP model writer, reduced decode, and the commands.

Pixel conventions these tests pin down: the dataset's K is OpenCV's (centre of the top-left pixel
at (0, 0)); COLMAP and nerfstudio put the image corner at (0, 0), so a dataset pixel coordinate
(x, y) is (x + 0.5, y + 0.5) there, and reducing by k maps it to ((x + 0.5) / k, (y + 0.5) / k).
"""

from __future__ import annotations

import numpy as np
import pytest

from renderme360.export import colmap_model as cm
from renderme360.export.conventions import (
    OPENCV_TO_OPENGL,
    c2w_to_nerfstudio,
    intrinsics,
    nerfstudio_to_c2w,
    project_opencv,
    quat_to_rotmat,
    reduced_size,
    rigid_c2w,
    rotmat_to_quat,
    w2c_from_c2w,
)

pycolmap = pytest.importorskip("pycolmap")  # a [dev] dependency: present in CI


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _look_at(centre: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """camera-to-world, OpenCV axes (z forward, y down; world up is -y as in the dataset)."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(np.array([0.0, -1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1) @ _rot(np.array([0, 0, 1.0]), roll)
    c2w = np.eye(4)
    c2w[:3, :3] = R
    c2w[:3, 3] = centre
    return c2w


def _rig(n: int = 6, seed: int = 1) -> list[dict]:
    """Hand-made cameras around a head at (0, -0.5, 0); some distorted, one with k3."""
    rng = np.random.default_rng(seed)
    head = np.array([-0.04, -0.5, 0.0])
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        centre = head + np.array([1.1 * np.sin(a), rng.uniform(-0.2, 0.2), 1.1 * np.cos(a)])
        K = np.array([[4700.0 + i, 0, 1223.7 + i], [0, 4702.0, 1023.2 - i], [0, 0, 1]])
        D = np.zeros(5)
        if i % 3 == 1:
            D[:4] = [-0.08, 0.11, 0.0004, -0.0003]
        if i % 3 == 2:
            D[:] = [-0.08, 0.11, 0.0004, -0.0003, 0.05]
        cams.append(
            {
                "id": f"{20 + i:02d}",
                "K": K,
                "D": D,
                "c2w": _look_at(centre, head, roll=rng.uniform(-0.1, 0.1)),
                "width": 2448,
                "height": 2048,
            }
        )
    return cams


def _points(n: int = 73, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([-0.04, -0.5, 0.0]) + rng.uniform(-0.08, 0.08, size=(n, 3))


# ---------------------------------------------------------------------------- conventions
def test_quaternion_round_trip_and_sign() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        R = _rot(rng.normal(size=3), rng.uniform(0, np.pi))
        q = rotmat_to_quat(R)
        assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
        np.testing.assert_allclose(quat_to_rotmat(q), R, atol=1e-12)
    # 180-degree rotations (trace -1) take the non-trace branches
    for axis in np.eye(3):
        R = _rot(axis, np.pi)
        np.testing.assert_allclose(quat_to_rotmat(rotmat_to_quat(R)), R, atol=1e-12)


def test_quaternion_matches_pycolmap() -> None:
    R = _rot(np.array([0.3, -1.0, 0.2]), 2.5)
    q = rotmat_to_quat(R)
    rot = pycolmap.Rotation3d(R)
    x, y, z, w = rot.quat  # Eigen coefficient order
    assert np.allclose([w, x, y, z], q) or np.allclose([w, x, y, z], -q)


def test_nerfstudio_axes_round_trip() -> None:
    c2w = _rig()[0]["c2w"]
    T = c2w_to_nerfstudio(c2w)
    np.testing.assert_allclose(T[:3, 0], c2w[:3, 0], atol=1e-12)  # x right stays
    np.testing.assert_allclose(T[:3, 1], -c2w[:3, 1], atol=1e-12)  # y up = -y down
    np.testing.assert_allclose(T[:3, 2], -c2w[:3, 2], atol=1e-12)  # camera looks down -z
    np.testing.assert_allclose(T[:3, 3], c2w[:3, 3], atol=1e-12)
    np.testing.assert_allclose(nerfstudio_to_c2w(T), c2w, atol=1e-12)
    np.testing.assert_allclose(OPENCV_TO_OPENGL @ OPENCV_TO_OPENGL, np.eye(4))


def test_w2c_is_rigid_inverse_and_rejects_reflection() -> None:
    c2w = _rig()[1]["c2w"]
    np.testing.assert_allclose(w2c_from_c2w(c2w) @ c2w, np.eye(4), atol=1e-12)
    bad = c2w.copy()
    bad[:3, 0] *= -1
    with pytest.raises(Exception, match="not a rotation"):
        rigid_c2w(bad)
    noisy = c2w.copy()
    noisy[:3, :3] *= 1 + 1e-7  # stored precision: accepted, made orthonormal
    R = rigid_c2w(noisy)[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)


def test_intrinsics_corner_origin_and_downscale() -> None:
    K = np.array([[4700.0, 0, 1223.5], [0, 4701.0, 1023.25], [0, 0, 1]])
    full = intrinsics(K, np.zeros(5), 2448, 2048)
    assert (full.cx, full.cy) == (1224.0, 1023.75)
    assert (full.width, full.height) == (2448, 2048)
    q = intrinsics(K, np.zeros(5), 2448, 2048, 4)
    assert (q.fx, q.fy, q.cx, q.cy) == (1175.0, 4701.0 / 4, 306.0, 1023.75 / 4)
    assert (q.width, q.height) == (612, 512)
    assert reduced_size(101, 77, 8) == (12, 9)  # floor: partial last pixel cropped
    np.testing.assert_allclose(full.opencv_K(), K)
    with pytest.raises(Exception, match="downscale"):
        intrinsics(K, np.zeros(5), 2448, 2048, 3)


def test_downscaled_intrinsics_project_scaled_pixels() -> None:
    """A dataset pixel x maps to (x + 0.5) / k - 0.5 in the reduced image's OpenCV coordinates."""
    cam = _rig()[2]
    w2c = w2c_from_c2w(cam["c2w"])
    pts = _points()
    full = project_opencv(pts, w2c, cam["K"], cam["D"])
    for k in (2, 4, 8):
        intr = intrinsics(cam["K"], cam["D"], 2448, 2048, k)
        small = project_opencv(pts, w2c, intr.opencv_K(), intr.dist)
        np.testing.assert_allclose(small, (full + 0.5) / k - 0.5, atol=1e-9)


# ---------------------------------------------------------------------------- COLMAP writer
def _model(cams: list[dict], pts: np.ndarray, k: int = 1):
    cameras, images, obs = [], [], {}
    for i, c in enumerate(cams, start=1):
        intr = intrinsics(c["K"], c["D"], c["width"], c["height"], k)
        cameras.append(cm.camera_from_intrinsics(i, intr))
        w2c = w2c_from_c2w(c["c2w"])
        uv = (project_opencv(pts, w2c, c["K"], c["D"]) + 0.5) / k
        images.append(
            cm.Image(
                i,
                rotmat_to_quat(w2c[:3, :3]),
                w2c[:3, 3],
                i,
                f"cam_{c['id']}.jpg",
                uv,
                list(range(1, len(pts) + 1)),
            )
        )
        for j in range(len(pts)):
            obs.setdefault(j, []).append((i, j))
    points = [cm.Point3D(j + 1, pts[j], (200, 100, 50), 0.0, obs[j]) for j in range(len(pts))]
    return cameras, images, points


def _write(tmp_path, cameras, images, points, text: bool):
    d = tmp_path / "sparse0"
    d.mkdir()
    for name, data in cm.model_files(cameras, images, points, text=text).items():
        (d / name).write_bytes(data)
    return d


def _cam_from_world(image) -> np.ndarray:
    pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
    return np.asarray(pose.matrix())


@pytest.mark.parametrize("text", [False, True])
def test_colmap_model_round_trips_through_pycolmap(tmp_path, text: bool) -> None:
    cams, pts = _rig(), _points()
    cameras, images, points = _model(cams, pts)
    d = _write(tmp_path, cameras, images, points, text)
    if text:  # read the text files alone
        for name in ("cameras.bin", "images.bin", "points3D.bin"):
            (d / name).unlink()
    rec = pycolmap.Reconstruction(str(d))
    assert rec.num_cameras() == len(cams) and rec.num_images() == len(cams)
    assert rec.num_points3D() == len(pts)
    models = {c.camera_id: c.model for c in cameras}
    assert sorted(set(models.values())) == ["FULL_OPENCV", "OPENCV", "PINHOLE"]
    for cid, cam in rec.cameras.items():
        assert cam.model.name == models[cid]
        assert (cam.width, cam.height) == (2448, 2048)
        np.testing.assert_allclose(cam.params, cameras[cid - 1].params, rtol=0, atol=1e-12)
    for iid, im in rec.images.items():
        c = cams[iid - 1]
        assert im.name == f"cam_{c['id']}.jpg" and im.camera_id == iid
        np.testing.assert_allclose(_cam_from_world(im), w2c_from_c2w(c["c2w"])[:3], atol=1e-12)
    # pycolmap's own projection lands on the written observations (= OpenCV pixel + 0.5)
    for pid, p in rec.points3D.items():
        np.testing.assert_allclose(p.xyz, pts[pid - 1], atol=1e-15)
        assert tuple(p.color) == (200, 100, 50)
        assert p.track.length() == len(cams)
        for el in p.track.elements:
            im = rec.images[el.image_id]
            cam = rec.cameras[im.camera_id]
            xc = _cam_from_world(im) @ np.append(p.xyz, 1.0)
            uv = cam.img_from_cam(xc[None, :])[0]
            np.testing.assert_allclose(uv, im.points2D[el.point2D_idx].xy, atol=1e-6)


def test_colmap_binary_layout_bytes() -> None:
    """Field by field against the documented layout (independent of pycolmap)."""
    import struct

    cam = cm.Camera(3, "PINHOLE", 612, 512, (1.0, 2.0, 3.0, 4.0))
    data = cm.cameras_bin([cam])
    assert data == struct.pack("<QIiQQ4d", 1, 3, 1, 612, 512, 1.0, 2.0, 3.0, 4.0)
    im = cm.Image(7, np.array([1.0, 0, 0, 0]), np.array([0.1, 0.2, 0.3]), 3, "cam_25.jpg",
                  np.array([[1.5, 2.5]]), [cm.INVALID_POINT3D])  # fmt: skip
    data = cm.images_bin([im])
    head = struct.pack("<QI4d3dI", 1, 7, 1, 0, 0, 0, 0.1, 0.2, 0.3, 3)
    assert data == head + b"cam_25.jpg\0" + struct.pack("<QddQ", 1, 1.5, 2.5, 2**64 - 1)
    p = cm.Point3D(9, np.array([1.0, 2.0, 3.0]), (1, 2, 3), 0.25, [(7, 40), (8, 41)])
    assert cm.points3d_bin([p]) == struct.pack(
        "<QQ3d3BdQIIII", 1, 9, 1.0, 2.0, 3.0, 1, 2, 3, 0.25, 2, 7, 40, 8, 41
    )
    with pytest.raises(ValueError):
        cm.images_bin([cm.Image(1, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "a b.jpg")])


# ---------------------------------------------------------------------------- reduced decode
def _photo(h: int, w: int, seed: int = 3) -> np.ndarray:
    """A smooth, photo-like BGR image (reduced JPEG decode is compared on realistic content)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            fx, fy, ph = [*rng.uniform(0.002, 0.03, 2).tolist(), rng.uniform(0, 6)]
            img[:, :, c] += 30 * np.sin(fx * xx + fy * yy + ph)
    img += 128 + rng.normal(0, 2, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("k", [2, 4, 8])
@pytest.mark.parametrize(("h", "w"), [(512, 640), (203, 301)])
def test_reduced_jpeg_matches_area_resize(k: int, h: int, w: int) -> None:
    import cv2

    from renderme360.export.reduce import reduce_bytes

    ok, enc = cv2.imencode(".jpg", _photo(h, w), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    small = reduce_bytes(enc.tobytes(), k, False, w, h)
    assert small.shape == (h // k, w // k, 3)  # floor: partial last row/column cropped
    full = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    crop = full[: h // k * k, : w // k * k]
    ref = cv2.resize(crop, (w // k, h // k), interpolation=cv2.INTER_AREA)
    diff = np.abs(small.astype(int) - ref.astype(int))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 4, (diff.mean(), diff.max())


def test_reduced_png_mask_is_exact_area_average_and_checks_size() -> None:
    import cv2

    from renderme360.errors import Renderme360Error
    from renderme360.export.reduce import reduce_bytes

    mask = np.zeros((99, 130), np.uint8)
    cv2.circle(mask, (60, 50), 30, 255, -1)
    enc = cv2.imencode(".png", mask)[1].tobytes()
    small = reduce_bytes(enc, 4, True, 130, 99)
    ref = cv2.resize(mask[:96, :128], (32, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(small, ref)
    rgb = cv2.imencode(".png", np.dstack([mask, mask // 2, mask // 3]))[1].tobytes()
    np.testing.assert_array_equal(reduce_bytes(rgb, 4, True, 130, 99), ref)  # channel max
    with pytest.raises(Renderme360Error, match="calibration says"):
        reduce_bytes(enc, 2, True, 140, 99)
    with pytest.raises(Renderme360Error, match="decodable"):
        reduce_bytes(b"\xff\xd8\xff" + b"x" * 100, 2, False, 130, 99)

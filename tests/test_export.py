"""Exports for training: conventions, the COLMAP model writer, reduced decode, and the commands.

Pixel conventions these tests pin down: the dataset's K is OpenCV's (centre of the top-left pixel
at (0, 0)); COLMAP and nerfstudio put the image corner at (0, 0), so a dataset pixel coordinate
(x, y) is (x + 0.5, y + 0.5) there, and reducing by k maps it to ((x + 0.5) / k, (y + 0.5) / k).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from renderme360.cli import main
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


def test_transforms_text_is_the_same_json() -> None:
    from renderme360.export.nerfstudio import camera_fields, dumps, frame_entry, transforms

    K = np.array([[100.0, 0, 49.5], [0, 101.0, 39.5], [0, 0, 1]])
    a = camera_fields(intrinsics(K, np.zeros(5), 100, 80), _rig()[0]["c2w"])
    b = camera_fields(intrinsics(K, np.full(5, 0.01), 100, 80, 2), _rig()[1]["c2w"])
    frames = [
        frame_entry("images/a.jpg", a, "masks/a.png", 1, 2, 0.5),
        frame_entry("images/b.jpg", b, "masks/b.png", 2, 2, 0.5),
        frame_entry("images/c.jpg", a, "masks/c.png", 1, 3, 1.0),
    ]
    doc = transforms(frames, {"renderme360": {"downscale": 1}})
    text = dumps(doc)
    assert json.loads(text) == doc
    assert len(text.splitlines()) == 4 + len(frames) + 2  # one line per frame
    assert a["cx"] == 50.0 and b["cx"] == 25.0  # corner origin, then / 2


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
    small = reduce_bytes(enc, 4, True, 130, 99, soft=True)
    ref = cv2.resize(mask[:96, :128], (32, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(small, ref)
    rgb = cv2.imencode(".png", np.dstack([mask, mask // 2, mask // 3]))[1].tobytes()
    np.testing.assert_array_equal(reduce_bytes(rgb, 4, True, 130, 99, soft=True), ref)  # max
    binary = np.where(ref >= 128, 255, 0)  # the default: binary at half (nerfstudio: non-zero)
    np.testing.assert_array_equal(reduce_bytes(enc, 4, True, 130, 99), binary)
    with pytest.raises(Renderme360Error, match="calibration says"):
        reduce_bytes(enc, 2, True, 140, 99)
    with pytest.raises(Renderme360Error, match="decodable"):
        reduce_bytes(b"\xff\xd8\xff" + b"x" * 100, 2, False, 130, 99)


# ---------------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Synthetic e0 (8 cameras with images, 3 frames, consistent keypoints), extracted."""
    from renderme360.synth import synthesize

    root = tmp_path_factory.mktemp("export")
    synthesize(root / "smc", "0026", ["e0"], 21, cameras=8, frames=3, resolution="small")
    assert main(["extract", str(root / "smc"), "-o", str(root / "out"), "-q", "--no-preview"]) == 0
    return root / "smc", root / "out" / "0026_e0"


def _perf(path):
    import renderme360 as rm

    return rm.load(path)


def _kp_pairs(perf):
    """(camera, frame, 2D (73, 2), 3D (73, 3)) for every camera/frame having both."""
    f3, k3 = perf.keypoints3d()
    out = []
    for cam in perf.keypoints2d_camera_ids:
        f2, k2 = perf.keypoints2d(cam)
        for i, f in enumerate(f2):
            hit = np.flatnonzero(f3 == f)
            if hit.size:
                out.append((cam, int(f), k2[i, 33:], k3[hit[0]]))
    assert out, "synthetic data must have keypoints in both 2D and 3D"
    return out


def _image_size(path: Path) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img.shape[1], img.shape[0]


@pytest.mark.parametrize("k", [1, 2])
def test_nerfstudio_projects_keypoints_and_files_exist(extracted, tmp_path, capsys, k) -> None:
    """nerfstudio casts the ray of pixel (i, j) through (i + 0.5, j + 0.5) with the file's cx, cy:
    so the file's intrinsics must project a 3D keypoint to (dataset 2D keypoint + 0.5) / k."""
    import cv2

    _smc, perf_dir = extracted
    dest = tmp_path / "ns"
    args = ["export", "nerfstudio", str(perf_dir), "--frames", "0:3", "--masks", "-o", str(dest)]
    assert main([*args, "--downscale", str(k), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    perf = _perf(perf_dir)
    doc = json.loads((dest / "transforms.json").read_text())
    assert doc["camera_model"] == "OPENCV"
    readme = (dest / "README.txt").read_text()
    assert "cx = cx_opencv + 0.5" in readme and "c2w_opencv @ diag(1, -1, -1, 1)" in readme
    frames = doc["frames"]
    assert len(frames) == summary["images"] == len(perf.image_camera_ids) * 3
    by_key = {(f"{e['camera_id']:02d}", e["frame_index"]): e for e in frames}
    assert {e["time"] for e in frames} == {0.0, 0.5, 1.0}
    for e in frames:
        img, msk = dest / e["file_path"], dest / e["mask_path"]
        assert img.is_file() and msk.is_file()
        assert _image_size(img) == (e["w"], e["h"]) and _image_size(msk) == (e["w"], e["h"])
        if k == 1:  # referenced where they lie: the extracted file itself
            cam, f = f"{e['camera_id']:02d}", e["frame_index"]
            assert img.resolve() == perf.image_path(cam, f).resolve()
        else:
            assert e["file_path"].startswith("images_2/")
    checked = 0
    for cam, f, kp2, kp3 in _kp_pairs(perf):
        e = by_key[(cam, f)]
        c2w = np.asarray(e["transform_matrix"]) @ np.diag([1.0, -1.0, -1.0, 1.0])  # back to OpenCV
        w2c = np.linalg.inv(c2w)
        K = np.array([[e["fl_x"], 0, e["cx"]], [0, e["fl_y"], e["cy"]], [0, 0, 1]])
        dist = np.array([e["k1"], e["k2"], e["p1"], e["p2"], e["k3"]])
        rvec = cv2.Rodrigues(w2c[:3, :3])[0]
        uv = cv2.projectPoints(kp3.astype(np.float64), rvec, w2c[:3, 3], K, dist)[0][:, 0]
        err = np.abs(uv - (kp2 + 0.5) / k)
        assert err.max() < 0.01, (cam, f, err.max())
        # and the plain OpenCV convention (no half-pixel shift) is measurably wrong
        assert np.abs(uv - kp2 / k).max() > 0.2
        checked += 1
    assert checked >= 2


def test_nerfstudio_downscaled_pixels_match_area_resize(extracted, tmp_path) -> None:
    import cv2

    _smc, perf_dir = extracted
    dest = tmp_path / "ns4"
    args = ["export", "nerfstudio", str(perf_dir), "--frames", "1", "--downscale", "4", "-q"]
    assert main([*args, "--masks", "-o", str(dest), "--workers", "2"]) == 0
    perf = _perf(perf_dir)
    doc = json.loads((dest / "transforms.json").read_text())
    assert len(doc["frames"]) == len(perf.image_camera_ids)
    for e, cam in zip(doc["frames"], perf.image_camera_ids, strict=True):
        assert "camera_id" not in e  # one time step: a static scene
        full = perf.cameras[cam]
        assert (e["w"], e["h"]) == (full.width // 4, full.height // 4)
        assert e["fl_x"] == full.K[0, 0] / 4 and e["cx"] == (full.K[0, 2] + 0.5) / 4
        small = cv2.imread(str(dest / e["file_path"]))
        ref = cv2.resize(
            cv2.imread(str(perf.image_path(cam, 1)))[: e["h"] * 4, : e["w"] * 4],
            (e["w"], e["h"]),
            interpolation=cv2.INTER_AREA,
        )
        assert np.abs(small.astype(int) - ref.astype(int)).mean() < 3
        m = cv2.imread(str(dest / e["mask_path"]), cv2.IMREAD_UNCHANGED)
        mref = cv2.resize(
            perf.mask(cam, 1)[: e["h"] * 4, : e["w"] * 4],
            (e["w"], e["h"]),
            interpolation=cv2.INTER_AREA,
        )
        np.testing.assert_array_equal(m, np.where(mref >= 128, 255, 0))  # binary at half


@pytest.mark.parametrize("k", [1, 2])
def test_colmap_round_trips_through_pycolmap(extracted, tmp_path, k) -> None:
    """Poses and intrinsics read back equal; pycolmap's own projection of every 3D point lands
    on its observation, which is the dataset's 2D keypoint + 0.5 (then / k)."""
    _smc, perf_dir = extracted
    dest = tmp_path / "colmap"
    args = ["export", "colmap", str(perf_dir), "--frame", "0", "--masks", "--text", "-q"]
    assert main([*args, "--downscale", str(k), "-o", str(dest)]) == 0
    perf = _perf(perf_dir)
    rec = pycolmap.Reconstruction(str(dest / "sparse" / "0"))
    assert "FULL_OPENCV" in (dest / "README.txt").read_text()
    assert (dest / "sparse" / "0" / "images.txt").is_file()
    cams = perf.image_camera_ids
    assert rec.num_images() == rec.num_cameras() == len(cams)
    for im in rec.images.values():
        cam_id = im.name.removeprefix("cam_").removesuffix(".jpg")
        cam = perf.cameras[cam_id]
        np.testing.assert_allclose(_cam_from_world(im), cam.w2c[:3], atol=1e-9)
        c = rec.cameras[im.camera_id]
        assert (c.width, c.height) == (cam.width // k, cam.height // k)
        assert c.model.name == ("OPENCV" if np.any(cam.D) else "PINHOLE")
        np.testing.assert_allclose(
            c.params[:4],
            [cam.K[0, 0] / k, cam.K[1, 1] / k, (cam.K[0, 2] + 0.5) / k, (cam.K[1, 2] + 0.5) / k],
        )
        img = dest / "images" / im.name
        assert _image_size(img) == (c.width, c.height)
        assert _image_size(dest / "masks" / f"{im.name}.png") == (c.width, c.height)
        if k == 1:  # a hard link to the extracted file (same filesystem)
            assert os.path.samefile(img, perf.image_path(cam_id, 0))
    by_name = {im.name: im for im in rec.images.values()}
    pairs = [p for p in _kp_pairs(perf) if p[1] == 0]
    assert pairs and rec.num_points3D() == 73
    for cam, _f, kp2, kp3 in pairs:
        im = by_name[f"cam_{cam}.jpg"]
        c = rec.cameras[im.camera_id]
        for i in range(73):
            p = rec.points3D[i + 1]
            np.testing.assert_allclose(p.xyz, kp3[i], atol=1e-6)
            obs = [el for el in p.track.elements if el.image_id == im.image_id]
            assert len(obs) == 1
            xy = im.points2D[obs[0].point2D_idx].xy
            np.testing.assert_allclose(xy, (kp2[i] + 0.5) / k, atol=1e-9)
            xc = _cam_from_world(im) @ np.append(p.xyz, 1.0)
            assert np.abs(c.img_from_cam(xc[None])[0] - xy).max() < 0.01
            assert 0 <= p.error < 0.01
    # colours sampled from the images: not the grey placeholder, and like the image there
    import cv2

    cam, _f, kp2, _kp3 = pairs[0]
    img = cv2.imread(str(perf.image_path(cam, 0)))
    for i in (0, 36, 72):
        x, y = np.round(kp2[i]).astype(int)
        patch = img[max(y - 6, 0) : y + 7, max(x - 6, 0) : x + 7].reshape(-1, 3)[:, ::-1]
        lo, hi = patch.min(axis=0).astype(int) - 12, patch.max(axis=0).astype(int) + 12
        colour = np.array(rec.points3D[i + 1].color, dtype=int)
        assert np.all(colour >= lo) and np.all(colour <= hi), (colour, lo, hi)


def test_smc_root_matches_extracted_folder(extracted, tmp_path, monkeypatch) -> None:
    smc, perf_dir = extracted
    monkeypatch.chdir(tmp_path)
    args = ["export", "nerfstudio", str(smc), "--subject", "0026", "--performance", "e0"]
    assert main([*args, "--frames", "0:2", "-q"]) == 0
    dest = tmp_path / "renderme360_exports" / "0026_e0" / "nerfstudio_000000-000002"
    from_smc = json.loads((dest / "transforms.json").read_text())["frames"]
    assert main(["export", "nerfstudio", str(perf_dir), "--frames", "0:2", "-q"]) == 0
    folder_dest = perf_dir / "exports" / "nerfstudio_000000-000002"
    from_folder = json.loads((folder_dest / "transforms.json").read_text())["frames"]
    assert len(from_smc) == len(from_folder) > 0
    for a, b in zip(from_smc, from_folder, strict=True):
        assert a["file_path"].startswith("images/") and b["file_path"].startswith("../")
        assert (dest / a["file_path"]).read_bytes() == (folder_dest / b["file_path"]).read_bytes()
        strip = ("file_path",)
        assert {k: v for k, v in a.items() if k not in strip} == {
            k: v for k, v in b.items() if k not in strip
        }
    # COLMAP from SMC at downscale 2 (bytes read from the file, reduced in workers)
    args = ["export", "colmap", str(smc), "--subject", "0026", "--performance", "e0", "-q"]
    assert main([*args, "--frame", "0", "--downscale", "2", "-o", "c2", "--workers", "2"]) == 0
    rec = pycolmap.Reconstruction(str(tmp_path / "c2" / "sparse" / "0"))
    assert rec.num_images() == 8 and rec.num_points3D() == 73
    for im in rec.images.values():
        assert _image_size(tmp_path / "c2" / "images" / im.name) == (60, 48)


def _tree(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1
        for p in sorted(root.rglob("*"))
    }


def test_rerun_is_safe_and_narrower_rerun_removes_stale(extracted, tmp_path) -> None:
    _smc, perf_dir = extracted
    dest = tmp_path / "c"
    base = ["export", "colmap", str(perf_dir), "--frame", "2", "-o", str(dest), "-q"]
    before = _tree(perf_dir.parent)
    assert main([*base, "--downscale", "2"]) == 0
    first = _tree(dest)
    model = (dest / "sparse/0/images.bin").read_bytes()
    assert main([*base, "--downscale", "2", "--json"]) == 0
    assert _tree(dest) == first and (dest / "sparse/0/images.bin").read_bytes() == model
    rec = json.loads((dest / "export.json").read_text())
    assert sum(1 for f in rec["files"] if f.startswith("images/")) == 8
    assert main([*base, "--downscale", "2", "--cameras", "22,25"]) == 0
    assert sorted(p.name for p in (dest / "images").iterdir()) == ["cam_22.jpg", "cam_25.jpg"]
    assert not list(dest.rglob("*.tmp"))
    assert _tree(perf_dir.parent) == before  # the extracted folder is untouched


def test_rerun_reuses_reduced_images(extracted, tmp_path, capsys) -> None:
    _smc, perf_dir = extracted
    base = ["export", "nerfstudio", str(perf_dir), "--frames", "0", "--downscale", "2"]
    base += ["-o", str(tmp_path / "n"), "--json"]
    assert main(base) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["reduced"] == 8 and first["reused"] == 0
    assert second["reduced"] == 0 and second["reused"] == 8
    # a file replaced behind the record's back (an interrupted run at another factor, an edit)
    # is not trusted: it is written again
    victim = tmp_path / "n" / "images_2" / "cam_22" / "frame_000000.jpg"
    good = victim.read_bytes()
    victim.write_bytes(b"not the reduced image")
    assert main(base) == 0
    third = json.loads(capsys.readouterr().out)
    assert third["reduced"] == 1 and third["reused"] == 7 and victim.read_bytes() == good


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nerfstudio", "{perf}", "--frames", "50:60"], "no images in frames 50:60"),
        (["colmap", "{perf}", "--frame", "7"], "no image for frame 7"),
        (["colmap", "{perf}", "--frame", "0", "--cameras", "45"], "no images for camera 45"),
        (["nerfstudio", "{perf}", "--cameras", "7x"], "invalid camera selection"),
        (["nerfstudio", "{missing}"], "no such file"),
        (["colmap", "{perf}", "--frame", "0", "--downscale", "3"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_error(extracted, tmp_path, capsys, argv, message) -> None:
    _smc, perf_dir = extracted
    argv = [a.format(perf=perf_dir, missing=tmp_path / "nope") for a in argv]
    dest = tmp_path / "dest"
    with pytest.raises(SystemExit) if "--downscale" in argv else _nullcontext():
        code = main(["export", *argv, "-o", str(dest)])
        assert code != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) <= 1 or "usage:" in err
    assert not dest.exists()


def _nullcontext():
    return contextlib.nullcontext()


def test_refuses_to_write_through_a_symlink(extracted, tmp_path, capsys) -> None:
    _smc, perf_dir = extracted
    dest, outside = tmp_path / "d", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "images").symlink_to(outside, target_is_directory=True)
    code = main(["export", "colmap", str(perf_dir), "--frame", "0", "-o", str(dest)])
    assert code != 0 and "symlink" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_corrupt_image_fails_in_a_worker_with_one_line(extracted, tmp_path, capsys) -> None:
    """A worker's failure reaches the user as one line naming the file; no partial file left."""
    import shutil

    _smc, perf_dir = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf_dir, copy, ignore=shutil.ignore_patterns("exports"))
    bad = copy / "from_raw" / "images" / "cam_25" / "frame_000001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    dest = tmp_path / "d"
    argv = ["export", "nerfstudio", str(copy), "--downscale", "2", "--workers", "2"]
    code = main([*argv, "-o", str(dest)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "frame_000001.jpg" in err and len(err.splitlines()) == 1
    assert not list(dest.rglob("*.tmp")) and not (dest / "transforms.json").exists()


def test_stale_removal_never_leaves_the_export(extracted, tmp_path) -> None:
    """export.json is read back on a re-run; entries pointing outside DEST are ignored."""
    _smc, perf_dir = extracted
    dest, victim = tmp_path / "d", tmp_path / "victim.txt"
    victim.write_text("keep me")
    dest.mkdir()
    files = {"../victim.txt": {}, str(victim): {}, "sub/../../victim.txt": {}}
    (dest / "export.json").write_text(json.dumps({"files": files}))
    assert main(["export", "colmap", str(perf_dir), "--frame", "0", "-o", str(dest), "-q"]) == 0
    assert victim.read_text() == "keep me"
    assert "../victim.txt" not in json.loads((dest / "export.json").read_text())["files"]


def test_masks_must_cover_every_image(extracted, tmp_path, capsys) -> None:
    """nerfstudio needs mask_path on every frame or none: a missing mask is an error up front."""
    import shutil

    _smc, perf_dir = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf_dir, copy, ignore=shutil.ignore_patterns("exports"))
    (copy / "from_anno" / "masks" / "cam_28" / "frame_000002.png").unlink()
    dest = tmp_path / "d"
    code = main(["export", "nerfstudio", str(copy), "--masks", "-o", str(dest)])
    err = capsys.readouterr().err
    assert code != 0 and "camera 28 frame 2" in err and "have no mask" in err
    assert not dest.exists()
    assert main(["export", "nerfstudio", str(copy), "--frames", "0:2", "--masks", "-q"]) == 0


def test_colmap_copies_when_hard_links_are_impossible(extracted, tmp_path, monkeypatch) -> None:
    """Across filesystems os.link fails with EXDEV: the image is copied, byte-identical."""
    import errno

    _smc, perf_dir = extracted

    def no_link(src, dst, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    dest = tmp_path / "c"
    assert main(["export", "colmap", str(perf_dir), "--frame", "0", "-o", str(dest), "-q"]) == 0
    perf = _perf(perf_dir)
    for cam in perf.image_camera_ids:
        img = dest / "images" / f"cam_{cam}.jpg"
        assert not os.path.samefile(img, perf.image_path(cam, 0))
        assert img.read_bytes() == perf.image_bytes(cam, 0)


def test_camera_rules_choose_from_calibration(extracted, tmp_path, capsys) -> None:
    """--cameras ring:N / front:N pick cameras from the calibration, as extract does."""
    _smc, perf_dir = extracted
    argv = ["export", "nerfstudio", str(perf_dir), "--frames", "0", "--json"]
    assert main([*argv, "--cameras", "ring:3", "-o", str(tmp_path / "r")]) == 0
    ring = json.loads(capsys.readouterr().out)
    assert len(ring["cameras"]) == 3 and any("ring:3" in n for n in ring["notes"])
    assert main([*argv, "--cameras", "front:2", "-o", str(tmp_path / "f")]) == 0
    front = json.loads(capsys.readouterr().out)
    assert len(front["cameras"]) == 2 and set(front["cameras"]) <= {"22", "25", "28", "29"}
    doc = json.loads((tmp_path / "f" / "transforms.json").read_text())
    assert len(doc["frames"]) == 2


def test_export_workers_zero_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "nerfstudio", "anywhere", "--workers", "0"])
    assert exc.value.code == 2
    assert "--workers: must be at least 1, got 0" in capsys.readouterr().err


def _contents(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_failed_export_leaves_dest_as_it_was(extracted, tmp_path, capsys) -> None:
    """A failure mid-way (a corrupt image among the reduced ones) leaves DEST byte for byte as
    the previous complete export left it, and no folder at all where there was none; once the
    image is repaired the re-run still reuses the earlier reduced images."""
    import shutil

    _smc, perf_dir = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf_dir, copy, ignore=shutil.ignore_patterns("exports"))
    dest = tmp_path / "d"
    base = ["export", "nerfstudio", str(copy), "--downscale", "2", "--workers", "1", "--json"]
    assert main([*base, "--frames", "0", "-o", str(dest)]) == 0
    before = _contents(dest)
    bad = copy / "from_raw" / "images" / "cam_25" / "frame_000001.jpg"
    good = bad.read_bytes()
    bad.write_bytes(good[:300])  # cameras 20..24 of frame 1 are reduced before it fails
    capsys.readouterr()
    assert main([*base, "-o", str(dest)]) == 1
    assert _contents(dest) == before
    fresh = tmp_path / "new" / "deeper"
    assert main([*base, "-o", str(fresh)]) == 1
    assert not (tmp_path / "new").exists()
    bad.write_bytes(good)
    capsys.readouterr()
    assert main([*base, "-o", str(dest)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] == 8 and again["reduced"] == 16


def test_failed_colmap_from_smc_writes_nothing(extracted, tmp_path, capsys) -> None:
    """An SMC file (written with h5py) whose one image holds no image bytes fails the export
    while images are placed: no image of the cameras before it stays behind in DEST."""
    import shutil

    import h5py

    smc, _perf_dir = extracted
    data = tmp_path / "smc"
    shutil.copytree(smc, data)
    raw = next(data.rglob("*_raw.smc"))
    with h5py.File(raw, "r+") as f:
        cams = sorted(f["Camera"])
        victim = cams[len(cams) // 2]
        del f[f"Camera/{victim}/color/0"]
        f[f"Camera/{victim}/color"]["0"] = np.frombuffer(b"no image here" * 20, np.uint8)
    dest = tmp_path / "exp"
    argv = ["export", "colmap", str(data), "--subject", "0026", "--performance", "e0"]
    code = main([*argv, "--frame", "0", "-o", str(dest)])
    err = capsys.readouterr().err
    assert code == 1 and "neither JPEG nor PNG" in err, err
    assert not dest.exists()


def test_range_past_the_take_is_noted_and_names_the_folder(extracted, capsys) -> None:
    """--frames 0:99 of a 3-frame take: exported, with a note, into a folder named by the
    frames actually exported."""
    _smc, perf_dir = extracted
    argv = ["export", "nerfstudio", str(perf_dir), "--frames", "0:99", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["frames"] == [0, 1, 2]
    assert Path(doc["dest"]) == perf_dir / "exports" / "nerfstudio_000000-000003"
    assert any("select 3 of the 99 frames named" in n for n in doc["notes"]), doc["notes"]
    assert main([*argv[:4], "0:99:10", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["frames"] == [0] and doc["dest"].endswith("nerfstudio_000000")


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["nerfstudio", "{perf}", "--frames", "99"], "frames with images: 0, 1, 2"),
        (["nerfstudio", "{perf}", "--cameras", "99"], "cameras with images: 00, 15, 22"),
        (["colmap", "{perf}", "--frame", "99"], "frames with images: 0, 1, 2"),
        (["colmap", "{perf}", "--frame", "0", "--cameras", "99"], "cameras with images: 00, 15"),
    ],
)
def test_selection_matching_nothing_exits_6(extracted, tmp_path, capsys, argv, names) -> None:
    """As extract: a selection that matches nothing is exit code 6, naming what exists."""
    _smc, perf_dir = extracted
    argv = [a.format(perf=perf_dir) for a in argv]
    assert main(["export", *argv, "-o", str(tmp_path / "d")]) == 6
    err = capsys.readouterr().err
    assert names in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


def test_camera_selection_gets_its_own_default_folder(extracted, tmp_path, capsys) -> None:
    """--frames 0 and --frames 0 --cameras ring:2 (or ids) do not share (and prune) a folder."""
    import shutil

    _smc, perf_dir = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf_dir, copy, ignore=shutil.ignore_patterns("exports"))
    argv = ["export", "colmap", str(copy), "--frame", "0", "--json"]
    dests = []
    for extra in ([], ["--cameras", "ring:2"], ["--cameras", "22,25,28-29"]):
        assert main([*argv, *extra]) == 0
        dests.append(Path(json.loads(capsys.readouterr().out)["dest"]))
    assert [d.name for d in dests] == [
        "colmap_000000",
        "colmap_000000_ring2",
        "colmap_000000_cam22+25+28-29",
    ]
    assert len(list((dests[0] / "images").iterdir())) == 8  # not pruned by the later runs
    assert len(list((dests[1] / "images").iterdir())) == 2


def test_empty_output_name_is_a_usage_error(extracted, tmp_path, capsys, monkeypatch) -> None:
    _smc, perf_dir = extracted
    monkeypatch.chdir(tmp_path)
    assert main(["export", "colmap", str(perf_dir), "--frame", "0", "-o", ""]) == 2
    assert "empty name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_json_errors_are_json_on_stdout(extracted, tmp_path, capsys) -> None:
    """With --json a failure prints {"error", "exit_code"} on stdout (and the line on stderr)."""
    _smc, perf_dir = extracted
    argv = ["export", "nerfstudio", str(perf_dir), "--frames", "99", "--json"]
    assert main([*argv, "-o", str(tmp_path / "d")]) == 6
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exit_code"] == 6 and "no images in frames 99" in doc["error"]
    assert doc["error"] in err
    assert main(["check", str(tmp_path / "nope"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["exit_code"] == 2


def test_cli_names_flags_where_python_names_keywords(extracted, capsys) -> None:
    """A root holding several performances: the CLI says --subject/--performance, Python
    keeps subject=/performance=."""
    import renderme360 as rm
    from renderme360.errors import UsageError

    _smc, perf_dir = extracted
    assert main(["export", "colmap", str(perf_dir.parent), "--frame", "0"]) == 2
    err = capsys.readouterr().err
    assert "pass --subject and --performance" in err and "subject=" not in err
    with pytest.raises(UsageError, match="pass subject= and performance="):
        rm.load(perf_dir.parent)


def test_images_txt_header_states_colmaps_mean_observations(extracted, tmp_path) -> None:
    """The header's "mean observations per image" counts 2D points with a 3D point, as COLMAP
    (and pycolmap) compute it, not every 2D point."""
    import re

    _smc, perf_dir = extracted
    dest = tmp_path / "c"
    assert main(["export", "colmap", str(perf_dir), "--frame", "0", "--text", "-o", str(dest)]) == 0
    rec = pycolmap.Reconstruction(str(dest / "sparse" / "0"))
    head = (dest / "sparse" / "0" / "images.txt").read_text().splitlines()[3]
    stated = float(re.search(r"mean observations per image: ([0-9.]+)", head).group(1))
    total_2d = sum(len(im.points2D) for im in rec.images.values())
    assert rec.compute_num_observations() < total_2d  # 2D points without a 3D point exist
    assert stated == pytest.approx(rec.compute_mean_observations_per_reg_image(), abs=1e-9)


def test_inverted_pose_gets_a_note(extracted, tmp_path, capsys) -> None:
    """A camera whose RT is stored inverted sees the 3D keypoints behind it: the export says so
    for that camera (and only that one)."""
    import shutil

    _smc, perf_dir = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf_dir, copy, ignore=shutil.ignore_patterns("exports"))
    npz = copy / "from_anno" / "calibration" / "all_cameras.npz"
    z = dict(np.load(npz))
    i = list(z["camera_ids"]).index("25")
    z["RT"][i] = np.linalg.inv(z["RT"][i])
    np.savez(npz, **z)
    for argv in (["colmap", "--frame", "0"], ["nerfstudio", "--frames", "0:2"]):
        fmt, *rest = argv
        code = main(["export", fmt, str(copy), *rest, "-o", str(tmp_path / fmt), "--json"])
        assert code == 0
        notes = json.loads(capsys.readouterr().out)["notes"]
        flagged = [n for n in notes if "pose looks inverted" in n]
        assert len(flagged) == 1 and flagged[0].startswith("camera 25:"), notes


def test_readme_states_floor_crop_against_loaders_ceil(extracted, tmp_path) -> None:
    """Exports floor reduced sizes; the loader keeps libjpeg's ceil: README.txt says both."""
    _smc, perf_dir = extracted
    dest = tmp_path / "n"
    assert main(["export", "nerfstudio", str(perf_dir), "--frames", "0", "-o", str(dest)]) == 0
    text = " ".join((dest / "README.txt").read_text().split())
    assert "floor(w / k), floor(h / k)" in text
    assert "perf.image(scale=k) and Camera.scaled(k) keep libjpeg's rounded-up size" in text
    assert reduced_size(81, 65, 2) == (40, 32)  # the loader: 41 x 33 for the same image


def test_sigterm_stops_an_export_cleanly_and_leaves_no_process(tmp_path: Path) -> None:
    """SIGTERM (SLURM, systemd, kill) during --downscale: workers stopped, exit 143, DEST left
    as it was before the run (here: absent), no process of the run alive seconds later."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import session_processes

    from renderme360.synth import synthesize

    synthesize(tmp_path / "d", performances=["e0"], release=500, cameras=60, frames=100)
    dest = tmp_path / "dest"
    argv = ["export", "nerfstudio", str(tmp_path / "d"), "--subject", "0026"]
    argv += ["--performance", "e0", "--downscale", "2", "--workers", "2", "-o", str(dest)]
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a leftover worker cannot block reading it
    with open(log, "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "renderme360", *argv],
            start_new_session=True,  # its own session: every process it starts can be found
            stderr=err_file,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            dest.is_dir() and any(p.is_file() and p.name != ".lock" for p in dest.rglob("*"))
        ):
            time.sleep(0.01)  # workers are writing reduced images
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        for _ in range(50):  # workers, forkserver and resource tracker gone within seconds
            alive = session_processes(proc.pid)
            if not alive:
                break
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever a failure left behind
    err = log.read_text()
    assert code == 143, err
    assert "Traceback" not in err and "interrupted" in err, err
    assert not alive, alive
    assert not dest.exists() or not any(dest.rglob("*")), sorted(dest.rglob("*"))[:5]


def test_a_camera_without_images_is_left_out_with_a_note(extracted, tmp_path, capsys) -> None:
    """As extract: --cameras 22,99 exports camera 22 and says 99 has no images (exit 6 only
    when nothing of the selection exists)."""
    _smc, perf_dir = extracted
    argv = ["export", "nerfstudio", str(perf_dir), "--cameras", "22,99", "--json"]
    assert main([*argv, "-o", str(tmp_path / "d")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cameras"] == ["22"]
    assert any("no images for camera 99" in n and "left out" in n for n in doc["notes"])
    frames = json.loads((tmp_path / "d" / "transforms.json").read_text())["frames"]
    assert {f["camera_id"] for f in frames} == {22} and len(frames) == 3

"""Tests of visualization/ previews drawn from an extracted performance folder."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from renderme360.formats.image import declared_size as _image_size
from renderme360.output.outdir import OutputDir
from renderme360.preview import _common_frame, _find_inputs, make_previews

W, H = 240, 200
CAMS = ["00", "01", "02", "03", "04"]
FRAMES = [0, 1, 2]
CENTER, AXES = (120, 110), (60, 45)
COLOURS = {"00": (255, 0, 0), "01": (160, 60, 200), "02": (255, 255, 0), "03": (200, 200, 200)}
COLOURS["04"] = (128, 0, 128)
# cam 01 has keypoints at frames 1 and 2, cam 03 at frame 2 only
KP_FRAMES = {"01": [1, 2], "03": [2]}
ALL_FOUR = {
    "visualization/cameras_frame_000001.jpg",
    "visualization/masks_overlay.jpg",
    "visualization/keypoints_overlay.jpg",
    "visualization/camera_rig.png",
}


def _image(cam: str, frame: int, w: int = W, h: int = H) -> np.ndarray:
    """A textured picture unique to camera and frame, with a coloured ellipse."""
    rng = np.random.default_rng(int(cam) * 100 + frame)
    ramp = np.linspace(40, 160, w, dtype=np.float64)[None, :].repeat(h, 0)
    base = ramp + rng.normal(0, 25, (h // 8 + 1, w // 8 + 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
    img = np.clip(base, 0, 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    sx, sy = w / W, h / H
    center = (round(CENTER[0] * sx), round(CENTER[1] * sy))
    axes = (round(AXES[0] * sx), round(AXES[1] * sy))
    cv2.ellipse(img, center, axes, 0, 0, 360, COLOURS[cam], -1)
    return img


def _mask(w: int = W, h: int = H) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, CENTER, AXES, 0, 0, 360, 255, -1)
    return m


def _keypoints(n: int = 106) -> np.ndarray:
    """Keypoints on a grid inside the ellipse, away from the label."""
    xs = np.linspace(80, 160, 14)
    ys = np.linspace(95, 125, 8)
    grid = np.array([(x, y) for y in ys for x in xs])[:n]
    return grid.astype(np.float32)


def _rig(n: int) -> np.ndarray:
    """RT (camera to world) of n cameras on a ring of radius 2 looking at the origin."""
    rts = []
    for i in range(n):
        t = 2 * np.pi * i / n
        c = np.array([2 * np.cos(t), 0.0, 2 * np.sin(t)])
        z = -c / np.linalg.norm(c)
        y = np.array([0.0, 1.0, 0.0])
        x = np.cross(y, z)
        rt = np.eye(4)
        rt[:3, 0], rt[:3, 1], rt[:3, 2], rt[:3, 3] = x, y, z, c
        rts.append(rt)
    return np.stack(rts)


def _write(root: Path, rel: str, files: list[str]) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    files.append(rel)
    return p


def build(
    root: Path,
    images: bool = True,
    masks: bool = True,
    keypoints: bool = True,
    calibration: bool = True,
) -> list[str]:
    """A fake performance in the separate layout: images from raw, the rest from anno."""
    files: list[str] = []
    for cam in CAMS:
        for f in FRAMES:
            if cam == "04" and f == 0:
                continue  # frame 0 has 4 cameras, frames 1 and 2 have 5: frame 1 is chosen
            if images:
                p = _write(root, f"from_raw/images/cam_{cam}/frame_{f:06d}.jpg", files)
                cv2.imwrite(str(p), _image(cam, f), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if masks and cam != "04":
                p = _write(root, f"from_anno/masks/cam_{cam}/frame_{f:06d}.png", files)
                cv2.imwrite(str(p), _mask())
    if keypoints:
        for cam, frames in KP_FRAMES.items():
            p = _write(root, f"from_anno/keypoints2d/cam_{cam}.npz", files)
            kps = np.stack([_keypoints() for _ in frames])
            np.savez(p, frame_ids=np.array(frames, np.int64), keypoints=kps)
    if calibration:
        p = _write(root, "from_anno/calibration/all_cameras.npz", files)
        n = len(CAMS) + 2  # two cameras without images
        np.savez(
            p,
            camera_ids=np.array([f"{i:02d}" for i in range(n)]),
            K=np.repeat(np.eye(3)[None], n, 0),
            D=np.zeros((n, 5)),
            RT=_rig(n),
        )
    return sorted(files)


def _read(root: Path, rel: str) -> np.ndarray:
    img = cv2.imread(str(root / rel), cv2.IMREAD_UNCHANGED)
    assert img is not None, rel
    return img


def _locate(sheet: np.ndarray, template: np.ndarray, mask: np.ndarray | None = None) -> tuple:
    """Top-left corner where ``template`` (ignoring ``mask`` == 0) best fits in ``sheet``."""
    if mask is None:
        mask = np.ones(template.shape[:2], np.uint8)
    mask3 = cv2.merge([mask, mask, mask])
    res = cv2.matchTemplate(sheet, template, cv2.TM_SQDIFF, mask=mask3)
    _, _, (x, y), _ = cv2.minMaxLoc(res)
    diff = np.abs(
        sheet[y : y + template.shape[0], x : x + template.shape[1]].astype(int) - template
    )
    assert diff[mask > 0].mean() < 8, "tile not found in the preview"
    return x, y


def _below_label(h: int, w: int) -> np.ndarray:
    m = np.ones((h, w), np.uint8)
    m[:32] = 0  # where the camera label is
    return m


def test_all_four_previews(tmp_path: Path) -> None:
    files = build(tmp_path)
    written = make_previews(OutputDir(tmp_path), files)

    assert {w.path for w in written} == ALL_FOUR
    for w in written:
        data = (tmp_path / w.path).read_bytes()
        assert w.bytes == len(data)
        assert w.sha256 == hashlib.sha256(data).hexdigest()
    assert not list((tmp_path / "visualization").glob("*.part"))

    sheet = _read(tmp_path, "visualization/cameras_frame_000001.jpg")
    assert sheet.ndim == 3 and sheet.shape[0] >= 2 * H and sheet.shape[1] >= 2 * W
    assert sheet.shape[0] * sheet.shape[1] >= 5 * W * H
    for cam in CAMS:  # every camera's frame 1 is on the sheet
        _locate(sheet, _image(cam, 1), _below_label(H, W))

    rig = _read(tmp_path, "visualization/camera_rig.png")
    assert rig.shape[0] >= 400 and rig.shape[1] >= 600


def test_masks_overlay_tints_the_mask(tmp_path: Path) -> None:
    files = build(tmp_path, keypoints=False, calibration=False)
    written = make_previews(OutputDir(tmp_path), files)
    assert {w.path for w in written} == {
        "visualization/cameras_frame_000001.jpg",
        "visualization/masks_overlay.jpg",
    }
    overlay = _read(tmp_path, "visualization/masks_overlay.jpg").astype(int)
    mask = _mask()
    inside = cv2.erode(mask, np.ones((7, 7), np.uint8)) > 0
    outside = cv2.erode(255 - mask, np.ones((7, 7), np.uint8)) > 0
    outside[:32] = False
    for cam in ["00", "01", "02", "03"]:  # cam 04 has no mask
        plain = _image(cam, 1)
        x, y = _locate(overlay.astype(np.uint8), plain, outside.astype(np.uint8))
        tile = overlay[y : y + H, x : x + W]
        plain = plain.astype(int)
        # green rises inside the mask (red and blue fall), the rest is unchanged
        assert tile[inside][:, 1].mean() > plain[inside][:, 1].mean() + 25 or (
            plain[inside][:, 1].mean() > 180
        )
        assert tile[inside][:, 0].mean() < plain[inside][:, 0].mean() - 20 or (
            plain[inside][:, 0].mean() < 40
        )
        assert np.abs(tile[inside] - plain[inside]).mean() > 20
        assert np.abs(tile[outside] - plain[outside]).mean() < 6
        # the contour is drawn on the mask boundary
        ring = (cv2.dilate(mask, np.ones((3, 3), np.uint8)) - cv2.erode(mask, None)) > 0
        ring[:32] = False
        yellow = (tile[:, :, 1] > 170) & (tile[:, :, 2] > 170) & (tile[:, :, 0] < 120)
        assert yellow[ring].mean() > 0.5


def test_keypoints_overlay_draws_points(tmp_path: Path) -> None:
    files = build(tmp_path, masks=False, calibration=False)
    written = make_previews(OutputDir(tmp_path), files)
    assert {w.path for w in written} == {
        "visualization/cameras_frame_000001.jpg",
        "visualization/keypoints_overlay.jpg",
    }
    overlay = _read(tmp_path, "visualization/keypoints_overlay.jpg").astype(int)
    kp = _keypoints()
    away = np.ones((H, W), np.uint8)
    away[:32] = 0
    for x0, y0 in kp:
        cv2.circle(away, (round(x0), round(y0)), 6, 0, -1)
    # cam 01 is drawn at the common frame 1, cam 03 at its only keypoint frame 2
    for cam, frame in (("01", 1), ("03", 2)):
        plain = _image(cam, frame)
        x, y = _locate(overlay.astype(np.uint8), plain, away)
        tile = overlay[y : y + H, x : x + W]
        for px, py in np.round(kp).astype(int):
            b, g, r = tile[py, px]
            assert r > 150 and r - g > 80 and r - b > 80, (cam, px, py, (b, g, r))
            pb, pg, pr = plain[py, px].astype(int)
            assert not (pr > 150 and pr - pg > 80 and pr - pb > 80)


def test_big_image_reduced_decode_and_scaled_keypoints(tmp_path: Path) -> None:
    files: list[str] = []
    bw, bh = 1224, 1020  # decoded at 1/2, then resized to 320 (sheet) and 480 (overlay) wide
    p = _write(tmp_path, "images/cam_07/frame_000005.jpg", files)
    big = _image("00", 5, bw, bh)
    cv2.imwrite(str(p), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    kp = np.array([[200.0, 300.0], [612.0, 510.0], [1000.0, 800.0]])
    kp = np.concatenate([kp, np.full((103, 2), np.nan)])
    p = _write(tmp_path, "keypoints2d/cam_07.npz", files)
    np.savez(p, frame_ids=np.array([5]), keypoints=kp[None])
    written = make_previews(OutputDir(tmp_path), files)
    assert {w.path for w in written} == {
        "visualization/cameras_frame_000005.jpg",
        "visualization/keypoints_overlay.jpg",
    }
    sheet = _read(tmp_path, "visualization/cameras_frame_000005.jpg")
    th = round(bh * 320 / bw)
    small = cv2.resize(big, (320, th), interpolation=cv2.INTER_AREA)
    _locate(sheet, small, _below_label(th, 320))
    # the overlays use wider tiles (480 px)
    overlay = _read(tmp_path, "visualization/keypoints_overlay.jpg").astype(int)
    oh = round(bh * 480 / bw)
    medium = cv2.resize(big, (480, oh), interpolation=cv2.INTER_AREA)
    away = _below_label(oh, 480)
    scale = 480 / bw
    for x0, y0 in kp[:3]:
        cv2.circle(away, (round(x0 * scale), round(y0 * scale)), 6, 0, -1)
    x, y = _locate(overlay.astype(np.uint8), medium, away)
    for x0, y0 in kp[:3]:
        b, g, r = overlay[y + round(y0 * scale), x + round(x0 * scale)]
        assert r > 150 and r - g > 80 and r - b > 80


def test_only_images_gives_only_contact_sheet(tmp_path: Path) -> None:
    files = build(tmp_path, masks=False, keypoints=False, calibration=False)
    written = make_previews(OutputDir(tmp_path), files)
    assert [w.path for w in written] == ["visualization/cameras_frame_000001.jpg"]
    assert sorted(p.name for p in (tmp_path / "visualization").iterdir()) == [
        "cameras_frame_000001.jpg"
    ]


def test_only_calibration_gives_only_rig(tmp_path: Path) -> None:
    files = build(tmp_path, images=False, masks=False, keypoints=False)
    written = make_previews(OutputDir(tmp_path), files)
    assert [w.path for w in written] == ["visualization/camera_rig.png"]
    assert cv2.imread(str(tmp_path / "visualization/camera_rig.png")) is not None


def test_nothing_applies(tmp_path: Path) -> None:
    files = build(tmp_path, images=False, keypoints=False, calibration=False)  # masks only
    assert make_previews(OutputDir(tmp_path), [*files, "metadata/info.json"]) == []
    assert not (tmp_path / "visualization").exists()
    assert make_previews(OutputDir(tmp_path / "empty"), []) == []


def test_corrupt_image_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = build(tmp_path, keypoints=False, calibration=False)
    bad = tmp_path / "from_raw/images/cam_02/frame_000001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg at all" * 3)
    (tmp_path / "from_raw/images/cam_03/frame_000001.jpg").write_bytes(b"")
    os.remove(tmp_path / "from_anno/masks/cam_00/frame_000001.png")  # listed but missing
    with caplog.at_level(logging.WARNING, logger="renderme360.preview"):
        written = make_previews(OutputDir(tmp_path), files)
    assert {w.path for w in written} == {
        "visualization/cameras_frame_000001.jpg",
        "visualization/masks_overlay.jpg",
    }
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert "cam_02/frame_000001.jpg" in skipped and "cam_03/frame_000001.jpg" in skipped
    assert "cam_00/frame_000001.png" in skipped
    sheet = _read(tmp_path, "visualization/cameras_frame_000001.jpg")
    for cam in ["00", "01", "04"]:
        _locate(sheet, _image(cam, 1), _below_label(H, W))
    # only cam 01 is left with image and mask at frame 1
    overlay = _read(tmp_path, "visualization/masks_overlay.jpg")
    assert overlay.shape[1] < 2 * W


def test_output_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    files = build(a)
    build(b)
    wa = make_previews(OutputDir(a), files)
    wb = make_previews(OutputDir(b), files)
    assert [(w.path, w.sha256) for w in wa] == [(w.path, w.sha256) for w in wb]


def test_max_cameras_limits_contact_sheet(tmp_path: Path) -> None:
    files = build(tmp_path, masks=False, keypoints=False, calibration=False)
    written = make_previews(OutputDir(tmp_path), files, max_cameras=1)
    sheet = _read(tmp_path, written[0].path)
    assert sheet.shape[1] < 2 * W and sheet.shape[0] < 2 * H
    with pytest.raises(ValueError):
        make_previews(OutputDir(tmp_path), files, max_cameras=0)


def test_inputs_pairing_and_frame_choice() -> None:
    files = [
        "from_anno/images/cam_00/frame_000003.jpg",
        "from_raw/images/cam_00/frame_000003.jpg",
        "images/cam_01/frame_000003.png",
        "from_raw/images/cam_01/frame_000004.jpg",
        "from_raw/images/cam_02/frame_000004.jpg",
        "from_raw/masks/cam_00/frame_000003.png",
        "from_anno/masks/cam_00/frame_000003.png",
        "from_anno/calibration/all_cameras.npz",
        "from_anno/calibration/cam_00.npz",
        "from_anno/keypoints2d/cam_01.npz",
        "visualization/cameras_frame_000003.jpg",
        "from_raw/images/cam_0/frame_000001.jpg",
    ]
    found = _find_inputs(files)
    assert found.images["00"] == {3: "from_raw/images/cam_00/frame_000003.jpg"}
    assert found.masks["00"] == {3: "from_anno/masks/cam_00/frame_000003.png"}
    assert set(found.images) == {"00", "01", "02"}
    assert found.calibration == "from_anno/calibration/all_cameras.npz"
    assert found.keypoints == {"01": "from_anno/keypoints2d/cam_01.npz"}
    assert _common_frame(found.images) == 3  # frames 3 and 4 both have 2 cameras
    assert _common_frame({}) is None


def test_image_size_from_header() -> None:
    img = np.zeros((37, 53, 3), np.uint8)
    for ext in (".jpg", ".png"):
        ok, buf = cv2.imencode(ext, img)
        assert ok and _image_size(buf.tobytes()) == (53, 37)
    assert _image_size(b"\xff\xd8garbage") is None
    assert _image_size(b"") is None


def test_import_does_not_load_cv2_or_matplotlib() -> None:
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, PYTHONPATH=str(src))
    code = (
        "import sys, renderme360.preview; "
        "assert 'cv2' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)

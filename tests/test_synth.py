"""Tests of the synthetic SMC generator: layout, quirks, geometry and determinism."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from renderme360.errors import UsageError
from renderme360.synth import (
    AUDIO_SAMPLE_RATE,
    HEAD_CENTER,
    KP3D_INDEX_IN_KP2D,
    RESOLUTIONS,
    SYNTH_MARK,
    make_rig,
    select_image_cameras,
    synthesize,
)

H, W = RESOLUTIONS["small"]
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT_PERFS = ("e0", "s1_all", "h0", "h1_2bk")
ROOT_ATTRS = {
    "actor_id",
    "performance_part",
    "capture_date",
    "age",
    "color",
    "gender",
    "height",
    "weight",
}


@pytest.fixture(scope="module")
def r21(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Default call: release 21, 4 performances, 4 image cameras, 3 frames."""
    out = tmp_path_factory.mktemp("r21")
    return out, synthesize(out)


@pytest.fixture(scope="module")
def r21_three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Release 21 with 3 image cameras (camera 00 holds no images) and 4 frames."""
    out = tmp_path_factory.mktemp("r21b")
    return out, synthesize(out, "0100", ("e3", "s2_all"), cameras=3, frames=4, seed=7)


@pytest.fixture(scope="module")
def r500(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("r500")
    perfs = ("e1", "s1_all", "s3_all", "h1_2bk")
    return out, synthesize(out, "0042", perfs, release=500, cameras=5, frames=2)


def _blob(dset: h5py.Dataset) -> bytes:
    assert dset.ndim == 1 and dset.dtype == np.uint8
    return dset[()].tobytes()


def _decode(dset: h5py.Dataset, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(_blob(dset), np.uint8), flags)
    assert image is not None
    return image


def _project(
    points: np.ndarray, k: np.ndarray, rt: np.ndarray, d: np.ndarray | None = None
) -> np.ndarray:
    """Reference projection independent of the package: OpenCV's projectPoints with inv(RT)."""
    w2c = np.linalg.inv(rt)
    rvec = cv2.Rodrigues(w2c[:3, :3])[0]
    dist = np.zeros(5) if d is None else d
    uv, _ = cv2.projectPoints(np.asarray(points, np.float64), rvec, w2c[:3, 3], k, dist)
    return uv.reshape(-1, 2)


def _text(value: object) -> str:
    return bytes(value).decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


# ----------------------------------------------------------------------------------- layout


def test_release_21_paths(r21: tuple[Path, list[Path]]) -> None:
    out, paths = r21
    expected = [out / "anno" / "0026" / f"0026_{p}_anno.smc" for p in DEFAULT_PERFS]
    expected += [out / "raw" / "0026" / f"0026_{p}_raw.smc" for p in DEFAULT_PERFS]
    assert paths == sorted(expected)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == paths  # no temp files left
    for path in paths:
        assert h5py.is_hdf5(path)


def test_release_500_paths(r500: tuple[Path, list[Path]]) -> None:
    out, paths = r500
    perfs = ("e1", "h1_2bk", "s1_all", "s3_all")
    assert paths == [out / "0042" / f"0042_{p}_raw.smc" for p in perfs]
    assert sorted(p for p in out.rglob("*") if p.is_file()) == paths


def test_root_attrs_and_bytes_quirk(
    r21: tuple[Path, list[Path]], r500: tuple[Path, list[Path]]
) -> None:
    metas = []
    for path in r21[1] + r500[1]:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
        assert set(attrs) == ROOT_ATTRS | {SYNTH_MARK}  # the mark lets synth replace its own
        perf = path.name.split("_", 1)[1].rsplit("_", 1)[0]
        is_anno = path.name.endswith("_anno.smc")
        is_500 = path.is_relative_to(r500[0])
        for name in ("actor_id", "performance_part", "capture_date", "color", "gender"):
            as_bytes = (is_anno and name in ("actor_id", "gender")) or (
                is_500 and name == "capture_date"
            )
            assert isinstance(attrs[name], np.bytes_ if as_bytes else str), (path, name)
        assert _text(attrs["actor_id"]) == path.name[:4]
        assert attrs["performance_part"] == perf
        date = _text(attrs["capture_date"])
        assert len(date) == 8 and date.startswith("2023") and date.isdigit()
        assert isinstance(attrs["age"], np.integer) and 18 <= attrs["age"] <= 60
        assert isinstance(attrs["height"], np.floating) and 1.5 < attrs["height"] < 2.0
        assert isinstance(attrs["weight"], np.floating) and 40 < attrs["weight"] < 100
        assert _text(attrs["gender"]) in ("female", "male")
        assert attrs["color"] in ("yellow", "white", "black", "brown")
        if path.name.startswith("0026"):
            metas.append({k: _text(v) for k, v in attrs.items() if k != "performance_part"})
    assert all(m == metas[0] for m in metas)  # one subject, one set of metadata


def test_camera_attrs(r21: tuple[Path, list[Path]], r500: tuple[Path, list[Path]]) -> None:
    for paths, frames in ((r21[1], 3), (r500[1], 2)):
        for path in paths:
            with h5py.File(path, "r") as f:
                attrs = f["Camera"].attrs
                assert attrs["num_device"] == 60
                assert attrs["num_frame"] == frames
                assert attrs["resolution"].tolist() == [H, W]
                assert np.issubdtype(attrs["resolution"].dtype, np.integer)


def test_release_21_image_cameras(r21: tuple[Path, list[Path]]) -> None:
    out, _ = r21
    cams = ["00", "22", "25", "28"]
    assert select_image_cameras(4) == cams
    for perf in DEFAULT_PERFS:
        with h5py.File(out / "raw" / "0026" / f"0026_{perf}_raw.smc", "r") as f:
            assert sorted(f) == ["Camera"]
            assert sorted(f["Camera"]) == cams
            for cam in cams:
                assert sorted(f["Camera"][cam]["color"]) == ["0", "1", "2"]
            expected_00 = ["audio", "color"] if perf.startswith("s") else ["color"]
            assert sorted(f["Camera/00"]) == expected_00
        with h5py.File(out / "anno" / "0026" / f"0026_{perf}_anno.smc", "r") as f:
            assert sorted(f["Camera"]) == cams
            for cam in cams:
                assert sorted(f["Camera"][cam]) == ["mask"]
                assert sorted(f["Camera"][cam]["mask"]) == ["0", "1", "2"]
            assert sorted(f["Calibration"]) == [f"{i:02d}" for i in range(60)]


def test_release_21_audio_only_camera_00(r21_three: tuple[Path, list[Path]]) -> None:
    out, _ = r21_three
    with h5py.File(out / "raw" / "0100" / "0100_s2_all_raw.smc", "r") as f:
        assert sorted(f["Camera"]) == ["00", "22", "25", "28"]
        assert sorted(f["Camera/00"]) == ["audio"]
    with h5py.File(out / "raw" / "0100" / "0100_e3_raw.smc", "r") as f:
        assert sorted(f["Camera"]) == ["22", "25", "28"]
    with h5py.File(out / "anno" / "0100" / "0100_s2_all_anno.smc", "r") as f:
        assert sorted(f["Camera"]) == ["22", "25", "28"]


def test_release_500_cameras_and_calibration(r500: tuple[Path, list[Path]]) -> None:
    out, _ = r500
    five = select_image_cameras(5)
    assert five == ["00", "22", "25", "28", "59"]
    expected = {
        "e1": (five, ["color"]),
        "h1_2bk": (five, ["color"]),
        "s1_all": (["00", "25"], ["audio"]),  # only camera 25 has images
        "s3_all": (five, ["audio", "color"]),
    }
    for perf, (cams, in_00) in expected.items():
        with h5py.File(out / "0042" / f"0042_{perf}_raw.smc", "r") as f:
            assert sorted(f) == ["Calibration", "Camera"]  # no masks, keypoints, FLAME
            assert sorted(f["Camera"]) == cams
            assert sorted(f["Camera/00"]) == in_00
            assert sorted(f["Calibration"]) == cams
            image_cams = [c for c in cams if "color" in f["Camera"][c]]
            assert image_cams == (["25"] if perf == "s1_all" else five)
            for cam in image_cams:
                assert sorted(f["Camera"][cam]["color"]) == ["0", "1"]
            rig = make_rig(60, 0, "small")
            for cam in cams:
                for name in ("K", "D", "RT"):
                    np.testing.assert_array_equal(f["Calibration"][cam][name][()], rig[cam][name])


@pytest.mark.parametrize("count", range(1, 61))
def test_select_image_cameras(count: int) -> None:
    cams = select_image_cameras(count)
    assert len(cams) == len(set(cams)) == count and cams == sorted(cams)
    assert "25" in cams
    frontal_others = [c for c in cams if 18 <= int(c) <= 32 and c != "25"]
    assert len(frontal_others) >= (2 if count >= 3 else 0)
    if count >= 5:  # the others spread over the whole ring
        assert cams[0] == "00" and cams[-1] == "59"


# ---------------------------------------------------------------------------- blobs


def test_color_images_are_real_jpegs(
    r21: tuple[Path, list[Path]], r500: tuple[Path, list[Path]]
) -> None:
    count = 0
    for path in [p for p in r21[1] if p.name.endswith("_raw.smc")] + r500[1]:
        with h5py.File(path, "r") as f:
            for cam in f["Camera"]:
                for frame, dset in f["Camera"][cam].get("color", {}).items():
                    assert _blob(dset).startswith(JPEG_MAGIC), (path, cam, frame)
                    image = _decode(dset, cv2.IMREAD_COLOR)
                    assert image.shape == (H, W, 3) and image.dtype == np.uint8
                    count += 1
    assert count == 4 * 4 * 3 + (3 * 5 + 1) * 2


def test_masks_match_images_and_one_is_three_channel(r21: tuple[Path, list[Path]]) -> None:
    out, _ = r21
    for perf in DEFAULT_PERFS:
        three = []
        anno = h5py.File(out / "anno" / "0026" / f"0026_{perf}_anno.smc", "r")
        raw = h5py.File(out / "raw" / "0026" / f"0026_{perf}_raw.smc", "r")
        with anno, raw:
            for cam in anno["Camera"]:
                for frame, dset in anno["Camera"][cam]["mask"].items():
                    assert _blob(dset).startswith(PNG_MAGIC)
                    mask = _decode(dset)
                    assert mask.dtype == np.uint8
                    if mask.ndim == 3:
                        three.append((cam, frame))
                        assert mask.shape == (H, W, 3)
                        assert (mask == mask[..., :1]).all()
                        mask = mask.max(axis=2)
                    assert mask.shape == (H, W)
                    assert set(np.unique(mask)) == {0, 255}
                    inside = mask > 0
                    assert 0.05 < inside.mean() < 0.5
                    image = _decode(raw["Camera"][cam]["color"][frame], cv2.IMREAD_COLOR)
                    head = image[inside].astype(float).mean(axis=0)
                    background = image[~inside].astype(float).mean(axis=0)
                    assert head[2] > head[1] > head[0]  # skin: red > green > blue (BGR)
                    assert np.abs(head - background).max() > 10
        assert three == ([("00", "1")] if perf.startswith("e") else [])


def test_head_is_where_the_camera_sees_it(r21: tuple[Path, list[Path]]) -> None:
    out, _ = r21
    rig = make_rig(60, 0, "small")
    with h5py.File(out / "anno" / "0026" / "0026_h0_anno.smc", "r") as f:
        for cam in f["Camera"]:
            mask = _decode(f["Camera"][cam]["mask"]["0"])
            ys, xs = np.nonzero(mask)
            expected = _project(HEAD_CENTER[None], rig[cam]["K"], rig[cam]["RT"])[0]
            assert np.hypot(xs.mean() - expected[0], ys.mean() - expected[1]) < 4.0


# -------------------------------------------------------------------------------- keypoints


@pytest.mark.parametrize("which", ["r21", "r21_three"])
def test_keypoints2d_are_projections_of_keypoints3d(
    which: str, request: pytest.FixtureRequest
) -> None:
    _, paths = request.getfixturevalue(which)
    checked = 0
    for path in [p for p in paths if p.name.endswith("_anno.smc")]:
        with h5py.File(path, "r") as f:
            image_cams = set(f["Camera"])
            kp3d = f["Keypoints3d"]
            for cam, group in f["Keypoints2d"].items():
                assert cam in image_cams and 18 <= int(cam) <= 32
                k = f["Calibration"][cam]["K"][()]
                d = f["Calibration"][cam]["D"][()]
                rt = f["Calibration"][cam]["RT"][()]
                assert np.abs(d).max() > 1e-3  # distortion is exercised
                for frame, dset in group.items():
                    kp2d = dset[()]
                    if kp2d.size == 0 or frame not in kp3d or kp3d[frame].size == 0:
                        continue
                    assert kp2d.shape == (106, 2)
                    assert kp3d[frame].shape == (73, 3)
                    assert ((kp2d >= 0) & (kp2d < [W, H])).all()
                    expected = _project(kp3d[frame][()], k, rt, d)
                    np.testing.assert_allclose(kp2d[KP3D_INDEX_IN_KP2D], expected, atol=1e-3)
                    # 2-D index 33 + i is 3-D index i; the 33 contour points are extra
                    assert KP3D_INDEX_IN_KP2D.tolist() == list(range(33, 106))
                    assert not np.allclose(kp2d[:73], expected, atol=1.0)
                    checked += 1
    assert checked >= 4


def test_keypoint_quirks(r21: tuple[Path, list[Path]], r21_three: tuple[Path, list[Path]]) -> None:
    # (file, frames, cameras with 2-D keypoints, missing frame, empty frame)
    cases = [
        (r21[0] / "anno" / "0026" / "0026_e0_anno.smc", 3, ["22", "25"], "1", "2"),
        (r21[0] / "anno" / "0026" / "0026_h1_2bk_anno.smc", 3, ["22", "25"], "1", "2"),
        (r21_three[0] / "anno" / "0100" / "0100_s2_all_anno.smc", 4, ["22", "25"], "2", "3"),
    ]
    for path, frames, kp_cams, missing, empty in cases:
        all_frames = {str(i) for i in range(frames)}
        with h5py.File(path, "r") as f:
            kp3d, kp2d = f["Keypoints3d"], f["Keypoints2d"]
            assert kp3d.attrs["num_frame"] == frames and kp2d.attrs["num_frame"] == frames
            assert set(kp3d) == all_frames - {missing}
            assert kp3d[empty].shape[0] == 0
            assert sorted(kp2d) == kp_cams  # 28 is an image camera in 18..32 but has none
            quirky, normal = kp2d[kp_cams[0]], kp2d[kp_cams[1]]
            assert set(quirky) == all_frames - {missing}
            assert quirky[empty].size == 0
            assert set(normal) == all_frames
            assert all(normal[fr].shape == (106, 2) for fr in normal)
            sizes = [kp3d[fr].shape for fr in kp3d if fr != empty]
            assert sizes == [(73, 3)] * (frames - 2)


# ------------------------------------------------------------------- expression extras


def test_flame_uv_scan(r21: tuple[Path, list[Path]]) -> None:
    out, _ = r21
    shapes = {
        "global_pose": (3,),
        "neck_pose": (3,),
        "jaw_pose": (3,),
        "left_eye_pose": (3,),
        "right_eye_pose": (3,),
        "trans": (3,),
        "shape": (100,),
        "exp": (50,),
        "verts": (5023, 3),
        "albedos": (3, 256, 256),
    }
    with h5py.File(out / "anno" / "0026" / "0026_e0_anno.smc", "r") as f:
        assert f["FLAME"].attrs["num_frame"] == 3
        assert sorted(f["FLAME"]) == ["0", "1", "2"]
        for frame in f["FLAME"].values():
            assert set(shapes) | {"cam", "lit", "tex"} == set(frame)
            for name, shape in shapes.items():
                assert frame[name].shape == shape and frame[name].dtype == np.float32
            assert np.isfinite(frame["verts"][()]).all()
        assert not np.array_equal(f["FLAME/0/exp"][()], f["FLAME/1/exp"][()])
        np.testing.assert_array_equal(f["FLAME/0/shape"][()], f["FLAME/2/shape"][()])

        assert sorted(f["UV_texture"]) == ["0", "1", "2"]
        for dset in f["UV_texture"].values():
            assert _blob(dset).startswith(JPEG_MAGIC)
            assert _decode(dset, cv2.IMREAD_COLOR).shape == (256, 256, 3)

        vertices = f["Scan/vertex"][()]
        faces = f["Scan/vertex_indices"][()]
        assert vertices.dtype == np.float64 and vertices.shape[1] == 3
        assert 400 <= len(vertices) <= 700
        assert faces.dtype == np.int32 and faces.shape[1] == 3
        assert faces.min() == 0 and faces.max() == len(vertices) - 1
        assert (faces[:, 0] != faces[:, 1]).all() and (faces[:, 1] != faces[:, 2]).all()
        # closed and consistently oriented: every directed edge once, its reverse once
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        directed = {tuple(e) for e in edges.tolist()}
        assert len(directed) == len(edges)
        assert all((b, a) in directed for a, b in directed)
        p0, p1, p2 = (vertices[faces[:, i]] - HEAD_CENTER for i in range(3))
        volume = np.einsum("ij,ij->", p0, np.cross(p1, p2)) / 6.0
        assert 0.002 < volume < 0.01  # outward normals, head-sized (~4.5 litres)
        assert np.linalg.norm(vertices.mean(axis=0) - HEAD_CENTER) < 0.02

        assert sorted(f["ScanMask"]) == ["00", "22", "25", "28"]
        for dset in f["ScanMask"].values():
            assert _blob(dset).startswith(PNG_MAGIC)
            assert _decode(dset).shape == (H, W)


def test_extras_only_in_expression_anno(r21: tuple[Path, list[Path]]) -> None:
    out, _ = r21
    base = ["Calibration", "Camera", "Keypoints2d", "Keypoints3d"]
    extras = ["FLAME", "Scan", "ScanMask", "UV_texture"]
    for perf in DEFAULT_PERFS:
        with h5py.File(out / "anno" / "0026" / f"0026_{perf}_anno.smc", "r") as f:
            assert sorted(f) == sorted(base + (extras if perf == "e0" else []))


# ------------------------------------------------------------------------------------ audio


def test_audio(r21: tuple[Path, list[Path]], r21_three: tuple[Path, list[Path]]) -> None:
    cases = [
        (r21[0] / "raw" / "0026" / "0026_s1_all_raw.smc", 4800),  # 3 frames -> at least 0.1 s
        (r21_three[0] / "raw" / "0100" / "0100_s2_all_raw.smc", 6400),  # 4 frames = 4/30 s
    ]
    for path, samples in cases:
        with h5py.File(path, "r") as f:
            audio = f["Camera/00/audio/audio"][()]
            rate = f["Camera/00/audio/sample_rate"]
            assert rate.shape == () and np.issubdtype(rate.dtype, np.integer)
            assert int(rate[()]) == AUDIO_SAMPLE_RATE == 48000
            assert audio.shape == (samples, 2) and audio.dtype == np.float32
            assert audio.min() >= -1.0 and audio.max() < 1.0
            assert np.abs(audio).max() > 0.1
            assert not np.array_equal(audio[:, 0], audio[:, 1])
    for path in r21[1]:
        if "_s1_all_raw" not in path.name:
            with h5py.File(path, "r") as f:
                assert all("audio" not in f["Camera"][cam] for cam in f["Camera"])


# -------------------------------------------------------------------------------------- rig


def test_rig_geometry() -> None:
    rig = make_rig()
    assert sorted(rig) == [f"{i:02d}" for i in range(60)]
    azimuths, elevations = [], []
    for cam, calib in rig.items():
        k, d, rt = calib["K"], calib["D"], calib["RT"]
        assert k.shape == (3, 3) and d.shape == (5,) and rt.shape == (4, 4)
        assert k.dtype == d.dtype == rt.dtype == np.float64
        rotation, centre = rt[:3, :3], rt[:3, 3]
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        np.testing.assert_array_equal(rt[3], [0, 0, 0, 1])
        to_head = HEAD_CENTER - centre
        assert 1.0 <= np.linalg.norm(to_head) <= 1.3, cam
        axis = rotation[:, 2]
        along = to_head @ axis
        assert along > 0  # looks towards the head, not away
        assert np.linalg.norm(to_head - along * axis) < 0.15, cam
        assert rotation[1, 1] > 0.5  # image down is roughly world +y (world up is -y)
        assert k[0, 0] == pytest.approx(4700, rel=0.02) and k[1, 1] == pytest.approx(4700, rel=0.02)
        assert abs(k[0, 2] - 1224) < 60 and abs(k[1, 2] - 1024) < 60
        assert k[2].tolist() == [0, 0, 1] and k[0, 1] == k[1, 0] == 0
        assert np.abs(d[:2]).max() < 0.06 and np.abs(d[2:4]).max() < 1e-3 and d[4] == 0
        away = centre - HEAD_CENTER
        azimuths.append(np.degrees(np.arctan2(away[0], away[2])) % 360)
        elevations.append(np.degrees(np.arctan2(-away[1], np.hypot(away[0], away[2]))))
    azimuths, elevations = np.array(azimuths), np.array(elevations)
    # like the real rig: 17 columns of 3 tiers ~19 degrees apart, then a closer ring of 8
    main = azimuths[:51].reshape(17, 3)
    assert np.ptp(main, axis=1).max() < 4.0  # a column shares its azimuth
    steps = np.diff(main.mean(axis=1))
    assert steps.min() > 17.0 and steps.max() < 21.5
    tiers = elevations[:51].reshape(17, 3)
    assert (tiers[:, 0] > 25).all() and (np.abs(tiers[:, 1]) < 8).all()
    assert (tiers[:, 2] < -19).all()
    ring = np.sort(azimuths[52:])
    assert np.diff(ring).min() > 30 and (np.abs(elevations[52:]) < 8).all()
    # camera 25 faces the front of the head (world -z); 18..32 are the frontal-ish ones
    front = rig["25"]["RT"][:3, 3] - HEAD_CENTER
    assert front[2] / np.linalg.norm(front) < -0.95
    for i in range(18, 33):
        away = rig[f"{i:02d}"]["RT"][:3, 3] - HEAD_CENTER
        # within ~50 degrees of the front, as in the real rig (cameras 18..20 are ~50 degrees off)
        assert np.degrees(np.arccos(-away[2] / np.hypot(away[0], away[2]))) < 55


def test_rig_resolution_and_seed() -> None:
    full, small = make_rig(60, 3, "full"), make_rig(60, 3, "small")
    for cam in full:
        np.testing.assert_array_equal(full[cam]["RT"], small[cam]["RT"])
        assert small[cam]["K"][0, 0] == pytest.approx(full[cam]["K"][0, 0] * W / 2448)
        assert abs(small[cam]["K"][0, 2] - W / 2) < 0.03 * W
        assert abs(small[cam]["K"][1, 2] - H / 2) < 0.03 * H
    again, other = make_rig(60, 3, "full"), make_rig(60, 4, "full")
    assert all(np.array_equal(full[c]["RT"], again[c]["RT"]) for c in full)
    assert not np.array_equal(full["25"]["RT"], other["25"]["RT"])
    assert sorted(make_rig(9)) == [f"{i:02d}" for i in range(9)]


# ---------------------------------------------------------------------------- determinism


def _contents(root: Path) -> dict[str, object]:
    """Every dataset's bytes and every attribute, keyed by relative file and object path."""
    result: dict[str, object] = {}
    for path in sorted(root.rglob("*.smc")):
        rel = path.relative_to(root).as_posix()
        with h5py.File(path, "r") as f:
            result[rel] = {k: _text(v) for k, v in f.attrs.items()}

            def visit(name: str, obj: object, rel: str = rel) -> None:
                if isinstance(obj, h5py.Dataset):
                    result[f"{rel}:{name}"] = (obj.dtype.str, obj.shape, obj[()].tobytes())

            f.visititems(visit)
    return result


def test_deterministic(r21: tuple[Path, list[Path]], tmp_path: Path) -> None:
    out, paths = r21
    again = synthesize(tmp_path / "again")
    assert [p.relative_to(tmp_path / "again") for p in again] == [p.relative_to(out) for p in paths]
    for a, b in zip(paths, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name  # byte-identical files
    other = synthesize(tmp_path / "other", seed=1)
    first, second = _contents(out), _contents(tmp_path / "other")
    assert first.keys() == second.keys()
    differ = [k for k in first if first[k] != second[k]]
    assert any(":Camera/25/color/0" in k for k in differ)
    assert any(":Calibration/25/RT" in k for k in differ)
    # rewriting in place replaces files atomically and leaves no temporary files behind
    assert synthesize(tmp_path / "other", seed=1) == other
    assert sorted(p for p in (tmp_path / "other").rglob("*") if p.is_file()) == other


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subject": "26"},
        {"subject": "00261"},
        {"subject": 26},
        {"subject": "../x"},
        {"performances": ("E0",)},
        {"performances": ("e0", "e0/../../x")},
        {"performances": ()},
        {"cameras": 0},
        {"cameras": 61},
        {"cameras": True},
        {"cameras": 2.0},
        {"frames": 0},
        {"resolution": "medium"},
        {"release": 22},
        {"seed": -1},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        synthesize(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_invalid_rig_arguments() -> None:
    for kwargs in ({"num_cameras": 0}, {"seed": -2}, {"resolution": "huge"}):
        with pytest.raises(UsageError):
            make_rig(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ full resolution


def test_full_resolution_jpeg_is_realistic(tmp_path: Path) -> None:
    (path,) = synthesize(
        tmp_path, performances=("h0",), release=500, cameras=1, frames=1, resolution="full"
    )
    with h5py.File(path, "r") as f:
        assert f["Camera"].attrs["resolution"].tolist() == [2048, 2448]
        dset = f["Camera/25/color/0"]
        assert 400_000 <= dset.shape[0] <= 900_000
        assert _decode(dset, cv2.IMREAD_COLOR).shape == (2048, 2448, 3)
        assert f["Calibration/25/K"][0, 0] == pytest.approx(4700, rel=0.01)


def test_synth_replaces_its_own_files_but_never_a_foreign_one(tmp_path: Path) -> None:
    """Synthetic ids are real ids: pointed at a real dataset, synth must not replace a download."""
    from renderme360.cli import main

    first = synthesize(tmp_path, performances=["e0"], frames=1)
    again = synthesize(tmp_path, performances=["e0"], frames=2)  # its own files: replaced
    assert again == first
    with h5py.File(first[0], "r") as f:
        assert f["Keypoints3d"].attrs["num_frame"] == 2
    real = tmp_path / "raw" / "0026" / "0026_s1_all_raw.smc"
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(b"REALDATA")
    with h5py.File(tmp_path / "anno" / "0026" / "0026_h0_anno.smc", "w") as f:
        f.attrs["actor_id"] = "0026"  # an HDF5 file without the synth mark
    for perf, victim in (("s1_all", real), ("h0", tmp_path / "anno/0026/0026_h0_anno.smc")):
        before = victim.read_bytes()
        with pytest.raises(UsageError, match=r"refusing to overwrite .*not written by"):
            synthesize(tmp_path, performances=["e0", perf])
        assert victim.read_bytes() == before
    link = tmp_path / "anno" / "0026" / "0026_h2_anno.smc"
    link.symlink_to(first[0])
    with pytest.raises(UsageError, match="refusing to overwrite"):
        synthesize(tmp_path, performances=["h2"])
    assert link.is_symlink()
    # nothing was written for the refused runs (checked before writing): e0 kept 2 frames
    with h5py.File(first[0], "r") as f:
        assert f["Keypoints3d"].attrs["num_frame"] == 2
    assert main(["synth", str(tmp_path), "--performances", "s1_all"]) == 2
    assert real.read_bytes() == b"REALDATA"

"""renderme360.load: the same answers from an extracted folder and from the SMC files.

Every release shape is covered (21 subjects: anno + raw; 500 subjects: one raw file; a lone
``{actor}_{perf}.smc``), both output layouts, files from ``synth`` and files written with h5py.
Geometry is checked against OpenCV's own projection, images against a full decode.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import subprocess
import sys
from operator import attrgetter, methodcaller
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import renderme360 as rm
from renderme360.cli import main
from renderme360.errors import InvalidIdError, NotFoundError, UsageError
from renderme360.synth import HEAD_CENTER, synthesize

FRAMES = 4
CAMERAS = 4


def extract(data: Path, out: Path, *extra: str) -> None:
    args = ["extract", str(data), "-o", str(out), "-q", "--no-preview", "--workers", "1", *extra]
    assert main(args) == 0


def merge_into_single_file(anno: Path, raw: Path, target: Path) -> None:
    """One ``{actor}_{perf}.smc`` holding everything the anno and raw files hold."""
    with h5py.File(anno, "r") as a, h5py.File(raw, "r") as r, h5py.File(target, "w") as out:
        for k, v in r.attrs.items():
            out.attrs[k] = v
        camera = out.create_group("Camera")
        for k, v in r["Camera"].attrs.items():
            camera.attrs[k] = v
        for src in (a, r):
            for cam, group in src["Camera"].items():
                dest = camera.require_group(cam)
                for kind in group:
                    src.copy(group[kind], dest, name=kind)
        for name in a:
            if name != "Camera":
                a.copy(a[name], out, name=name)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """``{shape: (dataset root, output root)}`` for every release shape, extracted."""
    base = tmp_path_factory.mktemp("shapes")
    out: dict[str, tuple[Path, Path]] = {}
    perfs = ["e0", "s1_all", "h0"]
    d21 = base / "d21"
    synthesize(d21, performances=perfs, cameras=CAMERAS, frames=FRAMES)
    extract(d21, base / "o21")
    extract(d21, base / "o21c", "--layout", "combined")
    out["r21"] = (d21, base / "o21")
    out["r21-combined"] = (d21, base / "o21c")
    d500 = base / "d500"
    synthesize(d500, performances=["e0", "s1_all", "s3_all"], release=500, frames=FRAMES)
    extract(d500, base / "o500")
    out["r500"] = (d500, base / "o500")
    single = base / "dsingle"
    single.mkdir()
    merge_into_single_file(
        d21 / "anno/0026/0026_e0_anno.smc", d21 / "raw/0026/0026_e0_raw.smc", single / "0026_e0.smc"
    )
    extract(single, base / "osingle")
    out["single"] = (single, base / "osingle")
    return out


def pairs(shapes: dict[str, tuple[Path, Path]]):
    for shape, (data, out) in shapes.items():
        for folder in sorted(p for p in out.iterdir() if p.is_dir()):
            actor, perf = folder.name.split("_", 1)
            yield shape, rm.load(folder), rm.load(data, subject=actor, performance=perf)


def assert_same(a: object, b: object, what: str) -> None:
    if isinstance(a, tuple) and isinstance(b, tuple):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{what}[{i}]")
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), what
        for k in a:
            assert_same(a[k], b[k], f"{what}[{k}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:
        assert a == b, (what, a, b)


def outcome(call, perf):
    """The value of ``call(perf)`` or the class of the error it raised."""
    try:
        return call(perf)
    except (InvalidIdError, NotFoundError) as exc:
        return type(exc)


def same_on_both(folder, smc, call, what: str) -> None:
    """``call`` gives the same value (or raises the same error class) on both backends."""
    assert_same(outcome(call, folder), outcome(call, smc), what)


# ------------------------------------------------------------------------------ parity


def test_folder_and_smc_backends_answer_every_method_alike(shapes) -> None:
    seen_shapes, seen_modalities = set(), set()
    for shape, folder, smc in pairs(shapes):
        name = f"{shape}:{folder.actor}_{folder.performance}"
        assert folder.source.kind == "folder" and smc.source.kind == "smc"
        for attr in (
            "actor",
            "performance",
            "frame_ids",
            "camera_ids",
            "image_camera_ids",
            "modalities",
            "keypoints2d_camera_ids",
            "uv_frame_ids",
        ):
            assert_same(getattr(folder, attr), getattr(smc, attr), f"{name}.{attr}")
        seen_shapes.add(shape)
        seen_modalities.update(folder.modalities)
        assert sorted(folder.cameras) == sorted(smc.cameras)
        for cam_id, a in folder.cameras.items():
            b = smc.cameras[cam_id]
            for field in ("K", "D", "c2w", "w2c", "center", "width", "height"):
                assert_same(getattr(a, field), getattr(b, field), f"{name} cam {cam_id}.{field}")
        probe_cams = [*folder.camera_ids, "59", "07"]
        for cam in probe_cams:
            for frame in [*folder.frame_ids, 999]:
                for method in ("image_bytes", "mask_bytes", "image", "mask"):
                    call = methodcaller(method, cam, frame)
                    same_on_both(folder, smc, call, f"{name}.{method}({cam}, {frame})")
                if frame in folder.image_frame_ids(cam):
                    path = folder.image_path(cam, frame)
                    assert path.read_bytes() == smc.image_bytes(cam, frame)
                    assert smc.image_path(cam, frame) is None
                    for k in (2, 4):
                        assert_same(folder.image(cam, frame, k), smc.image(cam, frame, k), name)
                if frame in folder.mask_frame_ids(cam):
                    assert folder.mask_path(cam, frame).read_bytes() == smc.mask_bytes(cam, frame)
                    assert_same(folder.mask(cam, frame, 2), smc.mask(cam, frame, 2), name)
            call = methodcaller("keypoints2d", cam)
            same_on_both(folder, smc, call, f"{name}.keypoints2d({cam})")
        for method in ("keypoints3d", "flame", "scan", "audio"):
            same_on_both(folder, smc, methodcaller(method), f"{name}.{method}")
        same_on_both(folder, smc, attrgetter("fps"), f"{name}.fps")
        if "flame" in folder.modalities:
            assert_same(folder.flame(["exp", "verts"]), smc.flame(["exp", "verts"]), name)
            assert sorted(folder.flame(["exp"])) == ["exp", "frame_ids"]
        for frame in [*folder.uv_frame_ids, 999]:
            for method in ("uv", "uv_bytes"):
                same_on_both(folder, smc, methodcaller(method, frame), f"{name}.{method}({frame})")
        for frame in (0, FRAMES - 1, FRAMES, -1):
            call = methodcaller("audio_span", frame)
            same_on_both(folder, smc, call, f"{name}.audio_span({frame})")
        a_items = [folder.dataset(scale=2)[i] for i in range(len(folder.dataset(scale=2)))]
        b_items = [smc.dataset(scale=2)[i] for i in range(len(smc.dataset(scale=2)))]
        assert_same(tuple(a_items), tuple(b_items), f"{name}.dataset")
    assert seen_shapes == {"r21", "r21-combined", "r500", "single"}
    assert seen_modalities == {
        "calibration",
        "images",
        "masks",
        "keypoints2d",
        "keypoints3d",
        "flame",
        "uv",
        "scan",
        "audio",
    }


def test_values_equal_what_an_h5py_written_file_holds(tmp_path: Path) -> None:
    from smcfactory import full_pair

    pair = full_pair(tmp_path / "data")
    extract(tmp_path / "data", tmp_path / "out")
    for perf in (rm.load(tmp_path / "out/0026_e0"), rm.load(tmp_path / "data", "0026", "e0")):
        assert (perf.actor, perf.performance) == ("0026", "e0")
        assert perf.camera_ids == ["25", "30"]  # 40 (2D keypoints only) is outside 18..32
        assert perf.image_camera_ids == ["25", "30"]
        assert perf.frame_ids == [0, 1, 2]
        assert perf.image_frame_ids("30") == [0, 2]
        for cam, frames in pair["color"].items():
            for frame, data in frames.items():
                assert perf.image_bytes(cam, frame) == data
                rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
                np.testing.assert_array_equal(perf.image(cam, frame), rgb)
        three = cv2.imdecode(np.frombuffer(pair["mask"]["25"][1], np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(perf.mask("25", 1), three.max(axis=2))
        for cam, cal in pair["cal"].items():
            c = perf.cameras[cam]
            np.testing.assert_array_equal(c.K, cal["K"])
            np.testing.assert_array_equal(c.D, cal["D"])
            np.testing.assert_array_equal(c.c2w, cal["RT"])
            assert (c.height, c.width) == (24, 32)
        ids, pts = perf.keypoints2d(25)
        assert ids.tolist() == [0, 2]  # the empty frame 1 is not invented
        np.testing.assert_array_equal(pts, np.stack([pair["kp2d"]["25"][0], pair["kp2d"]["25"][2]]))
        ids, pts = perf.keypoints3d()
        assert ids.tolist() == [0, 2] and pts.shape == (2, 73, 3)
        flame = perf.flame()
        assert flame["frame_ids"].tolist() == [0, 1, 2]
        np.testing.assert_array_equal(flame["exp"][1], pair["flame"][1]["exp"])
        verts, faces = perf.scan()
        np.testing.assert_array_equal(verts, pair["verts"])
        np.testing.assert_array_equal(faces, pair["faces"])
        samples, rate = perf.audio()
        np.testing.assert_array_equal(samples, pair["audio"][0])
        assert rate == 48000
        assert perf.uv_bytes(1) == pair["uv"][1]
        assert perf.uv(0).shape == (16, 16, 3)


# ------------------------------------------------------------------------------ cameras


def _cv2_project(points: np.ndarray, cam: rm.Camera) -> np.ndarray:
    rvec = cv2.Rodrigues(cam.w2c[:3, :3])[0]
    uv, _ = cv2.projectPoints(points.astype(np.float64), rvec, cam.w2c[:3, 3], cam.K, cam.D)
    return uv.reshape(-1, 2)


def test_project_lands_on_the_2d_keypoints(shapes) -> None:
    data, out = shapes["r21"]
    checked = 0
    for perf in (rm.load(out / "0026_e0"), rm.load(data, subject="0026", performance="e0")):
        ids3, pts3 = perf.keypoints3d()
        for cam_id in perf.keypoints2d_camera_ids:
            cam = perf.cameras[cam_id]
            assert np.abs(cam.D).max() > 1e-3  # distortion is exercised
            ids2, pts2 = perf.keypoints2d(cam_id)
            for frame in set(ids2.tolist()) & set(ids3.tolist()):
                p3 = pts3[ids3.tolist().index(frame)]
                p2 = pts2[ids2.tolist().index(frame)]
                err = np.linalg.norm(cam.project(p3) - p2[33:], axis=1)
                assert err.max() < 0.01, (cam_id, frame, err.max())
                checked += 1
    assert checked >= 4


def test_project_matches_opencv_and_handles_distortion() -> None:
    rng = np.random.default_rng(3)
    points = HEAD_CENTER + rng.normal(0, 0.1, (200, 3))
    from renderme360.synth import make_rig

    for cam_id, cal in make_rig().items():
        d = np.array([-0.2, 0.15, 1e-3, -2e-3, 0.05]) if cam_id == "07" else cal["D"]
        cam = rm.Camera(cam_id, cal["K"], d, cal["RT"], 2448, 2048)
        np.testing.assert_allclose(cam.project(points), _cv2_project(points, cam), atol=1e-6)
    assert cam.project(points[:1]).shape == (1, 2)


def test_w2c_and_opengl_round_trip(shapes) -> None:
    _, out = shapes["r21"]
    perf = rm.load(out / "0026_e0")
    up = np.array([0.0, -1.0, 0.0])  # world up is -y
    for cam in perf.cameras.values():
        np.testing.assert_allclose(cam.w2c @ cam.c2w, np.eye(4), atol=1e-12)
        np.testing.assert_allclose(np.linalg.inv(cam.w2c), cam.c2w, atol=1e-12)
        gl = cam.to_opengl()
        np.testing.assert_allclose(gl @ np.diag([1.0, -1.0, -1.0, 1.0]), cam.c2w, atol=1e-15)
        np.testing.assert_array_equal(gl[:3, 3], cam.center)
        # OpenGL camera: looks down -z, y up; the head is in front, world up is image up
        head = np.linalg.inv(gl) @ np.append(HEAD_CENTER, 1.0)
        above = np.linalg.inv(gl) @ np.append(HEAD_CENTER + 0.1 * up, 1.0)
        assert head[2] < -0.9 and above[1] > head[1]
        # OpenCV camera: the head is at +z, world up is image up (-y in camera coordinates)
        z = cam.to_camera(np.stack([HEAD_CENTER, HEAD_CENTER + 0.1 * up]))
        assert z[0, 2] > 0.9 and z[1, 1] < z[0, 1]


def test_scaled_intrinsics_and_reduced_decode(tmp_path: Path) -> None:
    synthesize(tmp_path / "d", performances=["e0"], cameras=1, frames=1, resolution="full")
    perf = rm.load(tmp_path / "d", subject="0026", performance="e0")
    cam = perf.cameras["25"]
    assert (cam.height, cam.width) == (2048, 2448)
    full = perf.image("25", 0)
    assert full.shape == (2048, 2448, 3) and full.dtype == np.uint8
    bgr = cv2.imdecode(np.frombuffer(perf.image_bytes("25", 0), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(full, bgr[..., ::-1])  # RGB
    points = perf.keypoints3d()[1][0]
    mask_full = perf.mask("25", 0)
    for k in (2, 4, 8):
        small = perf.image("25", 0, scale=k)
        scaled = cam.scaled(k)
        assert small.shape == (scaled.height, scaled.width, 3) == (2048 // k, 2448 // k, 3)
        area = cv2.resize(full, (scaled.width, scaled.height), interpolation=cv2.INTER_AREA)
        diff = np.abs(small.astype(int) - area.astype(int))
        assert diff.mean() < 2.0 and np.percentile(diff, 99) < 8, (k, diff.mean())
        np.testing.assert_allclose(scaled.K[:2, :2], cam.K[:2, :2] / k)
        np.testing.assert_allclose(scaled.K[:2, 2], (cam.K[:2, 2] + 0.5) / k - 0.5)
        np.testing.assert_array_equal(scaled.c2w, cam.c2w)
        expected = (cam.project(points) + 0.5) / k - 0.5  # pixel centres stay pixel centres
        np.testing.assert_allclose(scaled.project(points), expected, atol=1e-9)
        # the head silhouette lands where the scaled camera puts it
        mask = perf.mask("25", 0, scale=k)
        assert mask.shape == small.shape[:2]
        ys, xs = np.nonzero(mask > 127)
        ys_f, xs_f = np.nonzero(mask_full > 127)
        assert abs(xs.mean() - xs_f.mean() / k) < 1.0 and abs(ys.mean() - ys_f.mean() / k) < 1.0
    assert cam.scaled(1) is cam
    for bad in (0, 3, 16, True, 2.0):
        with pytest.raises(ValueError, match="scale"):
            perf.image("25", 0, scale=bad)
    with pytest.raises(ValueError):
        cam.scaled(0)


def test_scaled_camera_follows_pixels_through_an_area_reduction() -> None:
    """Ground truth independent of the formula: a bright block is area-reduced, and the reduced
    camera must project the point seen at the block's centre onto the reduced block's centroid."""
    cam = rm.Camera(
        "00",
        K=np.array([[100.0, 0, 31.0], [0, 100.0, 27.0], [0, 0, 1]]),
        D=np.zeros(5),
        c2w=np.eye(4),
        width=64,
        height=64,
    )
    full = np.zeros((64, 64), np.float64)
    full[26:34, 32:40] = 1.0  # pixel centres 32..39 and 26..33: centroid (35.5, 29.5)
    point = np.array([[0.045, 0.025, 1.0]])  # seen at (35.5, 29.5) in the full image
    assert tuple(cam.project(point)[0]) == pytest.approx((35.5, 29.5))
    for k in (2, 4, 8):
        small = cv2.resize(full, (64 // k, 64 // k), interpolation=cv2.INTER_AREA)
        ys, xs = np.mgrid[: small.shape[0], : small.shape[1]]
        centroid = ((xs * small).sum() / small.sum(), (ys * small).sum() / small.sum())
        reduced = cam.scaled(k).project(point)[0]
        assert tuple(reduced) == pytest.approx(centroid, abs=1e-9), (k, reduced, centroid)
        naive = 35.5 / k  # plain K / k misses by (k - 1) / (2k) reduced pixels
        assert abs(naive - centroid[0]) == pytest.approx((k - 1) / (2 * k))


# ------------------------------------------------------------------------------ dataset


def test_dataset_shapes_and_pickling_into_two_workers(shapes) -> None:
    data, out = shapes["r21"]
    for perf in (rm.load(out / "0026_e0"), rm.load(data, subject="0026", performance="e0")):
        ds = perf.dataset(scale=2)
        assert len(ds) == CAMERAS * FRAMES
        item = ds[0]
        assert sorted(item) == ["K", "c2w", "camera", "frame", "image", "mask"]
        assert item["image"].shape == (48, 60, 3) and item["image"].dtype == np.uint8
        assert item["mask"].shape == (48, 60) and item["mask"].dtype == np.uint8
        assert item["K"].shape == (3, 3) and item["c2w"].shape == (4, 4)
        assert (item["camera"], item["frame"]) == (perf.image_camera_ids[0], 0)
        np.testing.assert_allclose(item["K"], perf.cameras[item["camera"]].scaled(2).K)
        np.testing.assert_array_equal(ds[-1]["image"], ds[len(ds) - 1]["image"])
        with pytest.raises(IndexError):
            ds[len(ds)]
        sub = perf.dataset(cameras=["25", 22], frames=range(1, 3), masks=False)
        assert sub.items == [("25", 1), ("25", 2), ("22", 1), ("22", 2)]  # cameras in given order
        assert "mask" not in sub[0] and sub[0]["image"].shape == (96, 120, 3)
        clone = pickle.loads(pickle.dumps(ds))
        assert_same(clone[5], ds[5], "pickled")
        expected = [ds[i] for i in range(len(ds))]
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            got = pool.map(ds.__getitem__, range(len(ds)), chunksize=1)
        assert_same(tuple(got), tuple(expected), "workers")
        with pytest.raises(InvalidIdError, match="no images"):
            perf.dataset(cameras=["59"])
        with pytest.raises(UsageError, match="scale"):
            perf.dataset(scale=3)


class _CountedFrames(list):
    """A frame listing that counts every element it hands out (iteration and lookups)."""

    work = 0

    def __iter__(self):
        for f in super().__iter__():
            _CountedFrames.work += 1
            yield f

    def __contains__(self, f) -> bool:
        _CountedFrames.work += len(self)
        return super().__contains__(f)


class _ListingOnly:
    """The part of a Performance FrameDataset reads, with counted frame listings."""

    def __init__(self, cams: int, frames: int) -> None:
        self.calibration_problems: dict[str, str] = {}
        self.image_camera_ids = [f"{c:02d}" for c in range(cams)]
        self.cameras = {c: self for c in self.image_camera_ids}
        self.frames = frames
        self.listings = 0

    def scaled(self, scale: int):
        return self

    def image_frame_ids(self, camera: str) -> list[int]:
        self.listings += 1
        return _CountedFrames(range(self.frames))

    def mask_frame_ids(self, camera: str) -> list[int]:
        self.listings += 1
        return _CountedFrames(range(self.frames))


def test_dataset_is_built_in_linear_time() -> None:
    """FrameDataset.__init__ lists each camera's frames a bounded number of times and touches
    each listed frame a bounded number of times: 4x the frames is ~4x the work (it built a set
    of a camera's mask frames per item: 5 s for 60 cameras x 2,000 frames)."""
    from renderme360.loader.dataset import FrameDataset

    work = {}
    for frames in (100, 400):
        for selected in (None, range(0, frames, 2)):
            perf = _ListingOnly(cams=6, frames=frames)
            _CountedFrames.work = 0
            ds = FrameDataset(perf, frames=selected)  # type: ignore[arg-type]
            assert len(ds) == 6 * (frames if selected is None else frames // 2) and ds.masks
            assert perf.listings <= 2 * 6  # images and masks, once per camera
            work[frames, selected is None] = _CountedFrames.work
    for whole in (True, False):
        assert work[400, whole] <= 4.5 * work[100, whole], work


def test_no_torch_anywhere_in_the_package() -> None:
    package = Path(rm.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path


# ------------------------------------------------------------------------------ audio


def test_audio_alignment(shapes) -> None:
    _, out = shapes["r21"]
    perf = rm.load(out / "0026_s1_all")
    samples, rate = perf.audio()
    assert rate == 48000 and samples.ndim == 2
    assert perf.fps == pytest.approx(FRAMES * rate / len(samples))
    assert perf.fps == pytest.approx(30.0)  # synth writes frames / 30 s of audio
    spans = [perf.audio_span(f) for f in range(FRAMES)]
    assert spans[0][0] == 0 and spans[-1][1] == len(samples)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(abs((b - a) - rate / 30) <= 1 for a, b in spans)
    with pytest.raises(InvalidIdError):
        perf.audio_span(FRAMES)
    with pytest.raises(NotFoundError, match="no audio"):
        rm.load(out / "0026_e0").audio_span(0)


# ------------------------------------------------------------------------------ errors


def test_clear_errors_for_bad_input(shapes, tmp_path: Path) -> None:
    data, out = shapes["r21"]
    with pytest.raises(NotFoundError, match="no such"):
        rm.load(tmp_path / "missing")
    with pytest.raises(UsageError, match="3 performances match"):
        rm.load(data)
    with pytest.raises(NotFoundError, match="subject '9999' not found"):
        rm.load(data, subject="9999", performance="e0")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError):
        rm.load(tmp_path / "empty")
    perf = rm.load(out / "0026_e0")
    with pytest.raises(InvalidIdError, match="no images for camera 59"):
        perf.image("59", 0)
    with pytest.raises(InvalidIdError, match="no image for camera 25 frame 99"):
        perf.image(25, 99)
    with pytest.raises(InvalidIdError, match="integer"):
        perf.image("25", "0")
    with pytest.raises(KeyError):  # InvalidIdError is a KeyError, as for the reader
        perf.keypoints2d("00")
    with pytest.raises(NotFoundError, match="no audio"):
        perf.audio()
    with pytest.raises(NotFoundError, match="no FLAME"):
        rm.load(out / "0026_s1_all").flame()
    assert rm.load(data / "raw/0026/0026_h0_raw.smc").performance == "h0"  # a single file
    with pytest.raises(UsageError, match="holds extracted performances"):
        rm.load(out)
    from_out = rm.load(out, subject="0026", performance="h0")  # an output root works too
    assert from_out.source.kind == "folder" and from_out.performance == "h0"


def test_loading_is_lazy_and_light(shapes) -> None:
    _, out = shapes["r21"]
    code = (
        "import sys, renderme360 as rm\n"
        f"p = rm.load({str(out / '0026_e0')!r})\n"
        "p.cameras['25'].project([[0, 0, 1]]); p.keypoints3d()\n"
        "assert 'cv2' not in sys.modules and 'h5py' not in sys.modules, sorted(sys.modules)\n"
        "p.image('25', 0)\n"
        "assert 'cv2' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_modality_not_held_is_not_found_naming_what_is(shapes) -> None:
    """Masks, 2D keypoints and UV of a performance without them: NotFoundError, both backends."""
    data, out = shapes["r500"]
    for perf in (rm.load(out / "0026_e0"), rm.load(data, subject="0026", performance="e0")):
        assert "masks" not in perf.modalities and "uv" not in perf.modalities
        held = ", ".join(perf.modalities)
        for call, what in (
            (lambda p: p.mask("25", 0), "no masks"),
            (lambda p: p.mask_bytes(25, 0), "no masks"),
            (lambda p: p.keypoints2d("25"), "no 2D keypoints"),
            (lambda p: p.uv(0), "no UV textures"),
        ):
            with pytest.raises(NotFoundError, match=what) as exc:
                call(perf)
            assert f"holds: {held})" in str(exc.value)
    # inside a held modality, an unknown camera or frame stays an InvalidIdError
    _, out21 = shapes["r21"]
    perf = rm.load(out21 / "0026_e0")
    for call in (
        lambda: perf.mask("59", 0),
        lambda: perf.mask("25", 99),
        lambda: perf.keypoints2d("00"),
        lambda: perf.uv(99),
    ):
        with pytest.raises(InvalidIdError):
            call()


def test_python_api_selections_name_what_exists(shapes) -> None:
    data, out = shapes["r21"]
    perf = rm.load(out / "0026_e0")
    with pytest.raises(InvalidIdError, match=r"frame\(s\) 99 have no image .*frames: 0\.\.3"):
        perf.dataset(frames=[99])
    with pytest.raises(InvalidIdError, match=r"frame.* 7, 99 .*frames: 0\.\.3"):
        perf.dataset(frames=[0, 7, 99])
    assert len(perf.dataset(frames=[1])) == len(perf.image_camera_ids)
    with pytest.raises(InvalidIdError, match="camera 99 has no images"):
        perf.dataset(cameras=["99"])
    cams = ", ".join(perf.cameras)
    with pytest.raises(KeyError, match=f"no calibration for camera 99 .calibrated: {cams}"):
        perf.cameras["99"]
    assert perf.cameras[25] is perf.cameras["25"] and 25 in perf.cameras and "x" not in perf.cameras
    assert list(perf.cameras) == sorted(perf.cameras) and len(perf.cameras) == len(cams.split(","))
    assert pickle.loads(pickle.dumps(perf)).cameras[25].id == "25"
    by_int = rm.load(data, subject=26, performance="e0")
    assert (by_int.actor, by_int.performance) == ("0026", "e0")
    assert rm.load(out, subject=26, performance="e0").source.kind == "folder"
    with pytest.raises(UsageError, match="subject must be a string like '0026' or 26"):
        rm.load(data, subject=2.5, performance="e0")
    with pytest.raises(UsageError, match="performance must be a string"):
        rm.load(data, subject="0026", performance=0)
    for p in (perf, rm.load(data, subject="0026", performance="e0")):
        one = p.flame("exp")
        assert sorted(one) == ["exp", "frame_ids"]
        np.testing.assert_array_equal(one["exp"], p.flame(["exp"])["exp"])
        with pytest.raises(InvalidIdError, match=r"no FLAME field\(s\) nope \(stored: .*exp"):
            p.flame(["exp", "nope"])
        with pytest.raises(UsageError, match="field names"):
            p.flame([1])


def test_odd_image_sizes_round_up_like_the_decoder(shapes, tmp_path: Path) -> None:
    """An 81x65 image at scale k is ceil(81/k) x ceil(65/k): what libjpeg's reduced decode gives,
    and what cam.scaled(k) says (exports crop to the floor instead, see README)."""
    import json
    import math
    import shutil

    _, out = shapes["r21-combined"]
    folder = tmp_path / "0026_e0"
    shutil.copytree(out / "0026_e0", folder)
    info = folder / "metadata/info.json"
    doc = json.loads(info.read_text())
    doc["camera_info"]["resolution"] = [65, 81]
    info.write_text(json.dumps(doc))
    rng = np.random.default_rng(0)
    odd = rng.integers(0, 255, (65, 81, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", odd)
    assert ok
    (folder / "images/cam_25/frame_000000.jpg").write_bytes(jpeg.tobytes())
    perf = rm.load(folder)
    for k, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4)):
        img = perf.image("25", 0, scale=k)
        decoded = cv2.imdecode(jpeg, flag)
        assert img.shape == decoded.shape == (math.ceil(65 / k), math.ceil(81 / k), 3)
        cam = perf.cameras["25"].scaled(k)
        assert (cam.height, cam.width) == img.shape[:2]
        assert perf.dataset(cameras=["25"], frames=[0], scale=k)[0]["image"].shape == img.shape

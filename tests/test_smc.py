"""ExtractionReader: the project's own reading API (listings, stored bytes, offsets, checked
arrays) and its error rules. The published API (``renderme360.SMCReader``) is in test_compat.py.

Checked against files written directly with h5py (tests/smcfactory.py) and against ``synth``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
from smcfactory import build_smc, full_pair, jpeg

from renderme360.errors import (
    InvalidIdError,
    Renderme360Error,
    SMCFormatError,
    SMCNotFoundError,
    SMCOpenError,
    UnsafeNameError,
)
from renderme360.smc import ExtractionReader as SMCReader
from renderme360.synth import synthesize


@pytest.fixture
def pair(tmp_path):
    return full_pair(tmp_path)


def test_root_attributes_decode_to_str(pair, tmp_path):
    with SMCReader(pair["anno"]) as r:  # actor_id stored as bytes
        assert r.identity() == ("0026", "e0", "20230101")
        assert all(isinstance(v, str) for v in r.identity())
        info = r.read_actor_info()
        assert info == {
            "age": 25,
            "color": "yellow",
            "gender": "female",
            "height": 170.0,
            "weight": 60.0,
        }
        assert type(info["age"]) is int and type(info["height"]) is float  # JSON-safe
    p = build_smc(
        tmp_path / "b.smc",
        attrs={"actor_id": np.bytes_(b"0026"), "capture_date": None, "age": None},
    )
    with SMCReader(p) as r:
        assert r.identity() == ("0026", "e0", "")
        assert r.read_actor_info()["age"] is None


def test_camera_info(pair):
    with SMCReader(pair["raw"]) as r:
        assert r.read_camera_info() == {"num_device": 60, "num_frame": 3, "resolution": [24, 32]}


def test_calibration(pair):
    with SMCReader(pair["anno"]) as r:
        allc = r.read_calibration_all()
        assert sorted(allc) == ["25", "30", "40"]
        for cam, ref in pair["cal"].items():
            for k in ("K", "D", "RT"):
                np.testing.assert_array_equal(allc[cam][k], ref[k])
                np.testing.assert_array_equal(r.read_calibration(int(cam))[k], ref[k])
        with pytest.raises(InvalidIdError) as ei:
            r.read_calibration(3)
        assert "camera 03" in str(ei.value) and str(pair["anno"]) in str(ei.value)
    with SMCReader(pair["raw"]) as r:
        assert r.read_calibration_all() is None and r.read_calibration(25) is None


def test_bytes_are_stored_bytes(pair):
    with SMCReader(pair["raw"]) as r:
        assert r.list_cameras("color") == ["25", "30"]
        assert r.list_frames(30, "color") == [0, 2]
        for cam, frames in pair["color"].items():
            for fr, data in frames.items():
                assert r.get_img_bytes(cam, "color", fr) == data
                assert r.read_blob("color", int(cam), str(fr)) == data
        assert r.list_cameras("mask") == []
    with SMCReader(pair["anno"]) as r:
        assert r.get_img_bytes("25", "mask", 1) == pair["mask"]["25"][1]


def test_decode_image_masks_grayscale_and_three_channel_max(pair):
    from renderme360.formats.image import decode_image

    m0 = decode_image(pair["mask"]["25"][0], grayscale=True)
    assert m0.shape == (24, 32) and m0.dtype == np.uint8
    np.testing.assert_array_equal(
        m0, cv2.imdecode(np.frombuffer(pair["mask"]["25"][0], np.uint8), cv2.IMREAD_GRAYSCALE)
    )
    m1 = decode_image(pair["mask"]["25"][1], grayscale=True)  # stored as 3 channels
    colour = cv2.imdecode(np.frombuffer(pair["mask"]["25"][1], np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(m1, colour.max(axis=2))


def test_invalid_image_ids_raise_invalid_id_naming_file(pair):
    with SMCReader(pair["raw"]) as r:
        for args in [
            ("07", "color", 0),
            ("25", "color", 9),
            ("25", "depth", 0),
            ("x", "color", 0),
            ("25", "color", -1),
            (25, "color", "1.5"),
        ]:
            with pytest.raises(InvalidIdError):
                r.get_img_bytes(*args)
        with pytest.raises(InvalidIdError) as ei:
            r.get_img_bytes("25", "color", 9)
        assert str(pair["raw"]) in str(ei.value) and "frame 9" in str(ei.value)


def test_audio(pair):
    with SMCReader(pair["raw"]) as r:
        a = r.read_audio()
        np.testing.assert_array_equal(a["audio"], pair["audio"][0])
        assert a["sample_rate"] == 48000 and type(a["sample_rate"]) is int
        info = r.audio_info()
        assert info["shape"] == [4800, 2] and info["seconds"] == pytest.approx(0.1)
    with SMCReader(pair["anno"]) as r:
        assert r.read_audio() is None and r.audio_info() is None


def test_keypoints_none_rules(pair):
    with SMCReader(pair["anno"]) as r:
        np.testing.assert_array_equal(r.read_keypoints2d(25, 0), pair["kp2d"]["25"][0])
        assert r.read_keypoints2d(25, 1) is None  # empty
        assert r.read_keypoints2d(30, 0) is None  # missing frame
        assert r.read_keypoints2d(19, 0) is None  # camera in range without data
        assert r.read_keypoints2d(40, 0) is None  # outside 18..32 even though stored
        assert r.list_keypoints2d_cameras() == ["25", "30"]
        assert r.list_keypoints2d_frames(25) == [0, 2]
        np.testing.assert_array_equal(r.read_keypoints3d(2), pair["kp3d"][2])
        assert r.read_keypoints3d(1) is None and r.read_keypoints3d(5) is None
        assert r.list_keypoints3d_frames() == [0, 2]
        with pytest.raises(InvalidIdError):
            r.read_keypoints3d(-3)
    with SMCReader(pair["raw"]) as r:
        assert r.read_keypoints3d(0) is None and r.read_keypoints2d(25, 0) is None


def test_keypoints_stacked_dataset_form(tmp_path):
    """Some copies store Keypoints2d/{cam} as one (frames, n, 2) dataset; accept it too."""
    p = build_smc(tmp_path / "0026_e0_anno.smc")
    arr = np.arange(3 * 106 * 2, dtype=float).reshape(3, 106, 2)
    with h5py.File(p, "a") as f:
        f.create_group("Keypoints2d").create_dataset("25", data=arr)
    with SMCReader(p) as r:
        np.testing.assert_array_equal(r.read_keypoints2d(25, 1), arr[1])
        assert r.read_keypoints2d(25, 3) is None
        assert r.list_keypoints2d_frames(25) == [0, 1, 2]


def test_flame_uv_scan_scanmask(pair):
    with SMCReader(pair["anno"]) as r:
        for k, v in pair["flame"][1].items():
            np.testing.assert_array_equal(r.read_flame_field(1, k), v)
        with pytest.raises(InvalidIdError):
            r.read_flame_field(7, "exp")
        assert r.list_flame_frames() == [0, 1, 2]
        assert r.flame_fields(0)["verts"] == ((5023, 3), "float32")
        assert r.flame_fields(7) == {}
        assert r.list_uv_frames() == [0, 1]
        assert r.get_uv_bytes(0) == pair["uv"][0]
        mesh = r.read_scan()
        np.testing.assert_array_equal(mesh["vertex"], pair["verts"])
        np.testing.assert_array_equal(mesh["vertex_indices"], pair["faces"])
        assert r.scan_info() == {"vertices": 50, "faces": 80, "vertex_dtype": "float64"}
        assert r.get_scanmask_bytes(30) == pair["scanmask"]["30"]
        assert r.list_scanmask_cameras() == ["25", "30"]
    with SMCReader(pair["raw"]) as r:
        assert r.list_flame_frames() == [] and r.list_uv_frames() == []
        assert r.read_scan() is None and r.scan_info() is None
        assert r.list_scanmask_cameras() == []


def test_blob_location_offsets_match_stored_bytes(pair):
    with SMCReader(pair["raw"]) as r:
        loc = r.blob_location("color", "25", 1)
        assert loc.nbytes == len(pair["color"]["25"][1]) and loc.offset is not None
        with open(pair["raw"], "rb") as f:
            f.seek(loc.offset)
            assert f.read(loc.nbytes) == pair["color"]["25"][1]
        assert r.read_blob_head("color", "25", 1, 4) == pair["color"]["25"][1][:4]


def test_chunked_compressed_blobs_have_no_offset(tmp_path):
    pair = full_pair(tmp_path, chunked=True)
    with SMCReader(pair["raw"]) as r:
        loc = r.blob_location("color", "25", 0)
        assert loc.offset is None and loc.nbytes == len(pair["color"]["25"][0])
        assert r.get_img_bytes("25", "color", 0) == pair["color"]["25"][0]


@pytest.mark.parametrize("chunked", [False, True])
def test_bulk_blob_locations_equal_one_by_one(tmp_path, chunked):
    """The low-level bulk listing answers exactly what the checked per-blob path answers."""
    pair = full_pair(tmp_path, chunked=chunked)
    seen = 0
    for role in ("raw", "anno"):
        with SMCReader(pair[role]) as r:
            for kind in ("color", "mask"):
                for cam in r.list_cameras(kind):
                    bulk = r.blob_locations(cam, kind)
                    assert list(bulk) == r.list_frames(cam, kind)
                    assert bulk == {f: r.blob_location(kind, cam, f) for f in bulk}
                    assert all((loc.offset is None) == chunked for loc in bulk.values())
                    seen += len(bulk)
    assert seen == sum(len(v) for v in pair["color"].values()) + sum(
        len(v) for v in pair["mask"].values()
    )


def test_bulk_blob_locations_refuse_what_the_checked_path_refuses(tmp_path):
    path = build_smc(tmp_path / "0026_e0.smc", color={"25": {0: jpeg(seed=1)}})
    with h5py.File(path, "r+") as f:
        f["Camera/25/color"].create_dataset("1", data=np.zeros((4, 4), np.uint8))
        f["Camera/25/color"].create_dataset("2", data=np.zeros(8, np.float32))
    with SMCReader(path) as r, pytest.raises(SMCFormatError, match="should be 1-D uint8"):
        r.blob_locations(25, "color")
    with h5py.File(path, "r+") as f:
        del f["Camera/25/color/1"], f["Camera/25/color/2"]
        f["Camera/25/color"].create_group("1x")
    with SMCReader(path) as r, pytest.raises(UnsafeNameError, match="refusing frame key"):
        r.blob_locations(25, "color")


def test_not_hdf5_and_missing_attrs(tmp_path):
    bad = tmp_path / "0026_e0_raw.smc"
    bad.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(SMCOpenError, match="not a readable HDF5") as ei:
        SMCReader(bad)
    assert isinstance(ei.value, OSError)  # what h5py raises
    p = build_smc(tmp_path / "x" / "0026_e0_raw.smc", actor=None, performance=None)
    with pytest.raises(SMCFormatError, match="actor_id, performance_part missing"):
        SMCReader(p)
    with pytest.raises(SMCNotFoundError, match="no such file") as ei:
        SMCReader(tmp_path / "missing.smc")
    assert isinstance(ei.value, FileNotFoundError) and isinstance(ei.value, SMCFormatError)


def test_unsafe_keys_are_refused(tmp_path):
    p = build_smc(tmp_path / "0026_e0_raw.smc", color={"25": {0: jpeg()}})
    with h5py.File(p, "a") as f:
        f["Camera/25/color"].create_dataset("..", data=np.frombuffer(jpeg(), np.uint8))
        f["Camera"].create_group("../../x")
    with SMCReader(p) as r, pytest.raises(UnsafeNameError, match="refusing"):
        r.list_cameras()


def test_wrong_shapes_are_format_errors(tmp_path):
    p = build_smc(
        tmp_path / "0026_e0_raw.smc", color={"25": {0: jpeg()}}, camera_attrs={"num_frame": 10**12}
    )
    with h5py.File(p, "a") as f:
        f["Camera/25/color"].create_dataset("1", data=np.zeros((4, 4), np.uint8))
        f["Camera/25/color"].create_dataset("2", data=np.frombuffer(b"not an image", np.uint8))
    with SMCReader(p) as r:
        with pytest.raises(SMCFormatError, match="1-D uint8"):
            r.get_img_bytes(25, "color", 1)
        with pytest.raises(SMCFormatError, match="num_frame"):
            r.read_camera_info()


def test_close_releases_file(pair):
    r = SMCReader(pair["raw"])
    fd = r.raw_fd()
    r.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert not r.smc.id.valid
    r.close()  # idempotent


def test_every_error_is_a_renderme360_error():
    assert issubclass(InvalidIdError, KeyError) and issubclass(InvalidIdError, Renderme360Error)


def test_reader_on_synth_files(tmp_path):
    paths = synthesize(tmp_path, performances=["e0", "s1_all"], cameras=4, frames=3)
    anno = next(p for p in paths if p.name == "0026_e0_anno.smc")
    raw = next(p for p in paths if p.name == "0026_s1_all_raw.smc")
    with SMCReader(anno) as r:
        cams = r.list_cameras("mask")
        assert len(cams) == 4 and "25" in cams
        for cam in cams:
            for fr in r.list_frames(cam, "mask"):
                data = r.get_img_bytes(cam, "mask", fr)
                assert data == bytes(r.smc[f"Camera/{cam}/mask/{fr}"][()])
        assert r.read_flame_field(0, "verts").shape == (5023, 3)
        assert r.read_calibration_all().keys() == {f"{i:02d}" for i in range(60)}
        kp_cams = r.list_keypoints2d_cameras()
        assert kp_cams and all(18 <= int(c) <= 32 for c in kp_cams)
    with SMCReader(raw) as r:
        assert r.read_audio()["audio"].shape[1] == 2
        assert r.list_cameras("color")
        for cam in r.list_cameras("color"):
            assert r.get_img_bytes(cam, "color", 0)[:3] == b"\xff\xd8\xff"


def test_import_is_light():
    code = (
        "import sys, renderme360, renderme360.cli; renderme360.cli.build_parser(); "
        "bad = [m for m in ('cv2', 'matplotlib', 'distributed', 'dask') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "renderme360", "--help"], capture_output=True, text=True, check=True
    )
    assert "extract" in out.stdout and "explore" in out.stdout


def test_a_reader_collected_on_another_thread_is_closed_by_the_next_one(tmp_path) -> None:
    """The garbage collector may run a reader's ``__del__`` on any thread (fsspec's I/O thread
    during a remote read deadlocked: HDF5's lock was held by the thread waiting for it). There
    the file is left open and handed over; the next reader opened closes it."""
    import threading

    from renderme360.smc import reader as rd
    from renderme360.synth import synthesize

    synthesize(tmp_path, "0026", ["e0"], 21, cameras=2, frames=2)
    path = next(tmp_path.rglob("*.smc"))
    r = rd.ExtractionReader(path)
    h5 = r.smc
    box = [r]
    del r
    t = threading.Thread(target=box.clear)  # the last reference goes on another thread
    t.start()
    t.join()
    assert h5.id.valid and any(o[0] is h5 for o in rd._ORPHANS)
    rd.ExtractionReader(path).close()
    assert not h5.id.valid and not rd._ORPHANS

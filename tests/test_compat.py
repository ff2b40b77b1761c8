"""``renderme360.SMCReader`` against the published reader's behaviour, call form by call form.

Every call form of the behaviour contract runs on files written by ``synth`` and on files written
directly with h5py (tests/smcfactory.py); expected values are read straight from the files with
h5py. Each test asserts the documented value, None, or exception class.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import soundfile as sf
from smcfactory import build_smc, calib, flame_frame, full_pair, jpeg, png

import renderme360
from renderme360 import SMCReader
from renderme360.cli import main
from renderme360.errors import (
    InvalidArgumentError,
    InvalidIdError,
    MissingDataError,
    Renderme360Error,
    SMCFormatError,
    SMCOpenError,
    UnsafeNameError,
)
from renderme360.formats.audio import mp3_size_estimate
from renderme360.smc import ExtractionReader
from renderme360.synth import synthesize

ACTOR_INFO = ["age", "color", "gender", "height", "weight"]
CAMERA_INFO = ["num_device", "num_frame", "resolution"]


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", params=["synth", "h5py"])
def files(request, tmp_path_factory) -> dict[str, Path]:
    """An expression anno file, its raw file, a speech raw file (audio) and a speech anno file."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "synth":
        by_name = {
            p.name: p for p in synthesize(root, performances=["e0", "s1_all"], cameras=4, frames=3)
        }
        return {
            "expr": by_name["0026_e0_anno.smc"],
            "raw": by_name["0026_e0_raw.smc"],
            "speech": by_name["0026_s1_all_raw.smc"],
            "speech_anno": by_name["0026_s1_all_anno.smc"],
        }
    pair = full_pair(root)
    rng = np.random.default_rng(3)
    speech = build_smc(
        root / "0026_s1_all_raw.smc",
        performance=np.bytes_(b"s1_all"),
        attrs={"actor_id": np.bytes_(b"0026"), "capture_date": np.bytes_(b"20230102")},
        color={"25": {0: jpeg(seed=20), 1: jpeg(seed=21)}},
        audio=((rng.random((9600, 2)) * 2 - 1).astype(np.float32), 48000),
    )
    speech_anno = build_smc(
        root / "0026_s1_all_anno.smc",
        performance="s1_all",
        mask={"00": {0: png(seed=1)}, "25": {0: png(seed=2)}},
        calibration={"00": calib(0), "25": calib(25)},
        kp3d={0: rng.random((73, 3))},
    )
    return {"expr": pair["anno"], "raw": pair["raw"], "speech": speech, "speech_anno": speech_anno}


def stored(path: Path, name: str) -> np.ndarray:
    """A dataset's value read straight with h5py (default locking, like any user code)."""
    with h5py.File(path, "r") as f:
        return f[name][()]


def keys(path: Path, name: str) -> list[str]:
    with h5py.File(path, "r") as f:
        return list(f[name].keys()) if name in f else []


def decoded(data: np.ndarray | bytes, mask: bool = False) -> np.ndarray:
    """The published decode: IMREAD_COLOR, and for masks the max over channels."""
    img = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    return np.max(img, 2).astype(np.uint8) if mask else img


def assert_assertion(call, *args) -> AssertionError:
    """The call fails as the published reader's ``assert`` does (and is our error, not KeyError)."""
    with pytest.raises(AssertionError) as ei:
        call(*args)
    assert isinstance(ei.value, Renderme360Error) and not isinstance(ei.value, KeyError)
    return ei.value


# ----------------------------------------------------------------------------------- classes
def test_error_classes():
    assert issubclass(InvalidArgumentError, AssertionError)
    assert issubclass(InvalidArgumentError, Renderme360Error)
    assert not issubclass(InvalidArgumentError, KeyError)
    assert issubclass(MissingDataError, KeyError) and issubclass(MissingDataError, Renderme360Error)
    assert issubclass(SMCOpenError, OSError) and issubclass(SMCOpenError, SMCFormatError)
    assert renderme360.SMCReader is SMCReader and issubclass(SMCReader, ExtractionReader)
    from renderme360 import smc

    assert smc.SMCReader is SMCReader  # the old import path still names the published API


# ----------------------------------------------------------------------------------- opening
class PublishedLike:
    """What the published reader does on open: ``h5py.File(path, 'r')``, kept open."""

    def __init__(self, path: Path) -> None:
        self.smc = h5py.File(path, "r")


def _first(kind: str, path: Path):
    if kind == "h5py":
        return h5py.File(path, "r")
    if kind == "h5py-nolock":
        return h5py.File(path, "r", locking=False)
    if kind == "h5py-lock":
        return h5py.File(path, "r", locking=True)
    if kind == "published":
        return PublishedLike(path).smc
    if kind == "extraction":
        return ExtractionReader(path)
    return SMCReader(path)


@pytest.mark.parametrize(
    "first", ["h5py", "h5py-nolock", "h5py-lock", "published", "extraction", "compat"]
)
@pytest.mark.parametrize("second", ["compat", "extraction"])
def test_open_after_another_opener_in_process(files, first, second):
    """Whatever opened the file first in this process (default, no or strict locking), the
    readers open it too, both stay usable, and closing ours leaves the other open."""
    path = files["expr"]
    other = _first(first, path)
    try:
        reader = SMCReader(path) if second == "compat" else ExtractionReader(path)
        got = reader.smc["Calibration/25/K"][()]
        reader.close()
        handle = other.smc if isinstance(other, ExtractionReader) else other
        np.testing.assert_array_equal(handle["Calibration/25/K"][()], got)
    finally:
        other.close()


@pytest.mark.parametrize("then", ["h5py", "published", "compat", "extraction"])
def test_open_before_another_opener_in_process(files, then):
    """SMCReader first, then a plain ``h5py.File(path)``, the published reader's open, a second
    SMCReader or the extraction reader: everything opens and reads."""
    path = files["expr"]
    with SMCReader(path) as r:
        other = _first(then, path)
        handle = other.smc if isinstance(other, ExtractionReader) else other
        np.testing.assert_array_equal(handle["Calibration/25/K"][()], r.get_Calibration("25")["K"])
        other.close()
        assert r.get_Calibration(25)["K"].shape == (3, 3)  # still open after the other closed


def test_file_locked_by_a_writer_elsewhere_is_read_without_lock(tmp_path, caplog):
    """Another process holds HDF5's write lock: the reader falls back to an unlocked open and
    says so, instead of failing."""
    path = build_smc(tmp_path / "0026_e0_raw.smc", color={"25": {0: jpeg()}})
    code = textwrap.dedent(
        f"""
        import h5py, sys, time
        f = h5py.File({str(path)!r}, "a")
        print("locked", flush=True)
        sys.stdin.readline()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(BlockingIOError):
            h5py.File(path, "r")  # what the published reader would hit
        with caplog.at_level(logging.WARNING), SMCReader(path) as r:
            assert r.get_img("25", "color", 0).shape == (24, 32, 3)
        assert "write lock" in caplog.text
    finally:
        child.communicate("\n", timeout=30)


def test_open_failures_keep_the_published_exception_classes(tmp_path):
    with pytest.raises(FileNotFoundError):
        SMCReader(tmp_path / "missing.smc")
    bad = tmp_path / "bad.smc"
    bad.write_bytes(b"not hdf5" * 100)
    with pytest.raises(OSError, match="not a readable HDF5"):
        SMCReader(bad)
    for name in ("capture_date", "weight"):
        p = build_smc(tmp_path / f"{name}.smc", attrs={name: None}, camera_attrs={"num_frame": 3})
        with pytest.raises(KeyError, match=name):
            SMCReader(p)
        with h5py.File(p, "r", locking=True):  # the failed reader closed its handle
            pass
    no_camera = build_smc(tmp_path / "nocam.smc")
    with pytest.raises(KeyError, match="Camera"):
        SMCReader(no_camera)
    no_res = build_smc(tmp_path / "nores.smc", camera_attrs={"num_frame": 3})
    with h5py.File(no_res, "r+") as f:
        del f["Camera"].attrs["resolution"]
    with pytest.raises(KeyError, match="resolution"):
        SMCReader(no_res)


# ----------------------------------------------------------------------------------- attributes
def test_attributes_keep_their_stored_types(files):
    decoded_some = 0
    for path in files.values():
        with h5py.File(path, "r") as f:
            root = dict(f.attrs)
            cam = dict(f["Camera"].attrs)
        with SMCReader(path) as r:
            for name in ("actor_id", "performance_part", "capture_date"):
                value = getattr(r, name)
                assert type(value) is type(root[name]) and value == root[name]
                if isinstance(value, np.bytes_):
                    assert value.decode() == root[name].decode()
                    decoded_some += 1
            assert list(r.actor_info) == ACTOR_INFO
            for k in ACTOR_INFO:
                assert type(r.actor_info[k]) is type(root[k]) and r.actor_info[k] == root[k]
            assert r.get_actor_info() is r.actor_info
            assert list(r.Camera_info) == CAMERA_INFO
            assert isinstance(r.Camera_info["resolution"], np.ndarray)
            assert r.Camera_info["resolution"].tolist() == cam["resolution"].tolist()
            assert r.Camera_info["num_frame"] == cam["num_frame"]
            assert isinstance(r.Camera_info["num_device"], np.integer)
            assert r.get_Camera_info() is r.Camera_info
    assert decoded_some >= 1  # bytes-typed attributes were exercised


def test_read_color_from_bytes(files):
    with SMCReader(files["raw"]) as r:
        data = stored(files["raw"], "Camera/25/color/0")
        np.testing.assert_array_equal(
            r.__read_color_from_bytes__(data), cv2.imdecode(data, cv2.IMREAD_COLOR)
        )


# ----------------------------------------------------------------------------------- calibration
def test_calibration_all(files):
    path = files["expr"]
    with SMCReader(path) as r:
        cal = r.get_Calibration_all()
        assert list(cal) == keys(path, "Calibration")
        for cam, mats in cal.items():
            assert list(mats) == ["D", "K", "RT"]
            for k, v in mats.items():
                ref = stored(path, f"Calibration/{cam}/{k}")
                assert v.dtype == ref.dtype and v.shape == ref.shape
                np.testing.assert_array_equal(v, ref)
        assert r.get_Calibration_all() is cal  # computed once
    with SMCReader(files["raw"]) as r, pytest.raises(KeyError):
        r.get_Calibration_all()


def test_calibration_values_are_the_stored_arrays(tmp_path):
    """No reshaping: a D stored (1, 5) comes back (1, 5), as the published reader returns it."""
    cal = {"05": {**calib(5), "D": np.full((1, 5), 0.5)}, "25": calib(25)}
    path = build_smc(tmp_path / "0026_e0_anno.smc", calibration=cal, mask={"05": {0: png()}})
    with SMCReader(path) as r:
        assert r.get_Calibration("05")["D"].shape == (1, 5)
        assert r.get_Calibration_all()["05"]["D"].shape == (1, 5)


def test_calibration_key_rule(files, tmp_path):
    """``str(cam)`` must be a key: 25 works, 5 does not, '05' does."""
    cal = {"05": calib(5), "25": calib(25)}
    small = build_smc(tmp_path / "0026_e0_anno.smc", calibration=cal, mask={"25": {0: png()}})
    for path in (small, files["expr"]):
        with SMCReader(path) as r:
            for good in (25, "25", np.int64(25), "05"):
                if str(good) in keys(path, "Calibration"):
                    got = r.get_Calibration(good)
                    assert list(got) == ["D", "K", "RT"]
                    np.testing.assert_array_equal(got["K"], stored(path, f"Calibration/{good}/K"))
            for bad in (5, "5", 25.0, "x", "../25", b"25", None):
                err = assert_assertion(r.get_Calibration, bad)
                assert str(path) in str(err)
            assert "'05'" in str(assert_assertion(r.get_Calibration, 5))  # the hint
    with SMCReader(files["raw"]) as r, pytest.raises(KeyError):
        r.get_Calibration(25)


# ----------------------------------------------------------------------------------- images
def test_get_img_single_frames(files, capsys):
    path = files["raw"]
    with SMCReader(path) as r:
        for cam in keys(path, "Camera"):
            for fr in keys(path, f"Camera/{cam}/color"):
                expect = decoded(stored(path, f"Camera/{cam}/color/{fr}"))
                np.testing.assert_array_equal(r.get_img(cam, "color", int(fr)), expect)
                np.testing.assert_array_equal(r.get_img(cam, "color", fr), expect)
        np.testing.assert_array_equal(r.get_img(25, "color", 0), r.get_img("25", "color", "0"))
    assert capsys.readouterr() == ("", "")


def test_get_img_masks_are_the_max_over_decoded_channels(files):
    path = files["expr"]
    with SMCReader(path) as r:
        seen_three = 0
        for cam in keys(path, "Camera"):
            for fr in keys(path, f"Camera/{cam}/mask"):
                data = stored(path, f"Camera/{cam}/mask/{fr}")
                got = r.get_img(cam, "mask", fr)
                assert got.dtype == np.uint8 and got.ndim == 2
                np.testing.assert_array_equal(got, decoded(data, mask=True))
                colour = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
                seen_three += colour.ndim == 3
        assert seen_three == 1  # the file's 3-channel mask went through the same rule


def test_get_img_all_and_list_forms(files):
    path = files["expr"]
    with SMCReader(path) as r:
        frames = sorted(int(k) for k in keys(path, "Camera/25/mask"))
        every = r.get_img("25", "mask")
        assert every.shape[0] == len(frames) and every.dtype == np.uint8
        for i, fr in enumerate(frames):
            np.testing.assert_array_equal(every[i], r.get_img("25", "mask", fr))
        chosen = r.get_img(25, "mask", [frames[-1], str(frames[0]), frames[-1]], disable_tqdm=False)
        assert chosen.shape[0] == 3
        np.testing.assert_array_equal(chosen[0], every[-1])
        np.testing.assert_array_equal(chosen[1], every[0])
        with pytest.raises(ValueError):  # np.stack of nothing, as published
            r.get_img("25", "mask", [])


def test_get_img_all_frames_in_numeric_order(tmp_path):
    frames = {i: jpeg(8, 8, seed=i) for i in range(12)}  # keys '10', '11' sort before '2'
    path = build_smc(tmp_path / "0026_e0_raw.smc", color={"25": frames})
    with SMCReader(path) as r:
        every = r.get_img("25", "color")
        for i in range(12):
            np.testing.assert_array_equal(every[i], decoded(frames[i]))


def test_get_img_assertions(files):
    raw = files["raw"]
    with SMCReader(raw) as r:
        cams = keys(raw, "Camera")
        absent = next(f"{i:02d}" for i in range(60) if f"{i:02d}" not in cams)
        for args in [
            (int(absent), "color", 0),
            (absent, "color", 0),
            ("5", "color", 0),
            ("x", "color", 0),
            ("25", "depth", 0),
            ("25", "mask", 0),  # a raw file holds no masks
            ("25", "color", 9),
            ("25", "color", "01"),
            ("25", "color", -1),
            ("25", "color", "1.5"),
            ("25", "color", np.int64(0)),  # not an int for the published type check
            ("25", "color", 1.0),
            ("25", "color", (0,)),
            ("25", "color", [0, 1.0]),
        ]:
            err = assert_assertion(r.get_img, *args)
            assert str(raw) in str(err) or "Frame_id type" in str(err)


# ----------------------------------------------------------------------------------- audio
def test_get_audio(files, capsys):
    with SMCReader(files["raw"]) as r:
        assert r.get_audio() is None  # expression part: no audio, nothing printed
    path = files["speech"]
    with SMCReader(path) as r:
        a = r.get_audio()
        np.testing.assert_array_equal(a["audio"][()], stored(path, "Camera/00/audio/audio"))
        rate = a["sample_rate"][()]
        assert rate == stored(path, "Camera/00/audio/sample_rate") == 48000
        assert isinstance(rate, np.integer)
        assert sorted(a.keys()) == ["audio", "sample_rate"] and len(a) == 2
        assert "audio" in a and "nope" not in a
        assert a["audio"].shape == stored(path, "Camera/00/audio/audio").shape
        r.writemp3(io.BytesIO(), int(rate), a["audio"][()], normalized=True)
    with SMCReader(files["speech_anno"]) as r, pytest.raises(KeyError):
        r.get_audio()  # a speech part whose file holds no audio group
    assert capsys.readouterr() == ("", "")


def mp3_frames(data: bytes) -> list[tuple[int, int, int]]:
    """(bitrate kb/s, sample rate, channel mode) of every MPEG audio frame, walking the headers."""
    rates = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
    kbps_v1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    kbps_v2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
    pos, out = 0, []
    if data[:3] == b"ID3":
        size = data[6:10]
        pos = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    while pos + 4 <= len(data):
        h = int.from_bytes(data[pos : pos + 4], "big")
        if h >> 21 != 0x7FF:
            break
        version, layer = (h >> 19) & 3, (h >> 17) & 3
        assert layer == 1, "not layer III"
        kbps = (kbps_v1 if version == 3 else kbps_v2)[(h >> 12) & 15]
        rate = rates[version][(h >> 10) & 3]
        padding, mode = (h >> 9) & 1, (h >> 6) & 3
        size = (144 if version == 3 else 72) * kbps * 1000 // rate + padding
        out.append((kbps, rate, mode))
        pos += size
    tail = data[pos:]
    assert tail in (b"",) or tail.startswith(b"TAG"), f"{len(tail)} bytes after the last frame"
    return out


@pytest.mark.parametrize("rate", [48000, 44100, 32000])
def test_writemp3_is_320k_constant_bitrate(tmp_path, rate):
    seconds = 2
    t = np.arange(rate * seconds) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1234 * t)
    x = np.stack([left, 0.6 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)
    out = tmp_path / "a.mp3"
    SMCReader.writemp3(out, rate, x, normalized=True)
    data = out.read_bytes()
    frames = mp3_frames(data)
    assert {(k, r) for k, r, _ in frames} == {(320, rate)}  # every frame: 320 kb/s
    assert all(mode != 3 for _, _, mode in frames)  # stereo
    duration = len(frames) * 1152 / rate  # samples per MPEG-1 layer III frame
    assert len(data) * 8 / duration == pytest.approx(320_000, rel=0.01)
    assert duration == pytest.approx(seconds, abs=0.1)
    back, got_rate = sf.read(out, dtype="float32")
    assert got_rate == rate and back.shape[1] == 2 and back.shape[0] >= len(x)
    n = len(x) - 4000
    corr = max(np.corrcoef(back[lag : lag + n, 0], x[:n, 0])[0, 1] for lag in range(0, 3000))
    assert corr > 0.99  # the samples came through


def test_writemp3_conversions_follow_the_published_rules(tmp_path):
    rng = np.random.default_rng(1)
    pcm = (rng.random(48000) * 30000 - 15000).astype(np.int16)
    targets = {}
    for name, x, normalized in [
        ("int16_mono", pcm, False),
        ("float_as_int16", pcm.astype(np.float64), False),  # not normalized: values are int16
        ("normalized_mono", pcm / 2**15, True),
    ]:
        target = tmp_path / f"{name}.mp3"
        SMCReader.writemp3(str(target), 48000, x, normalized=normalized)
        frames = mp3_frames(target.read_bytes())
        assert {(k, m) for k, _, m in frames} == {(320, 3)}  # 320 kb/s, mono
        targets[name] = sf.read(target, dtype="int16")[0]
    np.testing.assert_array_equal(targets["int16_mono"], targets["float_as_int16"])
    np.testing.assert_array_equal(targets["int16_mono"], targets["normalized_mono"])
    buf = io.BytesIO()  # a file object works as a target too
    SMCReader.writemp3(buf, 48000, np.stack([pcm, pcm], 1))
    assert {m != 3 for _, _, m in mp3_frames(buf.getvalue())} == {True}


def test_extracted_audio_mp3_is_320k(tmp_path):
    synthesize(tmp_path / "d", performances=["s1_all"], cameras=2, frames=30, release=500)
    out = tmp_path / "out"
    argv = ["extract", str(tmp_path / "d"), "-o", str(out), "--modalities", "audio", "-q"]
    assert main([*argv, "--no-preview"]) == 0
    mp3 = next(out.rglob("audio.mp3"))
    frames = mp3_frames(mp3.read_bytes())
    assert {(k, r) for k, r, _ in frames} == {(320, 48000)}
    seconds = len(sf.read(next(out.rglob("audio.wav")))[0]) / 48000
    size = mp3.stat().st_size
    assert size <= mp3_size_estimate(seconds, 48000) <= 1.3 * size  # the planner's estimate


# ----------------------------------------------------------------------------------- keypoints
def _kp_expected(path: Path, group: str, frame: int) -> np.ndarray | None:
    with h5py.File(path, "r") as f:
        if str(frame) not in f[group] or len(f[group][str(frame)]) == 0:
            return None
        return f[group][str(frame)][()]


def test_get_keypoints2d_frames(files, capsys):
    path = files["expr"]
    cams = keys(path, "Keypoints2d")
    with SMCReader(path) as r:
        num = int(r.smc["Keypoints2d"].attrs["num_frame"])
        nones = 0
        for cam in [c for c in cams if 18 <= int(c) <= 32]:
            present = []
            for fr in range(num):
                expect = _kp_expected(path, f"Keypoints2d/{cam}", fr)
                for got in (r.get_Keypoints2d(int(cam), fr), r.get_Keypoints2d(cam, str(fr))):
                    if expect is None:
                        assert got is None
                    else:
                        assert isinstance(got, h5py.Dataset) and got.shape == expect.shape
                        np.testing.assert_array_equal(got[()], expect)
                nones += expect is None
                if expect is not None:
                    present.append(expect)
            stacked = r.get_Keypoints2d(cam, list(range(num)))
            np.testing.assert_array_equal(stacked, np.stack(present))
            group = r.get_Keypoints2d(cam)  # no frame: the camera's group, read by frame key
            assert sorted(group.keys()) == sorted(keys(path, f"Keypoints2d/{cam}"))
            assert len(group) == len(keys(path, f"Keypoints2d/{cam}"))
            for k in group:
                np.testing.assert_array_equal(group[k][()], stored(path, f"Keypoints2d/{cam}/{k}"))
        assert nones >= 2  # missing and empty frames were exercised
    assert capsys.readouterr() == ("", "")


def test_get_keypoints2d_rules(files, capsys):
    path = files["expr"]
    cams = keys(path, "Keypoints2d")
    frontal = next(c for c in cams if 18 <= int(c) <= 32)
    without = next(f"{i}" for i in range(18, 33) if f"{i}" not in cams)
    with SMCReader(path) as r:
        num = int(r.smc["Keypoints2d"].attrs["num_frame"])
        assert r.get_Keypoints2d(without, 0) is None  # published: prints, returns None
        assert r.get_Keypoints2d(int(without)) is None
        for cam in (5, "5", "05", 17, 33, 40, "x", None):
            assert_assertion(r.get_Keypoints2d, cam, 0)
        for frame in (num, -1, str(num)):
            assert_assertion(r.get_Keypoints2d, frontal, frame)
        for frame in (1.5, np.int64(0), (0,)):
            assert_assertion(r.get_Keypoints2d, frontal, frame)
        with pytest.raises(ValueError):
            r.get_Keypoints2d(frontal, "x")  # int('x'), as published
        missing = [f for f in range(num) if _kp_expected(path, f"Keypoints2d/{frontal}", f) is None]
        with pytest.raises(ValueError):  # only missing frames: np.stack of nothing
            r.get_Keypoints2d(frontal, missing or [])
    with SMCReader(files["raw"]) as r:
        with pytest.raises(KeyError):
            r.get_Keypoints2d(25, 0)  # no /Keypoints2d at all
        with pytest.raises(KeyError):
            r.get_Keypoints2d(25)
    assert capsys.readouterr() == ("", "")


def test_get_keypoints2d_stacked_dataset_form(tmp_path):
    """Copies that store Keypoints2d/{cam} as one (frames, n, 2) dataset are read by row."""
    arr = np.arange(3 * 106 * 2, dtype=float).reshape(3, 106, 2)
    p = build_smc(tmp_path / "0026_e0_anno.smc", mask={"25": {0: png()}})
    with h5py.File(p, "a") as f:
        g = f.create_group("Keypoints2d")
        g.attrs["num_frame"] = 3
        g.create_dataset("25", data=arr)
    with SMCReader(p) as r:
        np.testing.assert_array_equal(r.get_Keypoints2d(25, 1), arr[1])
        np.testing.assert_array_equal(r.get_Keypoints2d(25, [0, 2]), arr[[0, 2]])
        np.testing.assert_array_equal(r.get_Keypoints2d(25)[()], arr)


def test_get_keypoints3d(files, capsys):
    path = files["expr"]
    with SMCReader(path) as r:
        num = int(r.smc["Keypoints3d"].attrs["num_frame"])
        present = []
        for fr in range(num):
            expect = _kp_expected(path, "Keypoints3d", fr)
            for got in (r.get_Keypoints3d(fr), r.get_Keypoints3d(str(fr))):
                if expect is None:
                    assert got is None
                else:
                    assert isinstance(got, h5py.Dataset)
                    np.testing.assert_array_equal(got[()], expect)
            if expect is not None:
                present.append(expect)
        assert len(present) < num  # a missing or empty frame was exercised
        np.testing.assert_array_equal(r.get_Keypoints3d(list(range(num))), np.stack(present))
        group = r.get_Keypoints3d()
        assert sorted(group) == sorted(keys(path, "Keypoints3d"))
        assert group.attrs["num_frame"] == num and group.name == "/Keypoints3d"
        for k, v in group.items():
            np.testing.assert_array_equal(v[()], stored(path, f"Keypoints3d/{k}"))
        for frame in (num, -1):
            assert_assertion(r.get_Keypoints3d, frame)
        for frame in (1.5, np.int64(0)):
            assert_assertion(r.get_Keypoints3d, frame)
        with pytest.raises(ValueError):
            r.get_Keypoints3d("x")
        with pytest.raises(ValueError):
            r.get_Keypoints3d([])
    with SMCReader(files["raw"]) as r:
        for frame in (0, None, [0]):
            with pytest.raises(KeyError):
                r.get_Keypoints3d(frame)
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------------------------------- FLAME
def test_get_flame(files, capsys):
    path = files["expr"]
    with SMCReader(path) as r:
        group = r.get_FLAME()
        assert sorted(group) == sorted(keys(path, "FLAME")) and len(group) == 3
        for fr in keys(path, "FLAME"):
            for frame in (int(fr), fr):
                node = r.get_FLAME(frame)
                assert sorted(node.keys()) == sorted(keys(path, f"FLAME/{fr}"))
                for name in ("global_pose", "exp", "verts", "albedos"):
                    np.testing.assert_array_equal(
                        node[name][()], stored(path, f"FLAME/{fr}/{name}")
                    )
            np.testing.assert_array_equal(group[fr]["verts"][()], node["verts"][()])
            np.testing.assert_array_equal(group[f"{fr}/exp"][()], node["exp"][()])
        for frame in (3, -1, "3"):
            assert_assertion(r.get_FLAME, frame)
        for frame in (1.5, np.int64(0), (0,), {}):
            with pytest.raises(TypeError):
                r.get_FLAME(frame)
        with pytest.raises(ValueError):
            r.get_FLAME("x")
        with pytest.raises(KeyError):
            group["nope"]
        with pytest.raises(TypeError):
            group[0]
    for other in (files["raw"], files["speech"]):  # no /FLAME; a speech part
        with SMCReader(other) as r:
            assert r.get_FLAME() is None and r.get_FLAME(0) is None
    assert capsys.readouterr() == ("", "")


def test_get_flame_list_stacks_the_groups_as_published(files):
    """``np.stack`` over the frames' groups, exactly as the published reader does it: compare
    with the same call on the h5py groups themselves (result or exception class)."""
    path = files["expr"]

    def outcome(call):
        try:
            return call()
        except Exception as exc:
            return type(exc)

    with SMCReader(path) as r, h5py.File(path, "r") as f:
        ours = outcome(lambda: r.get_FLAME([0, "1"]))
        theirs = outcome(lambda: np.stack([f["FLAME/0"], f["FLAME/1"]], axis=0))
        if isinstance(theirs, type):
            assert isinstance(ours, type) and issubclass(ours, theirs)
        else:
            np.testing.assert_array_equal(ours, theirs)
        assert_assertion(r.get_FLAME, [0, 9])


# ----------------------------------------------------------------------------------- UV, scan
def test_get_uv(files, capsys):
    path = files["expr"]
    with SMCReader(path) as r:
        frames = sorted(int(k) for k in keys(path, "UV_texture"))
        for fr in frames:
            expect = decoded(stored(path, f"UV_texture/{fr}"))
            np.testing.assert_array_equal(r.get_uv(fr), expect)
            np.testing.assert_array_equal(r.get_uv(str(fr)), expect)
        every = r.get_uv(disable_tqdm=False)
        assert every.shape[0] == len(frames)
        np.testing.assert_array_equal(every[-1], r.get_uv(frames[-1]))
        np.testing.assert_array_equal(r.get_uv([frames[-1], frames[0]])[1], every[0])
        for frame in (99, "01", -1):
            assert_assertion(r.get_uv, frame)
        for frame in (1.5, np.int64(0)):
            assert_assertion(r.get_uv, frame)
    for other in (files["raw"], files["speech"]):
        with SMCReader(other) as r:
            assert r.get_uv() is None and r.get_uv(0) is None
    assert capsys.readouterr() == ("", "")


def _published_ply(vertices: np.ndarray, faces: np.ndarray, target: Path) -> None:
    """The documented output of the published write_ply, built element by element."""
    from plyfile import PlyData, PlyElement

    vertex = np.empty(len(vertices), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    for i, v in enumerate(vertices):
        vertex[i] = (v[0], v[1], v[2])
    face_t = [("vertex_indices", "i4", (3,)), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    face = np.empty(len(faces), dtype=face_t)
    for i, t in enumerate(faces):
        face[i] = ([t[0], t[1], t[2]], 255, 255, 255)
    elements = [PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")]
    PlyData(elements, text=True).write(str(target))


def test_get_scanmesh_and_write_ply(files, tmp_path, capsys):
    from plyfile import PlyData

    path = files["expr"]
    verts, faces = stored(path, "Scan/vertex"), stored(path, "Scan/vertex_indices")
    with SMCReader(path) as r:
        scan = r.get_scanmesh()
        assert sorted(scan) == ["vertex", "vertex_indices"]
        np.testing.assert_array_equal(scan["vertex"][()], verts)
        np.testing.assert_array_equal(scan["vertex_indices"][()], faces)
        r.write_ply(scan, outpath=tmp_path / "ours.ply")
        r.write_ply({"vertex": verts, "vertex_indices": faces}, str(tmp_path / "dict.ply"))
    _published_ply(verts, faces, tmp_path / "published.ply")
    published = (tmp_path / "published.ply").read_bytes()
    assert (tmp_path / "ours.ply").read_bytes() == published
    assert (tmp_path / "dict.ply").read_bytes() == published
    ply = PlyData.read(str(tmp_path / "ours.ply"))
    assert ply.text and ply["vertex"]["x"].dtype == np.float32
    np.testing.assert_array_equal(ply["vertex"]["x"], verts[:, 0].astype(np.float32))
    assert set(ply["face"]["red"]) == set(ply["face"]["blue"]) == {255}
    np.testing.assert_array_equal(np.stack(ply["face"]["vertex_indices"]), faces)
    with SMCReader(files["raw"]) as r, pytest.raises(KeyError):
        r.get_scanmesh()  # expression part without /Scan
    with SMCReader(files["speech"]) as r:
        assert r.get_scanmesh() is None
    assert capsys.readouterr() == ("", "")


def test_get_scanmask(files):
    path = files["expr"]
    cams = keys(path, "Camera")
    with SMCReader(path) as r:
        for cam in keys(path, "ScanMask"):
            got = r.get_scanmask(cam)
            np.testing.assert_array_equal(got, decoded(stored(path, f"ScanMask/{cam}"), True))
            if int(cam) >= 10:
                np.testing.assert_array_equal(r.get_scanmask(int(cam)), got)
            else:  # str(0) is '0', not the key '00': the published key rule
                assert_assertion(r.get_scanmask, int(cam))
        assert len(cams) < 60
        absent = next(f"{i:02d}" for i in range(60) if f"{i:02d}" not in cams)
        assert_assertion(r.get_scanmask, absent)
        assert_assertion(r.get_scanmask)  # None asks for '00'..'59'; this file has fewer
        assert_assertion(r.get_scanmask, 1.5)
        assert_assertion(r.get_scanmask, "5")
    with SMCReader(files["raw"]) as r, pytest.raises(KeyError):
        r.get_scanmask("25")  # no /ScanMask


def test_get_scanmask_all_sixty_and_missing_camera(tmp_path):
    masks = {f"{i:02d}": png(8, 8, seed=i, channels=1 + 2 * (i == 7)) for i in range(60)}
    path = build_smc(
        tmp_path / "0026_e0_anno.smc",
        mask={c: {0: png(8, 8)} for c in masks},
        scanmask={c: m for c, m in masks.items() if c != "59"},
    )
    with SMCReader(path) as r:
        with pytest.raises(KeyError, match="ScanMask"):
            r.get_scanmask("59")  # in /Camera, not in /ScanMask
        with pytest.raises(KeyError):
            r.get_scanmask()
    with h5py.File(path, "r+") as f:
        f["ScanMask"].create_dataset("59", data=np.frombuffer(masks["59"], np.uint8))
    with SMCReader(path) as r:
        every = r.get_scanmask()
        assert every.shape == (60, 8, 8) and every.dtype == np.uint8
        np.testing.assert_array_equal(every[7], decoded(masks["07"], mask=True))


# ----------------------------------------------------------------------------------- safety
def test_published_face_refuses_hostile_content(tmp_path):
    """The published face reads through the extraction reader's checks: hostile names, absurd
    declared sizes, external links and non-image bytes are refused with a Renderme360Error."""
    pair = full_pair(tmp_path / "d")
    path = pair["anno"]
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["secret"] = np.arange(106 * 2, dtype=float).reshape(106, 2)
    with h5py.File(path, "r+") as f:
        f["Calibration"].create_group("..")
        del f["Keypoints3d/1"]
        f["Keypoints3d"]["1"] = h5py.ExternalLink(str(outside), "/secret")
        f["FLAME/0"].create_dataset("huge", shape=(1 << 20, 1 << 12), dtype="f8")
        f["FLAME/1"].create_dataset("bad name", data=np.zeros(3))
        f["Camera/25/mask"].create_dataset("9", data=np.frombuffer(b"not an image", np.uint8))
    with SMCReader(path) as r:
        with pytest.raises(UnsafeNameError):
            r.get_Calibration_all()
        assert_assertion(r.get_Calibration, "..")
        with pytest.raises(UnsafeNameError, match="external link"):
            r.get_Keypoints3d(1)
        with pytest.raises(UnsafeNameError):
            r.get_Keypoints3d()["1"]
        with pytest.raises(SMCFormatError, match=r"too large|only"):
            r.get_FLAME(0)["huge"]
        with pytest.raises(UnsafeNameError):
            list(r.get_FLAME(1))
        with pytest.raises(SMCFormatError, match="not an encoded image"):
            r.get_img("25", "mask", 9)
        np.testing.assert_array_equal(r.get_FLAME(0)["exp"][()], pair["flame"][0]["exp"])


def test_extraction_api_is_inherited_and_lenient(files):
    """The project's own calls stay available on the published face, with their own rules."""
    with SMCReader(files["raw"]) as r:
        cams = keys(files["raw"], "Camera")
        with_color = [c for c in cams if "color" in keys(files["raw"], f"Camera/{c}")]
        assert r.list_cameras("color") == with_color and "25" in with_color
        assert r.read_blob("color", 25, 0) == bytes(stored(files["raw"], "Camera/25/color/0"))
        assert r.read_calibration_all() is None and r.list_keypoints3d_frames() == []
        with pytest.raises(InvalidIdError):
            r.get_img_bytes(25, "color", 99)


def test_get_flame_missing_frame_and_missing_count_are_key_errors(tmp_path):
    path = build_smc(
        tmp_path / "0026_e0_anno.smc",
        mask={"25": {0: png()}},
        flame={0: flame_frame(0), 2: flame_frame(2)},
    )
    with SMCReader(path) as r:
        np.testing.assert_array_equal(r.get_FLAME(2)["exp"][()], flame_frame(2)["exp"])
        with pytest.raises(KeyError, match="frame 1"):
            r.get_FLAME(1)  # within num_frame, not stored: flame['1'] fails, as published
        assert sorted(r.get_FLAME()) == ["0", "2"]
    with h5py.File(path, "r+") as f:
        del f["FLAME"].attrs["num_frame"]
    with SMCReader(path) as r, pytest.raises(KeyError, match="num_frame"):
        r.get_FLAME(0)

"""export talkinghead / export clips on synthetic full-resolution speech takes (PyAV checks)."""

from __future__ import annotations

import csv
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from renderme360 import load
from renderme360.camera import Camera
from renderme360.cli import main
from renderme360.export import video as video_mod
from renderme360.export.clips import export_clips
from renderme360.export.talkinghead import export_talkinghead
from renderme360.formats.audio import pcm16
from renderme360.synth import synthesize

FRAMES = 8  # 8 / 30 s per take: 7 frames at 25 fps (frame 5 of each 6 skipped)
SIZE = 256


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("av") / "data"
    synthesize(root, performances=("s1_all", "s2_all", "e0"), cameras=1, frames=FRAMES,
               resolution="full")  # fmt: skip
    return root


def _perf(data: Path, name: str):
    return load(data, "0026", name)


def _video(path: Path) -> tuple[list[np.ndarray], object, bool, str | None]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate, has_audio = stream.average_rate, bool(c.streams.audio)
        comment = c.metadata.get("comment")
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, rate, has_audio, comment


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _reference(perf, frame: int, box: list[int], size: tuple[int, int]) -> np.ndarray:
    """The source frame decoded at full size by OpenCV, cropped and area-resized."""
    bgr = cv2.imdecode(np.frombuffer(perf.image_bytes("25", frame), np.uint8), cv2.IMREAD_COLOR)
    x0, y0, w, h = box
    crop = cv2.cvtColor(bgr[y0 : y0 + h, x0 : x0 + w], cv2.COLOR_BGR2RGB)
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def _covering(j: int, fps: int, start: Fraction, cfps: Fraction, n: int) -> int:
    """The source frame covering output frame j, computed here independently of the package."""
    t = max(Fraction(j, fps) - start, Fraction(0))
    return min(math.floor(t * cfps), n - 1)


@pytest.fixture(scope="module")
def talking(data, tmp_path_factory):
    dest = tmp_path_factory.mktemp("th")
    perfs = [_perf(data, "s1_all"), _perf(data, "s2_all")]
    summary = export_talkinghead(perfs, "25", dest, name="subj", size=SIZE)
    return perfs, dest / "subj", summary


def test_talkinghead_stream_facts_and_wav(talking) -> None:
    perfs, folder, summary = talking
    frames, rate, has_audio, _ = _video(folder / "subj.mp4")
    duration = sum(Fraction(len(p.audio()[0]), p.audio()[1]) for p in perfs)
    assert rate == 25 and has_audio
    assert len(frames) == math.floor(duration * 25 + Fraction(1, 2)) == summary.frames == 13
    assert frames[0].shape == (SIZE, SIZE, 3)
    wav, sr = sf.read(folder / "aud.wav", dtype="int16")
    info = sf.info(folder / "aud.wav")
    assert (sr, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(len(wav) / 16000 - len(frames) / 25) <= 1 / 25


def test_talkinghead_frames_show_the_source_frame_covering_t(talking) -> None:
    perfs, folder, _ = talking
    frames, *_ = _video(folder / "subj.mp4")
    doc = json.loads((folder / "camera.json").read_text())
    box = [doc["crop"][k] for k in ("x0", "y0", "w", "h")]
    take_len = Fraction(FRAMES, 30)
    checked = 0
    for j, got in enumerate(frames):
        take = 0 if Fraction(j, 25) < take_len - Fraction(1, 50) else 1
        f = _covering(j, 25, take * take_len, Fraction(30), FRAMES)
        ref = _reference(perfs[take], f, box, (SIZE, SIZE))
        assert _psnr(got, ref) > 35, (j, take, f)
        other = _reference(perfs[take], (f + 3) % FRAMES, box, (SIZE, SIZE))
        assert _psnr(got, other) < _psnr(got, ref) - 3  # the comparison can tell frames apart
        checked += 1
    assert checked == 13


def test_concatenated_takes_stay_aligned_at_the_boundary(talking) -> None:
    perfs, folder, _ = talking
    rows = (folder / "segments.csv").read_text().splitlines()[1:]
    second = rows[1].split(",")
    first_frame, first_sample = int(second[1]), int(second[3])
    assert abs(first_frame / 25 - first_sample / 16000) <= 0.5 / 25
    assert (first_frame, first_sample) == (7, 4267)  # round(8/30 * 25), round(8/30 * 16000)
    wav, _ = sf.read(folder / "aud.wav", dtype="int16")
    for i, perf in enumerate(perfs):
        mine = pcm16(perf.audio(16000, mono=True)[0])
        part = wav[:first_sample] if i == 0 else wav[first_sample:]
        n = min(len(part), len(mine))
        assert n >= len(part) - 1
        assert np.max(np.abs(part[:n].astype(int) - mine[:n])) <= 1


def test_crop_intrinsics_project_3d_keypoints_onto_mapped_2d(talking) -> None:
    perfs, folder, _ = talking
    doc = json.loads((folder / "camera.json").read_text())
    crop = doc["crop"]
    cam = Camera("25", np.array(doc["K"]), np.array(doc["D"]), np.array(doc["c2w"]),
                 doc["width"], doc["height"])  # fmt: skip
    perf = perfs[0]
    f3, k3 = perf.keypoints3d()
    f2, k2 = perf.keypoints2d("25")
    s = SIZE / crop["w"]
    checked = 0
    for i, frame in enumerate(f3):
        rows = np.flatnonzero(f2 == frame)
        if not rows.size or not len(k3[i]):
            continue
        mapped = (k2[rows[0]][33:].astype(np.float64) + 0.5 - [crop["x0"], crop["y0"]]) * s - 0.5
        err = np.linalg.norm(cam.project(k3[i]) - mapped, axis=1)
        assert err.max() < 0.5
        checked += 1
    assert checked >= 5


def test_clips_rows_rederive_frames_and_samples(data, tmp_path) -> None:
    perfs = [_perf(data, n) for n in ("s1_all", "s2_all", "e0")]
    summary = export_clips(perfs, tmp_path, cameras="25", clip_seconds=0.1, fps=16, size=SIZE)
    rows = [json.loads(x) for x in (tmp_path / "clips.jsonl").read_text().splitlines()]
    assert len(rows) == summary.videos == 6 and summary.reused == 0
    assert any("0026_e0: no audio" in n for n in summary.notes)
    for row in rows:
        perf = next(p for p in perfs if p.performance == row["performance"])
        cfps = Fraction(row["capture_fps"]).limit_denominator(1000)
        dur = Fraction(row["num_frames"]) / cfps
        frames, rate, has_audio, _ = _video(tmp_path / row["video"])
        assert rate == 16 and len(frames) == row["video_frames"] == round(dur * 16)
        box = [row[k] for k in ("x0", "y0", "w", "h")]
        for j, got in enumerate(frames):
            f = row["start_frame"] + math.floor(Fraction(j, 16) * cfps)
            assert _psnr(got, _reference(perf, f, box, (row["width"], row["height"]))) > 35
        if row["performance"] == "e0":
            assert not has_audio and row["audio"] == "" and row["num_samples"] == ""
            continue
        start = round(Fraction(row["start_frame"]) / cfps * 16000)
        assert (row["start_sample"], row["num_samples"]) == (start, round(dur * 16000))
        wav, sr = sf.read(tmp_path / row["audio"], dtype="int16")
        mine = pcm16(perf.audio(16000, mono=True)[0])[start : start + row["num_samples"]]
        assert sr == 16000 and len(wav) == row["num_samples"]
        assert np.max(np.abs(wav.astype(int) - mine)) <= 1
    csv_rows = (tmp_path / "clips.csv").read_text().splitlines()
    assert len(csv_rows) == 7 and csv_rows[0].startswith("subject,performance,camera,start_frame")


def test_clips_rerun_skips_finished_and_redoes_a_foreign_half_file(data, tmp_path) -> None:
    perfs = [_perf(data, "s1_all")]
    export_clips(perfs, tmp_path, clip_seconds=0.1, fps=16, size=64)
    rows = [json.loads(x) for x in (tmp_path / "clips.jsonl").read_text().splitlines()]
    first, second = (tmp_path / r["video"] for r in rows)
    keep = first.stat().st_mtime_ns
    second.write_bytes(second.read_bytes()[:200])  # a half file under the final name
    again = export_clips(perfs, tmp_path, clip_seconds=0.1, fps=16, size=64)
    assert (again.videos, again.reused) == (2, 1)
    assert first.stat().st_mtime_ns == keep
    assert len(_video(second)[0]) == rows[1]["video_frames"]
    other = export_clips(perfs, tmp_path, clip_seconds=0.1, fps=8, size=64)  # new choices
    assert other.reused == 0


def test_failed_run_leaves_no_half_mp4_under_a_final_name(data, tmp_path, monkeypatch) -> None:
    perfs = [_perf(data, "s1_all")]
    real = video_mod.frame_yuv
    calls = {"n": 0}

    def failing(perf, camera, frame, how):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk went away")
        return real(perf, camera, frame, how)

    monkeypatch.setattr("renderme360.export.talkinghead.frame_yuv", failing)
    with pytest.raises(OSError):
        export_talkinghead(perfs, "25", tmp_path, name="x", size=64)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*"))
    calls["n"] = 0
    monkeypatch.setattr("renderme360.export.clips.frame_yuv", failing)
    with pytest.raises(OSError):
        export_clips(perfs, tmp_path / "c", clip_seconds=0.1, fps=16, size=64, workers=1)
    names = sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert "0026_s1_all_cam25_000000.mp4" in names  # the finished clip, whole
    assert "0026_s1_all_cam25_000003.mp4" not in names  # the failed one: no half file
    assert not [n for n in names if n.endswith(".tmp")]
    finished = list((tmp_path / "c").rglob("*.mp4"))
    assert all(len(_video(p)[0]) == 2 for p in finished)  # whole, never half
    monkeypatch.setattr("renderme360.export.clips.frame_yuv", real)
    again = export_clips(perfs, tmp_path / "c", clip_seconds=0.1, fps=16, size=64, workers=1)
    assert again.reused == len(finished) and again.videos == 2


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["talkinghead", "{d}", "--performance", "x*", "--camera", "25"], 6, ["0026_s1_all"]),
        (["clips", "{d}", "--performance", "s1_all", "--cameras", "33"], 6, ["with images: 25"]),
        (["talkinghead", "{d}", "--performance", "s1_all", "--camera", "33"], 6, ["images: 25"]),
        (["talkinghead", "{d}", "--performance", "e0", "--camera", "25"], 2, ["no audio"]),
    ],
)
def test_selection_errors_are_one_line(data, tmp_path, capsys, argv, code, words) -> None:
    args = ["export", *(a.format(d=data) for a in argv), "-o", str(tmp_path / "o")]
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err


def test_loader_time_and_audio(data) -> None:
    perf = _perf(data, "s1_all")
    assert list(perf.video_frames(25)) == [0, 1, 2, 3, 4, 6, 7]
    np.testing.assert_allclose(perf.frame_times(), np.arange(FRAMES) / 30)
    audio, rate = perf.audio(rate=16000, mono=True)
    stored, stored_rate = perf.audio()
    assert rate == 16000 and audio.ndim == 1 and stored_rate == 48000
    assert len(audio) == math.ceil(len(stored) / 3)
    spans = [perf.audio_span(f, rate=16000) for f in range(FRAMES)]
    assert spans[0][0] == 0 and spans[-1][1] == round(len(stored) / 3)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    # a real resampler: a 7 kHz tone survives, a 10 kHz tone (above 16 kHz Nyquist) is removed
    t = np.arange(48000) / 48000
    from renderme360.formats.audio import resample

    keep = resample(np.sin(2 * np.pi * 7000 * t).astype(np.float32), 48000, 16000)
    drop = resample(np.sin(2 * np.pi * 10000 * t).astype(np.float32), 48000, 16000)
    assert np.std(keep[100:-100]) > 0.6 and np.std(drop[100:-100]) < 0.01


@pytest.mark.parametrize(
    "size, scale", [(512, 2), (540, 2), (542, 1), (270, 4), (272, 2), (134, 8), (136, 4)]
)
def test_decode_scale_is_the_largest_that_keeps_the_output_size(size, scale) -> None:
    points = np.array([[900.0, 700.0], [1500.0, 1300.0]])  # extent 600 x 1.8: a 1080 px box
    how = video_mod.framing("face", size, 2448, 2048, points)
    assert how.box[2] == 1080 and how.scale == scale
    assert how.box[2] // how.scale >= size and (scale == 8 or how.box[2] // (2 * scale) < size)
    full = video_mod.framing("full", 256, 2448, 2048)  # 2448x2048 -> 256x214: 1/8 holds it
    assert (full.width, full.height, full.scale) == (256, 214, 8)


def test_read_ahead_keeps_order_bounds_memory_and_stops_at_an_error() -> None:
    pulled, calls = [0], []

    def items():
        for i in range(40):
            pulled[0] += 1
            yield i

    def work(i: int) -> int:
        calls.append(i)
        if i == 20:
            raise ValueError("frame 20 is corrupt")
        return i * i

    got = []
    with pytest.raises(ValueError, match="frame 20"):
        for x in video_mod.read_ahead(work, items(), threads=3):
            assert pulled[0] <= len(got) + 1 + 2 * 3 + 1  # never more than 2 x threads ahead
            got.append(x)
    assert got == [i * i for i in range(20)]
    settled = len(calls)  # queued items were dropped, running ones waited for: nothing runs on
    assert settled <= 20 + 2 * 3 + 1 and len(calls) == settled
    assert list(video_mod.read_ahead(lambda i: -i, range(5), threads=1)) == [0, -1, -2, -3, -4]


@pytest.mark.parametrize("workers, threads", [(1, 4), (2, 2), (3, 1), (8, 1)])
def test_clip_workers_split_the_cpus_for_x264_and_decoding(
    data, tmp_path, monkeypatch, workers, threads
) -> None:
    """Each clip worker gets CPUs / workers threads (x264 and decode), not x264's 1.5 per core
    in every worker (2 workers on 2 cores ran slower than 1)."""
    monkeypatch.setattr(video_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    seen: dict[str, object] = {}

    def fake_run(tasks, n_tasks, n, progress, chunk, fn):
        seen["n"], seen["threads"] = n, {t.threads for t in tasks}
        return 0

    monkeypatch.setattr("renderme360.export.clips.run_tasks", fake_run)
    perfs = [_perf(data, "s1_all")]
    export_clips(perfs, tmp_path / "c", clip_seconds=0.1, fps=16, size=64, workers=workers)
    assert seen == {"n": workers, "threads": {threads}}


def test_clip_encoder_runs_with_the_workers_thread_share(data, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(video_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    real, used = video_mod.encode_mp4, []

    def spy(*args, threads=0, **kw):
        used.append(threads)
        return real(*args, threads=threads, **kw)

    monkeypatch.setattr("renderme360.export.clips.encode_mp4", spy)
    perfs = [_perf(data, "s1_all")]
    s = export_clips(perfs, tmp_path / "c", clip_seconds=0.1, fps=16, size=64, workers=1)
    assert used == [6] * s.videos and s.videos == 2
    rows = list(csv.DictReader((tmp_path / "c" / "clips.csv").open()))
    assert [len(_video(tmp_path / "c" / r["video"])[0]) for r in rows] == [2, 2]


# ---------------------------------------------------------------- reads an export does not need
def _smc(data: Path, role: str, perf: str = "s1_all") -> Path:
    return data / role / "0026" / f"0026_{perf}_{role}.smc"


def test_smc_images_are_read_by_offset_not_through_hdf5(data, monkeypatch) -> None:
    """Plain blobs of a local SMC file come by one pread at their offset (no HDF5 call, the
    GIL released for the decode threads), byte-equal to HDF5's own read."""
    import h5py

    from renderme360.smc.reader import ExtractionReader

    with h5py.File(_smc(data, "raw"), "r") as f:
        stored = {int(k): v[()].tobytes() for k, v in f["Camera/25/color"].items()}

    def no_hdf5(*args, **kwargs):
        raise AssertionError("read through HDF5")

    monkeypatch.setattr(ExtractionReader, "read_blob", no_hdf5)
    perf = _perf(data, "s1_all")
    assert {f: perf.image_bytes("25", f) for f in perf.image_frame_ids("25")} == stored
    assert perf.image("25", 0, scale=2).shape == (1024, 1224, 3)


def test_a_blob_without_an_offset_is_read_through_hdf5(data, tmp_path) -> None:
    """A chunked, compressed blob (hand-written with h5py) has no offset to read at: it is read
    through HDF5's checked read, the plain frames beside it by offset, all byte-exact."""
    import shutil

    import h5py

    root = tmp_path / "data"
    shutil.copytree(data, root)
    with h5py.File(_smc(root, "raw"), "a") as f:
        group = f["Camera/25/color"]
        original = group["3"][()]
        del group["3"]
        group.create_dataset("3", data=original, chunks=(4096,), compression="gzip")
        stored = {int(k): v[()].tobytes() for k, v in group.items()}
    perf = _perf(root, "s1_all")
    assert {f: perf.image_bytes("25", f) for f in perf.image_frame_ids("25")} == stored
    assert perf.image_bytes("25", 3) == original.tobytes()


def test_one_camera_reads_its_calibration_alone(data, tmp_path, monkeypatch) -> None:
    """perf.camera(id) from SMC files reads that camera's calibration only (the talkinghead
    export asked for all 60 cameras' twice); a NaN in another camera does not matter, in its
    own it is refused with the message of perf.cameras[id]."""
    import shutil

    import h5py

    from renderme360.errors import InvalidIdError
    from renderme360.loader.smc_source import SMCSource

    whole = _perf(data, "s1_all").cameras["25"]
    with monkeypatch.context() as m:
        m.setattr(SMCSource, "calibration", lambda self: pytest.fail("read every camera"))
        one = _perf(data, "s1_all").camera(25)
    assert np.array_equal(one.K, whole.K) and np.array_equal(one.c2w, whole.c2w)
    assert np.array_equal(one.D, whole.D) and (one.width, one.height) == (2448, 2048)

    root = tmp_path / "data"
    shutil.copytree(data, root)
    with h5py.File(_smc(root, "anno"), "a") as f:
        f["Calibration/24/K"][0, 0] = np.nan
    assert np.array_equal(_perf(root, "s1_all").camera("25").K, whole.K)
    with h5py.File(_smc(root, "anno"), "a") as f:
        f["Calibration/25/K"][0, 0] = np.nan
    with pytest.raises(InvalidIdError) as one_err:
        _perf(root, "s1_all").camera("25")
    with pytest.raises(InvalidIdError) as all_err:
        _perf(root, "s1_all").cameras["25"]
    assert str(one_err.value) == str(all_err.value) and "left out" in str(one_err.value)
    with pytest.raises(InvalidIdError, match="no calibration for camera 99"):
        _perf(root, "s1_all").camera("99")


def test_has_probes_only_the_modality_asked(data, monkeypatch) -> None:
    """perf.has("audio") (what the video exports ask) probes audio alone, not all nine
    modalities of both files; perf.modalities still probes them all."""
    from renderme360.loader import smc_source

    def boom(reader):
        raise AssertionError("probed FLAME")

    monkeypatch.setitem(smc_source.HOLDS, "flame", boom)
    perf = _perf(data, "s1_all")
    assert perf.has("audio") and perf.has("images") and not perf.has("no such thing")
    with pytest.raises(AssertionError, match="probed FLAME"):
        assert perf.modalities


def test_video_export_does_not_import_the_other_exports(data, tmp_path) -> None:
    """`export talkinghead` imports neither the GaussianAvatars code nor rich (not a terminal):
    start-up is part of what the user waits for (issue 22's speed goal is the whole command)."""
    import subprocess
    import sys

    out = tmp_path / "o"
    code = (
        "import sys; from renderme360.cli import main; "
        f"rc = main(['export', 'talkinghead', {str(data)!r}, '--performance', 's1_all', "
        f"'--camera', '25', '--size', '64', '-o', {str(out)!r}, '-q']); "
        "heavy = ('renderme360.export.gaussianavatars', 'rich', 'scipy'); "
        "print(sorted(m for m in heavy if m in sys.modules)); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    assert (out / "0026_s1_all" / "0026_s1_all.mp4").stat().st_size > 0

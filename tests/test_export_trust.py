"""Exports that must not lie: a locked DEST, symlinked parents, masks nerfstudio accepts, binary
reduced masks, honest README/notes/messages, and workers that die with a killed export.

Hostile states are made with os calls (flock, symlink, kill -9), not with the export itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import session_processes

from renderme360.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "renderme360"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Synthetic e0 (8 cameras, 3 frames; one mask PNG has 3 channels), extracted."""
    from renderme360.synth import synthesize

    root = tmp_path_factory.mktemp("trust")
    synthesize(root / "smc", "0026", ["e0"], 21, cameras=8, frames=3, resolution="small")
    assert main(["extract", str(root / "smc"), "-o", str(root / "out"), "-q", "--no-preview"]) == 0
    return root / "smc", root / "out" / "0026_e0"


def _contents(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _referenced(dest: Path) -> list[Path]:
    """Every file transforms.json names, as nerfstudio joins it: DEST / file_path."""
    doc = json.loads((dest / "transforms.json").read_text())
    return [dest / f[k] for f in doc["frames"] for k in ("file_path", "mask_path") if k in f]


# ---------------------------------------------------------------------------- item 3: the lock
def test_locked_dest_exits_4_and_leaves_dest_unchanged(extracted, tmp_path, capsys) -> None:
    """Another process holds DEST's lock (a plain flock here): the export exits 4 naming the
    folder and --wait, and DEST, including that run's staged temp file, is untouched."""
    _smc, perf = extracted
    dest = tmp_path / "d"
    argv = ["export", "nerfstudio", str(perf), "--downscale", "2", "-o", str(dest), "-q"]
    assert main([*argv, "--frames", "0"]) == 0
    staged = dest / "images_2" / "cam_22" / ".frame_000001.jpg.0123abcd.tmp"
    staged.write_bytes(b"the other run's half-written image")
    fd = os.open(dest / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"4242")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    before = _contents(dest)
    capsys.readouterr()
    try:
        assert main(argv) == 4  # all frames: would remove nothing, rewrite transforms.json
    finally:
        os.close(fd)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(dest) in err and "pid 4242" in err and "--wait" in err, err
    assert _contents(dest) == before
    staged.unlink()
    (dest / ".lock").unlink()
    assert main(argv) == 0 and not (dest / ".lock").exists()  # free again: the lock file goes


def test_two_exports_into_one_dest_with_wait_stay_consistent(extracted, tmp_path) -> None:
    """A wide and a narrow export started together into one DEST with --wait: both exit 0 one
    after the other, and every file transforms.json names exists (none removed as stale by
    the other run); then in sequence, narrow after wide and wide after narrow, the same."""
    _smc, perf = extracted
    dest = tmp_path / "d"
    opts = ["--downscale", "2", "--workers", "1", "-o", str(dest), "--wait", "-q"]
    base = [sys.executable, "-m", "renderme360", "export", "nerfstudio", str(perf), *opts]
    procs = [
        subprocess.Popen([*base, *extra], stderr=subprocess.PIPE, text=True)
        for extra in ([], ["--cameras", "22,25", "--frames", "0"])
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for extra in ([], ["--cameras", "22", "--frames", "1"], []):
        assert main(["export", "nerfstudio", str(perf), *opts, *extra]) == 0
        refs = _referenced(dest)
        assert refs and all(r.is_file() for r in refs), [r for r in refs if not r.is_file()]
        assert not list(dest.rglob("*.tmp"))


# ---------------------------------------------------------------------------- item 6: symlinks
@pytest.mark.parametrize("where", ["dest", "source", "both"])
def test_file_paths_hold_under_symlinked_parents(extracted, tmp_path, where) -> None:
    """~/scratch -> /lustre/...: a symlinked parent of DEST, of the source folder, or of both;
    every file_path/mask_path opened from DEST as the user names it is the source's file."""
    _smc, perf = extracted
    real_src = tmp_path / "lustre" / "u" / "data"
    shutil.copytree(perf, real_src / "0026_e0", ignore=shutil.ignore_patterns("exports"))
    os.symlink(real_src, tmp_path / "scratch")
    real_dest = tmp_path / "fs2" / "a" / "b" / "c"
    real_dest.mkdir(parents=True)
    os.symlink(real_dest, tmp_path / "out")
    src = (tmp_path / "scratch" if where != "dest" else real_src) / "0026_e0"
    dest = (tmp_path / "out" if where != "source" else real_dest) / "ns"
    argv = ["export", "nerfstudio", str(src), "--frames", "0:2", "--masks", "-o", str(dest)]
    assert main([*argv, "-q"]) == 0
    import renderme360 as rm

    p = rm.load(real_src / "0026_e0")
    doc = json.loads((dest / "transforms.json").read_text())
    assert len(doc["frames"]) == 16
    for f in doc["frames"]:
        got = (dest / f["file_path"]).read_bytes()
        assert got == p.image_path(f"{f['camera_id']:02d}", f["frame_index"]).read_bytes()
        assert (dest / f["mask_path"]).is_file()


def test_reference_that_does_not_open_fails_and_writes_nothing(extracted, tmp_path, capsys):
    """The check after writing: an image the export would name that is not a regular file
    (a FIFO planted with os.mkfifo) fails the export with one line; DEST is not created."""
    _smc, perf = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf, copy, ignore=shutil.ignore_patterns("exports"))
    img = copy / "from_raw" / "images" / "cam_25" / "frame_000000.jpg"
    img.unlink()
    os.mkfifo(img)
    dest = tmp_path / "d"
    code = main(["export", "nerfstudio", str(copy), "--frames", "0", "-o", str(dest)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "cam_25/frame_000000.jpg: not a regular file" in err, err
    assert len(err.splitlines()) == 1 and not dest.exists()


# ---------------------------------------------------------------------------- items 17, 18: masks
def _channels(path: Path) -> int:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return 1 if img.ndim == 2 else img.shape[2]


@pytest.mark.parametrize("from_smc", [False, True])
def test_masks_given_to_nerfstudio_are_single_channel(extracted, tmp_path, from_smc) -> None:
    """At --downscale 1 every mask_path is a 1-channel image (nerfstudio: "The mask image
    should have 1 channel"); the 3-channel source mask becomes a PNG copy holding the max over
    its channels, 1-channel masks stay where they lie (folder) or byte-identical (SMC)."""
    smc, perf = extracted
    import renderme360 as rm

    p = rm.load(perf)
    three = [
        (c, f)
        for c in p.image_camera_ids
        for f in p.mask_frame_ids(c)
        if _channels(p.mask_path(c, f)) == 3
    ]
    assert len(three) == 1  # the synthetic anno file holds exactly one
    src = [str(smc), "--subject", "0026", "--performance", "e0"] if from_smc else [str(perf)]
    dest = tmp_path / "ns"
    argv = ["export", "nerfstudio", *src, "--masks", "-o", str(dest), "--json"]
    assert main(argv) == 0
    doc = json.loads((dest / "transforms.json").read_text())
    for f in doc["frames"]:
        cam, frame = f"{f['camera_id']:02d}", f["frame_index"]
        mask = dest / f["mask_path"]
        assert _channels(mask) == 1, f["mask_path"]
        source = p.mask_path(cam, frame)
        if (cam, frame) in three:
            assert f["mask_path"] == f"masks/cam_{cam}/frame_{frame:06d}.png"
            rgb = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(cv2.imread(str(mask), -1), rgb.max(axis=2))
        elif from_smc:
            assert mask.read_bytes() == source.read_bytes()
        else:
            assert mask.resolve() == source.resolve()  # referenced where it lies


def test_reduced_masks_are_binary_unless_soft_is_asked(extracted, tmp_path) -> None:
    _smc, perf = extracted
    argv = ["export", "nerfstudio", str(perf), "--frames", "0", "--masks", "--downscale", "4"]
    values = {}
    for extra in ([], ["--soft-masks"]):
        dest = tmp_path / ("soft" if extra else "binary")
        assert main([*argv, *extra, "-o", str(dest), "-q"]) == 0
        masks = [cv2.imread(str(m), -1) for m in dest.glob("masks_4/*/*.png")]
        assert len(masks) == 8 and all(m.ndim == 2 for m in masks)
        values[dest.name] = set(np.unique(np.concatenate([m.ravel() for m in masks])).tolist())
        readme = " ".join((dest / "README.txt").read_text().split())
        assert ("Reduced masks are soft" in readme) == bool(extra), readme
        assert ("Reduced masks are binary" in readme) != bool(extra), readme
    assert values["binary"] == {0, 255}
    assert len(values["soft"] - {0, 255}) > 0  # edges are area averages


# ---------------------------------------------------------------------------- items 21, 22: words
def test_multi_frame_export_says_it_is_one_static_scene(extracted, tmp_path, capsys) -> None:
    _smc, perf = extracted
    for frames, several in (("0:3", True), ("1", False)):
        dest = tmp_path / frames.replace(":", "-")
        argv = ["export", "nerfstudio", str(perf), "--frames", frames, "-o", str(dest), "--json"]
        assert main(argv) == 0
        notes = json.loads(capsys.readouterr().out)["notes"]
        readme = " ".join((dest / "README.txt").read_text().split())
        static = [n for n in notes if "one static scene" in n]
        assert len(static) == int(several), notes
        assert ("ONE static scene" in readme) == several, readme
        assert ("dynamic-scene method" in readme) == several, readme
        assert ("Train: ns-train nerfacto --data THIS_FOLDER" in readme) != several, readme


def test_default_folder_names_only_exported_cameras(extracted, capsys) -> None:
    _smc, perf = extracted
    argv = ["export", "nerfstudio", str(perf), "--frames", "0", "--cameras", "22,99", "--json"]
    assert main(argv) == 0
    dest = Path(json.loads(capsys.readouterr().out)["dest"])
    assert dest.name == "nerfstudio_000000_cam22"
    shutil.rmtree(dest)


def test_bad_pose_names_its_camera(extracted, tmp_path, capsys) -> None:
    """A reflected rotation (written with numpy into the calibration npz) for camera 25."""
    _smc, perf = extracted
    copy = tmp_path / "0026_e0"
    shutil.copytree(perf, copy, ignore=shutil.ignore_patterns("exports"))
    npz = copy / "from_anno" / "calibration" / "all_cameras.npz"
    z = dict(np.load(npz))
    i = list(z["camera_ids"]).index("25")
    z["RT"][i][:3, 0] *= -1
    np.savez(npz, **z)
    for argv in (["colmap", "--frame", "0"], ["nerfstudio", "--frames", "0"]):
        fmt, *rest = argv
        assert main(["export", fmt, str(copy), *rest, "-o", str(tmp_path / fmt)]) == 1
        err = capsys.readouterr().err
        assert "camera 25: camera pose rotation is not a rotation" in err, err


def test_interrupted_export_says_nothing_was_kept(extracted, tmp_path, capsys, monkeypatch):
    import renderme360.export.placer as run

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_tasks", stop)
    _smc, perf = extracted
    dest = tmp_path / "d"
    argv = ["export", "nerfstudio", str(perf), "--downscale", "2", "-o", str(dest)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "nothing of this export was kept" in err and "finished files are kept" not in err
    assert not dest.exists()


# ---------------------------------------------------------------------------- item 12: workers
def test_no_private_pool_state_and_one_default_workers() -> None:
    sources = {p: p.read_text() for p in SRC.rglob("*.py")}
    assert not [p for p, t in sources.items() if "_processes" in t]
    assert [p.name for p, t in sources.items() if "def default_workers" in t] == ["workers.py"]
    assert [p.name for p, t in sources.items() if "ProcessPoolExecutor(" in t] == ["workers.py"]


def test_kill_9_of_an_export_takes_its_workers_along(tmp_path: Path) -> None:
    """kill -9 of ``export --downscale 2 --workers 2`` while workers write: within seconds no
    process of it is left (workers, forkserver, resource tracker), and a re-run gives the same
    bytes as an export that was never interrupted."""
    from renderme360.synth import synthesize

    synthesize(tmp_path / "d", performances=["e0"], release=500, cameras=40, frames=60)
    src = [str(tmp_path / "d"), "--subject", "0026", "--performance", "e0"]
    argv = ["export", "nerfstudio", *src, "--downscale", "2", "--workers", "2"]
    dest = tmp_path / "dest"
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a leftover worker cannot block on it
    with open(log, "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "renderme360", *argv, "-o", str(dest)],
            start_new_session=True,  # every process it starts is in its session
            stderr=err_file,
        )
    alive: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(dest.glob("images_2/*/.*.tmp")):
            time.sleep(0.01)  # workers are writing reduced images
        assert proc.poll() is None, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for _ in range(50):
            alive = session_processes(proc.pid)
            if not alive:
                break
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever a failure left behind
    assert not alive, alive
    # a worker's own temp file goes with it; the run's staged files wait for the next run
    assert not list(dest.rglob(".*.tmp.*.tmp")), list(dest.rglob(".*.tmp.*.tmp"))
    assert main([*argv, "-o", str(dest), "-q"]) == 0
    assert main([*argv, "-o", str(tmp_path / "ref"), "--workers", "1", "-q"]) == 0
    got, ref = _contents(dest), _contents(tmp_path / "ref")
    got.pop("export.json"), ref.pop("export.json")  # counts of reused/reduced differ
    assert got == ref

"""Union rule: a performance folder holds the union of every selection extracted into it.

Widening rewrites aggregates (stacked npz, calibration, metadata) to cover the union; narrowing
into a complete folder changes nothing; reports, manifest and marker describe the union.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LISTS, without_timestamped_lines

from renderme360.cli import main
from renderme360.synth import synthesize

TIMESTAMPED = {"manifest.json", ".extraction_complete", "extraction_info.txt", ".lock"}
ARGS = ["--workers", "1", "-q"]


def tree(perf: Path) -> dict[str, str]:
    """sha256 of every file of a performance folder except the ones holding timestamps (the
    file lists without the line of the timestamped extraction_info.txt)."""
    out = {}
    for p in sorted(perf.rglob("*")):
        if p.is_file() and p.name not in TIMESTAMPED:
            data = p.read_bytes()
            if p.name in LISTS:
                data = without_timestamped_lines(data)
            out[p.relative_to(perf).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def state(perf: Path) -> dict[str, tuple[int, int, str]]:
    """(mtime_ns, size, sha256) of every file, timestamped ones included."""
    return {
        p.relative_to(perf).as_posix(): (
            p.stat().st_mtime_ns,
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(perf.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    synthesize(root, performances=["e0"], cameras=6, frames=8)
    return root


@pytest.fixture(scope="module")
def fresh_full(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 0
    return out / "0026_e0"


def extract(data: Path, out: Path, *args: str) -> int:
    return main(["extract", str(data), "-o", str(out), *ARGS, *args])


def test_sample_then_full_equals_fresh_full(data, fresh_full, tmp_path, capsys):
    out = tmp_path / "out"
    assert extract(data, out, "--sample") == 0
    perf = out / "0026_e0"
    kp3d = perf / "from_anno/keypoints3d/all_frames.npz"
    assert np.load(kp3d)["frame_ids"].tolist() == [0]
    assert extract(data, out) == 0
    assert tree(perf) == tree(fresh_full)
    anno = perf / "from_anno"
    full_ids = np.load(fresh_full / "from_anno/keypoints3d/all_frames.npz")["frame_ids"]
    assert np.load(kp3d)["frame_ids"].tolist() == full_ids.tolist() and len(full_ids) > 4
    flame_ids = np.load(anno / "flame/all_frames.npz")["frame_ids"].tolist()
    assert flame_ids == list(range(8))
    cal = np.load(anno / "calibration/all_cameras.npz")
    assert len(cal["camera_ids"]) == len(
        json.loads((anno / "calibration/cameras.json").read_text())["cameras"]
    )
    assert len(cal["camera_ids"]) > 4
    marker = json.loads((perf / ".extraction_complete").read_text())
    assert [s["cameras"] for s in marker["selections"]] == ["all"]  # the sample is covered
    capsys.readouterr()
    assert main(["verify", str(perf), "--source", str(data)]) == 0
    # a third run is complete at once and changes nothing
    before = state(perf)
    assert extract(data, out) == 0
    assert state(perf) == before


def test_full_then_narrow_changes_nothing(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert extract(data, out) == 0
    perf = out / "0026_e0"
    before = state(perf)
    info = (perf / "extraction_info.txt").read_text()
    for narrow in (
        ["--sample"],
        ["--cameras", "25", "--frames", "2:4"],
        ["--modalities", "images"],
    ):
        capsys.readouterr()
        assert extract(data, out, *narrow) == 0
        assert "1 skipped" in capsys.readouterr().out
        assert state(perf) == before, narrow
    assert "frames: all" in info and "cameras: all" in info


def test_two_narrow_selections_record_and_hold_their_union(data, tmp_path):
    out = tmp_path / "out"
    perf = out / "0026_e0"
    assert extract(data, out, "--sample") == 0
    sample_cams = json.loads((perf / ".extraction_complete").read_text())["selections"][0][
        "camera_ids"
    ]
    assert extract(data, out, "--cameras", "25", "--frames", "2:4") == 0
    marker = json.loads((perf / ".extraction_complete").read_text())
    assert [(s["cameras"], s["frames"]) for s in marker["selections"]] == [
        ("ring:4", "0:30:10"),
        ("25", "2:4"),
    ]
    manifest = json.loads((perf / "manifest.json").read_text())
    assert manifest["selections"] == marker["selections"]
    assert manifest["selection"]["frames"] == "0:30:10 | 2:4"
    info = (perf / "extraction_info.txt").read_text()
    assert "holds their union" in info and "0:30:10" in info and "frames: 2:4" in info
    anno = perf / "from_anno"
    # aggregates cover the union of both selections
    assert np.load(anno / "keypoints3d/all_frames.npz")["frame_ids"].tolist() == [0, 2, 3]
    assert np.load(anno / "flame/all_frames.npz")["frame_ids"].tolist() == [0, 2, 3]
    assert np.load(anno / "keypoints2d/cam_25.npz")["frame_ids"].tolist() == [0, 2, 3]
    cal_ids = np.load(anno / "calibration/all_cameras.npz")["camera_ids"].tolist()
    assert cal_ids == sorted(set(sample_cams) | {"25"})
    images = sorted(
        p.relative_to(perf / "from_raw/images").as_posix()
        for p in (perf / "from_raw/images").rglob("*.jpg")
    )
    expected = [f"cam_{c}/frame_000000.jpg" for c in sample_cams] + [
        "cam_25/frame_000002.jpg",
        "cam_25/frame_000003.jpg",
    ]
    assert images == sorted(expected)
    info_json = json.loads((anno / "metadata/info.json").read_text())
    assert info_json["selection"]["frames"] == "0:30:10 | 2:4"


def test_interrupted_wide_run_is_part_of_the_union(data, tmp_path, monkeypatch):
    """A run stopped part-way records its selection first: the folder's union includes it."""
    from renderme360.pipeline import run as extract_mod

    out = tmp_path / "out"
    perf = out / "0026_e0"
    real = extract_mod._execute

    def stop(units, *a, **k):
        real(units[:2], *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_mod, "_execute", stop)
    with pytest.raises(SystemExit):
        raise SystemExit(extract(data, out, "--frames", "0:4"))
    monkeypatch.setattr(extract_mod, "_execute", real)
    assert not (perf / ".extraction_complete").exists()
    assert extract(data, out, "--sample") == 0
    marker = json.loads((perf / ".extraction_complete").read_text())
    assert [s["frames"] for s in marker["selections"]] == ["0:4", "0:30:10"]
    anno = perf / "from_anno"
    assert np.load(anno / "keypoints3d/all_frames.npz")["frame_ids"].tolist() == [0, 1, 2, 3]

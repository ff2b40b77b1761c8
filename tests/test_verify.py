"""verify: detects flipped bytes, missing files, and differences from the SMC source."""

from __future__ import annotations

import json
import shutil

import pytest
from smcfactory import full_pair

from renderme360.cli import main
from renderme360.output.outdir import sha256_file


@pytest.fixture
def extracted(tmp_path):
    full_pair(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["extract", str(tmp_path / "data"), "-o", str(out), "--workers", "1", "-q"]) == 0
    return tmp_path / "data", out / "0026_e0"


def test_clean_extraction_verifies(extracted, capsys):
    data, perf = extracted
    assert main(["verify", str(perf), "--source", str(data), "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["complete"]
    manifest = json.loads((perf / "manifest.json").read_text())
    assert report["checked"] == len(manifest["files"])
    assert report["checked_against_source"] == 5 + 4 + 2 + 2  # images, masks, UV, scan masks


def test_flipped_byte_and_missing_file(extracted, capsys):
    _, perf = extracted
    img = perf / "from_raw/images/cam_25/frame_000001.jpg"
    data = bytearray(img.read_bytes())
    data[100] ^= 0x01
    img.write_bytes(bytes(data))
    (perf / "from_anno/keypoints3d/all_frames.npz").unlink()
    assert main(["verify", str(perf)]) == 5
    out = capsys.readouterr().out
    assert "from_raw/images/cam_25/frame_000001.jpg: content differs" in out
    assert "from_anno/keypoints3d/all_frames.npz: missing" in out
    assert "2 problem(s)" in out


def test_source_check_catches_a_consistent_but_wrong_copy(extracted, capsys):
    """A file replaced and its manifest entry updated still differs from the SMC bytes."""
    data, perf = extracted
    a = perf / "from_raw/images/cam_25/frame_000000.jpg"
    b = perf / "from_raw/images/cam_25/frame_000001.jpg"
    shutil.copyfile(b, a)
    manifest = json.loads((perf / "manifest.json").read_text())
    for f in manifest["files"]:
        if f["path"] == "from_raw/images/cam_25/frame_000000.jpg":
            f["bytes"], f["sha256"] = a.stat().st_size, sha256_file(a)
    (perf / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(perf)]) == 0
    capsys.readouterr()
    assert main(["verify", str(perf), "--source", str(data)]) == 5
    assert "frame_000000.jpg: differs from the stored bytes" in capsys.readouterr().out


def test_incomplete_and_not_an_extraction(extracted, tmp_path, capsys):
    _, perf = extracted
    (perf / ".extraction_complete").unlink()
    assert main(["verify", str(perf)]) == 5
    assert "did not finish" in capsys.readouterr().out
    assert main(["verify", str(tmp_path)]) == 2
    assert "no readable manifest.json" in capsys.readouterr().err

"""renderme360 check: the geometry holds on synthetic data and fails where RT was read wrongly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from renderme360.cli import main
from renderme360.synth import synthesize


def check(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, dict, str]:
    """Run ``check --json``; return the exit code, the document (or {}) and stderr."""
    code = main(["check", *[str(a) for a in args], "--json"])
    cap = capsys.readouterr()
    return code, json.loads(cap.out) if cap.out.strip() else {}, cap.err


def rewrite_rt(root: Path, cams: set[str] | None, change) -> None:
    """Apply ``change`` to Calibration/{cam}/RT of every SMC file under root (cams: all)."""
    for path in root.rglob("*.smc"):
        with h5py.File(path, "r+") as f:
            for cam, group in f.get("Calibration", {}).items():
                if cams is None or cam in cams:
                    rt = group["RT"][()]
                    del group["RT"]
                    group.create_dataset("RT", data=change(rt))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("check") / "data"
    synthesize(root, performances=["e0", "s1_all"], cameras=20, frames=5)
    return root


def test_check_passes_on_synthetic_data(data: Path, tmp_path: Path, capsys) -> None:
    code, doc, err = check(capsys, data, "--subject", "0026", "--performance", "e0")
    assert code == 0 and doc["ok"], err
    assert doc["median_px"] < 0.01 and doc["max_px"] < 0.01
    with_points = [c for c in doc["cameras"] if c["points"]]
    assert len(with_points) >= 3 and all(c["points"] % 73 == 0 for c in with_points)
    assert all(c["median_px"] < 0.01 for c in with_points)
    assert len(doc["cameras"]) == 60 and not any(c["inverted"] for c in doc["cameras"])
    assert max(c["axis_offset_deg"] for c in doc["cameras"]) < 3.0  # every axis meets the head
    assert np.allclose(doc["rig_center"], [-0.04, -0.50, 0.00], atol=0.03)
    front = next(c for c in doc["cameras"] if c["camera"] == "25")
    assert abs(front["azimuth_deg"] - 180) < 20 and abs(front["elevation_deg"]) < 10
    assert 1.0 < front["distance_m"] < 1.3
    # the same on the extracted folder, and the table for people
    assert main(["extract", str(data), "-o", str(tmp_path / "out"), "-q", "--no-preview"]) == 0
    capsys.readouterr()
    code, doc_folder, _ = check(capsys, tmp_path / "out/0026_e0")
    assert code == 0 and doc_folder["median_px"] == doc["median_px"]
    assert main(["check", str(tmp_path / "out/0026_e0")]) == 0
    out = capsys.readouterr().out
    assert "0026_e0: OK" in out and "median" in out
    rows = re.findall(r"^│\s+(\d\d) │", out, flags=re.MULTILINE)
    assert rows == [c["camera"] for c in with_points]  # one row per camera with keypoints


def test_check_fails_on_an_inverted_rt_copy(data: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "inverted"
    shutil.copytree(data, copy)
    rewrite_rt(copy, None, np.linalg.inv)  # RT read as world-to-camera
    code, doc, _ = check(capsys, copy, "--subject", "0026", "--performance", "e0")
    assert code == 5 and not doc["ok"]
    assert doc["median_px"] > 50  # errors jump by hundreds of pixels
    with_points = [c for c in doc["cameras"] if c["points"]]
    assert all(c["inverted"] and c["behind"] == c["points"] for c in with_points)
    assert main(["check", str(copy), "--subject", "0026", "--performance", "e0"]) == 5
    out = capsys.readouterr().out
    assert "FAILED" in out and "INVERTED?" in out


def test_one_inverted_camera_is_named(data: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "one"
    shutil.copytree(data, copy)
    rewrite_rt(copy, {"25"}, np.linalg.inv)
    code, doc, _ = check(capsys, copy, "--subject", "0026", "--performance", "e0")
    flagged = [c["camera"] for c in doc["cameras"] if c["inverted"]]
    assert code == 5 and flagged == ["25"]
    assert doc["median_px"] < 0.01  # the overall median alone would not have caught it


def test_max_error_threshold(data: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "noisy"
    shutil.copytree(data, copy)
    shift = np.array([3.0, 0.0])  # every 2D keypoint 3 px to the right
    for path in copy.rglob("*_anno.smc"):
        with h5py.File(path, "r+") as f:
            for group in f["Keypoints2d"].values():
                for dset in group.values():
                    if dset.size:
                        dset[...] = dset[()] + shift.astype(dset.dtype)
    args = (copy, "--subject", "0026", "--performance", "e0")
    code, doc, _ = check(capsys, *args)
    assert code == 5 and doc["median_px"] == pytest.approx(3.0, abs=1e-3)
    code, doc, _ = check(capsys, *args, "--max-error", "3.5")
    assert code == 0 and doc["ok"] and doc["max_error_px"] == 3.5


def test_bad_input_is_one_line(data: Path, tmp_path: Path, capsys) -> None:
    synthesize(data.parent / "d500", performances=["s1_all"], release=500, frames=2)
    cases = [
        ([tmp_path / "missing"], 2, "no such file or folder"),
        ([data], 2, "performances match"),
        ([data.parent / "d500", "--performance", "s1_all"], 2, "nothing to check"),
        ([data, "--subject", "0099", "--performance", "e0"], 2, "subject '0099' not found"),
    ]
    for args, expected, message in cases:
        assert main(["check", *map(str, args)]) == expected, args
        cap = capsys.readouterr()
        assert message in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
        assert "Traceback" not in cap.err and cap.out == ""
    for bad in ("-1", "nan", "inf"):
        assert (
            main(
                ["check", str(data), "--subject", "0026", "--performance", "e0", "--max-error", bad]
            )
            == 2
        )
        cap = capsys.readouterr()
        assert "--max-error must be a finite number >= 0" in cap.err and cap.out == ""
    with pytest.raises(SystemExit) as exc:
        main(["check", str(data), "--max-error", "x"])
    assert exc.value.code == 2
    assert "--max-error" in capsys.readouterr().err


@pytest.fixture(scope="module")
def calib_folders(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The performance extracted (calibration and keypoints only) in both layouts."""
    out: dict[str, Path] = {}
    for layout in ("combined", "separate"):
        root = tmp_path_factory.mktemp(f"calib-{layout}")
        args = ["extract", str(data), "-o", str(root), "-q", "--no-preview", "--layout", layout]
        args += ["--performance", "e0", "--modalities", "calibration,keypoints2d,keypoints3d"]
        assert main(args) == 0
        out[layout] = root / "0026_e0"
    return out


def _edit_npz(path: Path, change) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc["cameras"])
    path.write_text(json.dumps(doc))


def test_calibration_copies_that_disagree_fail_the_check(calib_folders, tmp_path, capsys, caplog):
    def inverted(m: list) -> list:
        return np.linalg.inv(np.array(m)).tolist()

    for layout, folder in calib_folders.items():
        pre = "" if layout == "combined" else "from_anno/"
        cases = [  # (edit, conflicts expected)
            (
                lambda f: _edit_json(
                    f / pre / "calibration/cameras.json",
                    lambda c: c["25"].update(RT=inverted(c["25"]["RT"])),
                ),
                [f"{pre}calibration/cameras.json: camera(s) 25: RT differs from the copy read"],
            ),
            (
                lambda f: _edit_npz(
                    f / pre / "calibration/cam_25.npz",
                    lambda z: z.update(RT=np.linalg.inv(z["RT"])),
                ),
                [f"{pre}calibration/cam_XX.npz: camera(s) 25: RT differs from the copy read"],
            ),
            (  # the copy read changed: both others disagree with it, on cameras 22 and 25
                lambda f: _edit_npz(
                    f / pre / "calibration/all_cameras.npz",
                    lambda z: z["K"][:2, 0].__imul__(1.01),  # fx of the first two cameras
                ),
                [
                    f"{pre}calibration/cameras.json: camera(s) 00, 01: K differs from the copy read",
                    f"{pre}calibration/cam_XX.npz: camera(s) 00, 01: K differs from the copy read",
                ],
            ),
            (  # float round-off is no disagreement
                lambda f: _edit_npz(
                    f / pre / "calibration/cam_25.npz",
                    lambda z: z.update(RT=z["RT"] * (1 + 1e-12)),
                ),
                [],
            ),
        ]
        for i, (edit, expected) in enumerate(cases):
            copy = tmp_path / f"{layout}{i}" / folder.name
            shutil.copytree(folder, copy)
            edit(copy)
            code, doc, _ = check(capsys, copy)
            assert doc["calibration_conflicts"] == expected, (layout, i)
            assert code == (5 if expected else 0) and doc["ok"] is not bool(expected)
            if expected:
                assert main(["check", str(copy)]) == 5
                out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
                assert "FAILED" in out and "calibration copies disagree: " + expected[0] in out
                import renderme360 as rm

                caplog.clear()
                perf = rm.load(copy)
                assert [str(c) for c in perf.calibration_conflicts] == expected
                assert perf.cameras["25"].id == "25"  # still read, from all_cameras.npz
                assert expected[0] in caplog.text and "disagree" in caplog.text

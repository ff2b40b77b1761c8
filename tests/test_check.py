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
    assert abs(front["azimuth_deg"]) < 20 and abs(front["elevation_deg"]) < 10  # the front: 0
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
    # no camera is called "ok": those without 2D keypoints see the head behind them or
    # outside their image, whatever the (meaningless) rig centre says of their axes
    assert all(c["problems"] for c in doc["cameras"]), [
        c["camera"] for c in doc["cameras"] if not c["problems"]
    ]
    assert all(
        "INVERTED?" in c["problems"] or "HEAD OUT OF VIEW" in c["problems"] for c in doc["cameras"]
    )
    assert all("ERROR ABOVE THRESHOLD" in c["problems"] for c in with_points)
    assert main(["check", str(copy), "--subject", "0026", "--performance", "e0", "--all"]) == 5
    rows = re.findall(r"^│\s+(\d\d) │.*│ (\S[^│]*?)\s*│$", capsys.readouterr().out, re.MULTILINE)
    assert len(rows) == 60 and not [cam for cam, pose in rows if pose.startswith("ok")]


def test_one_camera_far_off_is_not_ok(data: Path, tmp_path: Path, capsys) -> None:
    """A camera whose own median is far above the threshold fails, whatever the pooled median."""
    copy = tmp_path / "one-off"
    shutil.copytree(data, copy)
    args = (copy, "--subject", "0026", "--performance", "e0")
    _, doc, _ = check(capsys, *args)
    with_points = [c["camera"] for c in doc["cameras"] if c["points"]]
    assert len(with_points) >= 3
    cam = with_points[0]
    for path in copy.rglob("0026_e0_anno.smc"):
        with h5py.File(path, "r+") as f:
            for dset in f["Keypoints2d"][cam].values():
                if dset.size:
                    dset[...] = dset[()] + np.array([40.0, 0.0], dtype=dset.dtype)
    code, doc, _ = check(capsys, *args)
    assert doc["median_px"] < 0.01  # the pooled median alone would have passed
    flagged = {c["camera"]: c["problems"] for c in doc["cameras"] if c["problems"]}
    assert flagged == {cam: ["ERROR ABOVE THRESHOLD"]} and code == 5 and not doc["ok"]
    assert main(["check", *map(str, args)]) == 5
    out = " ".join(capsys.readouterr().out.split())
    assert "FAILED" in out and f"median error above 2 px for camera(s) {cam}" in out


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
        # with --json, machines get the same error as a JSON object on stdout
        assert main(["check", *map(str, args), "--json"]) == expected
        cap = capsys.readouterr()
        doc = json.loads(cap.out)
        assert list(doc) == ["error", "exit_code"] and message in doc["error"], cap.out
        assert doc["exit_code"] == expected
        assert cap.err.strip() == f"renderme360: error: {doc['error']}"
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


def _invert_json_rt(path: Path) -> None:
    _edit_json(path, lambda c: c["25"].update(RT=np.linalg.inv(np.array(c["25"]["RT"])).tolist()))


def _invert_npz_rt(path: Path) -> None:
    _edit_npz(path, lambda z: z.update(RT=np.linalg.inv(z["RT"])))


def _scale_fx_of_two(path: Path) -> None:
    _edit_npz(path, lambda z: z["K"][:2, 0].__imul__(1.01))


def _round_off(path: Path) -> None:
    _edit_npz(path, lambda z: z.update(RT=z["RT"] * (1 + 1e-12)))


def test_calibration_copies_that_disagree_fail_the_check(calib_folders, tmp_path, capsys, caplog):
    import renderme360 as rm

    differs = "differs from the copy read"
    for layout, folder in calib_folders.items():
        cal = ("" if layout == "combined" else "from_anno/") + "calibration/"
        cases = [  # (file, edit, conflicts expected)
            ("cameras.json", _invert_json_rt, [f"{cal}cameras.json: camera(s) 25: RT {differs}"]),
            ("cam_25.npz", _invert_npz_rt, [f"{cal}cam_XX.npz: camera(s) 25: RT {differs}"]),
            (  # the copy read changed: both others disagree with it
                "all_cameras.npz",
                _scale_fx_of_two,
                [
                    f"{cal}cameras.json: camera(s) 00, 01: K {differs}",
                    f"{cal}cam_XX.npz: camera(s) 00, 01: K {differs}",
                ],
            ),
            ("cam_25.npz", _round_off, []),  # float round-off is no disagreement
        ]
        for i, (name, edit, expected) in enumerate(cases):
            copy = tmp_path / f"{layout}{i}" / folder.name
            shutil.copytree(folder, copy)
            edit(copy / cal / name)
            code, doc, _ = check(capsys, copy)
            assert doc["calibration_conflicts"] == expected, (layout, i)
            assert code == (5 if expected else 0) and doc["ok"] is not bool(expected)
            if not expected:
                continue
            assert main(["check", str(copy)]) == 5
            out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
            assert "FAILED" in out and "calibration copies disagree: " + expected[0] in out
            caplog.clear()
            perf = rm.load(copy)
            assert [str(c) for c in perf.calibration_conflicts] == expected
            assert perf.cameras["25"].id == "25"  # still read, from all_cameras.npz
            assert expected[0] in caplog.text and "disagree" in caplog.text


def test_check_and_camera_selection_share_one_angle_convention(data: Path, capsys) -> None:
    """The azimuth/elevation check prints are the ones ring:/front: notes give (RigFrame)."""
    import renderme360 as rm
    from renderme360.selection import parse_cameras, resolve_cameras

    code, doc, _ = check(capsys, data, "--subject", "0026", "--performance", "e0")
    assert code == 0
    perf = rm.load(data, subject="0026", performance="e0")
    rts = {c: cam.c2w for c, cam in perf.cameras.items()}
    checked = {c["camera"]: (c["azimuth_deg"], c["elevation_deg"]) for c in doc["cameras"]}
    for rule in ("front:3", "ring:6"):
        chosen, note = resolve_cameras(parse_cameras(rule), list(perf.image_camera_ids), rts)
        for cam in chosen:
            az, el = checked[cam]
            assert f"{cam} (az {az:+.0f}°, el {el:+.0f}°)" in note, (rule, cam, note)
    assert all(-180 <= a < 180 for a, _ in checked.values()) and len(chosen) == 6
    assert abs(checked["25"][0]) < 20  # the frontal camera sits at azimuth ~0


def test_rig_frame_angles_on_a_hand_built_rig() -> None:
    """Azimuth from the frontal cameras' side, + towards their image right; elevation up = -y."""
    from renderme360.camera import RigFrame, rig_center

    head = np.array([0.1, -0.5, 0.2])

    def looking_at_head(position) -> np.ndarray:
        z = head - position
        z /= np.linalg.norm(z)
        y = np.array([0.0, 1.0, 0.0]) - z[1] * z
        y /= np.linalg.norm(y)
        c2w = np.eye(4)
        c2w[:3, :3] = np.column_stack([np.cross(y, z), y, z])
        c2w[:3, 3] = position
        return c2w

    at = {  # frontal camera 25 on the world -z side, like the dataset's rig
        "25": head + np.array([0.0, 0.0, -1.0]),
        "10": head + np.array([1.0, 0.0, 0.0]),  # its image right (+x): azimuth +90
        "40": head + np.array([-1.0, 0.0, 0.0]),  # azimuth -90
        "50": head
        + np.array([0.0, -1.0, 1.0]),  # behind and above (y up is -y): azimuth -180, el +45
        "02": head + np.array([0.0, 0.5, -0.5]),  # in front, below: elevation -45
    }
    c2ws = {c: looking_at_head(p) for c, p in at.items()}
    np.testing.assert_allclose(rig_center(c2ws), head, atol=1e-9)
    frame = RigFrame.of(c2ws)
    np.testing.assert_allclose(frame.front, [0.0, 0.0, -1.0], atol=1e-9)
    expected = {"25": (0, 0), "10": (90, 0), "40": (-90, 0), "50": (-180, 45), "02": (0, -45)}
    for cam, (az, el) in expected.items():
        got = frame.angles(c2ws[cam][:3, 3])
        np.testing.assert_allclose(got, (az, el), atol=1e-6, err_msg=cam)
    # + azimuth is the frontal camera's image right (its x axis)
    np.testing.assert_allclose(c2ws["25"][:3, 0], frame.side, atol=1e-9)


def test_json_errors_are_one_convention_across_commands(tmp_path: Path, capsys) -> None:
    """Every --json command reports a failure as {"error", "exit_code"} on stdout, same code."""
    missing = str(tmp_path / "missing")
    for argv, code in (
        (["check", missing], 2),
        (["export", "nerfstudio", missing], 2),
        (["explore", missing], 2),
    ):
        assert main([*argv, "--json"]) == code, argv
        cap = capsys.readouterr()
        expected = {"error": f"{missing}: no such file or folder", "exit_code": code}
        assert json.loads(cap.out) == expected, argv
        assert main(argv) == code and capsys.readouterr().out == ""  # without --json: stderr only

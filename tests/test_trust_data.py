"""Exit 0 only when the data is true: non-finite calibration, mixed layouts, incomplete folders,
and a single SMC file (issue 20, items 4, 5, 7 and 20).

Hostile inputs are written with h5py and os calls on top of ``synth``'s files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from renderme360 import load
from renderme360.cli import main
from renderme360.synth import synthesize


def strict(text: str) -> object:
    """``json.loads`` that refuses NaN, Infinity and -Infinity (what other parsers do)."""

    def refuse(name: str) -> object:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def every_json_is_strict(root: Path) -> int:
    """Parse every JSON document under ``root`` strictly; return how many there were."""
    n = 0
    for p in sorted(root.rglob("*")):
        if p.suffix == ".json" or p.name == ".extraction_complete":
            strict(p.read_text())
            n += 1
        elif p.suffix == ".jsonl":
            for line in p.read_text().splitlines():
                strict(line)
            n += 1
    return n


#: Camera -> (dataset, value put into it): each an image camera of the synthetic rig.
POISON = {"28": ("D", np.nan), "00": ("K", np.inf), "22": ("RT", np.nan)}


def poison_calibration(anno: Path) -> None:
    """Put NaN/Inf into one of K, D, RT of the POISON cameras (rewritten with h5py)."""
    with h5py.File(anno, "r+") as f:
        for cam, (name, value) in POISON.items():
            group = f["Calibration"][cam]
            arr = group[name][()].astype(np.float64)
            arr.flat[1] = value
            del group[name]
            group.create_dataset(name, data=arr)


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dataset whose anno file has NaN/Inf calibration, and its extraction."""
    base = tmp_path_factory.mktemp("nan")
    data = base / "data"
    synthesize(data, performances=["e0"], cameras=4, frames=3)
    anno = data / "anno/0026/0026_e0_anno.smc"
    poison_calibration(anno)
    out = base / "out"
    assert main(["extract", str(data), "-o", str(out), "-q", "--no-preview"]) == 0
    return {"data": data, "anno": anno, "perf": out / "0026_e0", "base": base}


def test_extract_keeps_nan_calibration_exact_but_names_it(poisoned) -> None:
    perf = poisoned["perf"]
    with h5py.File(poisoned["anno"], "r") as f:
        stored = {c: f["Calibration"][c][n][()] for c, (n, _v) in POISON.items()}
    z = np.load(perf / "from_anno/calibration/all_cameras.npz")
    ids = list(z["camera_ids"])
    for cam, (name, _v) in POISON.items():
        got = z[name][ids.index(cam)]
        assert got.tobytes() == stored[cam].reshape(got.shape).tobytes()  # byte-exact
        single = np.load(perf / f"from_anno/calibration/cam_{cam}.npz")[name]
        assert single.tobytes() == stored[cam].tobytes()
    doc = strict((perf / "from_anno/calibration/cameras.json").read_text())
    assert sorted(doc["left_out"]) == sorted(POISON)
    assert "NaN or infinite" in doc["left_out"]["28"] and "D" in doc["left_out"]["28"]
    assert not set(POISON) & set(doc["cameras"]) and "25" in doc["cameras"]
    manifest = strict((perf / "manifest.json").read_text())
    for cam, (name, _v) in POISON.items():
        hits = [w for w in manifest["warnings"] if f"camera {cam}:" in w]
        assert len(hits) == 1 and name in hits[0], manifest["warnings"]
    assert every_json_is_strict(perf) >= 6
    assert main(["verify", str(perf), "-q"]) == 0


def test_untouched_nan_folder_has_no_conflicting_copies(poisoned, caplog) -> None:
    perf = load(poisoned["perf"])
    with caplog.at_level(logging.WARNING):
        assert perf.calibration_conflicts == []
        cams = perf.cameras
    assert not set(POISON) & set(cams) and "25" in cams
    assert sorted(perf.calibration_problems) == sorted(POISON)
    assert "disagree" not in caplog.text
    assert all(f"camera {c} left out" in caplog.text for c in POISON)
    with pytest.raises(KeyError, match="camera 28 is left out: its calibration D holds NaN"):
        perf.cameras["28"]
    smc = load(poisoned["data"], "0026", "e0")
    assert sorted(smc.calibration_problems) == sorted(POISON)
    ds = perf.dataset()  # the training dataset leaves them out too; asked for, it says why
    assert {cam for cam, _f in ds.items} == {"25"} and len(ds) == 3
    with pytest.raises(KeyError, match="camera 28: calibration D holds NaN"):
        perf.dataset(cameras=["25", "28"])


@pytest.mark.parametrize("where", ["perf", "data"])
def test_check_json_is_strict_and_names_left_out_cameras(poisoned, capsys, where) -> None:
    args = [str(poisoned[where])] + (
        ["--subject", "0026", "--performance", "e0"] * (where == "data")
    )
    code = main(["check", *args, "--json"])
    cap = capsys.readouterr()
    doc = strict(cap.out)
    assert code == 0, cap.err
    assert doc["ok"] and doc["calibration_conflicts"] == []
    assert {c["camera"] for c in doc["cameras"]}.isdisjoint(POISON)
    assert [n.split()[1] for n in doc["left_out"]] == sorted(POISON)
    code = main(["check", *args])
    out = capsys.readouterr().out
    assert code == 0 and "camera 28 left out: its calibration D holds NaN" in out


def test_check_report_json_has_null_for_an_infinite_error() -> None:
    from renderme360.loader.check import CheckReport

    report = CheckReport("0026_e0", [0.0, 0.0, 0.0], 2.0, median_px=float("inf"))
    doc = strict(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["median_px"] is None and doc["ok"] is False


def test_exports_leave_nan_cameras_out_with_a_note(poisoned, capsys) -> None:
    dest = poisoned["base"] / "ns"
    code = main(["export", "nerfstudio", str(poisoned["perf"]), "-o", str(dest)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    for cam in POISON:
        assert f"camera {cam} left out: its calibration" in cap.err
    doc = strict((dest / "transforms.json").read_text())
    paths = {f["file_path"].split("/")[-2] for f in doc["frames"]}
    assert paths == {"cam_25"}
    every_json_is_strict(dest)
    # asked for by id: left out with the note, the others exported
    dest = poisoned["base"] / "colmap"
    args = ["export", "colmap", str(poisoned["perf"]), "--frame", "0", "--text", "--json"]
    code = main([*args, "--cameras", "25,28", "-o", str(dest)])
    cap = capsys.readouterr()
    summary = strict(cap.out)
    assert code == 0 and summary["cameras"] == ["25"]
    assert any("camera 28 left out: its calibration D holds NaN" in n for n in summary["notes"])
    text = (dest / "sparse/0/cameras.txt").read_text() + (dest / "sparse/0/images.txt").read_text()
    assert "nan" not in text.lower() and "inf" not in text.lower()
    every_json_is_strict(dest)
    # only refused cameras asked for: nothing to export, the reason named
    code = main([*args, "--cameras", "28", "-o", str(poisoned["base"] / "none")])
    cap = capsys.readouterr()
    assert code == 6 and "camera 28 left out: its calibration D holds NaN" in cap.err
    assert strict(cap.out)["exit_code"] == 6


# ---------------------------------------------------------------------------- item 7
@pytest.fixture(scope="module")
def unfinished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An extracted folder whose completion marker is gone (as after kill -9 mid-run)."""
    base = tmp_path_factory.mktemp("unfinished")
    synthesize(base / "data", performances=["e0"], cameras=4, frames=3)
    out = base / "out"
    assert main(["extract", str(base / "data"), "-o", str(out), "-q", "--no-preview"]) == 0
    perf = out / "0026_e0"
    os.unlink(perf / ".extraction_complete")
    return perf


def test_load_of_an_unfinished_folder_warns_once(unfinished, caplog) -> None:
    from renderme360.errors import IncompleteError

    with caplog.at_level(logging.WARNING):
        perf = load(unfinished)
        assert perf.image_camera_ids and perf.cameras
    assert perf.complete is False
    hits = [r for r in caplog.records if "incomplete extraction" in r.getMessage()]
    assert len(hits) == 1 and "re-running the extract command" in hits[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load(unfinished, allow_incomplete=True).complete is False
    assert "incomplete" not in caplog.text
    with pytest.raises(IncompleteError, match="--allow-incomplete"):
        load(unfinished, allow_incomplete=False)
    from renderme360.export import export_nerfstudio

    with pytest.raises(IncompleteError):  # the library refuses as the CLI does
        export_nerfstudio(perf, unfinished.parent / "ns_api")
    assert not (unfinished.parent / "ns_api").exists()
    # a finished folder and SMC files are complete
    (unfinished / ".extraction_complete").mkdir()  # not a regular file: still incomplete
    try:
        assert load(unfinished, allow_incomplete=True).complete is False
    finally:
        (unfinished / ".extraction_complete").rmdir()


@pytest.mark.parametrize(
    "command",
    [["check"], ["export", "nerfstudio"], ["export", "colmap", "--frame", "0"]],
    ids=["check", "nerfstudio", "colmap"],
)
def test_check_and_export_refuse_an_unfinished_folder(unfinished, capsys, command) -> None:
    dest = unfinished.parent / f"dest_{command[-1]}"
    out_args = [] if command == ["check"] else ["-o", str(dest)]
    code = main([*command, str(unfinished), *out_args])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 6 and len(lines) == 1, cap.err
    assert "incomplete extraction" in lines[0] and "re-running the extract command" in lines[0]
    assert "--allow-incomplete" in lines[0] and "--subject 0026 --performance e0" in lines[0]
    assert not dest.exists()
    code = main([*command, str(unfinished), *out_args, "--allow-incomplete", "--json"])
    cap = capsys.readouterr()
    doc = strict(cap.out)
    assert code == 0, cap.err
    if command == ["check"]:
        assert doc["incomplete"] is True
    else:
        assert any("incomplete extraction (--allow-incomplete)" in n for n in doc["notes"])
        assert (dest / "README.txt").is_file()


# ---------------------------------------------------------------------------- item 5
@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("layouts") / "data"
    synthesize(data, performances=["e0"], cameras=4, frames=3)
    return data


def extract(*args: object) -> int:
    return main(["extract", *map(str, args), "-q", "--no-preview"])


@pytest.mark.parametrize(
    ("first", "second", "flag", "held"),
    [
        (["--layout", "separate", "--cameras", "22"], ["--layout", "combined"], "--layout",
         "separate"),
        (["--layout", "combined", "--cameras", "22"], ["--layout", "separate"], "--layout",
         "combined"),
        (["--cameras", "22"], ["--image-mode", "reencode"], "--image-mode", "copy"),
    ],
    ids=["separate-then-combined", "combined-then-separate", "copy-then-reencode"],
)  # fmt: skip
def test_a_second_layout_or_image_mode_is_refused(
    small_data, tmp_path, capsys, first, second, flag, held
) -> None:
    out = tmp_path / "out"
    assert extract(small_data, "-o", out, *first) == 0
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    capsys.readouterr()
    code = extract(small_data, "-o", out, *second)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"already holds an extraction with {flag} {held}" in err[0]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    perf = load(out / "0026_e0")
    assert perf.image_camera_ids == ["22"] and perf.complete
    # the same refusal when the folder's manifest is gone (the folders or journal still tell)
    if flag == "--layout":
        os.unlink(out / "0026_e0/manifest.json")
        assert extract(small_data, "-o", out, *second) == 2
        assert f"{flag} {held}" in capsys.readouterr().err


def test_an_unfinished_run_records_its_image_mode(small_data, tmp_path, capsys) -> None:
    """A run stopped before its manifest: the journal's first line says the image mode."""
    from renderme360.pipeline.record import Journal

    perf = tmp_path / "out/0026_e0"
    perf.mkdir(parents=True)
    journal = Journal(perf)
    journal.add_scopes([], layout="separate", image_mode="reencode")
    journal.close()
    code = extract(small_data, "-o", tmp_path / "out")
    assert code == 2 and "--image-mode reencode" in capsys.readouterr().err


def test_the_loader_refuses_a_folder_holding_both_layouts(small_data, tmp_path, capsys) -> None:
    """Two layouts put together by hand (or by an older version): neither shadows the other."""
    import shutil

    from renderme360.errors import UsageError

    assert extract(small_data, "-o", tmp_path / "sep", "--cameras", "22") == 0
    assert extract(small_data, "-o", tmp_path / "comb", "--layout", "combined") == 0
    perf = tmp_path / "sep/0026_e0"
    shutil.copytree(tmp_path / "comb/0026_e0/images", perf / "images")
    with pytest.raises(UsageError, match="holds both layouts"):
        load(perf)
    for command in (["check"], ["export", "nerfstudio"]):
        capsys.readouterr()
        assert main([*command, str(perf), "--json"]) == 2
        assert "holds both layouts" in strict(capsys.readouterr().out)["error"]


# ---------------------------------------------------------------------------- item 20
def test_a_lone_smc_file_says_where_the_rest_lives(small_data, tmp_path, capsys, caplog) -> None:
    raw = small_data / "raw/0026/0026_e0_raw.smc"
    anno = small_data / "anno/0026/0026_e0_anno.smc"
    root = str(small_data.absolute())
    ids = "--subject 0026 --performance e0"
    cases = [
        (["export", "colmap", str(raw), "--frame", "0"], "raw",
         f"renderme360 export colmap {root} {ids} --frame 0"),
        (["export", "nerfstudio", str(anno)], "anno",
         f"renderme360 export nerfstudio {root} {ids}"),
        (["check", str(raw)], "raw", f"renderme360 check {root} {ids}"),
    ]  # fmt: skip
    for argv, role, command in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING):  # the error says it: no warning line as well
            code = main([*argv, "-o", str(tmp_path / "x")] if argv[0] == "export" else argv)
        assert caplog.records == []
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        lacking = "calibration" if role == "raw" else "images"
        assert f"0026_e0_{role}.smc alone holds no {lacking}" in err[0]
        assert "images live in the raw file (0026_e0_raw.smc)" in err[0]
        assert "calibration in the anno file (0026_e0_anno.smc)" in err[0]
        assert err[0].endswith(command), err[0]
    # the command shown works
    code = main(["export", "colmap", root, *ids.split(), "--frame", "0", "-o", str(tmp_path / "c")])
    assert code == 0 and (tmp_path / "c/sparse/0/cameras.bin").is_file()
    # load(raw).cameras is empty, with one warning saying why; a copy elsewhere: placeholder root
    lone = tmp_path / "0026_e0_raw.smc"
    lone.write_bytes(raw.read_bytes())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        perf = load(lone)
        assert len(perf.cameras) == 0 and len(perf.cameras) == 0
    hits = [r.getMessage() for r in caplog.records]
    assert len(hits) == 1 and "alone holds no calibration" in hits[0]
    assert hits[0].endswith("renderme360.load('DATA_ROOT', '0026', 'e0')")
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the pair from the root: no hint
        assert len(load(small_data, "0026", "e0").cameras) == 60
    assert caplog.text == ""

"""Honest results: empty selections fail, numbers agree with themselves, options are validated."""

from __future__ import annotations

import csv
import json
import re
import types

import numpy as np
import pytest

from renderme360.cli import build_parser, main
from renderme360.synth import synthesize

ARGS = ["--workers", "1", "-q", "--no-preview"]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """0026_e0 with 3 frames and 0041_s1_all with 8 frames."""
    root = tmp_path_factory.mktemp("two")
    synthesize(root, "0026", ["e0"], cameras=6, frames=3)
    synthesize(root, "0041", ["s1_all"], cameras=6, frames=8)
    return root


def test_frames_selecting_nothing_fail_that_performance_only(two, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["extract", str(two), "-o", str(out), "--frames", "5:8", *ARGS]) == 6
    text = " ".join(capsys.readouterr().out.split())
    assert "frames 5:8 select nothing: 0026_e0 has 3 frames (0..2)" in text
    assert not (out / "0026_e0").exists()
    assert (out / "0041_s1_all/.extraction_complete").is_file()  # the other one ran
    lines = (out / "MANIFEST.csv").read_text().splitlines()
    rows = {r["subject"]: r for r in csv.DictReader(lines)}
    assert rows["0026"]["status"] == "failed" and "select nothing" in rows["0026"]["error"]
    assert rows["0041"]["status"] == "done"


def test_camera_that_does_not_exist_is_an_error(two, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--subject", "0026", "--cameras", "99", *ARGS]
    assert main(["extract", str(two), "-o", str(out), *args]) == 6
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(
        r"camera 99 does not exist in 0026_e0: cameras with images are 00, [0-9., ]+", text
    )
    assert not (out / "0026_e0").exists()
    # one missing id among existing ones is a note, not an error
    assert (
        main(
            [
                "extract",
                str(two),
                "-o",
                str(out),
                "--subject",
                "0026",
                "--cameras",
                "25,99",
                "--dry-run",
                "--json",
            ]
        )
        == 0
    )
    notes = json.loads(capsys.readouterr().out)["performances"][0]["notes"]
    assert any("cameras 99 do not exist in 0026_e0" in n for n in notes)


def test_sample_on_a_short_performance_says_how_many_frames(two, tmp_path, capsys):
    argv = ["extract", str(two), "-o", str(tmp_path / "o"), "--subject", "0026", "--sample"]
    assert main([*argv, "--dry-run", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["performances"][0]["notes"]
    assert "frames 0:30:10 select 1 frame (0) of 3 named: 0026_e0 has 3 frames (0..2)" in notes
    assert main([*argv, "--dry-run"]) == 0
    assert "select 1 frame (0)" in capsys.readouterr().err


def test_space_margin_is_proportional_and_the_message_shows_what_was_compared(
    two, tmp_path, monkeypatch, capsys
):
    import renderme360.pipeline.run as ex
    from renderme360.output.reports import human_bytes

    argv = [
        "extract",
        str(two),
        "-o",
        str(tmp_path / "out"),
        "--subject",
        "0026",
        "--dry-run",
        "--json",
    ]
    assert main(argv) == 0
    need = json.loads(capsys.readouterr().out)["total_bytes"]
    assert need < 3 * 10**6
    # a job of a few MB fits in 12 MB free (a fixed 64 MB margin refused it)
    monkeypatch.setattr(ex, "free_bytes", lambda path: 12 * 10**6)
    assert main(["extract", str(two), "-o", str(tmp_path / "out"), "--subject", "0026", *ARGS]) == 0
    # refused: the message states the total compared with the free space
    monkeypatch.setattr(ex, "free_bytes", lambda path: need + 10**6)
    out2 = tmp_path / "out2"
    assert main(["extract", str(two), "-o", str(out2), "--subject", "0026", *ARGS]) == 3
    err = capsys.readouterr().err
    compared = need + ex.space_margin(need)
    assert f"needs {human_bytes(compared)} ({human_bytes(need)} of files" in err
    assert f"has {human_bytes(need + 10**6)} free" in err
    assert ex.space_margin(100 * 10**9) > 3 * 10**9  # a few percent of a large job


def test_interrupted_rows_in_manifest_csv_show_what_was_written(two, tmp_path, monkeypatch):
    from renderme360.pipeline import run as ex

    real = ex._execute
    now = [1000.0]  # run.py's clock: 42 s pass while the units run, then Ctrl-C
    monkeypatch.setattr(ex, "time", types.SimpleNamespace(monotonic=lambda: now[0]))

    def stop(units, *a, **k):
        real(units[:3], *a, **k)
        now[0] += 42.0
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "_execute", stop)
    out = tmp_path / "out"
    assert main(["extract", str(two), "-o", str(out), "--subject", "0041", *ARGS]) == 130
    (row,) = csv.DictReader((out / "MANIFEST.csv").read_text().splitlines())
    journal = [
        json.loads(line)
        for line in (out / "0041_s1_all/.journal.jsonl").read_text().splitlines()
        if '"path"' in line
    ]
    assert row["status"] == "interrupted"
    assert float(row["seconds"]) == 42.0  # the time it ran, not 0.0
    assert int(row["bytes"]) == sum(r["bytes"] for r in journal) > 0
    images = [r for r in journal if r["modality"] in ("images", "masks")]
    assert int(row["cameras"]) == len({r["path"].split("/")[-2] for r in images})


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_workers_zero_is_refused_at_parse_time(two, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exc:
        main(["extract", str(two), "-o", str(tmp_path / "o"), "--workers", "0", *extra])
    assert exc.value.code == 2
    assert "--workers: must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_workers_zero_in_a_job_file_is_refused(two, tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(f"data_root: {two}\noutput: {tmp_path / 'o'}\nworkers: 0\n")
    assert main(["extract", "--config", str(job), "--dry-run"]) == 2
    assert "workers must be a whole number >= 1" in capsys.readouterr().err


def test_synth_and_demo_options_have_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "==SUPPRESS==" or a.choices)
    for name in ("synth", "demo"):
        p = sub.choices[name]
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.dest} has no help"
    demo = sub.choices["demo"]
    assert "two subjects" in demo.description
    assert "two" in next(a.help for a in sub._choices_actions if a.dest == "demo")


def test_progress_bars_stay_within_100_percent_and_show_the_finishing_phase():
    from rich.console import Console

    from renderme360.cli.progress import CliProgress
    from renderme360.pipeline.run import Outcome

    console = Console(record=True, width=200, force_terminal=True, color_system=None)
    progress = CliProgress(True, total_bytes=310_700, total_files=3, console=console)
    with progress:
        progress.performance_started("0026_e0", 3, 310_700)
        progress.advance(2, 200_000)
        progress.advance(1, 140_000)  # the last file came out bigger than its estimate
        for task in progress._bar.tasks:
            assert task.completed <= task.total and task.percentage <= 100.0
        progress.finishing("0026_e0")
        shown = console.export_text()
        progress._bar.refresh()
        progress.performance_finished(Outcome("0026_e0", "0026", "e0", "done"))
    shown = console.export_text()
    assert "0026_e0: finishing: previews, manifest" in shown
    assert "kB" not in shown and "340000" not in shown and "310700" not in shown
    assert "340.0 KB" in shown  # one unit style, from human_bytes
    assert re.search(r"\b(10[1-9]|1[1-9]\d)%", shown) is None  # never past 100 %
    assert "3/3 files" in shown


def test_progress_lines_off_a_terminal_name_the_finishing_phase(two, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["extract", str(two), "-o", str(out), "--subject", "0026", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "0026_e0: finishing: previews, manifest" in err


@pytest.fixture(scope="module")
def rig60(tmp_path_factory):
    root = tmp_path_factory.mktemp("rig")
    synthesize(root, performances=["e0"], cameras=60, frames=1)
    return root


def _notes(root, tmp_path, capsys, cameras):
    argv = ["extract", str(root), "-o", str(tmp_path / "o"), "--cameras", cameras]
    assert main([*argv, "--modalities", "images", "--dry-run", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)["performances"][0]
    return p["cameras"], p["notes"][0]


def test_front_note_shows_azimuth_and_elevation(rig60, tmp_path, capsys):
    from renderme360.selection import _rig_geometry
    from renderme360.synth import make_rig

    cams, note = _notes(rig60, tmp_path, capsys, "front:4")
    geo = _rig_geometry({c: v["RT"] for c, v in make_rig().items()})
    for c in cams:
        az, el = np.degrees(geo.azimuth[c]), np.degrees(geo.elevation[c])
        assert f"{c} (az {az:+.0f}°, el {el:+.0f}°)" in note
    assert "elevation" in note


def test_ring_prefers_the_eye_level_tier_and_says_so(rig60, tmp_path, capsys):
    from renderme360.selection import _rig_geometry
    from renderme360.synth import make_rig

    geo = _rig_geometry({c: v["RT"] for c, v in make_rig().items()})
    cams, note = _notes(rig60, tmp_path, capsys, "ring:8")
    assert len(cams) == 8
    assert all(abs(np.degrees(geo.elevation[c])) < 10 for c in cams)  # one tier, eye level
    # the realistic rig: 17 cameras per column tier, and the closer ring of 8 joins eye level
    assert "from the height tier nearest eye level" in note and "25 cameras; 3 tiers" in note
    cams, note = _notes(rig60, tmp_path, capsys, "ring:30")  # more than one tier holds
    assert len(cams) == 30 and "mixing heights" in note and "25 cameras, fewer than 30" in note


def _white_in_last_columns(img: np.ndarray, n: int = 2) -> bool:
    return bool((img[:, -n:] > 200).all(axis=-1).any())


def test_preview_labels_fit_small_images(tmp_path):
    import cv2

    from renderme360.output.outdir import OutputDir
    from renderme360.preview import make_previews

    files = []
    for cam in ("03", "25"):
        img = np.full((24, 32, 3), 60, np.uint8)
        _ok, buf = cv2.imencode(".jpg", img)
        rel = f"images/cam_{cam}/frame_000000.jpg"
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_bytes(buf.tobytes())
        files.append(rel)
        _ok, buf = cv2.imencode(".png", np.full((24, 32), 255, np.uint8))
        rel = f"masks/cam_{cam}/frame_000000.png"
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_bytes(buf.tobytes())
        files.append(rel)
    written = {w.path for w in make_previews(OutputDir(tmp_path), files)}
    assert "visualization/masks_overlay.jpg" in written
    for rel in ("visualization/cameras_frame_000000.jpg", "visualization/masks_overlay.jpg"):
        sheet = cv2.imread(str(tmp_path / rel))
        assert not _white_in_last_columns(sheet), rel  # the title is not cut at the edge
        assert (sheet > 200).all(axis=-1).sum() > 50  # labels were drawn
    from renderme360.preview import _labelled, _text_width

    tile = _labelled(np.full((24, 32, 3), 60, np.uint8), "cam 25 frame 000000")
    assert tile.shape[1] >= _text_width("cam 25 frame 000000", 0.35)
    assert not _white_in_last_columns(tile) and (tile > 200).all(axis=-1).any()
    big = np.full((200, 320, 3), 60, np.uint8)
    assert _labelled(big.copy(), "cam 25").shape == big.shape  # large tiles keep their size


def test_rig_preview_with_a_camera_selection_draws_the_whole_rig(rig60, tmp_path, monkeypatch):
    import renderme360.preview as preview

    drawn = {}
    real = preview._render_rig

    def spy(ids, centers, dirs, mid, spread, state, source):
        drawn.update(ids=list(ids), state=state.tolist())
        return real(ids, centers, dirs, mid, spread, state, source)

    monkeypatch.setattr(preview, "_render_rig", spy)
    out = tmp_path / "out"
    argv = ["extract", str(rig60), "-o", str(out), "--cameras", "25,40", "--workers", "1", "-q"]
    assert main([*argv, "--modalities", "images,calibration"]) == 0
    assert len(drawn["ids"]) == 60  # the whole rig, read from the source
    state = dict(zip(drawn["ids"], drawn["state"], strict=True))
    assert state["25"] == 2 and state["40"] == 2  # highlighted: extracted with images
    assert sum(v == 0 for v in state.values()) == 58  # the rest greyed
    assert (out / "0026_e0/visualization/camera_rig.png").is_file()
    cal = np.load(out / "0026_e0/from_anno/calibration/all_cameras.npz")
    assert cal["camera_ids"].tolist() == ["25", "40"]  # the data files hold the selection only


def test_dry_run_of_a_selection_that_matches_nothing_exits_non_zero(two, tmp_path, capsys):
    argv = ["extract", str(two), "-o", str(tmp_path / "o"), "--frames", "5:8", "--dry-run"]
    assert main([*argv, "--json"]) == 6
    doc = json.loads(capsys.readouterr().out)
    status = {p["performance"]: (p["status"], p["error"]) for p in doc["performances"]}
    assert status["0026_e0"] == ("failed", "frames 5:8 select nothing: 0026_e0 has 3 frames (0..2)")
    assert status["0041_s1_all"][0] == "planned"
    assert not (tmp_path / "o").exists()


def test_a_stop_that_surfaces_as_another_error_exits_as_the_stop(monkeypatch, capsys) -> None:
    """SIGTERM raised inside h5py's Cython lock comes out as ``SystemError: ... returned a
    result with an exception set`` (seen once in CI: the export said "unexpected error", exit 1).
    A command that fails after a signal asked for a stop reports that stop: exit 143, the
    command's interrupted line, no "unexpected error"."""
    import renderme360.cli as cli
    from renderme360 import stops
    from renderme360.errors import Terminated

    def stopped_inside_c(args):
        stops._Requested.exc = Terminated()
        raise SystemError("<cyfunction FastRLock.__exit__> returned a result with an exception set")

    monkeypatch.setitem(cli.COMMANDS, "verify", stopped_inside_c)
    assert cli.main(["verify", "."]) == 143
    err = capsys.readouterr().err
    assert "interrupted; verify writes nothing" in err and "unexpected error" not in err

    def plain_bug(args):
        raise SystemError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "verify", plain_bug)
    assert cli.main(["verify", "."]) == 1  # install() forgot the earlier stop: a bug stays a bug
    assert "unexpected error: SystemError: a bug" in capsys.readouterr().err

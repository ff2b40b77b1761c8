"""Integrity and security: no byte from outside the SMC file, no hang, no write through a link.

Hostile inputs are built with h5py directly. Every case checks the message, the exit code and
that no byte of the file planted outside the SMC (the "victim") reaches the output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import session_processes
from smcfactory import calib, full_pair, jpeg
from test_hostile import (
    ACTOR,
    assert_failed_with,
    extract,
    good_raw,
    raw_file,
    run_checked,
    run_in_subprocess,
)

from renderme360.cli import main

SECRET = b"OUTSIDE-SECRET-"
# Bytes of a file outside the SMC; they start like a JPEG so a magic-number check lets them pass.
VICTIM = b"\xff\xd8\xff\xe0" + SECRET * 200


def victim_file(tmp_path: Path) -> Path:
    path = tmp_path / "victim.bin"
    if not path.exists():
        path.write_bytes(VICTIM)
    return path


def other_file(tmp_path: Path) -> Path:
    """Another HDF5 file holding outside bytes under the names the SMC file would use."""
    path = tmp_path / "other.h5"
    if not path.exists():
        with h5py.File(path, "w") as f:
            f["blob"] = np.frombuffer(VICTIM, np.uint8)
            f["exp"] = np.frombuffer(SECRET * 27, np.uint8)[:400].view(np.float64)
            f["k"] = np.frombuffer((SECRET * 5)[:72], np.uint8).view(np.float64).reshape(3, 3)
            g = f.create_group("FLAME/1")
            g["exp"] = np.frombuffer(SECRET * 27, np.uint8)[:400].view(np.float64)
    return path


def assert_no_outside_bytes(tmp_path: Path) -> None:
    for p in (tmp_path / "out").rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert SECRET not in p.read_bytes(), p


def pair_with_neighbour(tmp_path: Path) -> dict[str, Any]:
    """A full anno/raw pair 0026_e0 and a good neighbour 0026_e1 that must still be extracted."""
    made = full_pair(tmp_path / "data")
    good_raw(raw_file(tmp_path, "e1"), performance="e1")
    return made


def _replace(f: h5py.File, name: str, make: Callable[[h5py.Group, str], None]) -> None:
    parent, _, leaf = name.rpartition("/")
    del f[name]
    make(f[parent], leaf)


def external_storage(name: str, dtype: str = "f8", shape: tuple[int, ...] | None = None):
    """Replace dataset ``name`` by one of the same shape whose bytes live in the victim file."""

    def mutate(f: h5py.File, tmp: Path) -> None:
        old = f[name]
        dt = np.dtype(old.dtype if dtype == "same" else dtype)
        shp = shape or old.shape
        size = int(np.prod(shp)) * dt.itemsize
        _replace(
            f,
            name,
            lambda g, leaf: g.create_dataset(
                leaf, shape=shp, dtype=dt, external=[(str(victim_file(tmp)), 0, size)]
            ),
        )

    return mutate


def external_link(name: str, target: str):
    def mutate(f: h5py.File, tmp: Path) -> None:
        _replace(
            f,
            name,
            lambda g, leaf: g.__setitem__(leaf, h5py.ExternalLink(str(other_file(tmp)), target)),
        )

    return mutate


def soft_to_external(name: str, target: str):
    """A soft link (allowed) whose target is an external link (not allowed)."""

    def mutate(f: h5py.File, tmp: Path) -> None:
        f["evil"] = h5py.ExternalLink(str(other_file(tmp)), target)
        _replace(f, name, lambda g, leaf: g.__setitem__(leaf, h5py.SoftLink("/evil")))

    return mutate


def virtual(name: str, source: str):
    def mutate(f: h5py.File, tmp: Path) -> None:
        with h5py.File(other_file(tmp), "r") as o:
            shape, dtype = o[source].shape, o[source].dtype
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(str(other_file(tmp)), source, shape=shape)
        _replace(f, name, lambda g, leaf: g.create_virtual_dataset(leaf, layout))

    return mutate


CASES = [
    ("anno", external_storage("FLAME/1/exp"), "external storage is not allowed: /FLAME/1/exp"),
    ("anno", external_storage("Keypoints3d/0"), "external storage is not allowed: /Keypoints3d/0"),
    (
        "anno",
        external_storage("Keypoints2d/25/2"),
        "external storage is not allowed: /Keypoints2d/25/2",
    ),
    (
        "anno",
        external_storage("Calibration/25/K"),
        "external storage is not allowed: /Calibration/25/K",
    ),
    ("anno", external_storage("Scan/vertex"), "external storage is not allowed: /Scan/vertex"),
    (
        "anno",
        external_storage("UV_texture/1", "u1", (len(VICTIM),)),
        "external storage is not allowed: /UV_texture/1",
    ),
    (
        "anno",
        external_storage("ScanMask/30", "u1", (len(VICTIM),)),
        "external storage is not allowed: /ScanMask/30",
    ),
    (
        "anno",
        external_storage("Camera/25/mask/2", "u1", (len(VICTIM),)),
        "external storage is not allowed: /Camera/25/mask/2",
    ),
    (
        "raw",
        external_storage("Camera/25/color/1", "u1", (len(VICTIM),)),
        "external storage is not allowed: /Camera/25/color/1",
    ),
    (
        "raw",
        external_storage("Camera/00/audio/audio", "f4", (100, 2)),
        "external storage is not allowed: /Camera/00/audio/audio",
    ),
    (
        "raw",
        external_link("Camera/25/color/1", "/blob"),
        "external link is not allowed: /Camera/25/color/1",
    ),
    ("anno", external_link("FLAME/1/exp", "/exp"), "external link is not allowed: /FLAME/1/exp"),
    ("anno", external_link("FLAME/1", "/FLAME/1"), "external link is not allowed: /FLAME/1"),
    (
        "anno",
        external_link("Calibration/25/K", "/k"),
        "external link is not allowed: /Calibration/25/K",
    ),
    (
        "anno",
        external_link("Camera/25/mask", "/FLAME"),
        "external link is not allowed: /Camera/25/mask",
    ),
    ("raw", soft_to_external("Camera/25/color/1", "/blob"), "external link is not allowed: /evil"),
    (
        "raw",
        virtual("Camera/25/color/1", "/blob"),
        "virtual dataset is not allowed: /Camera/25/color/1",
    ),
    ("anno", virtual("FLAME/1/exp", "/exp"), "virtual dataset is not allowed: /FLAME/1/exp"),
]


@pytest.mark.parametrize(
    ("role", "mutate", "needle"),
    CASES,
    ids=[c[2].split(": ")[1] + " " + c[2].split()[0] for c in CASES],
)
def test_outside_data_is_refused_on_extract(capsys, tmp_path, role, mutate, needle):
    made = pair_with_neighbour(tmp_path)
    with h5py.File(made[role], "r+") as f:
        mutate(f, tmp_path)
    run = extract(capsys, tmp_path)
    assert_failed_with(run, f"{ACTOR}_e0", needle, str(made[role]))
    assert run.outcomes[f"{ACTOR}_e1"]["status"] == "done"  # the batch went on
    assert_no_outside_bytes(tmp_path)


@pytest.mark.parametrize(
    ("role", "mutate", "needle"),
    CASES[::3] + CASES[10:11],
    ids=lambda v: v if isinstance(v, str) and " " in v else None,
)
def test_outside_data_is_refused_on_explore(capsys, tmp_path, role, mutate, needle):
    made = pair_with_neighbour(tmp_path)
    with h5py.File(made[role], "r+") as f:
        mutate(f, tmp_path)
    run = run_checked(capsys, tmp_path, tmp_path / "out", ["explore", tmp_path / "data", "--json"])
    assert run.code == 1
    perfs = {f"{p['actor']}_{p['performance']}": p for p in run.doc["performances"]}
    err = perfs[f"{ACTOR}_e0"]["files"][role]["error"]
    assert needle in err and str(made[role]) in err and "\n" not in err
    assert perfs[f"{ACTOR}_e1"]["files"]["raw"]["error"] is None


def test_soft_links_inside_the_file_keep_working(capsys, tmp_path):
    made = pair_with_neighbour(tmp_path)
    with h5py.File(made["raw"], "r+") as f:
        del f["Camera/25/color/1"]
        f["Camera/25/color/1"] = h5py.SoftLink("/Camera/25/color/0")
        f["Camera/30/color/1"] = h5py.SoftLink("2")  # relative to its group
    run = extract(capsys, tmp_path, "--modalities", "images")
    assert run.code == 0, run.err
    images = tmp_path / "out" / f"{ACTOR}_e0" / "from_raw" / "images"
    assert (images / "cam_25" / "frame_000001.jpg").read_bytes() == made["color"]["25"][0]
    assert (images / "cam_30" / "frame_000001.jpg").read_bytes() == made["color"]["30"][2]
    code = main(
        ["verify", str(tmp_path / "out" / f"{ACTOR}_e0"), "--source", str(tmp_path / "data")]
    )
    assert code == 0, capsys.readouterr()


def test_soft_link_loop_is_refused(capsys, tmp_path):
    made = pair_with_neighbour(tmp_path)
    with h5py.File(made["raw"], "r+") as f:
        del f["Camera/25/color/1"]
        f["Camera/25/color/1"] = h5py.SoftLink("/loop")
        f["loop"] = h5py.SoftLink("/Camera/25/color/1")
    run = extract(capsys, tmp_path)
    assert_failed_with(run, f"{ACTOR}_e0", "soft links loop", str(made["raw"]))


def test_fast_path_never_takes_an_offset_from_another_file(tmp_path):
    """A contiguous dataset behind an external link: its offset is one in the OTHER file."""
    from renderme360 import SMCReader
    from renderme360.errors import Renderme360Error

    made = full_pair(tmp_path / "data")
    with h5py.File(made["raw"], "r+") as f:
        external_link("Camera/25/color/1", "/blob")(f, tmp_path)
    with SMCReader(made["raw"]) as r, pytest.raises(Renderme360Error, match="external link"):
        r.blob_locations("25", "color")


# ---------------------------------------------------------------------------- FIFOs
def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("how", ["external link", "external storage"])
@pytest.mark.parametrize("command", ["explore", "extract"])
def test_fifo_behind_a_link_or_external_file_does_not_hang(tmp_path, how, command):
    made = pair_with_neighbour(tmp_path)
    fifo = _fifo(tmp_path, "fifo.h5")
    with h5py.File(made["raw"], "r+") as f:
        del f["Camera/25/color/1"]
        if how == "external link":
            f["Camera/25/color/1"] = h5py.ExternalLink(str(fifo), "/blob")
        else:
            f["Camera/25/color"].create_dataset(
                "1", shape=(100,), dtype="u1", external=[(str(fifo), 0, 100)]
            )
    argv: list[Any] = [command, tmp_path / "data", "--json"]
    if command == "extract":
        argv += ["-o", tmp_path / "out", "-q", "--no-preview", "--workers", "1"]
    proc = run_in_subprocess(argv)  # times out (and fails) if anything opens the FIFO
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"{how} is not allowed: /Camera/25/color/1" in proc.stdout
    assert proc.returncode == (1 if command == "explore" else 6)


# ---------------------------------------------------------------------------- FLAME names
def _flame_npz(tmp_path: Path) -> tuple[list[str], Any]:
    import zipfile

    path = tmp_path / "out" / f"{ACTOR}_e0" / "from_anno" / "flame" / "all_frames.npz"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return names, np.load(path)


def _manifest(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "out" / f"{ACTOR}_e0" / "manifest.json").read_text())


def test_flame_field_named_frame_ids_is_not_written_over_the_index(capsys, tmp_path):
    made = full_pair(tmp_path / "data")
    with h5py.File(made["anno"], "r+") as f:
        for fr in (0, 1, 2):
            f[f"FLAME/{fr}/frame_ids"] = np.array([999])
    run = extract(capsys, tmp_path, "--modalities", "flame")
    assert run.code == 0, run.err
    names, z = _flame_npz(tmp_path)
    assert names.count("frame_ids.npy") == 1
    assert z["frame_ids"].tolist() == [0, 1, 2]
    assert np.array_equal(z["exp"][1], made["flame"][1]["exp"])
    warnings = _manifest(tmp_path)["warnings"]
    assert any("FLAME field 'frame_ids' not written: the name is reserved" in w for w in warnings)


def test_flame_field_missing_from_some_frames_is_a_manifest_warning(capsys, tmp_path):
    made = full_pair(tmp_path / "data")
    with h5py.File(made["anno"], "r+") as f:
        del f["FLAME/1/exp"]
        f["FLAME/2/extra"] = np.ones(4)  # absent from the first frame
    run = extract(capsys, tmp_path, "--modalities", "flame")
    assert run.code == 0, run.err
    names, z = _flame_npz(tmp_path)
    assert "exp.npy" not in names and "extra.npy" not in names
    assert np.array_equal(z["verts"][1], made["flame"][1]["verts"])
    warnings = _manifest(tmp_path)["warnings"]
    assert any("FLAME field 'exp' is missing from 1 of 3 frames (1)" in w for w in warnings)
    assert any("FLAME field 'extra' is missing from 2 of 3 frames (0, 1)" in w for w in warnings)
    # the selection decides: frames 0 and 2 both hold 'exp', so it is written for them
    shutil.rmtree(tmp_path / "out")
    run = extract(capsys, tmp_path, "--modalities", "flame", "--frames", "0:3:2")
    assert run.code == 0, run.err
    names, z = _flame_npz(tmp_path)
    assert z["frame_ids"].tolist() == [0, 2] and "exp.npy" in names and "extra.npy" not in names


# ---------------------------------------------------------------------------- batch isolation
def _bool_audio_batch(tmp_path: Path) -> None:
    samples = np.random.default_rng(0).random((4800, 2)) - 0.5
    for perf, audio in (("s1_all", samples > 0), ("s2_all", samples.astype(np.float32))):
        good_raw(
            tmp_path / "data" / ACTOR / f"{ACTOR}_{perf}.smc",
            performance=perf,
            audio=(audio, 48000),
        )


def _batch_rows(tmp_path: Path) -> list[list[str]]:
    import csv

    with open(tmp_path / "out" / "MANIFEST.csv", newline="") as f:
        return list(csv.reader(f))


def test_unexpected_error_in_a_writer_fails_only_its_performance(capsys, tmp_path):
    _bool_audio_batch(tmp_path)  # boolean samples: a ValueError deep in the audio code
    run = extract(capsys, tmp_path)
    msg = assert_failed_with(run, f"{ACTOR}_s1_all", "unexpected error: ValueError")
    assert "audio" in msg and f"{ACTOR}_s1_all.smc" in msg
    assert run.outcomes[f"{ACTOR}_s2_all"]["status"] == "done"
    rows = _batch_rows(tmp_path)
    assert rows[0][0] == "subject" and sorted(r[1:3] for r in rows[1:]) == [
        ["s1_all", "failed"],
        ["s2_all", "done"],
    ]
    journal = tmp_path / "out" / f"{ACTOR}_s1_all" / ".journal.jsonl"
    errors = [json.loads(x) for x in journal.read_text().splitlines() if '"traceback"' in x]
    assert errors and "Traceback (most recent call last)" in errors[0]["traceback"]
    assert "ValueError" in errors[0]["traceback"]
    assert (tmp_path / "out" / f"{ACTOR}_s1_all" / "from_smc" / "images").is_dir()


def test_unexpected_error_traceback_only_under_verbose(tmp_path):
    _bool_audio_batch(tmp_path)
    argv: list[Any] = ["extract", tmp_path / "data", "-o", tmp_path / "out", "--no-preview"]
    quiet = run_in_subprocess(argv)
    assert quiet.returncode == 6 and "Traceback" not in quiet.stderr + quiet.stdout
    assert "unexpected error: ValueError" in quiet.stdout + quiet.stderr
    shutil.rmtree(tmp_path / "out")
    verbose = run_in_subprocess([*argv, "-v"])
    assert verbose.returncode == 6
    assert "Traceback (most recent call last)" in verbose.stderr and "ValueError" in verbose.stderr


def test_unexpected_error_outside_writers_fails_only_its_performance(capsys, tmp_path, monkeypatch):
    import renderme360.pipeline.run as ex

    _bool_audio_batch(tmp_path)
    real = ex._finish

    def finish(plan, *args, **kw):
        if plan.performance == "s2_all":
            raise KeyError("boom")
        return real(plan, *args, **kw)

    monkeypatch.setattr(ex, "_finish", finish)
    run = extract(capsys, tmp_path, "--modalities", "images")
    assert_failed_with(run, f"{ACTOR}_s2_all", f"{ACTOR}_s2_all: unexpected error: KeyError")
    assert run.outcomes[f"{ACTOR}_s1_all"]["status"] == "done"
    assert len(_batch_rows(tmp_path)) == 3


# ---------------------------------------------------------------------------- non-UTF-8 paths
def _undecodable_tree(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / os.fsdecode(b"d\xffta")
    good_raw(data / ACTOR / f"{ACTOR}_e0.smc")
    bad = data / ACTOR / os.fsdecode(b"0026_e1.smc")
    bad.write_bytes(b"not hdf5 \xfe")
    return data, tmp_path / os.fsdecode(b"out\xfe")


def test_non_utf8_paths_extract_and_report_without_errors(capsys, tmp_path):
    data, out = _undecodable_tree(tmp_path)
    code = main(["extract", str(data), "-o", str(out), "--no-preview", "--json", "-q"])
    cap = capsys.readouterr()
    assert code == 6 and "Traceback" not in cap.err, cap.err
    doc = json.loads(cap.out)
    outcomes = {o["key"]: o for o in doc["performances"]}
    assert outcomes[f"{ACTOR}_e0"]["status"] == "done"
    assert outcomes[f"{ACTOR}_e0"]["out_dir"] == str(out / f"{ACTOR}_e0")  # exact, via \\udcfe
    assert "not a readable HDF5/SMC file" in outcomes[f"{ACTOR}_e1"]["error"]
    perf = out / f"{ACTOR}_e0"
    assert not (perf / ".tmp").exists()
    assert "d\\xffta" in (perf / "extraction_info.txt").read_text(encoding="utf-8")
    (out / "MANIFEST.csv").read_text(encoding="utf-8")  # valid UTF-8
    assert code == 6
    assert main(["verify", str(perf), "--source", str(data)]) == 0
    assert "\\xfe" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["extract", "explore"])
def test_non_utf8_paths_print_as_escapes(tmp_path, command):
    data, out = _undecodable_tree(tmp_path)
    argv: list[Any] = [command, data]
    if command == "extract":
        argv += ["-o", out, "--no-preview"]
    proc = subprocess.run(
        [sys.executable, "-m", "renderme360", *argv],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    text = (proc.stdout + proc.stderr).decode("utf-8")  # valid UTF-8 throughout
    assert proc.returncode == (6 if command == "extract" else 1), text
    assert "Traceback" not in text and "d\\xffta" in text
    assert not list(tmp_path.rglob(".tmp"))


# ---------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--cameras", "²", "invalid camera selection '²'"),
        ("--cameras", "1-²", "invalid camera selection '1-²'"),
        ("--cameras", "ring:²", "invalid camera rule 'ring:²'"),
        ("--cameras", "front:٣", "invalid camera rule 'front:٣'"),
    ],
)
def test_non_ascii_digits_are_usage_errors(capsys, tmp_path, flag, value, needle):
    good_raw(raw_file(tmp_path))
    code = main(["extract", str(tmp_path / "data"), "-o", str(tmp_path / "out"), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"output: o\xff\n", "is not UTF-8 text (byte 0xff at offset 9)"),
        (BOMB.encode(), "aliases (*name) are not allowed in job files"),
        (b"# " + b"x" * (1 << 20) + b"\n", "is larger than 1,048,576 bytes"),
    ],
    ids=["non-utf8", "alias bomb", "huge"],
)
def test_hostile_job_files_are_usage_errors(capsys, tmp_path, content, needle):
    job = tmp_path / "job.yaml"
    job.write_bytes(content)
    start = time.monotonic()
    code = main(["extract", "--config", str(job)])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and needle in err and str(job) in err and "Traceback" not in err, err
    assert elapsed < 5  # the bomb took 40 s and 4 GB before it was refused


# ---------------------------------------------------------------------------- output folder
@pytest.mark.parametrize(
    ("name", "code", "needle"),
    [
        (f"{ACTOR}_e0/.lock", 6, "refusing to lock"),
        (f"{ACTOR}_e0/.journal.jsonl", 6, "refusing to append to"),
        ("MANIFEST.csv", 1, "refusing to append to"),
    ],
)
def test_hard_links_planted_in_output_are_never_written_through(
    capsys, tmp_path, name, code, needle
):
    good_raw(raw_file(tmp_path))
    victim = tmp_path / "outside" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"victim line\n" * 4)
    planted = tmp_path / "out" / name
    planted.parent.mkdir(parents=True, exist_ok=True)
    os.link(victim, planted)
    run = extract(capsys, tmp_path)  # the snapshot proves the victim (outside) is unchanged
    assert run.code == code, (run.out, run.err)
    if code == 6:
        assert_failed_with(run, f"{ACTOR}_e0", needle, str(planted), "2 hard links")
    else:
        assert run.err.startswith("renderme360: error: ") and run.err.count("\n") == 1
        assert needle in run.err and str(planted) in run.err and "2 hard links" in run.err
    assert victim.read_bytes() == b"victim line\n" * 4


APPENDER = """
import sys, time
from pathlib import Path
from renderme360.output.reports import append_batch_row
root, t0, me = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
for i in range(25):
    time.sleep(max(0.0, t0 + i * 0.04 - time.time()))
    append_batch_row(root / str(i), {"subject": me, "performance": "e0", "status": "done"})
"""


def test_batch_manifest_has_one_header_under_concurrent_first_appends(tmp_path):
    t0 = time.time() + 1.5  # every process starts appending at the same instants
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), str(t0), str(n)])
        for n in range(5)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    for i in range(25):
        lines = (tmp_path / str(i) / "MANIFEST.csv").read_text().splitlines()
        assert lines[0].startswith("subject,") and len(lines) == 6, lines
        assert sum(line.startswith("subject,") for line in lines) == 1, lines


def test_locked_performance_exits_4_with_the_message_on_stderr(capsys, tmp_path):
    from renderme360.output.outdir import OutputDir
    from renderme360.pipeline.record import performance_lock

    good_raw(raw_file(tmp_path))
    good_raw(raw_file(tmp_path, "e1"), performance="e1")
    with performance_lock(OutputDir(tmp_path / "out" / f"{ACTOR}_e0")):
        run = extract(capsys, tmp_path)
    assert run.code == 4, (run.out, run.err)
    assert run.err.startswith("renderme360: error: ") and run.err.count("\n") == 1
    assert "another renderme360 process" in run.err and f"{ACTOR}_e0" in run.err
    assert run.outcomes[f"{ACTOR}_e0"]["status"] == "locked"
    assert run.outcomes[f"{ACTOR}_e1"]["status"] == "done"
    statuses = {r[1]: r[2] for r in _batch_rows(tmp_path)[1:]}
    assert statuses == {"e0": "locked", "e1": "done"}


# ---------------------------------------------------------------------------- verify
def _extracted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    good_raw(raw_file(tmp_path))
    assert extract(capsys, tmp_path).code == 0
    return tmp_path / "out" / f"{ACTOR}_e0"


def _edit_manifest(perf: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit manifest.json with its file list in hand as ``doc["files"]``: a list goes back to
    manifest.jsonl (one JSON value a line, the count in manifest.json kept in step), anything
    else into manifest.json itself, as a malformed earlier-format manifest."""
    doc = json.loads((perf / "manifest.json").read_text())
    lines = (perf / "manifest.jsonl").read_text().splitlines()
    doc["files"] = [json.loads(line) for line in lines]
    edit(doc)
    files = doc.pop("files")
    if isinstance(files, list):
        (perf / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in files))
        doc["total_files"] = len(files)
    else:
        doc["files"] = files
    (perf / "manifest.json").write_text(json.dumps(doc))


def _listed(path: str, data: bytes) -> dict[str, Any]:
    import hashlib

    return {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlinked folder"])
def test_verify_refuses_manifest_paths_outside_the_folder(capsys, tmp_path, how):
    perf = _extracted(capsys, tmp_path)
    victim = victim_file(tmp_path)
    if how == "dotdot":
        rel = "../../victim.bin"
    elif how == "absolute":
        rel = str(victim)
    else:
        (perf / "from_raw" / "escape").symlink_to(tmp_path)
        rel = "from_raw/escape/victim.bin"
    _edit_manifest(perf, lambda d: d["files"].append(_listed(rel, VICTIM)))
    run = run_checked(capsys, tmp_path, tmp_path / "out", ["verify", perf, "--json"])
    assert run.code == 5
    (report,) = run.doc
    assert any(rel in p and "outside the performance folder" in p for p in report["problems"])


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["files"][0].pop("bytes"), "'bytes' missing or not a non-negative integer"),
        (lambda d: d["files"][0].update(bytes="12"), "'bytes' missing or not"),
        (lambda d: d["files"][0].update(path=["x"]), "'path' missing or not a string"),
        (lambda d: d["files"].append(7), "an entry of type int, not an object"),
        (lambda d: d.update(files={"a": 1}), "'files' is not a list"),
        (lambda d: d["files"][0].update(sha256=5), "'sha256' is not a string"),
    ],
    ids=["no bytes", "bytes text", "path list", "entry int", "files dict", "sha256 int"],
)
def test_verify_reports_a_malformed_manifest_in_one_line(capsys, tmp_path, edit, needle):
    perf = _extracted(capsys, tmp_path)
    _edit_manifest(perf, edit)
    for extra in ([], ["--source", tmp_path / "data"]):
        run = run_checked(capsys, tmp_path, tmp_path / "out", ["verify", perf, *extra])
        assert run.code == 5, run.err
        bad = [line for line in run.out.splitlines() if needle in line]
        assert len(bad) == 1 and "manifest.json" in bad[0], run.out


def test_verify_against_source_with_malformed_identity(capsys, tmp_path):
    perf = _extracted(capsys, tmp_path)
    _edit_manifest(perf, lambda d: d.pop("actor"))
    run = run_checked(
        capsys, tmp_path, tmp_path / "out", ["verify", perf, "--source", tmp_path / "data"]
    )
    assert run.code == 5 and "'actor'/'performance' missing" in run.out


# ---------------------------------------------------------------------------- SIGTERM
def test_sigterm_with_workers_stops_cleanly_and_leaves_no_process(tmp_path):
    from renderme360.synth import synthesize

    synthesize(tmp_path / "data", ACTOR, ["e0", "s1_all"], 21, cameras=6, frames=40)
    out = tmp_path / "out"
    argv = ["extract", tmp_path / "data", "-o", out, "--workers", "2", "--no-preview", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "renderme360", *map(str, argv)],
        start_new_session=True,  # its own session: every process it starts can be found
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("*/.journal.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)  # workers are writing
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        err = proc.stderr.read() if proc.stderr else ""
    assert code == 143, err
    assert "stopped by SIGTERM after writing" in err and "Traceback" not in err, err
    for _ in range(50):  # workers, forkserver and resource tracker gone within seconds
        alive = session_processes(proc.pid)
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, alive
    assert not list(out.glob("*/.tmp"))
    resume = [*map(str, argv[:-4]), "--workers", "1", "--no-preview", "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "renderme360", *resume], capture_output=True, timeout=120
    )
    assert done.returncode == 0 and len(list(out.glob("*/.extraction_complete"))) == 2


# ---------------------------------------------------------------------------- amplification
def _peak_traced(run: Callable[[], Any]) -> tuple[Any, int]:
    """Result of ``run`` and the peak bytes Python and numpy allocated meanwhile."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_filtered_blob_may_not_expand_beyond_64x(capsys, tmp_path):
    path = good_raw(raw_file(tmp_path))
    bomb = np.zeros(48 << 20, np.uint8)  # 48 MB of zeros: a few KB once gzipped
    bomb[:4] = np.frombuffer(b"\xff\xd8\xff\xe0", np.uint8)
    with h5py.File(path, "r+") as f:
        del f["Camera/25/color/1"]
        f["Camera/25/color"].create_dataset("1", data=bomb, chunks=(1 << 20,), compression="gzip")
    del bomb
    run, peak = _peak_traced(lambda: extract(capsys, tmp_path))
    assert_failed_with(
        run, f"{ACTOR}_e0", "/Camera/25/color/1 would expand from", "(more than 64x)"
    )
    assert peak < 16 << 20, peak
    assert not list((tmp_path / "out").rglob("frame_000001.*"))


def test_calibration_shapes_are_checked_before_reading(capsys, tmp_path):
    path = good_raw(raw_file(tmp_path), calibration={"25": calib(25), "30": calib(30)})
    with h5py.File(path, "r+") as f:  # 1 GiB declared, never written: reading it allocates 1 GiB
        del f["Calibration/30/K"]
        f["Calibration/30"].create_dataset(
            "K", shape=(16384, 16384), dtype="f4", chunks=(1024, 1024), compression="gzip"
        )
    run, peak = _peak_traced(lambda: extract(capsys, tmp_path, "--modalities", "calibration"))
    assert_failed_with(run, f"{ACTOR}_e0", "Calibration/30/K has shape (16384, 16384)")
    assert peak < 64 << 20, peak


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height gray pixels (its data is a stub)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def test_previews_skip_images_above_the_pixel_budget_with_a_note(capsys, tmp_path):
    huge = _png_header_only(30000, 30000)
    good_raw(raw_file(tmp_path), color={"25": {0: huge}, "30": {0: jpeg(seed=3)}})
    argv = ["extract", tmp_path / "data", "-o", tmp_path / "out", "-q", "--json", "--workers", "1"]
    run, peak = _peak_traced(lambda: run_checked(capsys, tmp_path, tmp_path / "out", argv))
    assert run.code == 0, run.err
    perf = tmp_path / "out" / f"{ACTOR}_e0"
    assert (perf / "from_raw" / "images" / "cam_25" / "frame_000000.png").read_bytes() == huge
    warnings = json.loads((perf / "manifest.json").read_text())["warnings"]
    assert any("preview skipped" in w and "30000 x 30000 pixels" in w for w in warnings), warnings
    assert (perf / "visualization" / "cameras_frame_000000.jpg").is_file()  # the other camera
    assert peak < 200 << 20, peak


def test_a_refused_file_is_reported_once_not_logged_at_every_probe(tmp_path):
    """The terminal of a real run (logging configured): the plan's warning and the failure,
    no extra WARNING log line for each time the file is probed."""
    made = pair_with_neighbour(tmp_path)
    role, mutate, needle = CASES[8]  # external storage on a colour image of the raw file
    with h5py.File(made[role], "r+") as f:
        mutate(f, tmp_path)
    cmd = [sys.executable, "-m", "renderme360", "extract", str(tmp_path / "data")]
    env = {**os.environ, "COLUMNS": "1000"}  # no wrapped lines
    proc = subprocess.run(
        [*cmd, "-o", str(tmp_path / "out"), "--workers", "1", "--no-preview"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 6, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    text = " ".join(proc.stderr.split())  # long lines may wrap
    assert text.count(needle) == 2, proc.stderr  # plan warning + failure line
    explore = subprocess.run(
        [sys.executable, "-m", "renderme360", "explore", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert explore.returncode == 1 and "WARNING" not in explore.stderr, explore.stderr

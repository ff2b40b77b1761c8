"""verify: detects flipped bytes, missing files, and differences from the SMC source."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import file_entries
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
    assert report["checked"] == len(file_entries(perf))
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
    _replace_listed(perf, "from_raw/images/cam_25/frame_000000.jpg", a.read_bytes())
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


def _replace_listed(perf, rel, data: bytes) -> None:
    """Put other bytes under ``rel`` and update its manifest entry (size and sha256 agree)."""
    path = perf / rel
    path.write_bytes(data)
    entries = file_entries(perf)
    for f in entries:
        if f["path"] == rel:
            f["bytes"], f["sha256"] = path.stat().st_size, sha256_file(path)
    (perf / "manifest.jsonl").write_text("".join(json.dumps(f) + "\n" for f in entries))


def test_source_check_catches_stale_aggregates(tmp_path, capsys):
    """Aggregates of a narrower selection in a folder that records everything (what a sample
    followed by a full run left behind before the union rule) pass the manifest check but
    not the source check."""
    from renderme360.synth import synthesize

    data = tmp_path / "data"
    synthesize(data, performances=["e0"], cameras=6, frames=6)
    args = ["--workers", "1", "-q", "--no-preview"]
    assert main(["extract", str(data), "-o", str(tmp_path / "full"), *args]) == 0
    assert main(["extract", str(data), "-o", str(tmp_path / "sample"), *args, "--sample"]) == 0
    perf, sample = tmp_path / "full/0026_e0", tmp_path / "sample/0026_e0"
    capsys.readouterr()
    assert main(["verify", str(perf), "--source", str(data)]) == 0
    assert "OK" in capsys.readouterr().out
    stale = [
        "from_anno/flame/all_frames.npz",
        "from_anno/keypoints3d/all_frames.npz",
        "from_anno/calibration/all_cameras.npz",
        "from_anno/calibration/cameras.json",
    ]
    for rel in stale:
        _replace_listed(perf, rel, (sample / rel).read_bytes())
    assert main(["verify", str(perf)]) == 0  # consistent with its manifest ...
    capsys.readouterr()
    assert main(["verify", str(perf), "--source", str(data)]) == 5  # ... but not with the source
    out = capsys.readouterr().out
    for rel in stale:
        assert f"{rel}: differs from what" in out and "recorded selection" in out
    assert f"{len(stale)} problem(s)" in out


def test_verify_an_output_root_and_several_paths(tmp_path, capsys):
    from renderme360.synth import synthesize

    data = tmp_path / "data"
    synthesize(data, performances=["e0", "s1_all"], cameras=4, frames=2)
    out = tmp_path / "out"
    assert main(["extract", str(data), "-o", str(out), "--workers", "1", "-q"]) == 0
    assert (out / "MANIFEST.csv").is_file()
    capsys.readouterr()
    assert main(["verify", str(out), "--source", str(data)]) == 0
    text = capsys.readouterr().out
    assert "0026_e0: OK" in text and "0026_s1_all: OK" in text
    assert "2 performances: 2 OK, 0 with problems" in text
    # the shell form OUT/*: MANIFEST.csv is skipped, not an error
    entries = sorted(str(p) for p in out.iterdir())
    assert main(["verify", *entries]) == 0
    captured = capsys.readouterr()
    assert "MANIFEST.csv: not a performance folder, skipped" in captured.err
    assert "2 performances: 2 OK" in captured.out
    # a bad file in one performance: non-zero, named, the other still checked
    img = next((out / "0026_s1_all/from_raw/images").rglob("*.jpg"))
    img.write_bytes(b"x" + img.read_bytes()[1:])
    (out / "0026_e0/from_anno/keypoints3d/all_frames.npz").unlink()
    assert main(["verify", str(out), "--json"]) == 5
    reports = {Path(r["folder"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert set(reports) == {"0026_e0", "0026_s1_all"}
    assert reports["0026_e0"]["problems"] == ["from_anno/keypoints3d/all_frames.npz: missing"]
    rel = img.relative_to(out / "0026_s1_all").as_posix()
    assert reports["0026_s1_all"]["problems"] == [f"{rel}: content differs from manifest (sha256)"]
    assert main(["verify", str(out)]) == 5
    text = capsys.readouterr().out
    assert "2 performances: 0 OK, 2 with problems (2 in all)" in text
    assert "keypoints3d/all_frames.npz: missing" in text and rel in text


def test_verify_starts_without_hdf5_or_numpy(extracted):
    """verify without --source only hashes files: it must not pay for importing HDF5 and numpy
    (a third of its time on a 72,000-file folder), nor bring them in through signal handling
    or the progress code."""
    _, perf = extracted
    code = (
        "import sys; from renderme360.cli import main; "
        f"rc = main(['verify', {str(perf)!r}, '-q']); "
        "heavy = [m for m in ('h5py', 'numpy', 'cv2') if m in sys.modules]; "
        "print('RESULT', rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "RESULT 0 []"


def test_a_deleted_file_is_one_problem_not_two(extracted, capsys):
    """A copied image and a derived npz deleted: each is "missing" once, not also "differs"
    from the source (the source checks skip files the listed check already reported)."""
    data, perf = extracted
    img = "from_raw/images/cam_25/frame_000001.jpg"
    npz = "from_anno/keypoints3d/all_frames.npz"
    (perf / img).unlink()
    (perf / npz).unlink()
    assert main(["verify", str(perf), "--source", str(data), "--json"]) == 5
    (report,) = json.loads(capsys.readouterr().out)
    assert sorted(report["problems"]) == [f"{npz}: missing", f"{img}: missing"]


def test_ctrl_c_during_verify_says_nothing_was_written(extracted, capsys, monkeypatch):
    """verify writes nothing: Ctrl-C must not promise kept files or a resume."""
    import renderme360.verify as v

    _, perf = extracted
    before = sorted((p.relative_to(perf), p.stat().st_mtime_ns) for p in perf.rglob("*"))

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(v, "_check_file", interrupt)
    assert main(["verify", str(perf)]) == 130
    err = capsys.readouterr().err
    assert "verify writes nothing, so nothing was changed" in err, err
    assert "kept" not in err and "resume" not in err
    assert sorted((p.relative_to(perf), p.stat().st_mtime_ns) for p in perf.rglob("*")) == before


def test_the_table_summarises_many_problems_in_bounded_lines(capsys):
    """200,000 bad files: the table names the first VERIFY_SHOWN and counts the rest by kind
    (one rich print per problem made 2 million problems cost 14x the verify itself)."""
    from renderme360.cli.render import verify_table
    from renderme360.verify import PROBLEMS_SHOWN as VERIFY_SHOWN
    from renderme360.verify import VerifyReport

    problems = [f"from_raw/images/cam_25/frame_{i:06d}.jpg: missing" for i in range(199_990)]
    problems += [
        f"from_raw/masks/cam_25/frame_{i:06d}.png: content differs from manifest (sha256)"
        for i in range(9)
    ]
    problems += ["a[/x]b.jpg: wrong size or not a regular file"]  # markup in a listed name
    report = VerifyReport("OUT/0026_s1_all", checked=200_000, problems=problems, complete=True)
    verify_table([report])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= VERIFY_SHOWN + 6, len(lines)
    assert lines[0] == "OUT/0026_s1_all: 200,000 problem(s) (200,000 files checked)"
    assert lines[1] == "  bad from_raw/images/cam_25/frame_000000.jpg: missing"
    assert (
        f"and {200_000 - VERIFY_SHOWN:,} more (--json lists every one)" in lines[VERIFY_SHOWN + 1]
    )
    counts = [" ".join(line.split()) for line in lines[VERIFY_SHOWN + 2 :]]
    assert counts == [
        "199,990 missing",
        "9 content differs from the manifest",
        "1 wrong size or not a regular file",
    ]


def test_a_huge_manifest_line_is_refused_in_bounded_memory(extracted, capsys):
    """A 16 MB line planted in manifest.jsonl (or the journal) is refused with one line naming
    the file and the line number, read with at most output.read.MAX_LINE characters in memory
    (the whole line cost twice its size)."""
    import tracemalloc

    from renderme360.errors import CorruptOutputError
    from renderme360.output.read import iter_file_entries
    from renderme360.pipeline.record import iter_journal

    _, perf = extracted
    listed = (perf / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    huge = b'{"path": "' + b"x" * (16 << 20) + b'"}\n'
    (perf / "manifest.jsonl").write_bytes(listed[0] + huge + b"".join(listed[1:]))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptOutputError) as exc:
            sum(1 for _ in iter_file_entries(perf))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(exc.value) == (
        f"{perf / 'manifest.jsonl'}: line 2 is longer than 1,048,576 characters: refused "
        "(no line the tool writes is; the file was damaged or planted)"
    )
    assert peak < 8 << 20, peak
    assert main(["verify", str(perf), "--json"]) == 5
    (report,) = json.loads(capsys.readouterr().out)
    assert report["problems"] == [str(exc.value)]

    (perf / ".journal.jsonl").write_bytes(listed[0] + listed[1] + huge)
    with pytest.raises(CorruptOutputError, match=r"\.journal\.jsonl: line 3 is longer than"):
        list(iter_journal(perf))


def test_problem_lines_are_never_cut_into_several(tmp_path, capsys):
    """A problem naming a long path stays one line off a terminal (logs, pipes, grep): it was
    wrapped at the console's 160 columns, so a line holding the source path broke in two."""
    deep = tmp_path / ("d" * 120)
    full_pair(deep / "data")
    out = deep / "out"
    assert main(["extract", str(deep / "data"), "-o", str(out), "--workers", "1", "-q"]) == 0
    perf = out / "0026_e0"
    (perf / "from_anno/keypoints3d/all_frames.npz").unlink()
    capsys.readouterr()
    assert main(["verify", str(perf)]) == 5
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.startswith(str(perf)) and "1 problem(s)" in ln for ln in lines), lines
    assert any(ln.endswith("from_anno/keypoints3d/all_frames.npz: missing") for ln in lines)
    assert len(lines) == 2 and len(lines[0]) > 160, lines

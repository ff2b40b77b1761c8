"""``extract --delete-source``: a local SMC file goes only after every performance reading it
ended complete with a full selection and verified against that very file; anything else keeps
it, one line saying why, recorded in MANIFEST.csv and manifest.json; kill -9 at any moment never
deletes an unverified file."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tree

from renderme360.cli import main
from renderme360.synth import synthesize
from renderme360.verify import verify


def extract(*args: object) -> int:
    return main(["extract", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "data"
    synthesize(root, performances=("e0", "h0", "s1_all"), cameras=3, frames=2)
    return root


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(pristine, root)
    return root


def smc_files(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(root.rglob("*.smc"))}


def batch_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "MANIFEST.csv", newline="") as f:
        return {r["performance"]: r for r in csv.DictReader(f)}


def test_deletes_exactly_the_verified_files(data: Path, tmp_path: Path, capsys) -> None:
    files = smc_files(data)
    bad = files["0026_h0_raw.smc"]  # h0 fails: its raw file is cut short
    bad.write_bytes(bad.read_bytes()[:4096])
    out = tmp_path / "out"
    code = extract(data, "-o", out, "--performance", "e0,h0", "--delete-source", "--json")
    doc = json.loads(capsys.readouterr().out)
    err = capsys.readouterr().err
    assert code != 0  # h0 failed
    left = set(smc_files(data))
    assert left == {
        "0026_h0_anno.smc",
        "0026_h0_raw.smc",
        "0026_s1_all_anno.smc",  # not in the batch: never touched
        "0026_s1_all_raw.smc",
    }
    by_perf = {p["performance"]: p for p in doc["performances"]}
    assert by_perf["e0"]["source_files"] == [
        f"deleted {files['0026_e0_anno.smc']} (verified: 0026_e0)",
        f"deleted {files['0026_e0_raw.smc']} (verified: 0026_e0)",
    ]
    h0 = by_perf["h0"]["source_files"]
    assert len(h0) == 2 and all(x.startswith("kept ") and ": 0026_h0 failed" in x for x in h0)
    rows = batch_rows(out)
    assert rows["e0"]["source_files"].count("deleted ") == 2
    assert rows["h0"]["source_files"].count("kept ") == 2
    manifest = json.loads((out / "0026_e0" / "manifest.json").read_text())
    assert {r: v["deleted"] for r, v in manifest["source_files"].items()} == {
        "anno": True,
        "raw": True,
    }
    assert verify(out / "0026_e0").ok  # the rewritten manifest.json still verifies
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "narrowing",
    [("--cameras", "0"), ("--frames", "0:1"), ("--modalities", "images"), ("--sample",)],
)
def test_a_narrowed_selection_keeps_the_file(
    data: Path, tmp_path: Path, capsys, narrowing: tuple[str, ...]
) -> None:
    before = smc_files(data)
    out = tmp_path / "out"
    assert extract(data, "-o", out, "--performance", "e0", "--delete-source", *narrowing) == 0
    err = capsys.readouterr().err
    assert smc_files(data) == before
    kept = [x for x in err.splitlines() if x.startswith("kept ")]
    assert len(kept) == 2 and all("narrowed selection" in x for x in kept), err
    manifest = json.loads((out / "0026_e0" / "manifest.json").read_text())
    assert not any(v["deleted"] for v in manifest["source_files"].values())
    # the same folder completed with every camera and frame: now the files may go
    assert extract(data, "-o", out, "--performance", "e0", "--delete-source", "-q") == 0
    assert "0026_e0_anno.smc" not in smc_files(data)


def test_reencoded_or_unchecksummed_output_keeps_the_file(data: Path, tmp_path: Path, capsys):
    before = smc_files(data)
    for flags in (("--image-mode", "reencode"), ("--no-checksum",)):
        out = tmp_path / flags[0].strip("-")
        assert extract(data, "-o", out, "--performance", "e0", "--delete-source", *flags) == 0
    err = capsys.readouterr().err
    assert smc_files(data) == before
    assert "re-encoded" in err and "no sha256 to verify" in err


def test_a_file_corrupted_before_verification_keeps_its_source(
    data: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the completion marker and the verify (the seam: the end of run_performance), an
    extracted image is altered, as a failing disk or another process would: verify catches it
    and the source stays."""
    import renderme360.pipeline.run as run_mod

    real = run_mod.run_performance

    def run_then_corrupt(s, req, executor, progress=None):
        outcome = real(s, req, executor, progress)
        if s.perf.performance == "e0":
            img = sorted((Path(outcome.out_dir) / "from_raw" / "images").rglob("*.jpg"))[0]
            data = bytearray(img.read_bytes())
            data[100] ^= 0xFF
            img.write_bytes(bytes(data))
        return outcome

    monkeypatch.setattr(run_mod, "run_performance", run_then_corrupt)
    out = tmp_path / "out"
    extract(data, "-o", out, "--performance", "e0,h0", "--delete-source", "-q")
    err = capsys.readouterr().err
    left = set(smc_files(data))
    assert {"0026_e0_anno.smc", "0026_e0_raw.smc"} <= left
    assert not {"0026_h0_anno.smc", "0026_h0_raw.smc"} & left  # h0 verified: deleted
    kept = [x for x in err.splitlines() if x.startswith("kept ") and "0026_e0" in x]
    assert len(kept) == 2
    assert all("verify of 0026_e0 failed" in x and "sha256" in x for x in kept), kept
    assert "verify of 0026_e0 failed" in batch_rows(out)["e0"]["source_files"]


def test_a_file_read_by_two_runs_waits_for_both(data: Path, tmp_path: Path, capsys) -> None:
    """Two jobs read the same files (into two outputs); the second narrows its selection: the
    first verifies, but the files stay. A file seen under two names (hard link) is one file."""
    os.link(data / "anno" / "0026" / "0026_e0_anno.smc", tmp_path / "linked.smc")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"data_root: {data}\nperformances: e0\njobs:\n"
        f"  - output: {tmp_path / 'a'}\n  - output: {tmp_path / 'b'}\n    cameras: '0'\n"
    )
    assert main(["extract", "--config", str(job), "--delete-source", "-q"]) == 0
    err = capsys.readouterr().err
    assert {"0026_e0_anno.smc", "0026_e0_raw.smc"} <= set(smc_files(data))
    kept = [x for x in err.splitlines() if x.startswith("kept ")]
    assert len(kept) == 2 and all("narrowed selection" in x for x in kept), err
    first = json.loads((tmp_path / "a" / "0026_e0" / "manifest.json").read_text())
    assert "did not end verified" in first["source_files"]["anno"]["note"] or (
        "narrowed" in first["source_files"]["anno"]["note"]
    )
    # both full: deleted once the second has verified too
    job.write_text(
        f"data_root: {data}\nperformances: e0\njobs:\n"
        f"  - output: {tmp_path / 'c'}\n  - output: {tmp_path / 'd'}\n"
    )
    assert main(["extract", "--config", str(job), "--delete-source", "-q"]) == 0
    err = capsys.readouterr().err
    assert not {"0026_e0_anno.smc", "0026_e0_raw.smc"} & set(smc_files(data))
    assert "verified: 0026_e0, 0026_e0" in err
    first = json.loads((tmp_path / "c" / "0026_e0" / "manifest.json").read_text())
    assert first["source_files"]["anno"]["deleted"] is True  # updated when the second ended
    assert (tmp_path / "linked.smc").stat().st_nlink == 1  # the other name of the file remains


def test_remote_sources_are_refused(data: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("fsspec")
    from remote_servers import range_server

    with range_server(data) as srv:
        code = extract(srv.url + "/", "-o", tmp_path / "o", "--delete-source")
    assert code == 2 and not (tmp_path / "o").exists()
    assert "--delete-source deletes local files only" in capsys.readouterr().err


def test_kill_9_at_random_points_never_deletes_an_unverified_file(
    pristine: Path, tmp_path: Path
) -> None:
    """A subprocess extracting with --delete-source is killed (SIGKILL) after a random delay,
    several rounds: every source file is still there unless its performance folder is
    complete, verifies, and holds what a plain extraction writes."""
    reference = tmp_path / "reference"
    assert extract(pristine, "-o", reference, "-q") == 0
    expected = {p.name: tree(p) for p in reference.iterdir() if p.is_dir()}
    rng = random.Random(24)
    cmd = [sys.executable, "-m", "renderme360", "extract", "--delete-source", "-q"]
    t0 = time.monotonic()
    full = subprocess.run([*cmd, str(pristine), "-o", str(tmp_path / "timing"), "--dry-run"])
    startup = time.monotonic() - t0  # interpreter and imports: kills land after it mostly
    assert full.returncode == 0
    for round_ in range(6):
        data, out = tmp_path / f"d{round_}", tmp_path / f"o{round_}"
        shutil.copytree(pristine, data)
        files = smc_files(data)
        proc = subprocess.Popen([*cmd, str(data), "-o", str(out)], stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, startup + 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for name, path in files.items():
            if path.exists():
                continue
            perf = name.rsplit("_", 1)[0]
            folder = out / perf
            report = verify(folder)
            assert report.ok, (name, report.problems)
            got = tree(folder)
            assert got == expected[perf] or _same_but_source_record(got, expected[perf]), name
    # a run to the end deletes everything (previous folders verified afresh)
    assert extract(tmp_path / "d0", "-o", tmp_path / "o0", "--delete-source", "-q") == 0
    assert smc_files(tmp_path / "d0") == {}


def _same_but_source_record(got: dict[str, str], want: dict[str, str]) -> bool:
    """Equal apart from the files that name the source's path (another copy of the data)."""
    naming = ("metadata/info.json", "metadata/info.txt", "manifest.jsonl", "SHA256SUMS")
    naming += ("size_summary.txt",)
    return got.keys() == want.keys() and all(
        got[k] == want[k] for k in got if not k.endswith(naming)
    )


def test_a_file_under_two_names_waits_for_both_and_goes_under_both(
    data: Path, tmp_path: Path, capsys
) -> None:
    """A hard link makes one file two performances' source: it is deleted (every name of it)
    only when both verified; while one is narrowed, both names stay."""
    anno = data / "anno" / "0026" / "0026_e0_anno.smc"
    (data / "anno" / "0027").mkdir()
    twin = data / "anno" / "0027" / "0027_e0_anno.smc"
    os.link(anno, twin)
    out = tmp_path / "out"
    assert extract(data, "-o", out, "--performance", "e0", "--delete-source", "-q") == 0
    err = capsys.readouterr().err
    assert not anno.exists() and not twin.exists(), err
    assert "verified: 0026_e0, 0027_e0" in err
    assert not (data / "raw" / "0026" / "0026_e0_raw.smc").exists()

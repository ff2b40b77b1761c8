"""Crash safety: SIGKILL, Ctrl-C and a full disk part-way, then resume; re-runs change nothing."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import stats, tree

from renderme360.cli import main
from renderme360.synth import synthesize


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    synthesize(root, performances=["e0", "s1_all"], cameras=6, frames=8)
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted extraction to compare against."""
    out = tmp_path_factory.mktemp("ref")
    assert main(["extract", str(data), "-o", str(out), "--workers", "1", "-q"]) == 0
    return out


ARGS = ["--workers", "1", "-q"]

# Runs the CLI in a child process whose N-th file write is interrupted half-way through by a
# real signal (SIGKILL: no cleanup code runs at all; SIGINT: Ctrl-C).
CHILD = textwrap.dedent("""
    import os, signal, sys
    import renderme360.output.outdir as fsutil
    from renderme360.cli import main
    n_at, sig = int(sys.argv[1]), getattr(signal, sys.argv[2])
    real = fsutil._HashingFile.write
    count = [0]
    def write(self, data):
        count[0] += 1
        if count[0] == n_at:
            real(self, data[: len(data) // 2])
            self.raw.flush()
            os.kill(os.getpid(), sig)
        return real(self, data)
    fsutil._HashingFile.write = write
    if os.environ.get("TWICE"):  # a second Ctrl-C while the first one is being handled
        clean = fsutil.OutputDir.clean_tmp
        def clean_tmp(self):
            if count[0] >= n_at:
                os.kill(os.getpid(), signal.SIGINT)
            return clean(self)
        fsutil.OutputDir.clean_tmp = clean_tmp
    sys.exit(main(sys.argv[3:]))
""")


def run_child(
    n_at: int, sig: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(n_at), sig, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_sigkill_then_resume_equals_uninterrupted(data, reference, tmp_path):
    out = tmp_path / "out"
    proc = run_child(40, "SIGKILL", "extract", str(data), "-o", str(out), *ARGS)
    assert proc.returncode == -signal.SIGKILL
    perf = out / "0026_e0"
    assert not (perf / ".extraction_complete").exists()
    leftovers = list((perf / ".tmp").glob("*.part"))
    assert leftovers  # the killed write left its temporary file, never a partial final file
    before = stats(out)
    journal = (perf / ".journal.jsonl").read_text().splitlines()
    assert journal
    done = [json.loads(line)["path"] for line in journal if '"path"' in line]  # file records
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 0
    assert tree(out) == tree(reference)
    after = stats(out)
    for rel in done:  # finished files were not written again
        assert after[f"0026_e0/{rel}"] == before[f"0026_e0/{rel}"]
    assert not (perf / ".tmp").exists() and not (perf / ".journal.jsonl").exists()
    assert (perf / ".extraction_complete").is_file()


def test_ctrl_c_stops_cleanly_and_resumes(data, reference, tmp_path):
    out = tmp_path / "out"
    proc = run_child(25, "SIGINT", "extract", str(data), "-o", str(out), *ARGS)
    assert proc.returncode == 130
    assert "interrupted" in proc.stderr and "resume" in proc.stderr
    assert "stopped by Ctrl-C after writing" in proc.stderr
    assert "Traceback" not in proc.stderr
    perf = out / "0026_e0"
    assert not (perf / ".tmp").exists()  # the file in hand was discarded
    assert not (perf / ".extraction_complete").exists()
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 0
    assert tree(out) == tree(reference)


def test_second_ctrl_c_exits_at_once_and_resume_still_works(data, reference, tmp_path):
    out = tmp_path / "out"
    proc = run_child(25, "SIGINT", "extract", str(data), "-o", str(out), *ARGS, env={"TWICE": "1"})
    assert proc.returncode == 130 and "interrupted twice" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 0
    assert tree(out) == tree(reference)


def test_rerun_of_complete_extraction_changes_nothing(data, reference, capsys):
    before = stats(reference)
    assert main(["extract", str(data), "-o", str(reference), "--workers", "1"]) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out
    after = stats(reference)
    assert {k: v for k, v in after.items() if k != "MANIFEST.csv"} == {
        k: v for k, v in before.items() if k != "MANIFEST.csv"
    }
    rows = (reference / "MANIFEST.csv").read_text().splitlines()
    assert [r.split(",")[2] for r in rows[1:]] == ["done", "done", "skipped", "skipped"]


def test_marker_is_not_trusted_over_lost_files(data, reference, tmp_path, capsys):
    """After a power loss unflushed files can be empty or gone though the marker survived:
    the re-run finds them by size, rewrites only them and the reports, and ends identical."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference, out, symlinks=True)
    perf = out / "0026_e0"
    images = sorted((perf / "from_raw" / "images").rglob("*.jpg"))
    emptied, lost = images[0], images[-1]
    emptied.write_bytes(b"")
    lost.unlink()
    assert (perf / ".extraction_complete").exists()
    before = stats(out)
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 0
    assert "1 done, 1 skipped" in capsys.readouterr().out
    assert tree(out) == tree(reference)
    after = stats(out)
    rewritten = {k for k in after if before.get(k) != after[k]}
    reports = {"0026_e0/manifest.json", "0026_e0/.extraction_complete", "0026_e0/size_summary.txt"}
    reports |= {"0026_e0/manifest.jsonl", "0026_e0/SHA256SUMS"}
    reports |= {"0026_e0/extraction_info.txt", "0026_e0/.lock", "MANIFEST.csv"}
    previews = {k for k in rewritten if k.startswith("0026_e0/visualization/")}
    assert len(previews) == 4  # drawn again from the completed set
    assert rewritten - reports - previews == {
        emptied.relative_to(out).as_posix(),
        lost.relative_to(out).as_posix(),
    }


def test_disk_full_then_resume(data, reference, tmp_path, monkeypatch, capsys):
    import renderme360.output.outdir as fsutil

    real = fsutil._HashingFile.write
    budget = {"left": 150_000}

    def write(self, data):
        budget["left"] -= len(data)
        if budget["left"] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(fsutil._HashingFile, "write", write)
    out = tmp_path / "out"
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 3
    err = capsys.readouterr().err
    assert "disk full" in err and "re-run" in err and "Traceback" not in err
    perf = out / "0026_e0"
    assert not (perf / ".extraction_complete").exists() and not (perf / ".tmp").exists()
    journal = {
        json.loads(x)["path"]: json.loads(x)["bytes"]
        for x in (perf / ".journal.jsonl").read_text().splitlines()
        if '"path"' in x  # file records (the first line records the selections)
    }
    on_disk = {
        p.relative_to(perf).as_posix(): p.stat().st_size
        for p in perf.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert on_disk == journal  # every final-named file is complete and recorded
    monkeypatch.setattr(fsutil._HashingFile, "write", real)
    assert main(["extract", str(data), "-o", str(out), *ARGS]) == 0
    assert tree(out) == tree(reference)


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="mounting a tmpfs needs root; "
    "test_disk_full_then_resume covers the same path with a patched writer",
)
def test_disk_full_on_a_real_small_filesystem(data, reference, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("this sandbox does not allow mounting")
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "renderme360",
                "extract",
                str(data),
                "-o",
                str(mnt / "out"),
                *ARGS,
                "--force",
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 3 and "disk full" in proc.stderr
        perf = mnt / "out" / "0026_e0"
        assert not (perf / ".extraction_complete").exists()
        subprocess.run(["mount", "-o", "remount,size=128m", str(mnt)], check=True)
        assert main(["extract", str(data), "-o", str(mnt / "out"), *ARGS]) == 0
        assert tree(mnt / "out") == tree(reference)
    finally:
        subprocess.run(["umount", str(mnt)])


def test_lock_refuses_second_process_and_wait_waits(data, tmp_path, capsys):
    from renderme360.output.outdir import OutputDir
    from renderme360.pipeline.record import performance_lock

    out = tmp_path / "out"
    with performance_lock(OutputDir(out / "0026_e0")):
        rc = main(["extract", str(data), "-o", str(out), "--performance", "e0", *ARGS])
        assert rc == 4  # the documented code, the message on stderr
        assert "another renderme360 process" in capsys.readouterr().err
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "renderme360",
                "extract",
                str(data),
                "-o",
                str(out),
                "--performance",
                "e0",
                *ARGS,
                "--wait",
            ]
        )
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=1.5)  # still waiting for our lock
    assert child.wait(timeout=60) == 0
    assert (out / "0026_e0" / ".extraction_complete").is_file()


@pytest.mark.parametrize(("flag", "calls"), [([], 0), (["--sync"], 2)])
def test_sync_flushes_once_per_performance_only_when_asked(
    data, tmp_path, monkeypatch, capsys, flag, calls
):
    import renderme360.pipeline.record as manifest

    synced = []
    monkeypatch.setattr(manifest.os, "sync", lambda: synced.append(1))
    out = tmp_path / "out"
    assert main(["extract", str(data), "-o", str(out), *ARGS, "--no-preview", *flag]) == 0
    assert len(synced) == calls
    assert len(list(out.glob("*/.extraction_complete"))) == 2

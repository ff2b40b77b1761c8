"""Issue 20, assorted trust items: job-file ids, markup in untrusted text, deep folders, long
output paths for audio, huge --frames numbers, and a quiet interpreter shutdown."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from renderme360.cli import main
from renderme360.config import load_config
from renderme360.errors import UsageError
from renderme360.synth import synthesize

# -- 1. job-file ids keep the digits typed ------------------------------------------------------


def test_job_file_ids_keep_the_digits_typed(tmp_path):
    """``subjects: [0026]`` is YAML 1.1 octal 22: read as the text typed, not "0022"."""
    job = tmp_path / "job.yaml"
    job.write_text(
        "data_root: d\nsubjects: [0026, 0100]\ncameras: [00, 022]\nperformances: 0010\n"
        "frames: 10:20\nworkers: 2\n"
    )
    (cfg,) = load_config(job)
    assert cfg["subjects"] == "0026,0100"
    assert cfg["cameras"] == "00,022"
    assert cfg["performances"] == "0010"
    assert cfg["frames"] == "10:20"  # not sexagesimal 620
    assert cfg["workers"] == 2 and type(cfg["workers"]) is int
    job.write_text("subjects: 0026\n")
    assert load_config(job)[0]["subjects"] == "0026"


@pytest.mark.parametrize("value", ["[1.5]", "[true]", "[null]", "[{a: 1}]"])
def test_a_non_id_in_a_job_file_names_the_quoting_fix(tmp_path, value):
    (tmp_path / "job.yaml").write_text(f"subjects: {value}\n")
    with pytest.raises(UsageError, match=r"not an id; quote ids, e\.g\. subjects: \['0026'\]"):
        load_config(tmp_path / "job.yaml")


def test_an_unquoted_subject_id_extracts_that_subject(tmp_path, capsys):
    synthesize(tmp_path / "data", "0026", ["e0"], cameras=2, frames=1)
    synthesize(tmp_path / "data", "0022", ["e0"], cameras=2, frames=1)
    (tmp_path / "job.yaml").write_text("data_root: data\noutput: out\nsubjects: [0026]\n")
    argv = ["extract", "--config", str(tmp_path / "job.yaml"), "--dry-run", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["performance"] for p in doc["performances"]] == ["0026_e0"]


# -- 16. huge frame numbers are usage errors -----------------------------------------------------

HUGE = "99999999999999999999"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("small") / "data"
    synthesize(root, "0026", ["e0"], cameras=2, frames=2)
    return root


@pytest.mark.parametrize("frames", [f"0:{HUGE}", HUGE, f"{HUGE}:", f"0:10:{HUGE}", "9" * 5000])
def test_huge_frame_numbers_are_a_usage_error(small_data, tmp_path, capsys, frames):
    argv = ["extract", str(small_data), "-o", str(tmp_path / "o"), "--frames", frames, "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "invalid frame range" in err and len(err.strip().splitlines()) == 1
    assert "Overflow" not in err and len(err) < 300
    assert not (tmp_path / "o").exists()
    sub = ["--subject", "0026", "--performance", "e0", "-o", str(tmp_path / "x")]
    argv = ["export", "nerfstudio", str(small_data), *sub, "--frames", frames]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "invalid frame range" in err and len(err.strip().splitlines()) == 1


def test_a_huge_colmap_frame_is_a_usage_error(small_data, tmp_path, capsys):
    sub = ["--subject", "0026", "--performance", "e0", "-o", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as exc:
        main(["export", "colmap", str(small_data), *sub, "--frame", HUGE])
    assert exc.value.code == 2
    assert "a frame index is 0..999999999" in capsys.readouterr().err


# -- 19. nothing printed at interpreter shutdown -------------------------------------------------

SHUTDOWN_SCRIPT = """
import sys
import renderme360

perf = renderme360.load(sys.argv[1], subject="0026", performance="e0")
image = perf.image(perf.cameras[0].id, 0)
print(image.shape)


class Cycle:
    pass


cycle = Cycle()
cycle.me, cycle.perf = cycle, perf
import functools, logging, os  # noqa: E401

# modules imported before renderme360.smc.reader are cleared after it at shutdown: the readers
# are collected when the reader module's (and logging's) globals are already None
os.keep_perf = perf
logging.keep_perf = perf
functools.keep_perf = perf
"""


def test_loading_from_smc_files_prints_nothing_at_exit(small_data, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "keep.py"
    script.write_text(SHUTDOWN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(small_data)], capture_output=True, timeout=120
    )
    assert done.returncode == 0
    assert done.stdout.strip() == b"(96, 120, 3)"
    assert done.stderr == b""


# -- 15. audio under an output path of about 1 KB ------------------------------------------------


def _long_folder(base, total=1000):
    """A folder under ``base`` whose absolute path is about ``total`` bytes (names of 200)."""
    path = base
    while len(str(path)) < total - 201:
        path = path / ("n" * 200)
    return path / ("m" * (total - len(str(path)) - 1))


def test_audio_is_written_under_an_output_path_of_1000_bytes(tmp_path, capsys):
    import soundfile as sf

    synthesize(tmp_path / "data", "0026", ["s1_all"], cameras=2, frames=2)
    out = _long_folder(tmp_path)
    assert len(str(out)) == 1000
    assert main(["extract", str(tmp_path / "data"), "-o", str(out), "-q", "--no-preview"]) == 0
    audio = out / "0026_s1_all" / "from_raw" / "audio"
    assert len(str(audio / "audio.mp3")) > 1024
    doc = np.load(audio / "audio_data.npz")
    stored, stored_rate = doc["audio"], int(doc["sample_rate"])
    with open(audio / "audio.wav", "rb") as f:  # libsndfile cannot open such names itself
        wav, rate = sf.read(f, dtype=stored.dtype.name, always_2d=True)
    assert rate == stored_rate and wav.size == stored.size > 0
    assert stored.shape == wav.shape and np.array_equal(wav, stored)  # (frames, channels)
    with open(audio / "audio.mp3", "rb") as f:
        mp3, mp3_rate = sf.read(f)
    assert mp3_rate == rate and abs(len(mp3) - len(wav)) < 0.2 * rate
    assert not list((out / "0026_s1_all").rglob("*.part"))


def test_compat_writemp3_takes_a_path_of_1100_bytes(tmp_path):
    import soundfile as sf

    from renderme360.smc.compat import SMCReader

    target = _long_folder(tmp_path, 1100)
    target.mkdir(parents=True)
    target = target.parent / (target.name[:-10] + ".mp3")
    assert len(str(target)) > 1024
    SMCReader.writemp3(str(target), 44100, np.zeros(4410, np.float32), normalized=True)
    with open(target, "rb") as f:
        samples, rate = sf.read(f)
    assert rate == 44100 and len(samples) > 0


# -- 13. text from outside is shown literally, never as rich markup -----------------------------


def _plant_markup(root):
    """Two performances; the anno file of e0 gets ``actor_id="[/x]"`` and
    ``performance_part="[bold]"`` (written with h5py), so e0 fails and h0 is extracted."""
    import h5py

    synthesize(root, "0026", ["e0", "h0"], cameras=2, frames=1)
    with h5py.File(root / "anno" / "0026" / "0026_e0_anno.smc", "r+") as h:
        h.attrs["actor_id"] = "[/x]"
        h.attrs["performance_part"] = "[bold]"


def _flat(text):
    """Table output without wrapping, borders and spaces (long cells wrap in the table)."""
    return "".join(c for c in text if not c.isspace() and c not in "│┃")


def test_markup_in_smc_attributes_is_shown_literally(tmp_path, capsys):
    data = tmp_path / "data"
    _plant_markup(data)
    assert main(["explore", str(data)]) == 1  # an unreadable file (as before), not a crash
    got = capsys.readouterr()
    assert "MarkupError" not in got.err and "refusingactorid'[/x]'" in _flat(got.out)
    out = tmp_path / "o"
    assert main(["extract", str(data), "-o", str(out), "--no-preview"]) == 6  # e0 failed
    got = capsys.readouterr()
    assert "MarkupError" not in got.err
    assert "refusingactorid'[/x]'" in _flat(got.out) and "refusing actor id '[/x]'" in got.err
    assert (out / "0026_h0" / ".extraction_complete").is_file()  # the batch went on


def test_an_output_folder_with_brackets_is_shown_literally(small_data, tmp_path, capsys):
    out = tmp_path / "o[bold]x:thumbs_up:"
    assert main(["extract", str(small_data), "-o", str(out), "--no-preview"]) == 0
    shown = capsys.readouterr().out
    assert f"Extractionplan->{out}".replace(" ", "") in _flat(shown)
    assert f"{out}/0026_e0" in _flat(shown) and "\N{THUMBS UP SIGN}" not in shown
    assert main(["verify", str(out / "0026_e0")]) == 0
    assert f"{out}/0026_e0: OK" in capsys.readouterr().out


def test_verify_shows_a_manifest_entry_with_markup_literally(small_data, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["extract", str(small_data), "-o", str(out), "-q", "--no-preview"]) == 0
    listing = out / "0026_e0" / "manifest.jsonl"
    first = json.loads(listing.read_text().splitlines()[0])
    planted = {**first, "key": "[bold]", "path": "from_anno/[/x]"}
    listing.write_text(json.dumps(planted) + "\n" + listing.read_text())
    capsys.readouterr()
    assert main(["verify", str(out / "0026_e0")]) == 5
    got = capsys.readouterr()
    assert "MarkupError" not in got.err and "bad from_anno/[/x]: missing" in got.out


def test_progress_descriptions_are_literal():
    import io

    from rich.console import Console

    from renderme360.cli.progress import CliProgress
    from renderme360.pipeline.run import Outcome

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, color_system=None)
    with CliProgress(True, 100, 2, console=console) as bar:
        bar.performance_started("[/x]_e0", 2, 100)
        bar.advance(1, 50)
        bar.finishing("[bold]_e0")
        bar.performance_finished(Outcome("[/x]_e0", "[/x]", "e0", "done"))
    assert "[/x]_e0: done" in buf.getvalue()


# -- 14. deep folders: walked iteratively, depth bounded, said once ------------------------------

DEEP = 1200


def _nest(base, levels=DEEP, name="d"):
    """``levels`` nested folders under ``base`` (made with dir fds: the path grows past what a
    recursive walk survives); returns nothing."""
    os.makedirs(base, exist_ok=True)
    fd = os.open(base, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


@pytest.fixture
def deep_tmp(tmp_path):
    """tmp_path, removed at teardown (pass or fail) without recursion: pytest's own clean-up of
    old temporary folders uses shutil.rmtree, which a 1,200-level tree breaks."""
    from renderme360.output.walk import remove_tree

    yield tmp_path
    remove_tree(tmp_path)


def test_walk_is_iterative_bounded_and_like_os_walk(deep_tmp):
    tmp_path = deep_tmp
    from renderme360.output.walk import MAX_DEPTH, remove_tree, walk

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "f.txt").write_bytes(b"x")
    (tmp_path / "c").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "c" / "loop")  # listed, never descended
    _nest(tmp_path / "deep")
    notes = []
    seen = list(walk(tmp_path, note=notes.append))
    assert seen[0][0] == str(tmp_path) and sorted(seen[0][1]) == ["a", "c", "deep"]
    by_path = {p: (sorted(d), sorted(f)) for p, d, f in seen}
    assert by_path[str(tmp_path / "a")] == (["b"], ["f.txt"])
    assert by_path[str(tmp_path / "c")] == (["loop"], [])
    assert str(tmp_path / "c" / "loop") not in by_path
    deep = [p for p in by_path if p.startswith(str(tmp_path / "deep"))]
    assert len(deep) == MAX_DEPTH  # root's child "deep" is level 1; level 64 is not descended
    assert len(notes) == 1 and f"deeper than {MAX_DEPTH} levels" in notes[0]
    pruned = []
    for path, dirnames, _files in walk(tmp_path, note=notes.append):
        pruned.append(path)
        dirnames[:] = [d for d in dirnames if d != "deep"]
    assert not any("deep" in p for p in pruned) and len(notes) == 1
    order = [p for p, _d, _f in walk(tmp_path / "a", topdown=False)]
    assert order == [str(tmp_path / "a" / "b"), str(tmp_path / "a")]
    remove_tree(tmp_path / "deep")  # all 1,200 levels, no RecursionError
    remove_tree(tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert (tmp_path / "a" / "f.txt").read_bytes() == b"x"  # the link's target is untouched


def test_deep_folders_do_not_break_explore_extract_load_export(deep_tmp, capsys, caplog):
    tmp_path = deep_tmp
    import renderme360

    data = tmp_path / "data"
    synthesize(data, "0026", ["e0"], cameras=2, frames=1)
    _nest(data)
    assert main(["explore", str(data)]) == 0
    out = tmp_path / "out"
    assert main(["extract", str(data), "-o", str(out), "-q", "--no-preview"]) == 0
    perf = out / "0026_e0"
    _nest(perf / "from_raw")
    _nest(perf / ".tmp")  # leftovers of a run are removed however deep
    (perf / ".extraction_complete").unlink()  # so that it runs again
    assert main(["extract", str(data), "-o", str(out), "-q", "--no-preview"]) == 0
    assert not (perf / ".tmp").exists()
    loaded = renderme360.load(perf)
    assert loaded.image(loaded.cameras[0].id, 0).shape == (96, 120, 3)
    dest = tmp_path / "dest"
    _nest(dest)
    argv = ["export", "nerfstudio", str(perf), "-o", str(dest), "-q"]
    assert main(argv) == 0
    assert len(json.loads((dest / "transforms.json").read_text())["frames"]) == 2
    err = capsys.readouterr().err
    assert "RecursionError" not in err
    notes = [r.getMessage() for r in caplog.records if "deeper than 64 levels" in r.getMessage()]
    assert len(notes) >= 3  # data root, performance folder, DEST: once per walk
    assert all(len(n) < 400 for n in notes)

"""Real performance sizes: memory that does not grow with the file count, streamed file lists
(manifest.jsonl, SHA256SUMS), and folders written in the earlier manifest format."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderme360.cli import main
from renderme360.output.layout import parse_path
from renderme360.output.read import Record, as_record, parse_record_line, record_fields
from renderme360.output.reports import Tally
from renderme360.pipeline.record import record_line
from renderme360.synth import synthesize

# Runs one extraction in a fresh interpreter and prints its memory peaks as JSON: the Python
# heap (tracemalloc) and the whole process (ru_maxrss, which also sees HDF5's C caches).
MEASURE = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    from renderme360.cli import main
    tracemalloc.start()
    rc = main(["extract", sys.argv[1], "-o", sys.argv[2], "--workers", "1", "-q",
               "--modalities", "images,masks"])
    _cur, peak = tracemalloc.get_traced_memory()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rc": rc, "heap_peak": peak, "maxrss": rss}))
    """
)


def _measure(data: Path, out: Path) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(data), str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _count_files(perf: Path) -> int:
    return sum(1 for p in perf.rglob("*") if p.is_file() and "/images/" in p.as_posix()) + sum(
        1 for p in perf.rglob("*") if p.is_file() and "/masks/" in p.as_posix()
    )


def test_peak_memory_does_not_grow_with_the_file_count(tmp_path):
    """1,000 and 4,000 image+mask files: the peak Python heap may differ by a few bytes a file
    (the inventory's frame lists and offset arrays), not by the ~4 KB a file an in-memory plan,
    record table and manifest cost."""
    small, large = tmp_path / "small", tmp_path / "large"
    synthesize(small, performances=["s1"], cameras=10, frames=50)  # 1,000 files
    synthesize(large, performances=["s1"], cameras=10, frames=200)  # 4,000 files
    a = _measure(small, tmp_path / "out_small")
    b = _measure(large, tmp_path / "out_large")
    assert a["rc"] == 0 and b["rc"] == 0
    assert _count_files(tmp_path / "out_small" / "0026_s1") == 1000
    assert _count_files(tmp_path / "out_large" / "0026_s1") == 4000
    extra_files = 3000
    heap_growth = b["heap_peak"] - a["heap_peak"]
    assert heap_growth < 300 * extra_files, (a, b)  # measured ~100 bytes a file
    # the whole process, HDF5 included: well under the 4 KB a file the old bookkeeping took
    assert b["maxrss"] - a["maxrss"] < 1000 * extra_files, (a, b)


# ------------------------------------------------------------------ file lists


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sizes_data")
    synthesize(root, performances=["e0"], cameras=4, frames=5)
    return root


def _extract(data: Path, out: Path, *extra: str) -> int:
    return main(["extract", str(data), "-o", str(out), "--workers", "1", "-q", *extra])


def test_checksum_list_is_sha256sum_compatible(data, tmp_path):
    out = tmp_path / "out"
    assert _extract(data, out) == 0
    perf = out / "0026_e0"
    sums = (perf / "SHA256SUMS").read_text().splitlines()
    listed = [json.loads(x) for x in (perf / "manifest.jsonl").read_text().splitlines()]
    assert len(sums) == len(listed) > 40
    for line in sums:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((perf / rel).read_bytes()).hexdigest() == digest
    tasks = [e for e in listed if "modality" in e]
    assert [e["key"] for e in tasks] == sorted(e["key"] for e in tasks)  # deterministic order
    sha256sum = shutil.which("sha256sum")
    if sha256sum:  # coreutils: the tool users already have
        ok = subprocess.run([sha256sum, "-c", "--quiet", "SHA256SUMS"], cwd=perf)
        assert ok.returncode == 0
        img = next((perf / "from_raw/images").rglob("*.jpg"))
        img.write_bytes(img.read_bytes()[:-1] + b"\x00")
        bad = subprocess.run(
            [sha256sum, "-c", "--quiet", "SHA256SUMS"], cwd=perf, capture_output=True, text=True
        )
        assert bad.returncode == 1 and img.relative_to(perf).as_posix() in bad.stdout


def test_manifest_json_is_a_summary(data, tmp_path):
    out = tmp_path / "out"
    assert _extract(data, out) == 0
    perf = out / "0026_e0"
    doc = json.loads((perf / "manifest.json").read_text())
    listed = [json.loads(x) for x in (perf / "manifest.jsonl").read_text().splitlines()]
    assert "files" not in doc
    assert doc["manifest_format"] == 2
    assert doc["file_list"] == "manifest.jsonl" and doc["checksums"] == "SHA256SUMS"
    assert doc["total_files"] == len(listed)
    assert doc["total_bytes"] == sum(e["bytes"] for e in listed)
    assert doc["counts"]["images"] == 4 * 5 and doc["counts"]["masks"] == 4 * 5
    marker = json.loads((perf / ".extraction_complete").read_text())
    assert marker["files"] == len(listed)


def test_file_list_sorts_beyond_one_run_in_memory(data, tmp_path, monkeypatch):
    """With a tiny sort buffer the lists go through several sorted runs and a merge: the
    result is the same bytes as sorted in memory."""
    import renderme360.pipeline.record as record

    ref = tmp_path / "ref"
    assert _extract(data, ref) == 0
    monkeypatch.setattr(record, "SORT_RUN_LINES", 7)
    out = tmp_path / "out"
    assert _extract(data, out) == 0
    for name in ("manifest.jsonl", "SHA256SUMS"):
        a = (ref / "0026_e0" / name).read_text().splitlines()
        b = (out / "0026_e0" / name).read_text().splitlines()
        keep = [x for x in a if "extraction_info.txt" not in x]  # holds a timestamp
        assert keep == [x for x in b if "extraction_info.txt" not in x]
    assert not (out / "0026_e0" / ".tmp").exists()


# ------------------------------------------------------------------ earlier format


def _to_old_format(perf: Path) -> list[dict]:
    """Rewrite a folder as the earlier writer left it: every file inside manifest.json
    (sorted by path), no manifest.jsonl or SHA256SUMS."""
    listed = [json.loads(x) for x in (perf / "manifest.jsonl").read_text().splitlines()]
    doc = json.loads((perf / "manifest.json").read_text())
    for k in ("manifest_format", "file_list", "checksums"):
        doc.pop(k)
    doc["files"] = sorted(listed, key=lambda d: d["path"])
    (perf / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
    (perf / "manifest.jsonl").unlink()
    (perf / "SHA256SUMS").unlink()
    return doc["files"]


def test_old_format_folder_verifies(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _extract(data, out) == 0
    perf = out / "0026_e0"
    files = _to_old_format(perf)
    capsys.readouterr()
    assert main(["verify", str(perf), "--source", str(data), "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["checked"] == len(files)
    copied = [f for f in files if f.get("modality") in ("images", "masks", "uv", "scan_masks")]
    assert report["checked_against_source"] == len(copied) >= 4 * 5 * 2
    img = next((perf / "from_raw/images").rglob("*.jpg"))
    data = bytearray(img.read_bytes())
    data[-3] ^= 0x01
    img.write_bytes(bytes(data))
    assert main(["verify", str(perf)]) == 5
    assert "content differs" in capsys.readouterr().out


def test_old_format_folder_resumes(data, tmp_path, capsys):
    """A complete old-format folder is skipped; one with a lost file gets only that file and
    the reports rewritten, and leaves a folder in the current format that verifies."""
    out = tmp_path / "out"
    assert _extract(data, out) == 0
    perf = out / "0026_e0"
    files = _to_old_format(perf)
    capsys.readouterr()
    assert _extract(data, out) == 0
    assert "0 done, 1 skipped" in capsys.readouterr().out
    before = {f["path"]: (perf / f["path"]).stat().st_mtime_ns for f in files if "role" in f}
    lost = perf / next(f["path"] for f in files if f.get("modality") == "masks")
    lost.unlink()
    assert _extract(data, out) == 0
    assert "1 done" in capsys.readouterr().out
    changed = {p for p, t in before.items() if (perf / p).stat().st_mtime_ns != t}
    assert changed == {lost.relative_to(perf).as_posix()}
    doc = json.loads((perf / "manifest.json").read_text())
    assert "files" not in doc and (perf / "SHA256SUMS").is_file()
    listed = [json.loads(x) for x in (perf / "manifest.jsonl").read_text().splitlines()]
    assert sorted(e["path"] for e in listed if "role" in e) == sorted(before)
    assert main(["verify", str(perf)]) == 0


def test_widening_an_old_format_folder_keeps_what_it_held(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _extract(data, out, "--modalities", "images") == 0
    perf = out / "0026_e0"
    old = {f["path"] for f in _to_old_format(perf) if "role" in f}
    assert _extract(data, out, "--modalities", "images,masks") == 0
    listed = [json.loads(x) for x in (perf / "manifest.jsonl").read_text().splitlines()]
    paths = {e["path"] for e in listed if "role" in e}
    assert old < paths
    assert {e["modality"] for e in listed if "role" in e} == {"images", "masks"}
    assert len(paths) == len([e for e in listed if "role" in e])  # each file once
    assert main(["verify", str(perf)]) == 0


def test_verify_catches_a_cut_short_file_list(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _extract(data, out) == 0
    perf = out / "0026_e0"
    lines = (perf / "manifest.jsonl").read_text().splitlines(keepends=True)
    (perf / "manifest.jsonl").write_text("".join(lines[: len(lines) // 2]))
    capsys.readouterr()
    assert main(["verify", str(perf)]) == 5
    assert "cut short or edited" in capsys.readouterr().out
    (perf / "manifest.jsonl").unlink()
    assert main(["verify", str(perf)]) == 5
    assert "manifest.jsonl missing" in capsys.readouterr().out


# ------------------------------------------------------------------ reading file-list lines
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_RECORDS = st.builds(
    Record,
    key=_TEXT,
    path=_TEXT,
    bytes=st.integers(0, 1 << 40),
    sha256=st.one_of(st.just(""), st.text("0123456789abcdef", min_size=64, max_size=64)),
    modality=_TEXT,
    role=_TEXT,
    variant=_TEXT,
    source_size=st.integers(0, 1 << 42),
    source_mtime_ns=st.integers(-(1 << 62), 1 << 62),
)


@settings(max_examples=300, deadline=None)
@given(_RECORDS)
def test_a_written_record_line_reads_back_as_json_says(rec: Record) -> None:
    """The regular expression that skips json.loads for the tool's own lines gives exactly
    what json.loads gives, and hands anything needing an escape to json.loads."""
    line = record_line(rec)
    assert parse_record_line(line) == rec == as_record(json.loads(line))
    fields = record_fields(line)
    if fields is not None:
        assert list(fields) == [str(v) for v in rec.to_dict().values()]
    strings = (rec.key, rec.path, rec.sha256, rec.modality, rec.role, rec.variant)
    plain = all(c.isascii() and c.isprintable() and c not in '"\\' for s in strings for c in s)
    assert (fields is not None) == plain


def test_other_lines_are_no_records() -> None:
    line = record_line(Record("k", "p", 1, "", "images", "raw", "copy", 2, 3))
    assert parse_record_line(line[:-3]) is None  # cut short by a crash
    assert parse_record_line(line.replace('"bytes":1', '"bytes":01')) is None  # not JSON
    assert parse_record_line('{"key":"k","path":"p","bytes":1,"sha256":""}\n') is None
    assert parse_record_line('{"selections": []}\n') is None
    spaced = json.dumps(json.loads(line), indent=None)  # other spacing: json.loads still reads it
    assert record_fields(spaced) is None
    assert parse_record_line(spaced) == parse_record_line(line)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["from_raw/", "from_anno/", "", "x/"]).flatmap(
            lambda src: st.tuples(
                st.just(src),
                st.sampled_from(["images", "masks", "uv", "image", "images/x"]),
                st.sampled_from(["cam_00", "cam_59", "cam_5", "cam_ab", ""]),
                st.sampled_from(["frame_000001.jpg", "frame_12.png", "frame_.jpg", "f.jpg"]),
            )
        ),
        max_size=8,
    )
)
def test_tally_cameras_and_frames_are_what_parse_path_says(parts: list) -> None:
    tally = Tally("separate")
    cams, frames = set(), set()
    for src, folder, cam, name in parts:
        path = "/".join(p for p in (src + folder, cam, name) if p)
        for modality in ("images", "masks"):
            tally.add_fields(path, 1, modality, "raw")
            parsed = parse_path(path)
            if parsed is not None and parsed.camera is not None and parsed.frame is not None:
                cams.add(parsed.camera)
                frames.add(parsed.frame)
    assert (tally.cameras, tally.frames) == (cams, frames)

"""The one confined writer (output/confined.py) and its two users, OutputDir and ExportDir.

Hostile states are made with os calls (symlink, mkfifo, link). "Refused" for the final name
means never written through: the temporary file is renamed over the entry, so a symlink's target,
a FIFO's reader and a hard link's other name never see a byte (the extraction contract since
test_hostile.test_symlinked_frame_file_is_replaced_not_written_through).
"""

from __future__ import annotations

import ast
import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from renderme360.errors import UnsafeNameError
from renderme360.export.files import ExportDir, write_atomic
from renderme360.output import confined
from renderme360.output.outdir import OutputDir

SRC = Path(__file__).resolve().parents[1] / "src" / "renderme360"
VICTIM = b"victim bytes, must not change\n"


# ---------------------------------------------------------------------------- writers under test
def _out_write_bytes(root: Path, rel: str, data: bytes) -> None:
    OutputDir(root).write_bytes(rel, data)


def _out_open_atomic(root: Path, rel: str, data: bytes) -> None:
    with OutputDir(root).open_atomic(rel) as f:
        f.write(data)


def _out_atomic_path(root: Path, rel: str, data: bytes) -> None:
    with OutputDir(root).atomic_path(rel) as p:
        p.tmp.write_bytes(data)


def _exp_write_bytes(root: Path, rel: str, data: bytes) -> None:
    out = ExportDir(root)
    out.write_bytes(rel, data)
    out.commit()


def _exp_write_atomic(root: Path, rel: str, data: bytes) -> None:
    out = ExportDir(root)
    write_atomic(out.stage(rel), data)  # what a reduce worker does with its staged name
    out.commit()


def _exp_link_or_copy(root: Path, rel: str, data: bytes) -> None:
    src = root.parent / "link-source.bin"
    src.write_bytes(data)
    out = ExportDir(root)
    out.link_or_copy(src, rel)
    out.commit()


WRITERS: dict[str, Callable[[Path, str, bytes], None]] = {
    "OutputDir.write_bytes": _out_write_bytes,
    "OutputDir.open_atomic": _out_open_atomic,
    "OutputDir.atomic_path": _out_atomic_path,
    "ExportDir.write_bytes": _exp_write_bytes,
    "ExportDir.stage+write_atomic": _exp_write_atomic,
    "ExportDir.link_or_copy": _exp_link_or_copy,
}


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(VICTIM)
    return outside


def _assert_outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == VICTIM


def _no_temp_left(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.is_file() and confined.is_sibling_tmp(p.name)]
    left += list((root / confined.TMP_DIR).glob("*")) if (root / ".tmp").is_dir() else []
    assert left == []


# ---------------------------------------------------------------------------- names and folders
@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    "rel",
    ["../victim", "a/../../victim", "/abs/victim", "", "a//b", "./a", "a/./b", "a\0b"],
    ids=["dotdot", "inner-dotdot", "absolute", "empty", "empty-part", "dot", "inner-dot", "nul"],
)
def test_paths_leaving_the_root_are_refused(tmp_path, writer, rel) -> None:
    outside = _outside(tmp_path)
    root = outside / "root"
    if rel.startswith("/abs"):
        rel = str(outside / "victim")
    with pytest.raises(UnsafeNameError, match=r"refusing|would leave"):
        WRITERS[writer](root, rel, b"new")
    assert (outside / "victim").read_bytes() == VICTIM
    assert not root.exists() or [p for p in root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("depth", [1, 2])
def test_a_symlinked_folder_on_the_way_is_refused(tmp_path, writer, depth) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "root"
    folder = root / "a"
    if depth == 2:
        folder = folder / "b"
    folder.parent.mkdir(parents=True)
    folder.symlink_to(outside, target_is_directory=True)
    rel = str((folder / "c" / "file.bin").relative_to(root))
    with pytest.raises(UnsafeNameError, match="refusing to write through symlink") as info:
        WRITERS[writer](root, rel, b"new")
    assert str(folder) in str(info.value)
    _assert_outside_untouched(outside)
    assert folder.is_symlink()


@pytest.mark.parametrize("writer", WRITERS)
def test_a_file_where_a_folder_belongs_is_refused(tmp_path, writer) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").write_bytes(VICTIM)
    with pytest.raises(UnsafeNameError, match="exists and is not a folder"):
        WRITERS[writer](root, "a/file.bin", b"new")
    assert (root / "a").read_bytes() == VICTIM


def test_a_symlinked_root_is_refused(tmp_path) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "root"
    root.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match=r"refusing to write into .*symlink"):
        OutputDir(root).write_bytes("x.bin", b"new")
    with pytest.raises(UnsafeNameError, match=r"refusing to write into .*symlink"):
        ExportDir(root)
    _assert_outside_untouched(outside)


# ---------------------------------------------------------------------------- the final name
def _plant(kind: str, final: Path, outside: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        final.symlink_to(outside / "victim")
    elif kind == "dangling symlink":
        final.symlink_to(outside / "new-file-outside")
    elif kind == "fifo":
        os.mkfifo(final)  # opening it for writing would block forever
    else:
        os.link(outside / "victim", final)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "fifo", "hard link"])
def test_the_final_name_is_never_written_through(tmp_path, writer, kind) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "root"
    final = root / "images" / "cam_25" / "frame_000000.jpg"
    _plant(kind, final, outside)
    WRITERS[writer](root, "images/cam_25/frame_000000.jpg", b"new bytes")
    _assert_outside_untouched(outside)
    st = os.lstat(final)
    linked = writer == "ExportDir.link_or_copy"  # a hard link to its source, by design
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == (2 if linked else 1)
    if linked:
        assert os.path.samefile(final, root.parent / "link-source.bin")
    assert final.read_bytes() == b"new bytes"
    assert os.stat(outside / "victim").st_nlink == 1
    _no_temp_left(root)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hard link"])
@pytest.mark.parametrize("op", ["write_bytes", "write_atomic", "copy fallback"])
def test_a_planted_temp_name_is_never_opened(tmp_path, monkeypatch, kind, op) -> None:
    """The create is O_EXCL|O_NOFOLLOW: a name made in advance fails the write, nothing else.
    (The copy fallback of link_or_copy used shutil.copyfile, which followed a link there.)"""
    import renderme360.export.files as files
    import renderme360.output.confined as confined

    outside = _outside(tmp_path)
    root = tmp_path / "root"
    planted = root / ".x.bin.0badc0de.tmp"
    _plant(kind, planted, outside)
    monkeypatch.setattr(files, "sibling_tmp", lambda path: planted)
    monkeypatch.setattr(confined, "sibling_tmp", lambda path: planted)  # write_atomic's name

    def cross_device(src, dst, **_kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "link", cross_device)
    with pytest.raises(FileExistsError):
        if op == "write_bytes":
            _exp_write_bytes(root, "x.bin", b"new")
        elif op == "write_atomic":
            write_atomic(root / "x.bin", b"new")
        else:
            _exp_link_or_copy(root, "x.bin", b"new")
    _assert_outside_untouched(outside)
    assert not (root / "x.bin").exists()


# ---------------------------------------------------------------------------- temp names, cleanup
def test_temp_names_match_what_cleanup_recognises(tmp_path) -> None:
    """New temp names and an older version's leftovers (same patterns) are both cleaned up."""
    final = tmp_path / "images" / "frame_000000.jpg"
    new = confined.sibling_tmp(final)
    nested = confined.sibling_tmp(new)  # a reduce worker's temp beside its staged name
    assert confined.is_sibling_tmp(new.name) and confined.is_sibling_tmp(nested.name)
    assert re.fullmatch(r"[0-9a-f]{16}-\d+\.part", confined.scratch_name())
    assert not confined.is_sibling_tmp("frame_000000.jpg")
    assert not confined.is_sibling_tmp(".hidden.tmp")

    dest = tmp_path / "dest"
    old = [  # names the previous export code made: .NAME.XXXXXXXX.tmp, nested ones
        dest / "images" / ".frame_000000.jpg.0123abcd.tmp",
        dest / "images" / "..frame_000000.jpg.0123abcd.tmp.89abcdef.tmp",
        dest / ".transforms.json.deadbeef.tmp",
    ]
    keep = [dest / "images" / "frame_000000.jpg", dest / "notes.tmp"]
    for p in old + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    out = ExportDir(dest)
    assert out.remove_leftovers() == 3
    assert [p.exists() for p in old] == [False] * 3 and all(p.exists() for p in keep)

    perf = tmp_path / "out" / "0026_e0"
    (perf / ".tmp").mkdir(parents=True)
    (perf / ".tmp" / "0123456789abcdef-17.part").write_bytes(b"half")  # an old crash's file
    od = OutputDir(perf)
    od.clean_tmp()
    assert not (perf / ".tmp").exists()
    od.write_bytes("a.bin", b"ok")
    assert (perf / "a.bin").read_bytes() == b"ok" and list((perf / ".tmp").iterdir()) == []


def test_abort_removes_staged_files_nested_temps_and_new_folders(tmp_path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"earlier export")
    out = ExportDir(dest)
    staged = out.stage("images/cam_25/frame_000000.jpg")
    staged.write_bytes(b"staged")
    confined.sibling_tmp(staged).write_bytes(b"a stopped worker's temp")
    out.abort()
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]


def test_output_bytes_and_records_are_unchanged(tmp_path) -> None:
    od = OutputDir(tmp_path / "perf")
    big = bytes(range(256)) * 2048  # above OVERLAP_HASH_BYTES: hashed on the helper thread
    w = od.write_bytes("from_raw/images/cam_00/frame_000000.jpg", big)
    import hashlib

    assert (w.path, w.bytes, w.sha256) == (
        "from_raw/images/cam_00/frame_000000.jpg",
        len(big),
        hashlib.sha256(big).hexdigest(),
    )
    assert (tmp_path / "perf/from_raw/images/cam_00/frame_000000.jpg").read_bytes() == big
    assert stat.S_IMODE(
        os.stat(tmp_path / "perf/from_raw/images/cam_00/frame_000000.jpg").st_mode
    ) == (0o644 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------- grep-level facts
_TEMP_SUFFIX = re.compile(r"\.(tmp|part)$")
_TEMP_CALLS = {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"}


def _temp_name_sites(path: Path) -> list[str]:
    """Places in a module that spell a temporary name: a string (or the end of an f-string)
    ending in .tmp/.part, or the tempfile module; docstrings do not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    sites = []
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr) and n.values:
            last = n.values[-1]
            if isinstance(last, ast.Constant) and _TEMP_SUFFIX.search(str(last.value)):
                sites.append(f"{n.lineno}: f-string ending {last.value!r}")
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if _TEMP_SUFFIX.search(n.value):
                sites.append(f"{n.lineno}: {n.value!r}")
        elif isinstance(n, ast.Import | ast.ImportFrom):
            mods = [a.name for a in n.names] + [getattr(n, "module", None) or ""]
            if any(m.split(".")[0] == "tempfile" for m in mods):
                sites.append(f"{n.lineno}: import tempfile")
        elif isinstance(n, ast.Attribute) and n.attr in _TEMP_CALLS:
            sites.append(f"{n.lineno}: {n.attr}")
    return sites


def test_temp_names_are_made_in_one_module_only() -> None:
    found = {
        str(p.relative_to(SRC)): sites
        for p in sorted(SRC.rglob("*.py"))
        if (sites := _temp_name_sites(p))
    }
    assert set(found) == {"output/confined.py"}, found


def test_the_scan_sees_a_temp_name(tmp_path) -> None:
    """The scan above is not vacuous: the old spellings are found."""
    mod = tmp_path / "m.py"
    mod.write_text(
        '"""doc .tmp"""\nimport tempfile\n'
        'a = p.with_name(f".{p.name}.{os.urandom(4).hex()}.tmp")\nb = folder / "x.part"\n'
    )
    assert {site.split(":")[0] for site in _temp_name_sites(mod)} == {"2", "3", "4"}


def test_process_pools_are_constructed_in_workers_only() -> None:
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if "ProcessPoolExecutor(" in p.read_text(encoding="utf-8")
    )
    assert users == ["workers.py"]

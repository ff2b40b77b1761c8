"""Shared test helpers: run the CLI, snapshot an output tree, check folders."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from renderme360.cli import main

#: Output files that hold timestamps or process ids: left out of tree comparisons.
VOLATILE = {"manifest.json", ".extraction_complete", "extraction_info.txt", ".lock", "MANIFEST.csv"}


def run(*args: object) -> int:
    """``renderme360 extract ARGS...`` in-process; its exit code."""
    return main(["extract", *[str(a) for a in args]])


#: The file lists hold the checksum of the timestamped extraction_info.txt: compared without it.
LISTS = {"manifest.jsonl", "SHA256SUMS"}


def without_timestamped_lines(data: bytes) -> bytes:
    """A file list without the line of extraction_info.txt."""
    lines = data.splitlines(keepends=True)
    return b"".join(x for x in lines if b"extraction_info.txt" not in x)


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file, without the files that hold timestamps (the file
    lists are compared without the line of the timestamped extraction_info.txt)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in VOLATILE:
            data = p.read_bytes()
            if p.name in LISTS:
                data = without_timestamped_lines(data)
            out[p.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def file_entries(perf: Path) -> list[dict]:
    """The file list of an extracted performance (manifest.jsonl, one JSON object a line)."""
    import json

    return [json.loads(line) for line in (perf / "manifest.jsonl").read_text().splitlines()]


def stats(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (inode, mtime) of every file: unchanged means not rewritten."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def files_under(root: Path) -> set[str]:
    """Relative paths of every file under ``root``."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def assert_no_empty_dirs(root: Path) -> None:
    """No folder under ``root`` is empty."""
    empty = [d for d in root.rglob("*") if d.is_dir() and not any(d.iterdir())]
    assert not empty, empty


def session_processes(sid: int) -> list[str]:
    """Live (non-zombie) processes whose session is ``sid`` (a command started with
    ``start_new_session=True``: it and every process it started), from /proc/PID/stat."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(f"{pid} (ppid {fields[1]})")
    return found

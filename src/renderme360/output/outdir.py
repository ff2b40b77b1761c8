"""Safe writing under an output folder: atomic files, no escape through names or symlinks.

A file under its final name is always complete: data goes to a temporary file in the
performance's ``.tmp`` folder and is renamed into place. Paths, folders, temporary names, the
exclusive create and the rename are :mod:`renderme360.output.confined`'s (shared with the
exports); this module adds the output folder's caches, hashing and disk-full messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import DiskFullError, UnsafeNameError, is_disk_full
from ..safeopen import open_regular
from ..textsafe import encode_text
from .confined import (
    TMP_DIR,
    check_relative,
    check_root,
    create_new,
    discard,
    ensure_dirs,
    open_own_file,
    put_in_place,
    scratch_name,
    write_new,
)
from .walk import remove_tree

__all__ = [
    "OVERLAP_HASH_BYTES",
    "TMP_DIR",
    "OutputDir",
    "PendingDigest",
    "Written",
    "check_relative",
    "free_bytes",
    "open_own_file",
    "sha256_file",
]

# Blocks at least this large are hashed on a helper thread while they are written: hashlib and
# write() both release the GIL, so the checksum costs almost no wall time on a second core.
OVERLAP_HASH_BYTES = 1 << 18


# Not frozen, for speed (one per file; see tasks.Task). Treated as immutable all the same.
@dataclass(slots=True)
class Written:
    """One file put in place: relative path, size and sha256 (hex, or "" when not computed)."""

    path: str
    bytes: int
    sha256: str


class OutputDir:
    """A folder the tool writes into; every write goes through here.

    Parameters
    ----------
    root
        The performance folder (``OUT/{actor}_{perf}``). It may not exist yet; it is created,
        with its parents, on the first write. A symlink at ``root`` itself is refused.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._safe_dirs: set[str] = set()
        self._dir_paths: dict[str, str] = {}  # validated relative folder -> absolute path

    @property
    def tmp(self) -> Path:
        """Where files are assembled before being renamed into place."""
        return self.root / TMP_DIR

    def ensure_root(self) -> None:
        """Create the root folder (refusing a symlink there)."""
        check_root(self.root, "output")
        self.root.mkdir(parents=True, exist_ok=True)

    def ensure_dir(self, rel_dir: str) -> Path:
        """Create ``root/rel_dir`` component by component; refuse symlinks on the way."""
        if rel_dir in self._safe_dirs:
            return self.root / rel_dir
        self.ensure_root()
        try:
            current = ensure_dirs(self.root, rel_dir)
        except OSError as exc:
            raise _disk_error(exc, self.root / rel_dir) from exc
        self._safe_dirs.add(rel_dir)
        return current

    def final_path(self, rel: str) -> Path:
        """Absolute path of a relative output path (validated, parents created)."""
        p = check_relative(rel)
        parent = str(p.parent)
        base = self.root if parent == "." else self.ensure_dir(parent)
        return base / p.name

    @contextlib.contextmanager
    def open_atomic(self, rel: str, hash_output: bool = True) -> Iterator[_HashingFile]:
        """Yield a file to write ``rel``; on success it is renamed into place, else removed."""
        final = self.final_path(rel)
        self.ensure_dir(TMP_DIR)
        tmp = self.tmp / scratch_name()
        try:
            with open(create_new(tmp), "wb") as raw:
                out = _HashingFile(raw, hash_output)
                yield out
            put_in_place(tmp, final)
        except BaseException as exc:
            discard(tmp)
            if isinstance(exc, OSError):
                raise _disk_error(exc, final) from exc
            raise

    @contextlib.contextmanager
    def atomic_path(self, rel: str, hash_output: bool = True) -> Iterator[_PathResult]:
        """Yield a temporary path for libraries that write by name (soundfile, zip);
        it is hashed and renamed into place on success, removed otherwise."""
        final = self.final_path(rel)
        self.ensure_dir(TMP_DIR)
        result = _PathResult(self.tmp / scratch_name())
        try:
            yield result
            size = result.tmp.stat().st_size
            digest = sha256_file(result.tmp) if hash_output else ""
            put_in_place(result.tmp, final)
        except BaseException as exc:
            discard(result.tmp)
            if isinstance(exc, OSError):
                raise _disk_error(exc, final) from exc
            raise
        result.written = Written(rel, size, digest)

    def _final_str(self, rel: str) -> str:
        """Absolute path of ``rel`` as a string, its folder validated and created once per
        folder (the per-file cost of a 300,000-file performance)."""
        parent, _sep, name = rel.rpartition("/")
        base = self._dir_paths.get(parent)
        if base is None:
            if parent:
                check_relative(parent)
                base = str(self.ensure_dir(parent))
            else:
                self.ensure_root()
                base = str(self.root)
            self._dir_paths[parent] = base
        if name in ("", ".", "..") or "\0" in name:
            check_relative(rel)  # raises with the usual message
            raise UnsafeNameError(f"refusing output path {rel!r}")
        return f"{base}/{name}"

    def write_bytes(self, rel: str, data: bytes | memoryview, hash_output: bool = True) -> Written:
        """Write ``data`` atomically to ``rel``: a temporary file under ``.tmp`` written with
        plain ``os.write`` calls, renamed into place. Large blocks are hashed on a helper
        thread while they are written."""
        hashed = None
        digest = ""
        if hash_output:
            if len(data) >= OVERLAP_HASH_BYTES:
                hashed = _hash_thread().submit(_sha256_hex, data)
            else:
                digest = hashlib.sha256(data).hexdigest()
        try:
            try:
                self._put(rel, data)
            except FileNotFoundError:
                # a folder known from earlier writes was removed since (an earlier run's
                # clean-up in this process): validate and create the folders again
                self._safe_dirs.clear()
                self._dir_paths.clear()
                self._put(rel, data)
        finally:
            if hashed is not None:
                digest = hashed.result()
        return Written(rel, len(data), digest)

    def _put(self, rel: str, data: bytes | memoryview) -> None:
        final = self._final_str(rel)
        tmp_dir = self._dir_paths.get(TMP_DIR)
        if tmp_dir is None:
            tmp_dir = self._dir_paths[TMP_DIR] = str(self.ensure_dir(TMP_DIR))
        tmp = f"{tmp_dir}/{scratch_name()}"
        try:
            write_new(tmp, data)
            put_in_place(tmp, final)
        except BaseException as exc:
            discard(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
                raise _disk_error(exc, Path(final)) from exc
            raise

    def write_text(self, rel: str, text: str) -> Written:
        """Write UTF-8 text atomically to ``rel``."""
        return self.write_bytes(rel, encode_text(text))

    def clean_tmp(self) -> None:
        """Remove leftovers of an interrupted run (temporary files never hold final data)."""
        if self.tmp.is_symlink():
            self.tmp.unlink()
        elif self.tmp.exists():
            remove_tree(self.tmp)  # iterative: a deep .tmp cannot raise RecursionError
        self._safe_dirs.discard(TMP_DIR)
        self._dir_paths.pop(TMP_DIR, None)


class _PathResult:
    """A temporary path to write, and what was written once it is in place."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.written: Written | None = None


class _HashingFile:
    """A binary file that counts and (optionally) sha256-hashes what is written to it."""

    def __init__(self, raw: BinaryIO, hash_output: bool) -> None:
        self.raw = raw
        self.size = 0
        self._hash = hashlib.sha256() if hash_output else None

    def write(self, data: bytes | memoryview) -> int:
        if self._hash is None:
            n = self.raw.write(data)
        elif len(data) >= OVERLAP_HASH_BYTES:
            hashed = _hash_thread().submit(self._hash.update, data)
            try:
                n = self.raw.write(data)
            finally:
                hashed.result()
        else:
            self._hash.update(data)
            n = self.raw.write(data)
        self.size += n
        return n

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()

    def copy_range(self, src_fd: int, offset: int, count: int) -> None:
        """Copy ``count`` bytes at ``offset`` of ``src_fd`` kernel-side (no hashing possible)."""
        if self._hash is not None:
            raise ValueError("copy_range bypasses hashing; open with hash_output=False")
        self.raw.flush()
        dst = self.raw.fileno()
        done = 0
        while done < count:
            n = os.copy_file_range(src_fd, dst, count - done, offset + done)
            if n == 0:
                raise EOFError(f"source ended {count - done} bytes early")
            done += n
        self.raw.seek(0, os.SEEK_END)
        self.size += done

    def written(self, rel: str) -> Written:
        return Written(rel, self.size, self._hash.hexdigest() if self._hash is not None else "")


_HASHER: tuple[int, Any] | None = None


def _hash_thread() -> Any:
    """Helper threads for overlapping checksums with writes, made on first use in each process
    (a forked child inherits the pool object but not its threads)."""
    global _HASHER
    if _HASHER is None or _HASHER[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="renderme360-sha256")
        _HASHER = (os.getpid(), pool)
    return _HASHER[1]


def _sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class PendingDigest:
    """A file already in place whose sha256 is still being computed on a helper thread, so
    that hashing one file overlaps reading and writing the next."""

    def __init__(self, written: Written, data: bytes | memoryview) -> None:
        self._written = written
        self._digest = _hash_thread().submit(_sha256_hex, data)

    def done(self) -> bool:
        """Whether the digest is ready."""
        return bool(self._digest.done())

    def written(self) -> Written:
        """The finished record (waits for the digest)."""
        return Written(self._written.path, self._written.bytes, self._digest.result())


def _disk_error(exc: OSError, path: Path) -> OSError | DiskFullError:
    if is_disk_full(exc):
        return DiskFullError(f"disk full while writing {path}; free space and re-run to resume")
    return exc


def sha256_file(path: str | os.PathLike[str], bufsize: int = 1 << 20) -> str:
    """sha256 of a file, read in blocks (never the whole file in memory)."""
    h = hashlib.sha256()
    with open_regular(path) as f:  # never a symlink's target, never blocked by a FIFO
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes on the filesystem that holds path (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free

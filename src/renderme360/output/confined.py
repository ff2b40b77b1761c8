"""The one confined writer: every file the tool creates under a root it was given goes through here.

It owns what makes a write safe, once:

* :func:`check_relative`: a relative path stays inside its root (no ``..``, no absolute path,
  no empty or ``.`` component);
* :func:`ensure_dirs`: folders are created one component at a time with ``lstat`` checks, and a
  symlinked or non-folder component is refused, so nothing is written outside the root;
* the temporary names (the only module that makes them): :func:`scratch_name` (per-process
  prefix and counter, inside an output folder's ``.tmp``), :func:`named_scratch` (a fixed name
  inside ``.tmp``), :func:`sibling_tmp` (``.NAME.XXXXXXXX.tmp`` beside the final name, as the
  exports use) and :func:`fixed_tmp` (``NAME.tmp``, a bookkeeping file's one temp name);
* :func:`create_new`: ``O_CREAT | O_EXCL | O_NOFOLLOW``: a temp file is always a new file, never
  an existing name, link or FIFO;
* :func:`put_in_place`: the atomic rename. The final name's old entry (a file, a symlink, a FIFO,
  a hard link to a file elsewhere) is replaced, never opened, so nothing outside changes;
* the fsync policy (:data:`FSYNC_FILES`, :func:`fsync_path`);
* cleanup of leftovers: :func:`discard`, :func:`is_sibling_tmp`, :func:`remove_sibling_tmps`,
  :func:`leftovers_of` (a folder's ``.tmp`` is removed whole by ``OutputDir.clean_tmp``);
* :func:`open_own_file`: files the tool changes in place (locks, journals) opened without
  following a link and refused when hard-linked.

:class:`~renderme360.output.outdir.OutputDir` (extraction) and
:class:`~renderme360.export.files.ExportDir` (exports) are thin users of these functions.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import UnsafeNameError

#: The folder inside an output folder where files are assembled before their rename.
TMP_DIR = ".tmp"

#: Flags of every temporary file: a new file (never an existing name, a link or a FIFO).
CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)

#: fsync policy: data files are not fsynced one by one (300,000 fsyncs would cost minutes). A
#: file under its final name is complete or absent after a crash of the process; after a power
#: loss the checksums and the completion marker (fsynced last, with its folder, by
#: :func:`fsync_path`) tell a finished folder from one to re-check.
FSYNC_FILES = False

#: A temporary name made by :func:`sibling_tmp` (also a nested one: ``..x.AAAA.tmp.BBBB.tmp``).
SIBLING_TMP_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


# ---------------------------------------------------------------------------- paths
def check_relative(rel: str, what: str = "output") -> PurePosixPath:
    """Refuse a relative path that is absolute, empty, climbs out with ``..``, or is not
    spelled the one way (``a//b``, ``./a``, ``a/``: another name for a path, never written)."""
    p = PurePosixPath(rel)
    bad = not p.parts or "\0" in rel or p.is_absolute() or str(p) != rel or ".." in p.parts
    if bad:
        raise UnsafeNameError(f"refusing {what} path {rel!r}: it would leave the {what} folder")
    return p


def ensure_dirs(root: Path, rel_dir: str, made: list[Path] | None = None) -> Path:
    """Create ``root/rel_dir`` one component at a time and return it; refuse a component that
    is a symlink (it may lead outside ``root``) or not a folder. Folders created are appended
    to ``made`` (before ``mkdir``: a stop between the two cannot leak one)."""
    current = root
    if rel_dir in ("", "."):
        return current
    for part in check_relative(rel_dir).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            mode = None
        if mode is None:
            if made is not None:
                made.append(current)
            try:
                os.mkdir(current)
                continue
            except FileExistsError:
                if made is not None:
                    made.pop()
                mode = os.lstat(current).st_mode  # made meanwhile: check what it is
        if stat.S_ISLNK(mode):
            raise UnsafeNameError(
                f"refusing to write through symlink {current}: it may lead outside {root}"
            )
        if not stat.S_ISDIR(mode):
            raise UnsafeNameError(f"{current} exists and is not a folder")
    return current


def check_root(root: Path, what: str) -> None:
    """Refuse a root that is a symlink or exists and is not a folder."""
    if root.is_symlink():
        raise UnsafeNameError(f"refusing to write into {root}: it is a symlink; give its target")
    if root.exists() and not root.is_dir():
        raise UnsafeNameError(f"{what} folder {root} exists and is not a folder")


# ---------------------------------------------------------------------------- temp names
class _TmpNames:
    """Names of temporary files: a random prefix per process (new in a forked child), then a
    counter. One random draw per file was a visible system call at 300,000 files; names never
    repeat within a process, and O_EXCL refuses any clash with another."""

    prefix = os.urandom(8).hex()
    count = itertools.count()

    @classmethod
    def reseed(cls) -> None:
        cls.prefix, cls.count = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_TmpNames.reseed)


def scratch_name() -> str:
    """A new temporary file name for an output folder's :data:`TMP_DIR` (``PREFIX-N.part``)."""
    return f"{_TmpNames.prefix}-{next(_TmpNames.count)}.part"


def named_scratch(folder: Path, stem: str) -> Path:
    """A fixed temporary name ``stem.part`` inside ``folder`` (an output folder's ``.tmp``)."""
    return folder / f"{stem}.part"


def sibling_tmp(path: Path) -> Path:
    """A new hidden temporary name beside ``path``: ``.NAME.XXXXXXXX.tmp`` (see
    :data:`SIBLING_TMP_RE`, which cleanup recognises)."""
    return path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")


def fixed_tmp(path: Path) -> Path:
    """The one temporary name of a bookkeeping file: ``NAME.tmp`` beside it (an earlier run's
    leftover is found by name and removed)."""
    return path.with_name(f"{path.name}.tmp")


def is_sibling_tmp(name: str) -> bool:
    """Whether a file name is a temporary name from :func:`sibling_tmp`."""
    return SIBLING_TMP_RE.match(name) is not None


def leftovers_of(tmp: Path) -> list[Path]:
    """Temporary files made beside ``tmp`` for ``tmp`` itself (a worker's nested temp)."""
    return [p for p in tmp.parent.glob(f".{glob_escape(tmp.name)}.*.tmp") if is_sibling_tmp(p.name)]


def glob_escape(name: str) -> str:
    """``name`` with glob wildcards quoted."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def remove_sibling_tmps(root: Path) -> int:
    """Remove every :func:`sibling_tmp` leftover under ``root`` (an interrupted run's: call it
    only while holding the folder's lock). Symlinks are removed, never followed."""
    from .walk import walk

    removed = 0
    for folder, _dirs, names in walk(root):  # iterative, bounded depth
        for n in names:
            if is_sibling_tmp(n):
                with contextlib.suppress(FileNotFoundError):
                    Path(folder, n).unlink()
                    removed += 1
    return removed


def scratch_folder(prefix: str) -> Any:
    """A private temporary folder outside any output (``tempfile.TemporaryDirectory``), for work
    whose files are compared and thrown away (``verify --source``)."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix=prefix)


def private_folder(parent: Path, prefix: str) -> Path:
    """A new folder of this process only inside ``parent`` (``tempfile.mkdtemp``: mode 0700, a
    unique name starting with ``prefix``), for copies removed when their work ends (staging)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


# ---------------------------------------------------------------------------- create, rename
def create_new(path: str | os.PathLike[str], mode: int = 0o644) -> int:
    """Create ``path`` as a new file and return its descriptor (:data:`CREATE_FLAGS`)."""
    return os.open(path, CREATE_FLAGS, mode)


def write_new(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Write ``data`` to a new file ``path`` (a temporary name) with plain ``os.write`` calls."""
    fd = create_new(path)
    try:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
        if FSYNC_FILES:
            os.fsync(fd)
    finally:
        os.close(fd)


def put_in_place(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename a finished temporary file to its final name, atomically. Whatever was at the
    final name (a file, a symlink, a FIFO, a hard link) is replaced, never written through."""
    os.replace(tmp, final)


def discard(path: str | os.PathLike[str]) -> None:
    """Remove a temporary file if it is there."""
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a new :func:`sibling_tmp` name for a library that writes by name; on success it is
    renamed to ``path``, otherwise removed."""
    tmp = sibling_tmp(path)
    try:
        yield tmp
        put_in_place(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def fsync_path(path: Path) -> None:
    """fsync a file or folder by name without following a symlink (best effort: some
    filesystems cannot fsync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO never blocks
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_own_file(
    path: str | os.PathLike[str], flags: int, verb: str = "write", mode: int = 0o644
) -> int:
    """Open a bookkeeping file the tool changes in place (appends to, truncates, locks) and
    return its descriptor, refusing anything that could be another file's name: a symlink
    (``O_NOFOLLOW``), something not a regular file, or a file with more than one hard link
    (checked on the opened descriptor, so it cannot be swapped in between). Opened
    non-blocking, so a FIFO planted there is refused instead of hanging the open."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO without a reader, opened for writing
            raise UnsafeNameError(f"refusing to {verb} {path}: not a regular file") from None
        if exc.errno != errno.ELOOP:
            raise
        raise UnsafeNameError(f"refusing to {verb} {path}: it is a symlink") from None
    os.set_blocking(fd, True)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = (
            "not a regular file"
            if not stat.S_ISREG(st.st_mode)
            else (f"it has {st.st_nlink} hard links, so writing it would change a file elsewhere")
        )
        raise UnsafeNameError(f"refusing to {verb} {path}: {what}; remove it and run again")
    return fd

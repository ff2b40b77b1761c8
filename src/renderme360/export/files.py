"""Writing inside an export folder: staged (temp names, renamed together), never through a symlink.

Every path is relative to the export folder and checked before use, so nothing lands outside it.
The checks, temporary names, exclusive creates and renames are those of
:mod:`renderme360.output.confined` (shared with the extraction output). Files of a run are
written under temporary names and renamed into place only by :meth:`commit` once everything is
written; :meth:`ExportDir.abort` removes them and the folders the run made, so a failed export
leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import NotRegularFileError, UnsafeNameError
from ..output.confined import (
    check_relative,
    check_root,
    create_new,
    discard,
    ensure_dirs,
    leftovers_of,
    put_in_place,
    remove_sibling_tmps,
    replacing,
    sibling_tmp,
    write_new,
)
from ..safeopen import open_regular_fd
from ..workers import own_temp


class ExportDir:
    """An export destination folder; every write goes through :meth:`path` checks."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        check_root(self.root, "export")
        self._staged: dict[Path, Path] = {}  # final path -> temporary name holding its bytes
        missing = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        self._made = missing[::-1]  # folders this run created, outermost first (abort: removed)

    def path(self, rel: str) -> Path:
        """Absolute path of ``rel`` (POSIX, relative, no ``..``); parent folders created, and
        refused when a component is a symlink (it could point outside the export)."""
        p = check_relative(rel, "export")
        parent = ensure_dirs(self.root, str(p.parent), self._made)
        return parent / p.name  # a symlink there is replaced by the rename, never followed

    def stage(self, rel: str) -> Path:
        """The temporary name under which ``rel`` is written; :meth:`commit` renames it."""
        dst = self.path(rel)
        old = self._staged.pop(dst, None)
        if old is not None:
            _unlink(old)
        tmp = sibling_tmp(dst)
        self._staged[dst] = tmp
        return tmp

    def staged_names(self) -> dict[str, str]:
        """Every staged file: ``{final path: temporary name}`` as strings (for many lookups)."""
        return {str(dst): str(tmp) for dst, tmp in self._staged.items()}

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write ``data`` for ``rel`` under a temporary name (in place at :meth:`commit`)."""
        tmp = self.stage(rel)
        write_new(tmp, data)
        return tmp

    def commit(self) -> None:
        """Rename every staged file into place (quick: the bytes are already written)."""
        for dst, tmp in list(self._staged.items()):
            put_in_place(tmp, dst)
            del self._staged[dst]

    def abort(self) -> None:
        """Remove what this run staged and the folders it created: the folder is as before."""
        for tmp in self._staged.values():
            _unlink(tmp)
            for inner in leftovers_of(tmp):  # a stopped worker's own temp
                _unlink(inner)
        self._staged.clear()
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: files of earlier exports stay

    def link_or_copy(self, src: str | os.PathLike[str], rel: str) -> tuple[Path, bool]:
        """Hard-link ``src`` at ``rel`` (a copy when linking is impossible), staged.

        Returns (path, linked). An existing hard link to the same file is kept as it is.
        ``src`` must be a regular file (a symlink, FIFO or device is refused, checked on an
        open descriptor: never linked to or copied from elsewhere).
        """
        dst = self.path(rel)
        fd, s = open_regular_fd(src)
        with os.fdopen(fd, "rb") as fsrc:
            try:
                d = os.lstat(dst)
                if (d.st_ino, d.st_dev) == (s.st_ino, s.st_dev):
                    return dst, True
            except FileNotFoundError:
                pass
            tmp = self.stage(rel)
            try:
                linked = _link_same(src, tmp, s)
                if not linked:
                    with open(create_new(tmp), "wb") as fdst:
                        shutil.copyfileobj(fsrc, fdst, 1 << 20)
            except BaseException:
                _unlink(tmp)
                raise
        return dst, linked

    def remove_leftovers(self) -> int:
        """Remove temporary files an interrupted run left anywhere in the folder (call it only
        while holding the folder's lock: a running export's staged files look the same)."""
        return remove_sibling_tmps(self.root)

    def remove(self, rel: str) -> bool:
        """Delete a file this export wrote earlier (stale after a narrower re-run)."""
        try:
            p = self.path(rel)
            p.unlink()
        except (FileNotFoundError, UnsafeNameError):
            return False
        _prune_empty(p.parent, self.root)
        return True


def _link_same(src: str | os.PathLike[str], tmp: Path, st: os.stat_result) -> bool:
    """Hard-link ``src`` itself (never a symlink's target) at ``tmp``: True when the link is
    the file ``st`` describes, False when linking is impossible (another file system)."""
    try:
        os.link(src, tmp, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        return False
    t = os.lstat(tmp)
    if (t.st_ino, t.st_dev) != (st.st_ino, st.st_dev):  # swapped since it was opened
        raise NotRegularFileError(f"refusing to export {os.fspath(src)}: it changed while linked")
    return True


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` under a temporary name beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp:
        write_new(tmp, data)
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for a writer that opens the file itself (an encoder):
    renamed to ``path`` when the block ends, removed if it raises. ``path`` comes from
    :meth:`ExportDir.path` (checked); a killed process leaves only the temporary name, which
    the next run removes."""
    with replacing(path) as tmp, own_temp(tmp):  # a worker whose parent dies removes it
        yield tmp


def _unlink(p: Path) -> None:
    discard(p)


def _prune_empty(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

"""Writing inside an export folder: staged (temp names, renamed together), never through a symlink.

Every path is relative to the export folder and checked before use, so nothing lands outside it.
Files of a run are written under temporary names and renamed into place only by :meth:`commit`
once everything is written; :meth:`ExportDir.abort` removes them and the folders the run made,
so a failed export leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path, PurePosixPath

from ..errors import NotRegularFileError, UnsafeNameError
from ..safeopen import open_regular_fd


class ExportDir:
    """An export destination folder; every write goes through :meth:`path` checks."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.is_symlink():
            raise UnsafeNameError(f"export folder {self.root} is a symlink; give its target")
        if self.root.exists() and not self.root.is_dir():
            raise UnsafeNameError(f"export folder {self.root} exists and is not a folder")
        self._staged: dict[Path, Path] = {}  # final path -> temporary name holding its bytes
        missing = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        self._made = missing[::-1]  # folders this run created, outermost first (abort: removed)

    def path(self, rel: str) -> Path:
        """Absolute path of ``rel`` (POSIX, relative, no ``..``); parent folders created, and
        refused when a component is a symlink (it could point outside the export)."""
        p = PurePosixPath(rel)
        if p.is_absolute() or not p.parts or any(x in ("..", ".", "") for x in p.parts):
            raise UnsafeNameError(f"refusing export path {rel!r}")
        cur = self.root
        for part in p.parts[:-1]:
            cur = cur / part
            if cur.is_symlink():
                raise UnsafeNameError(f"refusing to write through symlink {cur}")
            try:
                cur.mkdir()
                self._made.append(cur)
            except FileExistsError:
                pass
        return cur / p.parts[-1]  # a symlink there is replaced by the rename, never followed

    def stage(self, rel: str) -> Path:
        """The temporary name under which ``rel`` is written; :meth:`commit` renames it."""
        dst = self.path(rel)
        old = self._staged.pop(dst, None)
        if old is not None:
            _unlink(old)
        tmp = _tmp_name(dst)
        self._staged[dst] = tmp
        return tmp

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write ``data`` for ``rel`` under a temporary name (in place at :meth:`commit`)."""
        tmp = self.stage(rel)
        with open(tmp, "xb") as fh:
            fh.write(data)
        return tmp

    def commit(self) -> None:
        """Rename every staged file into place (quick: the bytes are already written)."""
        for dst, tmp in list(self._staged.items()):
            os.replace(tmp, dst)
            del self._staged[dst]

    def abort(self) -> None:
        """Remove what this run staged and the folders it created: the folder is as before."""
        for tmp in self._staged.values():
            _unlink(tmp)
            for inner in tmp.parent.glob(f".{tmp.name}.*.tmp"):  # a stopped worker's own temp
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
                    with open(tmp, "xb") as fdst:
                        shutil.copyfileobj(fsrc, fdst, 1 << 20)
            except BaseException:
                _unlink(tmp)
                raise
        return dst, linked

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
    tmp = _tmp_name(path)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")


def _unlink(p: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(p)


def _prune_empty(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

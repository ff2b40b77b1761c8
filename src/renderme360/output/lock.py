"""One exclusive lock per output folder: extract locks a performance folder, export its DEST.

The lock is an OS file lock (``flock``) on a small file holding the holder's pid, released by
the kernel if the process dies, so a killed run never leaves a stale lock behind. A holder may
remove the file while it holds it (:meth:`FolderLock.remove`): whoever acquires the lock checks
that the file it locked is still the one at the path, and retries otherwise.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LockedError
from .outdir import open_own_file


class FolderLock:
    """``with FolderLock(path, busy):`` holds the lock at ``path`` (created if needed).

    ``busy(pid_text)`` is the one-line message of the :class:`LockedError` (exit 4) raised when
    another process holds it and ``wait`` is False; with ``wait`` the lock is waited for.
    """

    def __init__(
        self, path: str | os.PathLike[str], busy: Callable[[str], str], wait: bool = False
    ):
        self.path = Path(path)
        self.busy = busy
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        while True:
            fd = open_own_file(self.path, os.O_RDWR | os.O_CREAT, "lock")
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                    raise LockedError(self.busy(holder or "unknown")) from None
                if _same_file(fd, self.path):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, str(os.getpid()).encode(), 0)
                    self._fd, fd = fd, -1
                    return self
                # the holder removed the file as it finished: lock the one now at the path
            finally:
                if fd >= 0:
                    os.close(fd)

    def remove(self) -> None:
        """Delete the lock file (while still holding it): nothing of the run stays behind."""
        if self._fd is not None and _same_file(self._fd, self.path):
            self.path.unlink(missing_ok=True)

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)

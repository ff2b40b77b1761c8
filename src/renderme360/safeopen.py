"""The one way to open a file from a folder the tool does not trust (an extracted performance
folder, an output root, an export's sources): a regular file, or a one-line refusal.

``O_NOFOLLOW`` refuses a symlink (it could point anywhere: its bytes would be read, linked or
copied as if they were ours); ``O_NONBLOCK`` keeps a FIFO from blocking the open; ``fstat`` of
the opened descriptor refuses a FIFO, device, socket or folder (checked on the descriptor, so
nothing can be swapped in between); then ``O_NONBLOCK`` is cleared for ordinary reads. Every
reader of an output folder (loader, verify, preview, export, resume, the manifest readers) opens
its files here.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from .errors import BudgetError, NotRegularFileError

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def open_regular_fd(path: str | os.PathLike[str], flags: int = 0) -> tuple[int, os.stat_result]:
    """A descriptor of ``path`` (opened read-only plus ``flags``) and its ``fstat``; raises
    NotRegularFileError for a symlink or anything but a regular file, OSError (e.g.
    FileNotFoundError) when it cannot be opened."""
    try:
        fd = os.open(path, _FLAGS | flags)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP, errno.EISDIR):
            raise
        raise NotRegularFileError(_refusal(path, "a symlink or not a regular file")) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(_refusal(path, _kind(st.st_mode)))
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for binary reading, only if it is a regular file (see the module)."""
    fd, _st = open_regular_fd(path)
    return os.fdopen(fd, "rb")


def read_regular(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file; BudgetError when it holds more than ``max_bytes``."""
    fd, st = open_regular_fd(path)
    with os.fdopen(fd, "rb") as f:
        if max_bytes is not None and st.st_size > max_bytes:
            raise BudgetError(f"{path}: {st.st_size:,} bytes, above the {max_bytes:,} allowed")
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # grew while being read
        raise BudgetError(f"{path}: more than the {max_bytes:,} bytes allowed")
    return data


def read_regular_text(path: str | os.PathLike[str], max_bytes: int | None = None) -> str:
    """The UTF-8 text of a regular file (see :func:`read_regular`)."""
    return read_regular(path, max_bytes).decode("utf-8")


def is_regular(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` itself (not a symlink's target) is a regular file (``lstat``)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _refusal(path: str | os.PathLike[str], what: str) -> str:
    return f"refusing to read {os.fspath(path)}: {what} (only regular files are read)"

"""Writers: one small function per output format, all with the signature
``writer(ctx: WriteContext, task: Task) -> Written``.

A writer reads what it needs through ``ctx`` (the source file, opened once per unit) and writes
one file through ``ctx.out`` (atomic, inside the output folder). New formats are added to
``WRITERS`` without touching the executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SMCFormatError
from ..output.outdir import OutputDir, PendingDigest, Written
from ..smc.reader import ExtractionReader

if TYPE_CHECKING:
    from ..tasks import Options, Task


#: Blobs smaller than this, each lying at most ADJACENT bytes after the last one read, are read
#: READ_AHEAD bytes at a time (between two blobs lies the next one's HDF5 header).
SMALL_BLOB = 256 << 10
ADJACENT = 4096
READ_AHEAD = 1 << 20


class WriteContext:
    """What writers share within one unit: the output folder, the source file and options."""

    def __init__(self, out: OutputDir, source: str | os.PathLike[str], options: Options) -> None:
        self.out = out
        self.source = Path(source)
        self.options = options
        self._reader: ExtractionReader | None = None
        self._fd: int | None = None
        self._ahead = b""  # bytes of the source from _ahead_at, read ahead (see pread)
        self._ahead_at = 0
        self._last_end = -1  # where the last read ended

    @property
    def reader(self) -> ExtractionReader:
        """The source opened with the SMC reader (on first use)."""
        if self._reader is None:
            self._reader = ExtractionReader(self.source)
        return self._reader

    @property
    def fd(self) -> int:
        """A raw read-only descriptor of the source, for copies by offset (on first use)."""
        if self._fd is None:
            self._fd = os.open(self.source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return self._fd

    def pread(self, offset: int, nbytes: int, what: str | Task) -> bytes:
        """Exactly ``nbytes`` at ``offset`` of the source, or SMCFormatError (naming ``what``,
        or the blob a task reads) if it is short.

        Small blobs read one after another in file order (a camera's frames are stored so)
        are read :data:`READ_AHEAD` bytes at a time: one system call for dozens of them."""
        at = offset - self._ahead_at
        if at >= 0 and at + nbytes <= len(self._ahead):
            data = self._ahead[at : at + nbytes]
        elif nbytes < SMALL_BLOB and 0 <= offset - self._last_end <= ADJACENT:
            self._ahead, self._ahead_at = os.pread(self.fd, READ_AHEAD, offset), offset
            data = self._ahead[:nbytes]
        else:
            data = os.pread(self.fd, nbytes, offset)
        self._last_end = offset + nbytes
        if len(data) != nbytes:
            if not isinstance(what, str):
                what = what.describe_blob()
            raise SMCFormatError(f"{self.source}: {what}: file is truncated")
        return data

    def close(self) -> None:
        """Close the source (reader and descriptor)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Writer = Callable[[WriteContext, "Task"], "Written | PendingDigest"]


def _registry() -> dict[str, Writer]:
    from . import arrays, audio, blobs, mesh, metadata

    return {
        "blob": blobs.write_blob,
        "text": metadata.write_text_task,
        "calibration_all": arrays.write_calibration_all,
        "calibration_cam": arrays.write_calibration_cam,
        "calibration_json": arrays.write_calibration_json,
        "keypoints2d": arrays.write_keypoints2d,
        "keypoints3d": arrays.write_keypoints3d,
        "flame": arrays.write_flame,
        "audio_wav": audio.write_wav_task,
        "audio_mp3": audio.write_mp3_task,
        "audio_npz": audio.write_npz_task,
        "scan_ply": mesh.write_ply_task,
    }


_WRITERS: dict[str, Writer] | None = None


def get_writer(name: str) -> Writer:
    """The writer registered under ``name``."""
    global _WRITERS
    if _WRITERS is None:
        _WRITERS = _registry()
    return _WRITERS[name]

"""Writers: one small function per output format, all with the signature
``writer(ctx: WriteContext, task: Task) -> Written``.

A writer reads what it needs through ``ctx`` (the source file, opened once per unit) and writes
one file through ``ctx.out`` (atomic, inside the output folder). New formats are added to
``WRITERS`` without touching the executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import SMCFormatError
from ..output.outdir import OutputDir, PendingDigest, Written
from ..smc.reader import ExtractionReader
from ..smc.source import ByteSource, RemotePath, Stamp, as_location

if TYPE_CHECKING:
    from ..tasks import Options, Task


#: Blobs smaller than this, each lying at most ADJACENT bytes after the last one read, are read
#: READ_AHEAD bytes at a time (between two blobs lies the next one's HDF5 header).
SMALL_BLOB = 256 << 10
ADJACENT = 4096
READ_AHEAD = 1 << 20


class WriteContext:
    """What writers share within one unit: the output folder, the source file and options.

    The source's bytes are read through one :class:`~renderme360.smc.source.ByteSource`: a
    local file by ``pread``; a URL by ranged requests, the unit's blobs fetched ahead in file
    order (:meth:`plan_reads`: neighbours coalesced, requests in parallel, bounded)."""

    def __init__(
        self,
        out: OutputDir,
        source: str | os.PathLike[str] | RemotePath,
        options: Options,
        stamp: Stamp | None = None,
    ) -> None:
        self.out = out
        self.source = as_location(source)
        self.stamp = stamp  # the source's version, just confirmed by the caller (or None)
        self.options = options
        self._reader: ExtractionReader | None = None
        self._bytes: ByteSource | None = None
        self._ahead = b""  # bytes of the source from _ahead_at, read ahead (see pread)
        self._ahead_at = 0
        self._last_end = -1  # where the last read ended
        self._planned: Iterator[tuple[tuple[int, int], bytes]] | None = None

    @property
    def remote(self) -> bool:
        """Whether the source is a URL (no descriptor, no kernel-side copies)."""
        return isinstance(self.source, RemotePath)

    @property
    def reader(self) -> ExtractionReader:
        """The source opened with the SMC reader (on first use)."""
        if self._reader is None:
            self._reader = ExtractionReader(self.source, stamp=self.stamp)
        return self._reader

    @property
    def bytes_source(self) -> ByteSource:
        """The source's bytes by range (on first use)."""
        if self._bytes is None:
            self._bytes = ByteSource.open(self.source, self.stamp)
        return self._bytes

    @property
    def fd(self) -> int:
        """A raw read-only descriptor of a local source, for copies by offset (on first use)."""
        return self.bytes_source.fd

    def plan_reads(self, ranges: list[tuple[int, int]]) -> None:
        """The ``(offset, nbytes)`` blobs this unit will read, in order: a remote source fetches
        them ahead (a local one reads each when asked)."""
        if self.remote and ranges:
            self._planned = zip(ranges, self.bytes_source.iter_ranges(ranges), strict=True)

    def _from_plan(self, offset: int, nbytes: int) -> bytes | None:
        """The planned bytes of this range (ranges planned before it and never asked for are
        dropped: their task did not read); None when it was not planned."""
        if self._planned is None:
            return None
        for got, data in self._planned:
            if got == (offset, nbytes):
                return data
        self._planned = None
        return None

    def pread(self, offset: int, nbytes: int, what: str | Task) -> bytes:
        """Exactly ``nbytes`` at ``offset`` of the source, or SMCFormatError (naming ``what``,
        or the blob a task reads) if it is short.

        Small blobs read one after another in file order (a camera's frames are stored so)
        are read :data:`READ_AHEAD` bytes at a time: one system call for dozens of them."""
        at = offset - self._ahead_at
        data = self._from_plan(offset, nbytes)
        if data is not None:
            pass
        elif at >= 0 and at + nbytes <= len(self._ahead):
            data = self._ahead[at : at + nbytes]
        elif nbytes < SMALL_BLOB and 0 <= offset - self._last_end <= ADJACENT:
            self._ahead = self.bytes_source.read_at(offset, READ_AHEAD)
            self._ahead_at = offset
            data = self._ahead[:nbytes]
        else:
            data = self.bytes_source.read_at(offset, nbytes)
        self._last_end = offset + nbytes
        if len(data) != nbytes:
            if not isinstance(what, str):
                what = what.describe_blob()
            raise SMCFormatError(f"{self.source}: {what}: file is truncated")
        return data

    def fetched(self) -> dict[str, int]:
        """Requests and bytes read from the source so far (blobs and HDF5 reads)."""
        requests = nbytes = 0
        sources = [self._bytes, self._reader._source if self._reader is not None else None]
        for src in sources:
            if src is not None:
                requests += src.stats.requests
                nbytes += src.stats.bytes
        return {"requests": requests, "bytes": nbytes}

    def close(self) -> None:
        """Close the source (reader and byte source)."""
        self._planned = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._bytes is not None:
            self._bytes.close()
            self._bytes = None

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

"""The interface between planning and writing: typed tasks, units, options, the Writer protocol.

The planner produces :class:`Task` objects; writers consume them. Neither side imports the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .output.outdir import PendingDigest, Written
    from .writers import WriteContext


@dataclass
class SourceId:
    """Identity of a source file: a changed size or mtime means a plan built on it is stale."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceId:
        st = os.stat(path)
        return cls(str(Path(path).absolute()), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Options:
    """How files are written (not which): image mode, JPEG quality, checksums."""

    image_mode: str = "copy"  # "copy" the stored bytes, or "reencode"
    jpeg_quality: int = 95
    checksum: bool = True

    def variant(self, modality: str) -> str:
        """What distinguishes this run's output of a modality from another run's."""
        if self.image_mode == "reencode" and modality in ("images", "masks", "uv"):
            return f"reencode:q{self.jpeg_quality}"
        return "copy" if modality in ("images", "masks", "uv", "scan_masks") else "v1"


@dataclass(frozen=True)
class Task:
    """One output file: its planned relative path, writer, source role, size and what to read.

    Only the fields a writer needs are set: ``camera``/``frame`` for one item, ``cameras``/
    ``frames`` for a stacked array, ``blob_kind``/``offset`` for stored encoded bytes (``offset``
    None: read through HDF5), ``text`` for a document rendered at planning time.
    """

    key: str
    modality: str
    writer: str
    role: str
    nbytes: int
    exact: bool
    variant: str
    camera: str | None = None
    frame: int | None = None
    cameras: tuple[str, ...] = ()
    frames: tuple[int, ...] = ()
    blob_kind: str | None = None
    offset: int | None = None
    text: str | None = None
    fields: tuple[str, ...] | None = None  # FLAME datasets to write (None: every one found)


@dataclass
class Unit:
    """Tasks that read one source file together (one worker opens the file once)."""

    role: str
    source: SourceId
    tasks: list[Task]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tasks)


class Writer(Protocol):
    """A writer: reads what ``task`` names through ``ctx`` and writes one file."""

    def __call__(self, ctx: WriteContext, task: Task) -> Written | PendingDigest: ...

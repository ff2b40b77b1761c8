"""The interface between planning and writing: typed tasks, units, options.

The planner produces :class:`Task` objects; writers consume them. Neither side imports the other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .modalities import reencoded, spec


@dataclass
class SourceId:
    """Identity of a source file: a changed size or mtime (or ETag) means a plan built on it is
    stale. ``path`` is how it is shown and recorded (a URL without its credentials); ``url`` is
    set for a remote file: the URL to open."""

    path: str
    size: int
    mtime_ns: int
    url: str = ""
    etag: str = ""

    def record(self) -> dict[str, object]:
        """How manifests record it: never the URL to open (it may carry credentials)."""
        doc: dict[str, object] = {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}
        if self.etag:
            doc["etag"] = self.etag
        return doc

    @property
    def location(self) -> str:
        """What to open: the URL of a remote file, the path of a local one."""
        return self.url or self.path

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
        if reencoded(modality, self.image_mode):
            return f"reencode:q{self.jpeg_quality}"
        return "copy" if spec(modality).is_blob else "v1"


# Not frozen: a frozen dataclass sets each field through object.__setattr__ (3x the cost), and
# there is one Task per file (300,000 a performance). Treated as immutable all the same.
@dataclass(slots=True)
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

    def describe_blob(self) -> str:
        """How an error names the blob this task reads (``color camera 03 frame 12``)."""
        if self.blob_kind == "uv":
            return f"UV texture frame {self.frame}"
        if self.blob_kind == "scan_mask":
            return f"scan mask camera {self.camera}"
        return f"{self.blob_kind} camera {self.camera} frame {self.frame}"


class LazyTasks(Protocol):
    """Tasks built only when iterated (a real performance has ~300,000 blob tasks): a sized
    iterable with its total bytes, that can drop the tasks already done."""

    nbytes: int

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Task]: ...

    def without(self, is_done: Callable[[str, str], bool]) -> LazyTasks | None: ...


class Unit:
    """Tasks that read one source file together (one worker opens the file once).

    ``tasks`` is a list, or a :class:`LazyTasks` that builds its tasks when iterated.
    """

    def __init__(self, role: str, source: SourceId, tasks: list[Task] | LazyTasks) -> None:
        self.role = role
        self.source = source
        self.tasks = tasks

    def __repr__(self) -> str:
        return f"Unit({self.role!r}, {self.source!r}, {self.count} tasks)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Unit):
            return NotImplemented
        return (self.role, self.source, list(self.tasks)) == (
            other.role,
            other.source,
            list(other.tasks),
        )

    # unhashable, as a class with __eq__ is; typeshed declares object.__hash__ a method, so
    # mypy wants an ignore to learn it (then hash() of one is an error it reports)
    __hash__ = None  # type: ignore[assignment]

    @property
    def count(self) -> int:
        """Number of files this unit writes."""
        return len(self.tasks)

    @property
    def nbytes(self) -> int:
        if isinstance(self.tasks, list):
            return sum(t.nbytes for t in self.tasks)
        return self.tasks.nbytes

    def without(self, is_done: Callable[[str, str], bool]) -> Unit | None:
        """This unit minus its tasks whose file is done (``is_done(role, key)``); None when
        nothing is left."""
        if not isinstance(self.tasks, list):
            left = self.tasks.without(is_done)
            if left is self.tasks:
                return self
            return None if left is None else Unit(self.role, self.source, left)
        todo = [t for t in self.tasks if not is_done(t.role, t.key)]
        if len(todo) == len(self.tasks):
            return self
        return Unit(self.role, self.source, todo) if todo else None

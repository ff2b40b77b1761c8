"""Lazy blob tasks and unit packing: a blob stream becomes Task objects only when its unit runs,
and tasks are packed into units of bounded count and bytes (one open source file each)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Any

from ..modalities import reencoded, spec
from ..output.layout import blob_path
from ..tasks import Options, SourceId, Task, Unit
from .inventory import BlobStream, FileInventory

UNIT_MAX_TASKS = 64
UNIT_MAX_BYTES = 96 << 20


def blob_ext(inv: FileInventory, kind: str, cam: str, opts: Options, modality: str) -> str:
    """Extension of a blob's planned file: the re-encoded format, else the stored one."""
    if reencoded(modality, opts.image_mode):
        return str(spec(modality).reencode)
    return inv.extensions.get((kind, cam), "bin")


class BlobTasks:
    """The blob tasks of a run of one stream (images/masks of one camera, UV textures), built
    only when iterated: a real performance has ~300,000 of them, and a Task object each would
    hold ~150 MB. Holds the inventory's stream arrays and the positions in them."""

    def __init__(
        self,
        modality: str,
        prefix: str,
        kind: str,
        cam: str | None,
        ext: str,
        role: str,
        variant: str,
        exact: bool,
        stream: BlobStream,
        positions: range | array[int],
    ) -> None:
        self.modality, self.prefix, self.kind, self.cam, self.ext = modality, prefix, kind, cam, ext
        self.role, self.variant, self.exact = role, variant, exact
        self.stream = stream
        self.positions = positions
        sizes = stream.sizes
        self.nbytes = sum(sizes[i] for i in positions)

    def __len__(self) -> int:
        return len(self.positions)

    def key(self, frame: int) -> str:
        """Planned relative path of one frame's file."""
        return self.prefix + blob_path(self.modality, self.cam, frame, self.ext)

    def __iter__(self) -> Iterator[Task]:
        frames, offsets, sizes = self.stream.frames, self.stream.offsets, self.stream.sizes
        for i in self.positions:
            f, off, n = frames[i], offsets[i], sizes[i]
            yield Task(
                self.key(f),
                self.modality,
                "blob",
                self.role,
                n,
                self.exact,
                self.variant,
                camera=self.cam,
                frame=f,
                blob_kind=self.kind,
                offset=None if off < 0 else off,
            )

    def without(self, is_done: Callable[[str, str], bool]) -> BlobTasks | None:
        """The same run minus the frames whose file is done (None when nothing is left)."""
        frames = self.stream.frames
        left = array(
            "q", (i for i in self.positions if not is_done(self.role, self.key(frames[i])))
        )
        if len(left) == len(self.positions):
            return self
        if not left:
            return None
        return self._with_positions(left)

    def _with_positions(self, positions: range | array[int]) -> BlobTasks:
        return BlobTasks(
            self.modality,
            self.prefix,
            self.kind,
            self.cam,
            self.ext,
            self.role,
            self.variant,
            self.exact,
            self.stream,
            positions,
        )

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a worker: only this run's part of the stream, not the whole camera.
        part = BlobStream()
        s = self.stream
        for i in self.positions:
            part.frames.append(s.frames[i])
            part.offsets.append(s.offsets[i])
            part.sizes.append(s.sizes[i])
        state = dict(self.__dict__)
        state["stream"], state["positions"] = part, range(len(part))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def blob_units(run: BlobTasks, source: SourceId) -> Iterator[Unit]:
    """A blob run chunked like :func:`task_units`, each chunk a :class:`BlobTasks` that builds
    its tasks only when run."""
    positions, sizes = run.positions, run.stream.sizes
    start = count = size = 0
    for j in range(len(positions) + 1):
        if j < len(positions):
            nb = sizes[positions[j]]
            if not (count and (count >= UNIT_MAX_TASKS or size + nb > UNIT_MAX_BYTES)):
                count += 1
                size += nb
                continue
        yield Unit(run.role, source, run._with_positions(positions[start:j]))
        if j < len(positions):
            start, count, size = j, 1, sizes[positions[j]]


def task_units(role: str, source: SourceId, tasks: list[Task]) -> Iterator[Unit]:
    """A stream's tasks chunked into units of bounded count and bytes."""
    chunk: list[Task] = []
    size = 0
    for t in tasks:
        if chunk and (len(chunk) >= UNIT_MAX_TASKS or size + t.nbytes > UNIT_MAX_BYTES):
            yield Unit(role, source, chunk)
            chunk, size = [], 0
        chunk.append(t)
        size += t.nbytes
    if chunk:
        yield Unit(role, source, chunk)


__all__ = ["UNIT_MAX_BYTES", "UNIT_MAX_TASKS", "BlobTasks", "blob_ext", "blob_units", "task_units"]

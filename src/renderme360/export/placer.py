"""Puts a performance's images and masks into an export folder: referenced where they lie,
hard-linked, written as stored, or queued as reduced (or 1-channel) copies for the workers,
each entry kept in the record so that a re-run reuses what it made."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotRegularFileError, Renderme360Error
from ..formats.image import image_channels, image_extension
from ..safeopen import is_regular, open_regular_fd
from .files import ExportDir
from .record import SourceStamps, same_output
from .reduce import ReduceTask, run_tasks
from .summary import ExportSummary, Progress

if TYPE_CHECKING:
    from ..loader.performance import Performance


@dataclass
class Placer:
    """Puts images/masks into the export: link, stored bytes, or a reduced copy (queued)."""

    perf: Performance
    out: ExportDir
    k: int
    previous: dict[str, Any]
    summary: ExportSummary
    record: dict[str, Any] = field(default_factory=dict)
    tasks: list[tuple[ReduceTask, str, str, int, str]] = field(default_factory=list)
    soft_masks: bool = False
    refs: list[str] = field(default_factory=list)  # every path the model names, as it names it
    _dirs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stamps = SourceStamps(self.perf)

    def place(self, kind: str, cam: str, frame: int, rel_noext: str, colmap: bool) -> str:
        """Return the path (relative to the export) under which the image/mask will be found.

        ``kind`` is ``color`` or ``mask``. At downscale 1 an extracted file is referenced
        where it lies (nerfstudio) or hard-linked (COLMAP); SMC bytes are written as stored;
        a mask that is not single-channel gets a 1-channel PNG copy (nerfstudio refuses it).
        """
        src = self._source_path(kind, cam, frame)
        if src is not None and not is_regular(src):  # a planted symlink/FIFO: never exported
            raise NotRegularFileError(f"refusing to export {src}: not a regular file")
        rel = self._as_is(kind, cam, frame, rel_noext, colmap, src) if self.k == 1 else None
        if rel is None:
            rel = self._queue(kind, cam, frame, rel_noext, src)
        self.refs.append(rel)
        return rel

    def _as_is(
        self, kind: str, cam: str, frame: int, rel_noext: str, colmap: bool, src: Path | None
    ) -> str | None:
        """Place the file unchanged (reference, link or stored bytes); None for a mask that is
        not single-channel (decoded and copied instead)."""
        mask = kind == "mask"
        if src is not None:
            if mask and not _one_channel(src):
                return None
            if not colmap:
                return self._relpath(src)
            rel = rel_noext + (src.suffix.lower() if not mask else ".png")
            _path, linked = self.out.link_or_copy(src, rel)
            self._count(linked)
            self.record[rel] = {"from": str(src)}
            return rel
        data = self._bytes(kind, cam, frame)
        if mask and not _one_channel(data):
            return None
        rel = rel_noext + _ext(data, mask)
        self.out.write_bytes(rel, data)
        self.summary.stored += 1
        self.record[rel] = {"from": f"{kind}/{cam}/{frame}"}
        return rel

    def _queue(self, kind: str, cam: str, frame: int, rel_noext: str, src: Path | None) -> str:
        """A reduced (or, at downscale 1, a 1-channel mask) copy: reused when an earlier run
        made it from the same source the same way, else queued for the workers."""
        mask = kind == "mask"
        rel = rel_noext + (".png" if mask else ".jpg")  # reduced copies: JPEG q95, PNG masks
        stamp = self._stamps(kind, cam, frame, src)
        entry: dict[str, Any] = {"from": stamp, "k": self.k}
        if mask and self.k > 1:
            entry["mask"] = "soft" if self.soft_masks else "binary"
        dst = self.out.path(rel)
        prev = self.previous.get(rel)
        if isinstance(prev, dict) and same_output(prev, entry, dst):
            self.record[rel] = prev
            self.summary.reused += 1
            return rel
        self.record[rel] = entry  # size and mtime of the output added once it is written
        cam_obj = self.perf.cameras[cam]
        source = str(src) if src is not None else None
        staged = str(self.out.stage(rel))  # renamed into place when the whole export is written
        task = ReduceTask(staged, self.k, mask, cam_obj.width, cam_obj.height, src=source,
                          ext=dst.suffix, soft=self.soft_masks)  # fmt: skip
        self.tasks.append((task, kind, cam, frame, rel))
        return rel

    def _source_path(self, kind: str, cam: str, frame: int) -> Path | None:
        """The extracted file (None for SMC files). Camera and frame were checked by the
        caller against the listings, so the source is asked directly (no re-check per call)."""
        return self.perf.source.path(kind, cam, frame)

    def _relpath(self, src: Path) -> str:
        """``src`` relative to the export folder (one ``os.path.relpath`` per source folder)."""
        parent, _, name = str(src).rpartition(os.sep)
        rel = self._dirs.get(parent)
        if rel is None:
            rel = _relpath(Path(parent), self.out.root)
            self._dirs[parent] = rel
        return f"{rel}/{name}"

    def _bytes(self, kind: str, cam: str, frame: int) -> bytes:
        """The stored bytes of one image or mask (SMC files)."""
        if kind == "color":
            return self.perf.image_bytes(cam, frame)
        return self.perf.mask_bytes(cam, frame)

    def _materialise(self) -> Iterator[ReduceTask]:
        """Tasks in order; SMC bytes are read only as a task is handed to the workers."""
        for task, kind, cam, frame, _rel in self.tasks:
            if task.src is None:
                task = replace(task, data=self._bytes(kind, cam, frame))
            yield task

    def _count(self, linked: bool) -> None:
        if linked:
            self.summary.linked += 1
        else:
            self.summary.copied += 1

    def run(self, progress: Progress, workers: int | None) -> None:
        """Make the queued copies in ``workers`` processes; their sizes and times go into
        the record (what a re-run compares before reusing them)."""
        if not self.tasks:
            return
        progress.start(len(self.tasks), f"downscale x{self.k}" if self.k > 1 else "1-channel masks")
        try:
            run_tasks(self._materialise(), len(self.tasks), workers, progress.advance)
        finally:
            progress.finish()
        for task, *_, rel in self.tasks:  # a rename keeps size and mtime
            st = os.stat(task.dst)
            self.record[rel].update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        if self.k > 1:
            self.summary.reduced += len(self.tasks)
        else:
            self.summary.converted += len(self.tasks)


def _relpath(path: Path, start: Path) -> str:
    """``path`` relative to ``start``, computed on the resolved folders: a lexical relative path
    is wrong when either lies under a symlinked folder (``~/scratch -> /lustre/...``), since the
    ``..`` of the result is resolved from the real folder."""
    return Path(os.path.relpath(os.path.realpath(path), os.path.realpath(start))).as_posix()


def _one_channel(src: Path | bytes) -> bool:
    """Whether an image (a file, or encoded bytes) is single-channel, from its header only. A
    file is opened through :mod:`renderme360.safeopen` (no symlink followed, never blocks on a
    FIFO); one that is not a regular file is not single-channel (its copy then refuses it)."""
    if isinstance(src, Path):
        try:
            fd, _st = open_regular_fd(src)
        except NotRegularFileError:
            return False
        with os.fdopen(fd, "rb") as f:
            src = f.read(65536)
    return image_channels(src) == 1


def _ext(data: bytes, mask: bool) -> str:
    """``.jpg`` or ``.png`` for stored image bytes; anything else is refused."""
    ext = image_extension(data)
    if ext not in ("jpg", "png"):
        raise Renderme360Error("stored image is neither JPEG nor PNG")
    return f".{ext}"

"""Reduced-size copies of images and masks, decoded small and written by worker processes.

JPEG is decoded at 1/2, 1/4 or 1/8 size inside libjpeg's inverse DCT (OpenCV
``IMREAD_REDUCED_*``): no full-size decode, no resize. PNG (lossless, no DCT) is decoded and
area-averaged over exact k x k blocks. Output size is ``floor(w / k) x floor(h / k)``: a partial
last column/row is cropped, so corner-origin intrinsics divided by k stay exact.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Renderme360Error
from ..formats.image import area_reduce, decode, encode, pixel_budget
from ..safeopen import read_regular
from ..workers import WorkerPool, default_workers
from .files import write_atomic

_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class ReduceTask:
    """Decode ``src`` (a file) or ``data`` (encoded bytes), reduce by ``k``, write ``dst``."""

    dst: str  # absolute path (the export's staging name for the file); written atomically
    k: int
    mask: bool  # grayscale mask -> PNG; otherwise colour, same format as the source
    width: int  # full-resolution size the calibration states
    height: int
    src: str | None = None
    data: bytes | None = None
    ext: str = ""  # output format (".jpg", ".png"); default: from ``dst``
    soft: bool = False  # reduced masks: keep the area average instead of thresholding it


def reduce_bytes(
    data: bytes, k: int, mask: bool, width: int, height: int, soft: bool = False
) -> np.ndarray:
    """Decoded image reduced by ``k`` to ``(height // k, width // k)`` (BGR or grayscale).

    A reduced mask is binary (see :func:`binary_mask`) unless ``soft``: nerfstudio takes any
    non-zero pixel for foreground, so an area-averaged edge would grow the mask."""
    img = _reduce(data, k, mask, width, height)
    return binary_mask(img) if mask and k > 1 and not soft else img


def binary_mask(img: np.ndarray) -> np.ndarray:
    """255 where a reduced mask is at least half foreground (area average >= 128), else 0."""
    return np.where(img >= 128, np.uint8(255), np.uint8(0))


def _reduce(data: bytes, k: int, mask: bool, width: int, height: int) -> np.ndarray:
    """The image may declare at most the calibration's ``width x height`` (formats.image
    budget): a small file declaring a huge image is refused before decoding."""
    import cv2

    tw, th = width // k, height // k
    budget = pixel_budget(width, height)
    if bytes(data[:3]) == _JPEG_MAGIC:
        img, _ = decode(data, scale=k, grayscale=mask, max_pixels=budget, what="image")
        expect = (-(-height // k), -(-width // k))  # libjpeg scales with ceil
        if img.shape[:2] != expect:
            raise Renderme360Error(
                f"image is {img.shape[1] * k}x{img.shape[0] * k}-ish, "
                f"calibration says {width}x{height}"
            )
        return np.ascontiguousarray(img[:th, :tw])
    img, _ = decode(data, unchanged=True, max_pixels=budget, what="image")
    if img.dtype != np.uint8:
        raise Renderme360Error(f"unsupported image sample type {img.dtype}")
    if img.shape[:2] != (height, width):
        raise Renderme360Error(
            f"image is {img.shape[1]}x{img.shape[0]}, calibration says {width}x{height}"
        )
    if mask and img.ndim == 3 and img.shape[2] == 2:
        img = img[:, :, 0]  # gray + alpha: the gray
    elif mask and img.ndim == 3:
        img = img[:, :, :3].max(axis=2)  # 3-channel masks: max over channels, as the reader
    elif not mask and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif not mask and img.shape[2] == 4:
        img = img[:, :, :3]
    return area_reduce(img, k, exact=True)


def run_task(task: ReduceTask) -> int:
    """Do one task; returns the bytes written."""

    try:
        data = task.data if task.data is not None else read_regular(task.src or "")
        img = reduce_bytes(data, task.k, task.mask, task.width, task.height, task.soft)
    except Renderme360Error as exc:
        raise Renderme360Error(f"{task.src or task.dst}: {exc}") from None
    ext = task.ext or os.path.splitext(task.dst)[1].lower()
    try:
        enc = encode(img, ext)
    except Renderme360Error as exc:
        raise Renderme360Error(f"{task.dst}: {exc}") from None
    write_atomic(Path(task.dst), enc)
    return len(enc)


def _run_chunk(fn: Callable[[Any], int], tasks: list[Any]) -> int:
    return sum(fn(t) for t in tasks)


def pool_size(workers: int | None, n_tasks: int) -> int:
    """Processes :func:`run_tasks` runs ``n_tasks`` in: ``workers``, or when None the CPU count
    (1 for fewer than 16 tasks, at most one per 8 tasks)."""
    return workers if workers is not None else default_workers(small=n_tasks < 16, cap=n_tasks // 8)


def run_tasks(
    tasks: Iterable[Any],
    n_tasks: int,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 4,
    fn: Callable[[Any], int] = run_task,
) -> int:
    """Run every task (in ``workers`` processes when > 1); returns bytes written.

    ``fn`` does one task (a module-level function, so that workers can import it):
    :func:`run_task` for :class:`ReduceTask`, ``undistort.run_undistort`` for its tasks.

    At most ``3 * workers`` chunks are in flight, so tasks carrying encoded bytes (read from SMC
    files) never pile up in memory. ``progress(n)`` is called as each chunk of ``n`` finishes.
    """
    n = pool_size(workers, n_tasks)
    total = 0
    from ..stops import raise_if_stopped

    if n <= 1:
        for t in tasks:
            raise_if_stopped()
            total += fn(t)
            if progress:
                progress(1)
        return total
    pending: dict[Future[int], int] = {}
    # leaving the pool with an exception (Ctrl-C, SIGTERM, a failed image) terminates the
    # workers at once; a killed export takes its workers (and their temp files) with it
    with WorkerPool(n, preload=["cv2", "numpy", __name__]) as pool:
        for group in _chunks(tasks, chunk):
            raise_if_stopped()
            if len(pending) >= 3 * n:
                total += _collect(pending, progress)
            pending[pool.submit(_run_chunk, fn, group)] = len(group)
        while pending:
            raise_if_stopped()
            total += _collect(pending, progress)
    return total


def _collect(pending: dict[Future[int], int], progress: Callable[[int], None] | None) -> int:
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    total = 0
    for f in done:
        count = pending.pop(f)
        total += f.result()
        if progress:
            progress(count)
    return total


def _chunks(tasks: Iterable[Any], size: int) -> Iterator[list[Any]]:
    group: list[Any] = []
    for t in tasks:
        group.append(t)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group

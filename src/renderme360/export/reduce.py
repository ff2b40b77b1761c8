"""Reduced-size copies of images and masks, decoded small and written by worker processes.

JPEG is decoded at 1/2, 1/4 or 1/8 size inside libjpeg's inverse DCT (OpenCV
``IMREAD_REDUCED_*``): no full-size decode, no resize. PNG (lossless, no DCT) is decoded and
area-averaged over exact k x k blocks. Output size is ``floor(w / k) x floor(h / k)``: a partial
last column/row is cropped, so corner-origin intrinsics divided by k stay exact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Renderme360Error
from ..formats.image import area_reduce, decode, pixel_budget
from ..safeopen import read_regular
from .files import write_atomic

JPEG_QUALITY = 95
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


def reduce_bytes(data: bytes, k: int, mask: bool, width: int, height: int) -> np.ndarray:
    """Decoded image reduced by ``k`` to ``(height // k, width // k)`` (BGR or grayscale).

    The image may declare at most the calibration's ``width x height`` (formats.image budget):
    a small file declaring a huge image is refused before decoding."""
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
    if mask and img.ndim == 3:
        img = img[:, :, :3].max(axis=2)  # 3-channel masks: max over channels, as the reader
    elif not mask and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif not mask and img.shape[2] == 4:
        img = img[:, :, :3]
    return area_reduce(img, k, exact=True)


def run_task(task: ReduceTask) -> int:
    """Do one task; returns the bytes written."""
    import cv2

    try:
        data = task.data if task.data is not None else read_regular(task.src or "")
        img = reduce_bytes(data, task.k, task.mask, task.width, task.height)
    except Renderme360Error as exc:
        raise Renderme360Error(f"{task.src or task.dst}: {exc}") from None
    ext = task.ext or os.path.splitext(task.dst)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext in (".jpg", ".jpeg") else []
    ok, enc = cv2.imencode(ext, img, params)
    if not ok:
        raise Renderme360Error(f"{task.dst}: cannot encode {ext}")
    write_atomic(Path(task.dst), enc.tobytes())
    return len(enc)


def _run_chunk(tasks: list[ReduceTask]) -> int:
    return sum(run_task(t) for t in tasks)


def default_workers(n_tasks: int) -> int:
    """Worker processes: CPU count, but 1 for a handful of images (start-up costs more)."""
    if n_tasks < 16:
        return 1
    return max(1, min(os.cpu_count() or 1, n_tasks // 8))


def run_tasks(
    tasks: Iterable[ReduceTask],
    n_tasks: int,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 4,
) -> int:
    """Run every task (in ``workers`` processes when > 1); returns bytes written.

    At most ``3 * workers`` chunks are in flight, so tasks carrying encoded bytes (read from SMC
    files) never pile up in memory. ``progress(n)`` is called as each chunk of ``n`` finishes.
    """
    n = workers if workers is not None else default_workers(n_tasks)
    total = 0
    from ..stops import raise_if_stopped

    if n <= 1:
        for t in tasks:
            raise_if_stopped()
            total += run_task(t)
            if progress:
                progress(1)
        return total
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["cv2", "numpy", __name__])  # imported once, not per worker
    else:
        ctx = mp.get_context("spawn")
    pending: dict[Future[int], int] = {}
    with ProcessPoolExecutor(n, mp_context=ctx) as pool:
        try:
            for group in _chunks(tasks, chunk):
                raise_if_stopped()
                if len(pending) >= 3 * n:
                    total += _collect(pending, progress)
                pending[pool.submit(_run_chunk, group)] = len(group)
            while pending:
                raise_if_stopped()
                total += _collect(pending, progress)
        except BaseException:  # Ctrl-C, SIGTERM, a failed image: stop the workers now
            # (no Future.cancel() first: the pool marks what is left broken by itself, and a
            # cancelled future there makes its manager thread fail with a traceback)
            _terminate_workers(pool)
            raise
    return total


def _terminate_workers(pool: Any) -> None:
    """SIGTERM every worker of ``pool`` so leaving it does not wait for their chunks."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            proc.terminate()


def _collect(pending: dict[Future[int], int], progress: Callable[[int], None] | None) -> int:
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    total = 0
    for f in done:
        count = pending.pop(f)
        total += f.result()
        if progress:
            progress(count)
    return total


def _chunks(tasks: Iterable[ReduceTask], size: int) -> Iterator[list[ReduceTask]]:
    group: list[ReduceTask] = []
    for t in tasks:
        group.append(t)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group

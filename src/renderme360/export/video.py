"""Video of one camera: a fixed crop box, frames decoded small, H.264 + AAC through PyAV.

PyAV carries FFmpeg's libraries in its wheel (libx264, the native AAC encoder, the MP4 muxer), so
no system ``ffmpeg`` is needed. Frames are decoded through the loader (``perf.image(camera,
frame, scale=k)``: the JPEG's inverse DCT at 1/k size) with the largest ``k`` that still gives
at least the output size, cropped to the box (its corners are multiples of 8 full-size pixels,
so the box is exact at every ``k``) and area-scaled. The MP4 is constant frame rate (``pts =
j``, time base ``1 / fps``), yuv420p, with its audio interleaved frame by frame.

Speed: decoding is most of the work (a 2448x2048 JPEG at 1/2 costs ~3x the x264 ``veryfast``
encode of its 512 px crop), so :func:`read_ahead` decodes, crops, scales and converts to
yuv420p (:func:`frame_yuv`: one libswscale pass, one thread) a few frames ahead in threads
(OpenCV and libswscale release the GIL) while the calling thread encodes. Threads per
process are the CPUs divided among the worker processes (:func:`cpu_threads`), for the
decode threads and x264 alike: two clip workers on two cores must not each start x264's
default of 1.5 threads per core (nor swscale's one per core, per frame).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..config import CROPS
from ..errors import Renderme360Error, UsageError
from ..formats.timeline import span

if TYPE_CHECKING:
    from ..loader.performance import Performance

#: Face box: the keypoints' extent plus this fraction of it on every side (forehead, hair, chin).
FACE_MARGIN = 0.4
#: ... and moved up by this fraction of the extent (the keypoints stop at the eyebrows).
FACE_LIFT = 0.1
CRF = 18  # x264 constant quality: visually lossless for these methods' 512 px crops
PRESET = "veryfast"
AUDIO_RATE = 16000
_ALIGN = 8  # box corners on multiples of 8 full-size pixels: exact at decode scales 1/2/4/8
_SIZES = (16, 4096)
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Framing:
    """What a video shows: ``box = (x0, y0, w, h)`` full-size pixels, resized to ``width x
    height``, decoded at ``1 / scale``."""

    box: tuple[int, int, int, int]
    width: int
    height: int
    scale: int

    def to_dict(self) -> dict[str, Any]:
        x0, y0, w, h = self.box
        return {"x0": x0, "y0": y0, "w": w, "h": h, "width": self.width,
                "height": self.height, "decode_scale": self.scale}  # fmt: skip


def check_size(size: int) -> int:
    """``--size``: an even number of pixels (yuv420p halves the chroma), 16..4096."""
    if isinstance(size, bool) or not isinstance(size, int) or size % 2:
        raise UsageError(f"--size must be an even number of pixels, got {size!r}")
    if not _SIZES[0] <= size <= _SIZES[1]:
        raise UsageError(f"--size must be {_SIZES[0]}..{_SIZES[1]}, got {size}")
    return size


def face_box(points: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """One square box around every keypoint of every frame (``points`` (N, 2) pixels), with
    :data:`FACE_MARGIN`, clamped inside the image, corners on multiples of 8."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    inside = (pts[:, 0] > -width) & (pts[:, 0] < 2 * width) & (pts[:, 1] > -height)
    pts = pts[inside & (pts[:, 1] < 2 * height)]
    if not len(pts):
        raise Renderme360Error("no keypoint inside the image: no face box (use --crop full)")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float(max(hi - lo))
    cx, cy = (lo + hi) / 2 - np.array([0.0, FACE_LIFT * extent])
    limit = min(width, height) // _ALIGN * _ALIGN
    side = min(limit, max(_ALIGN, math.ceil(extent * (1 + 2 * FACE_MARGIN) / _ALIGN) * _ALIGN))
    x0 = _aligned(cx - side / 2, (width - side) // _ALIGN * _ALIGN)
    y0 = _aligned(cy - side / 2, (height - side) // _ALIGN * _ALIGN)
    return x0, y0, side, side


def _aligned(x: float, high: int) -> int:
    return int(min(max(0, round(x / _ALIGN) * _ALIGN), high))


def framing(crop: str, size: int, width: int, height: int, points: Any = None) -> Framing:
    """The box (``face``: :func:`face_box` of ``points``; ``full``: the whole image, long side
    scaled to ``size``), the output size, and the smallest decode that is not upsampled."""
    if crop == "face":
        box = face_box(points, width, height)
        out_w = out_h = size
    elif crop == "full":
        box = (0, 0, width // _ALIGN * _ALIGN, height // _ALIGN * _ALIGN)
        long = max(box[2], box[3])
        out_w = max(2, round(box[2] * size / long / 2) * 2)
        out_h = max(2, round(box[3] * size / long / 2) * 2)
    else:
        raise UsageError(f"--crop must be one of {', '.join(CROPS)}, got {crop!r}")
    scale = next(
        k for k in (8, 4, 2, 1) if k == 1 or (box[2] // k >= out_w and box[3] // k >= out_h)
    )
    return Framing(box, out_w, out_h, scale)


def frame_yuv(perf: Performance, camera: str, frame: int, how: Framing) -> Any:
    """Source frame ``frame`` of ``camera`` as the video shows it: a yuv420p ``av.VideoFrame``
    of ``width x height``.

    The crop of the reduced decode is scaled and converted in one libswscale pass (area
    filter, BT.601 limited range, chroma filtered; what ``ffmpeg -vf crop,scale`` does), in
    the calling thread (it releases the GIL) with one swscale thread: :func:`read_ahead`
    runs several frames at once instead."""
    import av

    k = how.scale
    img = perf.image(camera, int(frame), scale=k)
    x0, y0, w, h = (v // k for v in how.box)
    crop = img[y0 : y0 + h, x0 : x0 + w]
    if crop.shape[:2] != (h, w):
        raise Renderme360Error(
            f"camera {camera} frame {frame}: image {img.shape[1]}x{img.shape[0]} at 1/{k} "
            f"does not hold the crop box {how.box}"
        )
    rgb = av.VideoFrame.from_ndarray(crop, format="rgb24")
    return rgb.reformat(how.width, how.height, "yuv420p", interpolation="AREA", threads=1)


def cpu_threads(workers: int = 1) -> int:
    """Threads each of ``workers`` processes may use: the CPUs this process may run on
    divided among them, at least 1 (x264 and the decode threads of one video share them)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, int(workers)))


def read_ahead(fn: Callable[[_T], _R], items: Iterable[_T], threads: int) -> Iterator[_R]:
    """``fn(item)`` for every item, in order, computed by ``threads`` threads at most
    ``2 * threads`` items ahead of the consumer (bounded memory).

    The first item is done in the calling thread, so that files are opened and listings cached
    before threads share them. An exception from ``fn`` is raised here, at its item; leaving
    early (an error, a closed generator) drops what is queued and waits for what is running."""
    it = iter(items)
    for first in it:
        yield fn(first)
        break
    if threads <= 1:
        yield from map(fn, it)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(threads, thread_name_prefix="renderme360-decode")
    pending: deque[Any] = deque()
    try:
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def encode_mp4(
    path: Path,
    frames: Iterable[Any],
    how: Framing,
    fps: int,
    audio: np.ndarray | None,
    comment: str = "",
    advance: Callable[[int], None] | None = None,
    threads: int = 0,
) -> int:
    """Write an MP4 of ``frames`` (:func:`frame_yuv`'s yuv420p frames) at ``fps`` with
    ``audio`` (16 kHz mono int16, the same span) as AAC; ``comment`` goes into the container's
    metadata; ``threads``: x264's threads (0: its default, 1.5 per core). Returns frames
    written.

    ``path`` is a temporary name (the caller renames it into place): the format is given, not
    guessed from the name."""
    import av

    container = av.open(str(path), "w", format="mp4")
    try:
        if comment:
            container.metadata["comment"] = comment
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = how.width, how.height, "yuv420p"
        video.options = {"crf": str(CRF), "preset": PRESET}
        video.codec_context.thread_count = max(0, int(threads))
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=AUDIO_RATE)
            sound.layout = "mono"
        n = 0
        for vf in frames:
            vf.pts, vf.time_base = n, Fraction(1, fps)
            container.mux(video.encode(vf))
            if sound is not None and audio is not None:
                _audio_frame(container, sound, audio, n, fps)
            n += 1
            if advance:
                advance(1)
        container.mux(video.encode(None))
        if sound is not None and audio is not None:
            first, _ = span(Fraction(n, fps), Fraction(n, fps), AUDIO_RATE)
            _audio_chunk(container, sound, audio[first:], first)
            container.mux(sound.encode(None))
    finally:
        container.close()
    return n


def _audio_frame(container: Any, sound: Any, audio: np.ndarray, j: int, fps: int) -> None:
    """The audio under video frame ``j`` (the samples of ``[j / fps, (j + 1) / fps)``)."""
    first, count = span(Fraction(j, fps), Fraction(j + 1, fps), AUDIO_RATE)
    _audio_chunk(container, sound, audio[first : first + count], first)


def _audio_chunk(container: Any, sound: Any, samples: np.ndarray, first: int) -> None:
    import av

    if not len(samples):
        return
    data = (np.asarray(samples, dtype=np.float32) / 32768.0)[None, :]
    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout="mono")
    af.sample_rate, af.pts, af.time_base = AUDIO_RATE, first, Fraction(1, AUDIO_RATE)
    container.mux(sound.encode(af))


def mp4_comment(path: Path) -> str | None:
    """The metadata comment of a finished MP4 (what it was made from), None if unreadable."""
    import av

    try:
        with av.open(str(path), "r", format="mp4") as c:
            return c.metadata.get("comment")
    except (av.FFmpegError, OSError, ValueError):
        return None

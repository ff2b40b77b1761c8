"""Time of a take: which source frame and which audio samples an output frame or window covers.

One rule for video and audio alike, so they cannot drift apart: an interval ``[t0, t1)`` of a
timeline holds the output frames (or samples) ``round(t0 * rate) .. round(t1 * rate) - 1``.
Times are exact fractions (no float drift over minutes of video). A take's duration is its audio
length (``samples / sample_rate``) when it has audio, else ``num_frames / CAPTURE_FPS``; its
frames tile that duration evenly (the capture's frame ``f`` covers ``[f / fps, (f + 1) / fps)``).
Output frame ``j`` at time ``t = j / fps`` shows the source frame covering ``t``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: Nominal capture rate of RenderMe360 (frames per second), used when a take has no audio.
CAPTURE_FPS = 30


def rounded(x: Fraction) -> int:
    """``x`` rounded half up (``round`` on a Fraction rounds half to even)."""
    return int((x + Fraction(1, 2)) // 1)


def span(t0: Fraction, t1: Fraction, rate: int | Fraction) -> tuple[int, int]:
    """``(first, count)`` of the frames or samples at ``rate`` in ``[t0, t1)`` of a timeline."""
    first = rounded(t0 * rate)
    return first, rounded(t1 * rate) - first


@dataclass(frozen=True)
class Clock:
    """How one take's frames sit in time: ``num_frames`` tiling ``duration`` seconds."""

    num_frames: int
    duration: Fraction
    from_audio: bool

    @classmethod
    def of(cls, num_frames: int, samples: int | None = None, rate: int | None = None) -> Clock:
        """The clock of a take with ``num_frames`` frames and, if it has audio, its length."""
        if num_frames < 1:
            raise ValueError(f"a take needs at least one frame, got {num_frames}")
        if samples and rate:
            return cls(num_frames, Fraction(samples, rate), True)
        return cls(num_frames, Fraction(num_frames, CAPTURE_FPS), False)

    @property
    def fps(self) -> Fraction:
        """Capture frame rate (frames per second), exact."""
        return self.num_frames / self.duration

    def frame_time(self, frame: int) -> Fraction:
        """Start time (seconds from the take's start) of source frame ``frame``."""
        return frame / self.fps


def source_frames(
    clock: Clock,
    fps: int | Fraction,
    first: int,
    count: int,
    start: Fraction = Fraction(0),
    available: Sequence[int] | None = None,
) -> np.ndarray:
    """Source frame shown by each output frame ``first .. first + count - 1`` at ``fps``.

    The take starts at ``start`` seconds on the output timeline (several takes back to back);
    output frame ``j`` at ``t = j / fps - start`` (clamped to the take) shows the frame covering
    ``t``. With ``available`` (ascending frames that have an image) a frame without one shows
    the last earlier frame that has one (the first, before any).
    """
    out = np.empty(count, dtype=np.int64)
    cfps = clock.fps
    for i in range(count):
        t = max(Fraction(first + i, 1) / fps - start, Fraction(0))
        out[i] = min(int((t * cfps) // 1), clock.num_frames - 1)
    if available is not None:
        if not available:
            raise ValueError("no frame has an image")
        for i, f in enumerate(out):
            k = bisect.bisect_right(available, int(f)) - 1
            out[i] = available[max(k, 0)]
    return out

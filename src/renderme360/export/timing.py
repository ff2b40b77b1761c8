"""Takes on one timeline: output frames and 16 kHz samples per take, and clip windows.

Built on :mod:`renderme360.formats.timeline` (the rule ``round(t * rate)`` for frames and
samples alike, exact fractions): takes are laid back to back by their durations, so at every
boundary the video and the audio switch takes within half an output frame of each other, and
nothing accumulates over many takes. ``perf.video_frames(camera, fps)`` is the one-take case.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ..formats.audio import pcm16
from ..formats.timeline import Clock, rounded, source_frames, span
from .video import AUDIO_RATE

if TYPE_CHECKING:
    from ..loader.performance import Performance


@dataclass
class Segment:
    """One take's part of an output video: output frames, their source frames, its samples."""

    perf: Performance
    clock: Clock
    start: Fraction  # seconds on the output timeline where the take starts
    first_frame: int  # first output frame
    sources: np.ndarray  # source frame of each of its output frames
    first_sample: int  # at AUDIO_RATE on the output timeline
    num_samples: int

    @property
    def num_frames(self) -> int:
        return len(self.sources)


def timeline(perfs: list[Performance], camera: str, fps: int) -> list[Segment]:
    """The takes back to back: take ``i`` holds the output frames and samples of ``[T_i,
    T_i + duration_i)``, ``T_i`` the sum of the durations before it."""
    out, start = [], Fraction(0)
    for perf in perfs:
        clock = perf.clock
        end = start + clock.duration
        first, count = span(start, end, fps)
        sources = source_frames(clock, fps, first, count, start, perf.image_frame_ids(camera))
        s0, ns = span(start, end, AUDIO_RATE)
        out.append(Segment(perf, clock, start, first, sources, s0, ns))
        start = end
    return out


def audio16k(perf: Performance, first: int = 0, count: int | None = None) -> np.ndarray:
    """int16 16 kHz mono samples ``first .. first + count`` of a take (zero-padded past its
    end: the resampled length may fall a sample short of ``round(duration * 16000)``)."""
    samples, _ = perf.audio(rate=AUDIO_RATE, mono=True)
    if count is None:
        count = rounded(perf.clock.duration * AUDIO_RATE) - first
    out = np.zeros(count, dtype=np.int16)
    got = pcm16(samples[first : first + count])
    out[: len(got)] = got
    return out


@dataclass(frozen=True)
class Window:
    """A clip: ``num_frames`` capture frames from ``start_frame``, its samples, its frames."""

    start_frame: int
    num_frames: int
    start_sample: int
    num_samples: int
    sources: tuple[int, ...]


def windows(clock: Clock, seconds: Fraction, fps: int, available: list[int]) -> list[Window]:
    """Back-to-back windows of ``round(seconds * capture fps)`` frames inside one take (never
    across takes); a partial last window is left out. Each clip has its own timeline from its
    first frame: ``round(duration * fps)`` frames and ``round(duration * 16000)`` samples from
    sample ``round(t0 * 16000)`` of the take, so every clip of a take has the same length."""
    length = rounded(seconds * clock.fps)
    out = []
    for start in range(0, clock.num_frames - length + 1, max(length, 1)):
        t0, t1 = clock.frame_time(start), clock.frame_time(start + length)
        count = rounded((t1 - t0) * fps)  # on the clip's own timeline: every clip alike
        sources = source_frames(clock, fps, 0, count, -t0, available)
        s0, ns = rounded(t0 * AUDIO_RATE), rounded((t1 - t0) * AUDIO_RATE)
        out.append(Window(start, length, s0, ns, tuple(int(f) for f in sources)))
    return out

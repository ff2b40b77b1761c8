"""Audio writers: ``audio.wav`` (exact samples), ``audio.mp3`` and ``audio_data.npz``.

The formats themselves live in :mod:`renderme360.formats.audio`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import SMCFormatError
from ..formats.audio import write_mp3, write_wav_stream
from ..output.outdir import Written

if TYPE_CHECKING:
    from ..tasks import Task
    from . import WriteContext


def _audio(ctx: WriteContext) -> tuple[np.ndarray, int]:
    got = ctx.reader.read_audio()
    if got is None:
        raise SMCFormatError(f"{ctx.source}: audio disappeared since planning")
    return got["audio"], got["sample_rate"]


def write_wav_task(ctx: WriteContext, task: Task) -> Written:
    """``audio/audio.wav``."""
    audio, rate = _audio(ctx)
    with ctx.out.open_atomic(task.key, ctx.options.checksum) as f:
        write_wav_stream(f, audio, rate)
    return f.written(task.key)


def write_mp3_task(ctx: WriteContext, task: Task) -> Written:
    """``audio/audio.mp3``."""
    audio, rate = _audio(ctx)
    # through a file object: libsndfile refuses file names of 1,024 bytes or more
    with ctx.out.atomic_path(task.key, ctx.options.checksum) as p, open(p.tmp, "xb") as f:
        write_mp3(f, audio, rate)
    assert p.written is not None, "atomic_path sets it when the block ends without an error"
    return p.written


def write_npz_task(ctx: WriteContext, task: Task) -> Written:
    """``audio/audio_data.npz``: ``audio`` (the stored array, unchanged) and ``sample_rate``."""
    from ..formats.npz import NpzWriter  # zipfile: only when audio is written

    audio, rate = _audio(ctx)
    with ctx.out.open_atomic(task.key, ctx.options.checksum) as f, NpzWriter(f) as z:
        z.add("audio", audio)
        z.add("sample_rate", np.array(rate, dtype=np.int64))
    return f.written(task.key)

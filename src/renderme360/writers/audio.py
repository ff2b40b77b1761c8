"""Speech audio: lossless WAV (exact samples), MP3 for listening, and the exact array in npz.

WAV subtype follows the stored dtype so samples round-trip bit for bit: float32 -> 32-bit float,
float64 -> 64-bit float, int16/int32 -> PCM of that width, uint8 -> 8-bit PCM. MP3 is written by
libsndfile (through soundfile), so no ffmpeg is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SMCFormatError
from ..fsutil import Written
from .npz import NpzWriter

if TYPE_CHECKING:
    from ..plan import Task
    from . import WriteContext

WAV_SUBTYPES = {
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int16": "PCM_16",
    "int32": "PCM_32",
    "uint8": "PCM_U8",
}
BLOCK = 1 << 16  # frames per write


def _frames_first(audio: np.ndarray) -> np.ndarray:
    """Samples as (frames, channels); a (channels, frames) array with few rows is transposed."""
    if audio.ndim == 1:
        return audio[:, None]
    if audio.shape[0] <= 8 < audio.shape[1]:
        return audio.T
    return audio


def to_float(audio: np.ndarray) -> np.ndarray:
    """Samples scaled to float32 in [-1, 1) for lossy encoders (integers by their full range)."""
    if audio.dtype.kind == "f":
        return audio.astype(np.float32, copy=False)
    if audio.dtype.kind == "u":
        info = np.iinfo(audio.dtype)
        mid = (int(info.max) + 1) / 2
        return ((audio.astype(np.float64) - mid) / mid).astype(np.float32)
    return (audio.astype(np.float64) / (np.iinfo(audio.dtype).max + 1)).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """Lossless WAV whose samples read back equal to ``audio``."""
    import soundfile as sf

    subtype = WAV_SUBTYPES.get(str(audio.dtype))
    if subtype is None:
        raise SMCFormatError(f"audio dtype {audio.dtype} has no lossless WAV form")
    data = _frames_first(audio)
    fmt = "RF64" if data.nbytes > 0xFFFF0000 else "WAV"
    with sf.SoundFile(
        path, "w", samplerate=rate, channels=data.shape[1], subtype=subtype, format=fmt
    ) as f:
        for start in range(0, len(data), BLOCK):
            f.write(data[start : start + BLOCK])


def write_mp3(path: Path, audio: np.ndarray, rate: int, normalized: bool = True) -> None:
    """MP3 of the audio. Float input is taken as [-1, 1); integers are scaled from full range.

    ``normalized=False`` with float input follows the published reader: values are treated as
    16-bit integers and scaled down.
    """
    import soundfile as sf

    data = _frames_first(audio)
    if data.dtype.kind == "f" and not normalized:
        data = data / 32768.0
    data = to_float(np.asarray(data))
    with sf.SoundFile(
        path, "w", samplerate=rate, channels=data.shape[1], format="MP3", subtype="MPEG_LAYER_III"
    ) as f:
        for start in range(0, len(data), BLOCK):
            f.write(data[start : start + BLOCK])


def _audio(ctx: WriteContext) -> tuple[np.ndarray, int]:
    got = ctx.reader.get_audio()
    if got is None:
        raise SMCFormatError(f"{ctx.source}: audio disappeared since planning")
    return got["audio"], got["sample_rate"]


def write_wav_task(ctx: WriteContext, task: Task) -> Written:
    """``audio/audio.wav``."""
    audio, rate = _audio(ctx)
    with ctx.out.atomic_path(task.key, ctx.options.checksum) as p:
        write_wav(p.tmp, audio, rate)
    return p.written  # type: ignore[return-value]


def write_mp3_task(ctx: WriteContext, task: Task) -> Written:
    """``audio/audio.mp3``."""
    audio, rate = _audio(ctx)
    with ctx.out.atomic_path(task.key, ctx.options.checksum) as p:
        write_mp3(p.tmp, audio, rate)
    return p.written  # type: ignore[return-value]


def write_npz_task(ctx: WriteContext, task: Task) -> Written:
    """``audio/audio_data.npz``: ``audio`` (the stored array, unchanged) and ``sample_rate``."""
    audio, rate = _audio(ctx)
    with ctx.out.open_atomic(task.key, ctx.options.checksum) as f, NpzWriter(f) as z:  # type: ignore[arg-type]
        z.add("audio", audio)
        z.add("sample_rate", np.array(rate, dtype=np.int64))
    return f.written(task.key)

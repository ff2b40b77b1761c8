"""Speech audio: lossless WAV (exact samples), MP3 for listening, and the exact array in npz.

WAV subtype follows the stored dtype so samples round-trip bit for bit: float32 -> 32-bit float,
float64 -> 64-bit float, int16/int32 -> PCM of that width, uint8 -> 8-bit PCM. MP3 is written by
libsndfile (through soundfile, so no ffmpeg is needed) at a constant bitrate: 320 kb/s, as the
published reader's ``writemp3``, at the MPEG-1 rates (32, 44.1, 48 kHz); the MPEG-2/2.5 rates top
out at 160 and 64 kb/s.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import SMCFormatError
from . import BinarySink

WAV_SUBTYPES = {
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int16": "PCM_16",
    "int32": "PCM_32",
    "uint8": "PCM_U8",
}
BLOCK = 1 << 16  # frames per write
# Sample rates MPEG-1/2/2.5 layer III can hold; LAME refuses the others.
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
# libsndfile's highest-quality constant bitrate (compression level 0.0) per rate, in kb/s.
MP3_KBPS = {8000: 64, 11025: 64, 12000: 64, 16000: 160, 22050: 160, 24000: 160}
MP3_TOP_KBPS = 320  # 32, 44.1 and 48 kHz (MPEG-1)


def mp3_kbps(rate: int) -> int:
    """Constant bitrate (kb/s) at which MP3s are written for audio sampled at ``rate`` Hz."""
    return MP3_KBPS.get(rate, MP3_TOP_KBPS)


def mp3_size_estimate(seconds: float, rate: int) -> int:
    """Bytes of the constant-bitrate MP3 of ``seconds`` of audio (an upper estimate: the
    encoder adds a tag frame and pads the first and last frames)."""
    return 8000 + int(seconds * mp3_kbps(rate) * 1000 / 8 * 1.02)


def _channels_first(shape: Sequence[int]) -> bool:
    """Whether a 2-D audio array is stored (channels, frames): few rows, many columns."""
    return len(shape) == 2 and shape[0] <= 8 < shape[1]


def _frames_first(audio: np.ndarray) -> np.ndarray:
    """Samples as (frames, channels); a (channels, frames) array with few rows is transposed."""
    if audio.ndim == 1:
        return audio[:, None]
    return audio.T if _channels_first(audio.shape) else audio


def mp3_problem(shape: Sequence[int], rate: int) -> str | None:
    """Why MP3 cannot hold audio of this (stored) shape and rate, or None when it can."""
    channels = 1 if len(shape) == 1 else int(shape[0] if _channels_first(shape) else shape[1])
    if rate not in MP3_RATES:
        return f"MP3 cannot hold {rate} Hz audio"
    if channels > 2:
        return f"MP3 cannot hold {channels} channels"
    return None


def to_float(audio: np.ndarray) -> np.ndarray:
    """Samples scaled to float32 in [-1, 1) for lossy encoders (integers by their full range)."""
    if audio.dtype.kind == "f":
        return audio.astype(np.float32, copy=False)
    if audio.dtype.kind == "u":
        info = np.iinfo(audio.dtype)
        mid = (int(info.max) + 1) / 2
        return ((audio.astype(np.float64) - mid) / mid).astype(np.float32)
    return (audio.astype(np.float64) / (np.iinfo(audio.dtype).max + 1)).astype(np.float32)


def wav_header(frames: int, channels: int, rate: int, dtype: np.dtype) -> bytes:
    """RIFF/WAVE header for ``frames`` x ``channels`` samples of ``dtype`` (PCM or IEEE float).

    Written by hand rather than by libsndfile, whose float WAVs carry a PEAK chunk with a
    timestamp: the same samples must give the same file, byte for byte.
    """
    if str(dtype) not in WAV_SUBTYPES:
        raise SMCFormatError(f"audio dtype {dtype} has no lossless WAV form")
    width = dtype.itemsize
    data_bytes = frames * channels * width
    if data_bytes > 0xFFFFFFFF - 80:
        raise SMCFormatError(f"audio of {data_bytes} bytes is too large for WAV")
    fmt_tag = 3 if dtype.kind == "f" else 1  # WAVE_FORMAT_IEEE_FLOAT / WAVE_FORMAT_PCM
    fmt = struct.pack(
        "<HHIIHH", fmt_tag, channels, rate, rate * channels * width, channels * width, width * 8
    )
    chunks = [b"fmt ", struct.pack("<I", len(fmt)), fmt]
    if fmt_tag == 3:  # non-PCM formats carry a fact chunk with the frame count
        chunks += [b"fact", struct.pack("<II", 4, frames)]
    body = b"".join(chunks)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + len(body) + 8 + data_bytes)
        + b"WAVE"
        + body
        + (b"data" + struct.pack("<I", data_bytes))
    )


def write_wav_stream(out: BinarySink, audio: np.ndarray, rate: int) -> None:
    """Lossless WAV whose samples read back equal to ``audio`` (streamed in blocks)."""
    data = _frames_first(audio)
    out.write(wav_header(len(data), data.shape[1], rate, data.dtype))
    for start in range(0, len(data), BLOCK):
        out.write(
            np.ascontiguousarray(data[start : start + BLOCK])
            .astype(data.dtype.newbyteorder("<"))
            .tobytes()
        )


def encode_mp3(target: Path | BinaryIO | Any, frames: np.ndarray, rate: int) -> None:
    """Encode (frames, channels) float samples in [-1, 1] as a constant-bitrate MP3
    (:func:`mp3_kbps`) to a path or a binary file object. (Integer samples go through
    :func:`to_float` first: libsndfile's 16-bit path into the MP3 encoder distorts.)"""
    import soundfile as sf

    problem = mp3_problem(frames.shape, rate)
    if problem:
        raise SMCFormatError(problem)
    try:
        with sf.SoundFile(
            target,
            "w",
            samplerate=rate,
            channels=frames.shape[1],
            format="MP3",
            subtype="MPEG_LAYER_III",
            compression_level=0.0,  # libsndfile: 0.0 = highest bitrate of the mode
            bitrate_mode="CONSTANT",
        ) as f:
            for start in range(0, len(frames), BLOCK):
                # out-of-range samples make LAME abort the whole process: clip them (lossy anyway)
                f.write(np.clip(frames[start : start + BLOCK], -1.0, 1.0))
    except (RuntimeError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise SMCFormatError(f"cannot encode MP3: {exc}") from exc


def write_mp3(target: Path | BinaryIO, audio: np.ndarray, rate: int) -> None:
    """MP3 of stored audio to a path or a binary file object (libsndfile refuses names of 1,024
    bytes or more: long output paths go through a file object). Float input is taken as
    [-1, 1); integers are scaled from full range; a (channels, frames) array with few rows is
    transposed first."""
    encode_mp3(target, to_float(_frames_first(np.asarray(audio))), rate)


def mono(audio: np.ndarray) -> np.ndarray:
    """(frames,) float32 samples: the mean of the channels (integers scaled by :func:`to_float`)."""
    return (
        to_float(_frames_first(np.asarray(audio))).mean(axis=1, dtype=np.float64).astype(np.float32)
    )


def resampled_length(n: int, rate: int, new_rate: int) -> int:
    """Samples :func:`resample` returns for ``n`` samples: ``ceil(n * new_rate / rate)``."""
    return -(-n * new_rate // rate)


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``audio`` ((frames,) or (frames, channels)) at ``new_rate`` Hz, float32.

    libsoxr's band-limited resampler (``soxr.resample``, quality HQ: a steep low-pass, then the
    rate change), not decimation: 48 kHz -> 16 kHz removes what lies above 8 kHz instead of
    folding it back. soxr imports in ~0.1 s (scipy.signal took ~0.9 s of every command).
    Length: :func:`resampled_length`; soxr rounds to the nearest sample, so a result one short
    repeats its last sample.
    """
    x = np.asarray(audio)
    x = to_float(x if x.ndim == 1 else _frames_first(x))
    if rate <= 0 or new_rate <= 0:
        raise SMCFormatError(f"cannot resample audio from {rate} Hz to {new_rate} Hz")
    if rate == new_rate:
        return x
    import soxr

    want = resampled_length(len(x), rate, new_rate)
    out = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), rate, new_rate, "HQ")
    if len(out) < want:
        edge = out[-1:] if len(out) else np.zeros((1, *x.shape[1:]), np.float32)
        out = np.concatenate([out, np.repeat(edge, want - len(out), axis=0)])
    return np.asarray(out[:want], dtype=np.float32)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 PCM (clipped, rounded)."""
    return np.clip(np.rint(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """A whole lossless WAV file of ``audio`` (subtype from its dtype, see :data:`WAV_SUBTYPES`)."""
    import io

    buf = io.BytesIO()
    write_wav_stream(buf, audio, rate)
    return buf.getvalue()

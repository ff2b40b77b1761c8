"""``export talkinghead``: one camera of one or several speech takes as ``<ID>.mp4`` at a
constant frame rate with its speech, ``aud.wav`` (16 kHz mono), ``camera.json`` of the fixed
crop, ``segments.csv`` (where each take lies) and ``README.txt``: the input of ER-NeRF-style
audio-driven avatar codebases (ER-NeRF, TalkingGaussian, GaussianTalker, SyncTalk, AD-NeRF,
GeneFace++).

Everything is written under temporary names inside ``DEST/<ID>/`` and renamed into place at the
end (:class:`~.files.ExportDir`): a killed run leaves no half MP4 under its final name. A re-run
with the same sources and choices reuses the finished MP4 (its metadata comment holds the key).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NotFoundError, Renderme360Error, UsageError
from ..formats.audio import wav_bytes
from .media import (
    MediaSummary,
    camera_doc,
    check_args,
    check_name,
    dumps,
    face_points,
    image_camera,
    key_of,
    source_stamp,
)
from .record import RECORD, same_output, staged
from .select import perf_name
from .summary import Progress
from .timing import Segment, audio16k, timeline
from .video import (
    AUDIO_RATE,
    Framing,
    cpu_threads,
    encode_mp4,
    frame_yuv,
    framing,
    mp4_comment,
    read_ahead,
)

if TYPE_CHECKING:
    from ..loader.performance import Performance


def export_talkinghead(
    perfs: list[Performance],
    camera: int | str,
    dest: str | os.PathLike[str],
    name: str | None = None,
    fps: int = 25,
    size: int = 512,
    crop: str = "face",
    progress: Progress | None = None,
    wait: bool = False,
) -> MediaSummary:
    """Write ``dest/<ID>/<ID>.mp4`` and its companions for ``camera`` of ``perfs`` (speech
    takes, concatenated in the order given); see the module docstring. An incomplete
    extracted take is refused (exit 6) unless loaded with ``allow_incomplete=True``; DEST is
    locked as for every export (``wait``: wait for another export into it)."""
    t0 = time.perf_counter()
    check_args(fps, size, crop)
    progress = progress or Progress()
    if not perfs:
        raise UsageError("export talkinghead needs at least one performance")
    cam = ""
    for perf in perfs:
        perf.require_complete()
        if not perf.has("audio"):
            raise NotFoundError(
                f"{perf_name(perf)}: no audio (it holds: {', '.join(perf.modalities)}); "
                "export talkinghead needs speech takes (s*)"
            )
        cam = image_camera(perf, camera)
    ident = check_name(name or _default_name(perfs, cam))
    if not str(dest).strip():
        raise UsageError("the export folder (-o/--output) is an empty name")
    segments = timeline(perfs, cam, fps)
    calib = perfs[0].camera(cam)
    notes = _calibration_notes(perfs, cam)
    points = [] if crop == "full" else [face_points(s.perf, cam, s.sources) for s in segments]
    how = framing(crop, size, calib.width, calib.height, np.concatenate(points) if points else None)
    key = key_of(takes=[source_stamp(p) for p in perfs], camera=cam, fps=fps, how=how.to_dict())
    summary = MediaSummary("talkinghead", "", [perf_name(p) for p in perfs], [cam], fps, size,
                           crop, videos=1, notes=notes)  # fmt: skip
    with staged(Path(dest) / ident, wait) as (out, previous):
        summary.dest = str(out.root)
        mp4 = f"{ident}.mp4"
        summary.frames = sum(s.num_frames for s in segments)
        summary.seconds_of_video = round(summary.frames / fps, 3)
        audio = np.concatenate([audio16k(s.perf, 0, s.num_samples) for s in segments])
        if _finished(previous.get(mp4), key, out.path(mp4)):
            summary.reused = 1
        else:
            threads = cpu_threads()
            frames = read_ahead(lambda sf: frame_yuv(sf[0], cam, sf[1], how),
                                ((s.perf, int(f)) for s in segments for f in s.sources),
                                threads)  # fmt: skip
            progress.start(summary.frames, f"{ident}.mp4")
            try:
                encode_mp4(out.stage(mp4), frames, how, fps, audio, key, progress.advance,
                           threads)  # fmt: skip
            finally:
                progress.finish()
        out.write_bytes("aud.wav", wav_bytes(audio, AUDIO_RATE))
        out.write_bytes("camera.json", dumps(dict(camera_doc(calib, how), fps=fps)))
        out.write_bytes("segments.csv", _segments_csv(segments, fps).encode())
        out.write_bytes("README.txt", _readme(ident, summary, how).encode())
        out.commit()
        summary.seconds = round(time.perf_counter() - t0, 3)
        st = os.stat(out.path(mp4))
        files: dict[str, dict[str, Any]] = {
            f: {} for f in ("aud.wav", "camera.json", "segments.csv", "README.txt")
        }
        files[mp4] = {"key": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        for rel in sorted(set(previous) - set(files) - {RECORD}):
            out.remove(rel)
        doc = {"format": "talkinghead", "summary": summary.to_dict(), "files": files}
        out.write_bytes(RECORD, json.dumps(doc, separators=(",", ":")).encode())
        out.commit()
    return summary


def _default_name(perfs: list[Performance], cam: str) -> str:
    """``{actor}_{perf}[+{perf}...]`` (ids checked by the loader's grammar; the camera is in
    export.json), ``{actor}_{N}takes`` when that is over 70 characters."""
    actors = {p.actor for p in perfs}
    if len(actors) == 1:
        body = f"{perfs[0].actor}_" + "+".join(p.performance for p in perfs)
    else:
        body = "+".join(perf_name(p) for p in perfs)
    return body if len(body) <= 70 else f"{perfs[0].actor}_{len(perfs)}takes"


def _finished(entry: Any, key: str, path: Path) -> bool:
    """The MP4 of an earlier run made from the same sources and choices, untouched since."""
    if not isinstance(entry, dict) or not same_output(entry, {"key": key}, path):
        return False
    return mp4_comment(path) == key


def _calibration_notes(perfs: list[Performance], cam: str) -> list[str]:
    """A note per take whose calibration of ``cam`` differs from the first one's."""
    ref = perfs[0].camera(cam)
    notes = []
    for perf in perfs[1:]:
        other = perf.camera(cam)
        if not (np.allclose(other.K, ref.K) and np.allclose(other.c2w, ref.c2w, atol=1e-6)):
            notes.append(
                f"{perf_name(perf)}: camera {cam} calibration differs from "
                f"{perf_name(perfs[0])}'s; camera.json holds the first take's"
            )
    return notes


def _segments_csv(segments: list[Segment], fps: int) -> str:
    """Where each take lies in the video and in aud.wav (frames at fps, samples at 16 kHz)."""
    rows = ["take,first_frame,num_frames,first_sample,num_samples,source_first,source_last,"
            f"capture_fps,fps={fps}"]  # fmt: skip
    for s in segments:
        if not s.num_frames:
            raise Renderme360Error(f"{perf_name(s.perf)}: shorter than one output frame")
        rows.append(
            f"{perf_name(s.perf)},{s.first_frame},{s.num_frames},{s.first_sample},"
            f"{s.num_samples},{int(s.sources[0])},{int(s.sources[-1])},{float(s.clock.fps):.6f}"
        )
    return "\n".join(rows) + "\n"


def _readme(ident: str, summary: MediaSummary, how: Framing) -> str:
    return f"""renderme360 talkinghead export {ident}
takes (in this order): {", ".join(summary.takes)}
camera: {summary.cameras[0]}; crop: {summary.crop} box x0,y0,w,h = {how.box} (full-size pixels)

{ident}.mp4   H.264 yuv420p, {how.width}x{how.height}, constant {summary.fps} fps, AAC speech;
              frame j (t = j / {summary.fps} s) shows the source frame covering t.
aud.wav       the same speech, 16 kHz mono PCM16 (libsoxr), the video's span.
camera.json   K, D, c2w of the crop (OpenCV convention) for 3D methods.
segments.csv  where each take lies (video frames, audio samples, source frames).

ER-NeRF, TalkingGaussian, GaussianTalker, SyncTalk, AD-NeRF read data/<ID>/<ID>.mp4:
  mkdir -p data && cp -r {ident} data/
  python data_utils/process.py data/{ident}/{ident}.mp4      # their preprocessing (ER-NeRF)
  (it extracts aud.wav at 16 kHz and the frames from the mp4; aud.wav here is the same)
GeneFace++: 512x512 25 fps video and 16 kHz aud.wav, as written here (use --size 512).
"""


def video_export(
    fmt: str, perfs: list[Performance], opts: dict[str, Any], progress: Any
) -> MediaSummary:
    """``export talkinghead`` or ``export clips`` of loaded takes with the command's options
    (``output``, ``fps``, ``size``, ``crop``; ``camera``, ``name``; ``cameras``,
    ``clip_seconds``, ``workers``)."""
    from .clips import export_clips

    common = {k: opts[k] for k in ("fps", "size", "crop")}
    if fmt == "talkinghead":
        return export_talkinghead(perfs, opts["camera"], opts["output"], opts.get("name"),
                                  progress=progress, wait=bool(opts.get("wait")),
                                  **common)  # fmt: skip
    return export_clips(perfs, opts["output"], opts.get("cameras"), opts["clip_seconds"],
                        workers=opts.get("workers"), progress=progress,
                        wait=bool(opts.get("wait")), **common)  # fmt: skip

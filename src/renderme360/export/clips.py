"""``export clips``: many short clips for video models, one MP4 (+ 16 kHz WAV) per
(performance, camera, window), listed in ``clips.csv`` / ``clips.jsonl``.

Windows are ``--clip-seconds`` of capture frames inside one take (never across takes), each
with its own timeline (:func:`.timing.windows`). Clips are encoded by the export's worker
processes (:func:`.reduce.run_tasks`); each worker writes its clip's WAV and then its MP4 under
temporary names inside the export and renames them into place, so a killed run leaves finished
clips whole and no half clip under a final name. A re-run skips every clip whose MP4 carries the
same key (sources and choices) in its metadata.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EmptySelectionError, UsageError
from ..formats.audio import wav_bytes
from .files import ExportDir, atomic_path, write_atomic
from .media import (
    MediaSummary,
    camera_doc,
    check_args,
    dumps,
    face_points,
    key_of,
    source_stamp,
)
from .record import RECORD, staged
from .reduce import pool_size, run_tasks
from .select import perf_name, select_cameras
from .summary import Progress
from .timing import Window, audio16k, windows
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

COLUMNS = ("subject", "performance", "camera", "start_frame", "num_frames", "capture_fps", "fps",
           "video_frames", "start_sample", "num_samples", "video", "audio", "x0", "y0", "w", "h",
           "width", "height")  # fmt: skip
_OPEN: dict[str, Any] = {}  # per worker process: performances already opened (listings read)


@dataclass(frozen=True)
class ClipTask:
    """One clip, done in a worker: ``wav`` then ``mp4`` written whole under their final names."""

    perf: Performance  # a performance without its cached listings (cheap to pickle)
    camera: str
    how: Framing
    fps: int
    sources: tuple[int, ...]
    audio: np.ndarray | None  # int16 16 kHz mono of the window
    mp4: str
    wav: str | None
    key: str
    threads: int = 1  # decode threads and x264 threads: this worker's share of the CPUs

    def run(self) -> int:
        """Write the clip; returns 1 (clips done)."""
        perf = _OPEN.setdefault(repr(self.perf.source), self.perf)
        if self.wav is not None and self.audio is not None:
            write_atomic(Path(self.wav), wav_bytes(self.audio, AUDIO_RATE))
        frames = read_ahead(lambda f: frame_yuv(perf, self.camera, f, self.how), self.sources,
                            self.threads)  # fmt: skip
        with atomic_path(Path(self.mp4)) as tmp:
            encode_mp4(tmp, frames, self.how, self.fps, self.audio, self.key,
                       threads=self.threads)  # fmt: skip
        return 1


def run_clip(task: ClipTask) -> int:
    """Do one clip (a module-level function, so the pool's workers can import it)."""
    return task.run()


def export_clips(
    perfs: list[Performance],
    dest: str | os.PathLike[str],
    cameras: str | None = None,
    clip_seconds: float = 5.0,
    fps: int = 16,
    size: int = 512,
    crop: str = "full",
    workers: int | None = None,
    progress: Progress | None = None,
    wait: bool = False,
) -> MediaSummary:
    """Write the clips of ``cameras`` (ids, ``ring:N``, ``front:N``; default all with images)
    of every performance in ``perfs`` into ``dest``; see the module docstring."""
    t0 = time.perf_counter()
    check_args(fps, size, crop)
    seconds = _clip_seconds(clip_seconds)
    progress = progress or Progress()
    if not str(dest).strip():
        raise UsageError("the export folder (-o/--output) is an empty name")
    chosen, notes = _cameras(perfs, cameras)
    summary = MediaSummary("clips", "", [perf_name(p) for p in perfs],
                           sorted({c for _, cams in chosen for c in cams}), fps, size, crop,
                           notes=notes)  # fmt: skip
    with staged(Path(dest), wait) as (out, previous):
        summary.dest = str(out.root)
        rows: list[dict[str, Any]] = []
        tasks: list[ClipTask] = []
        for perf, cams in chosen:
            _plan_perf(perf, cams, out, seconds, summary, rows, tasks)
        summary.videos = len(rows)
        summary.reused = len(rows) - len(tasks)
        summary.frames = sum(r["video_frames"] for r in rows)
        summary.seconds_of_video = round(summary.frames / fps, 3)
        if tasks:
            n = pool_size(workers, len(tasks))
            tasks = [replace(t, threads=cpu_threads(n)) for t in tasks]  # no oversubscription
            progress.start(len(tasks), "clips")
            try:
                run_tasks(tasks, len(tasks), n, progress.advance, chunk=1, fn=run_clip)
            finally:
                progress.finish()
        _finish(out, previous, rows, summary, seconds, t0)
    return summary


def _clip_seconds(value: float) -> Fraction:
    try:
        seconds = Fraction(str(value)).limit_denominator(1000)
    except (ValueError, ZeroDivisionError):
        seconds = Fraction(0)
    if isinstance(value, bool) or not 0 < seconds <= 600:
        raise UsageError(f"--clip-seconds must be a duration 0..600 s, got {value!r}")
    return seconds


def _cameras(
    perfs: list[Performance], cameras: str | None
) -> tuple[list[tuple[Performance, list[str]]], list[str]]:
    """Cameras of each performance; a performance with none of them is noted, exit 6 when no
    performance has any (naming, per performance, the cameras that have images)."""
    chosen, notes, missing = [], [], []
    for perf in perfs:
        try:
            cams, note = select_cameras(perf, cameras)
        except EmptySelectionError as exc:
            missing.append(str(exc))
            continue
        chosen.append((perf, cams))
        if note and note != "all cameras":
            notes.append(f"{perf_name(perf)}: {note}")
    if not chosen:
        raise EmptySelectionError("; ".join(missing) or "no performance to export")
    notes += [f"left out: {m}" for m in missing]
    return chosen, notes


def _plan_perf(
    perf: Performance,
    cams: list[str],
    out: ExportDir,
    seconds: Fraction,
    summary: MediaSummary,
    rows: list[dict[str, Any]],
    tasks: list[ClipTask],
) -> None:
    """Rows and tasks of one performance's clips (finished ones reused); notes for a take
    without audio or shorter than a window."""
    name, fps = perf_name(perf), summary.fps
    has_audio = perf.has("audio")
    if not has_audio:
        summary.notes.append(f"{name}: no audio: its clips have no WAV and no audio stream")
    clock, light, stamp = perf.clock, _light(perf), source_stamp(perf)
    audio = audio16k(perf) if has_audio else None
    for cam in cams:
        available = perf.image_frame_ids(cam)
        wins = windows(clock, seconds, fps, available)
        if not wins:
            summary.notes.append(
                f"{name}: {float(clock.duration):.2f} s is shorter than a {float(seconds):g} s "
                f"window: no clip"
            )
            return
        cal = perf.camera(cam)
        points = None
        if summary.crop == "face":
            points = face_points(perf, cam, np.asarray(available))
        how = framing(summary.crop, summary.size, cal.width, cal.height, points)
        out.write_bytes(f"{name}/cam_{cam}/camera.json", dumps(camera_doc(cal, how)))
        for w in wins:
            rows.append(_row(perf, cam, w, clock, fps, how, has_audio))
            key = key_of(take=stamp, camera=cam, how=how.to_dict(), fps=fps, window=w.__dict__)
            mp4, wav = out.path(rows[-1]["video"]), rows[-1]["audio"]
            wav_path = out.path(wav) if wav else None
            if _finished(mp4, wav_path, key, w):
                continue
            clip = None if audio is None else audio[w.start_sample : w.start_sample + w.num_samples]
            if clip is not None and len(clip) < w.num_samples:
                clip = np.concatenate([clip, np.zeros(w.num_samples - len(clip), np.int16)])
            tasks.append(ClipTask(light, cam, how, fps, w.sources, clip, str(mp4),
                                  None if wav_path is None else str(wav_path), key))  # fmt: skip


def _row(
    perf: Performance, cam: str, w: Window, clock: Any, fps: int, how: Framing, audio: bool
) -> dict:
    stem = f"{perf_name(perf)}/cam_{cam}/{perf_name(perf)}_cam{cam}_{w.start_frame:06d}"
    x0, y0, bw, bh = how.box
    return {"subject": perf.actor, "performance": perf.performance, "camera": cam,
            "start_frame": w.start_frame, "num_frames": w.num_frames,
            "capture_fps": round(float(clock.fps), 6), "fps": fps,
            "video_frames": len(w.sources),
            "start_sample": w.start_sample if audio else "",
            "num_samples": w.num_samples if audio else "",
            "video": f"{stem}.mp4", "audio": f"{stem}.wav" if audio else "",
            "x0": x0, "y0": y0, "w": bw, "h": bh,
            "width": how.width, "height": how.height}  # fmt: skip


def _finished(mp4: Path, wav: Path | None, key: str, w: Window) -> bool:
    """A clip an earlier run finished with the same key (its WAV whole beside it)."""
    if not mp4.is_file() or mp4.is_symlink():
        return False
    if wav is not None and (not wav.is_file() or wav.stat().st_size != 44 + 2 * w.num_samples):
        return False
    return mp4_comment(mp4) == key


def _light(perf: Performance) -> Performance:
    """A copy of ``perf`` without cached listings, to send to the workers (they list again,
    once per process)."""
    src = perf.source
    fresh = object.__new__(type(src))
    cached = {k for k, v in vars(type(src)).items() if isinstance(v, cached_property)}
    state = {k: v for k, v in vars(src).items() if k not in cached}
    if "_readers" in state:  # SMC files: open readers are not sent
        state["_readers"] = {}
    fresh.__dict__.update(state)
    return type(perf)(fresh)


def _finish(out: ExportDir, previous: dict, rows: list[dict], summary: MediaSummary,
            seconds: Fraction, t0: float) -> None:  # fmt: skip
    """clips.csv, clips.jsonl, README.txt, the record; clips of an earlier, wider run removed."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.write_bytes("clips.csv", text.getvalue().encode())
    out.write_bytes("clips.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    out.write_bytes("README.txt", _readme(summary, seconds).encode())
    out.commit()
    files: dict[str, Any] = {r[k]: {} for r in rows for k in ("video", "audio") if r[k]}
    files.update({f"{r['subject']}_{r['performance']}/cam_{r['camera']}/camera.json": {}
                  for r in rows})  # fmt: skip
    files.update({f: {} for f in ("clips.csv", "clips.jsonl", "README.txt")})
    for rel in sorted(set(previous) - set(files) - {RECORD}):
        out.remove(rel)
    summary.seconds = round(time.perf_counter() - t0, 3)
    doc = {"format": "clips", "summary": summary.to_dict(), "files": files}
    out.write_bytes(RECORD, json.dumps(doc, separators=(",", ":")).encode())
    out.commit()


def _readme(summary: MediaSummary, seconds: Fraction) -> str:
    return f"""renderme360 clips export: {len(summary.takes)} take(s), cameras {
        ", ".join(summary.cameras)
    }
clips: {float(seconds):g} s windows of capture frames inside each take (never across takes),
{summary.fps} fps, {summary.crop} crop, {summary.size} px ({summary.videos} clips).

clips.csv / clips.jsonl: one row per clip: subject, performance, camera, start_frame and
num_frames at the capture rate (capture_fps), fps and video_frames of the MP4, start_sample and
num_samples of its 16 kHz mono WAV in the take's 16 kHz audio, the paths, and the crop box
(x0, y0, w, h full-size pixels, resized to width x height). Video frame j (t = j / fps from the
clip's start) shows the capture frame covering t. <take>/cam_XX/camera.json: the crop's K, D,
c2w (OpenCV convention).

Speech-to-video fine-tunes (e.g. Wan2.2-S2V loaders for RenderMe360) read the CSV directly:
each row's video and audio hold the same {float(seconds):g} s.
"""

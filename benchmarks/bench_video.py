"""Benchmark ``export talkinghead`` and ``export clips`` (run by hand, not a timed test).

Usage::

    python benchmarks/bench_video.py [--frames 300] [--cameras 60] [--clip-frames 30]
                                     [--workers 1,2] [--workdir DIR]

1. talkinghead: a synthetic full-resolution speech take (2448x2048 JPEGs, camera 25), timed
   side by side in this process:
   - ``export``: ``export_talkinghead(--crop face --size 512 --fps 25)`` from the SMC file
     (reduced DCT decode through the loader, crop, area resize, PyAV libx264 + AAC, aud.wav);
   - ``ffmpeg``: what a user runs today on the extracted JPEGs, with the same crop box:
     ``ffmpeg -framerate 30 -i frame_%06d.jpg -vf crop=W:H:X:Y,scale=512:512,fps=25 -c:v libx264
     -crf 18 -preset veryfast -pix_fmt yuv420p`` (writing the JPEGs out is not counted). Without
     an ``ffmpeg`` on PATH the comparison is skipped and said so.
2. clips: ``--cameras`` cameras x ``--clip-frames`` frames (release-21 layout, speech take),
   ``export_clips(--clip-seconds 0.5 --fps 16 --size 256 --crop full)`` with each worker count.
Medians of ``--repeat`` rounds; the ratios printed are measured side by side, not targets.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _take(root: Path, frames: int, cameras: int, perf: str) -> Path:
    from renderme360.synth import synthesize

    data = root / f"data_{perf}_{cameras}x{frames}"
    if not data.exists():
        synthesize(data, "0026", [perf], 21, cameras=cameras, frames=frames, resolution="full")
    return data


def talkinghead(root: Path, frames: int, repeat: int) -> None:
    from renderme360 import load
    from renderme360.export.talkinghead import export_talkinghead

    data = _take(root, frames, 1, "s1_all")
    perf = load(data, "0026", "s1_all")
    jpgs = root / "jpgs"
    jpgs.mkdir(exist_ok=True)
    for i, f in enumerate(perf.image_frame_ids("25")):  # what extract writes; not timed
        (jpgs / f"frame_{i:06d}.jpg").write_bytes(perf.image_bytes("25", f))
    ours, theirs = [], []
    ffmpeg = shutil.which("ffmpeg")
    for r in range(repeat):
        dest = root / f"th{r}"
        t = time.perf_counter()
        summary = export_talkinghead([perf], "25", dest, name="bench", size=512, crop="face")
        ours.append(time.perf_counter() - t)
        import json

        crop = json.loads((dest / "bench" / "camera.json").read_text())["crop"]
        if ffmpeg:
            vf = f"crop={crop['w']}:{crop['h']}:{crop['x0']}:{crop['y0']},scale=512:512,fps=25"
            cmd = [ffmpeg, "-loglevel", "error", "-y", "-framerate", "30", "-i",
                   str(jpgs / "frame_%06d.jpg"), "-vf", vf, "-c:v", "libx264", "-crf", "18",
                   "-preset", "veryfast", "-pix_fmt", "yuv420p", str(root / "ff.mp4")]  # fmt: skip
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            theirs.append(time.perf_counter() - t)
    o = statistics.median(ours)
    print(f"talkinghead, 1 camera x {frames} full-resolution frames -> {summary.frames} frames "
          f"512x512 at 25 fps (decode 1/{crop['decode_scale']}, box {crop['w']} px)")  # fmt: skip
    print(f"  export talkinghead: {o:.2f} s ({frames / o:.0f} source frames/s)")
    if not theirs:
        print("  ffmpeg: not found on PATH: comparison skipped (apt-get install ffmpeg)")
        return
    f = statistics.median(theirs)
    print(f"  ffmpeg on the extracted JPEGs: {f:.2f} s; ffmpeg / export = {f / o:.2f}")


def clips(root: Path, cameras: int, frames: int, workers: list[int]) -> None:
    from renderme360 import load
    from renderme360.export.clips import export_clips

    data = _take(root, frames, cameras, "s3_all")
    perf = load(data, "0026", "s3_all")
    base = None
    for n in workers:
        dest = root / f"clips{n}"
        t = time.perf_counter()
        s = export_clips([perf], dest, clip_seconds=0.5, fps=16, size=256, workers=n)
        took = time.perf_counter() - t
        base = base or took
        print(f"clips, {len(s.cameras)} cameras x {frames} frames: {s.videos} clips, workers {n}: "
              f"{took:.2f} s (speed-up x{base / took:.2f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--cameras", type=int, default=60)
    ap.add_argument("--clip-frames", type=int, default=30)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_video_"))
    root.mkdir(parents=True, exist_ok=True)
    talkinghead(root, args.frames, args.repeat)
    clips(root, args.cameras, args.clip_frames, [int(w) for w in args.workers.split(",")])
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

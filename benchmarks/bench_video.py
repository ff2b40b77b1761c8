"""Benchmark ``export talkinghead`` and ``export clips`` (run by hand, not a timed test).

Usage::

    python benchmarks/bench_video.py [--frames 300] [--cameras 60] [--clip-frames 30]
                                     [--workers 1,2] [--repeat 3] [--workdir DIR]

1. talkinghead: a synthetic full-resolution speech take (2448x2048 q95 JPEGs, camera 25), after
   one untimed warm-up export (imports, listings), timed side by side in each round:
   - ``export``: ``export_talkinghead(--crop face --size 512 --fps 25)`` from the SMC file
     in this process (reduced DCT decode in read-ahead threads, one swscale pass for crop,
     scale and yuv420p, PyAV libx264 + AAC, aud.wav);
   - ``whole CLI process``: ``python -m renderme360 export talkinghead ...`` (start-up and
     imports included: what a user waits for);
   - ``ffmpeg``: what a user runs today on the extracted JPEGs, with the same crop box and the
     export's own CRF and preset (``video.CRF``, ``video.PRESET``): ``ffmpeg -framerate 30 -i
     frame_%06d.jpg -vf crop=W:H:X:Y,scale=512:512,fps=25 -c:v libx264 -crf 18 -preset veryfast
     -pix_fmt yuv420p`` (writing the JPEGs out is not counted). Without an ``ffmpeg`` on PATH
     the comparison is skipped and said so.
   Each round prints wall and CPU seconds (CPU: this process's threads, or the child's) and
   the load average: on a shared machine the CPU ratio moves much less than the wall ratio.
   The whole CLI's CPU is the child's own rusage (no pool: it waits for all its threads).
2. clips: ``--cameras`` cameras (default 60) x ``--clip-frames`` frames (release-21 layout,
   speech take): the whole ``renderme360 export clips --clip-seconds 0.5 --fps 16 --size 256
   --crop full --workers N`` process for each ``--workers`` count, side by side in each round.
   CPU seconds are those of the whole process tree (the CLI, the forkserver and its pool
   workers, which the CLI never reaps) sampled from ``/proc`` every 20 ms; "cores busy" is CPU
   / wall. Also timed: starting the pool alone (forkserver, preloads, one no-op per worker).
   ``--frames 0`` or ``--cameras 0`` skips a part.
Medians of ``--repeat`` rounds; the ratios printed are measured side by side, not targets.
The machine line (CPUs this process may use, load average) is printed first: on a shared
machine read the CPU figures beside the wall ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _take(root: Path, frames: int, cameras: int, perf: str) -> Path:
    from renderme360.synth import synthesize

    data = root / f"data_{perf}_{cameras}x{frames}"
    if not data.exists():
        synthesize(data, "0026", [perf], 21, cameras=cameras, frames=frames, resolution="full")
    return data


def _ffmpeg(ffmpeg: str, jpgs: Path, crop: dict, out: Path) -> list[str]:
    """What a user runs today on the extracted JPEGs: the same crop box, size, CRF and preset
    as the export (``video.CRF``, ``video.PRESET``)."""
    from renderme360.export.video import CRF, PRESET

    vf = f"crop={crop['w']}:{crop['h']}:{crop['x0']}:{crop['y0']},scale=512:512,fps=25"
    return [ffmpeg, "-loglevel", "error", "-y", "-framerate", "30", "-i",
            str(jpgs / "frame_%06d.jpg"), "-vf", vf, "-c:v", "libx264", "-crf", str(CRF),
            "-preset", PRESET, "-pix_fmt", "yuv420p", str(out)]  # fmt: skip


def _timed(fn: Any, cpu: list[float] | None = None) -> float:
    """Wall seconds of ``fn()``; appends to ``cpu`` its CPU seconds (this process's threads and
    the children it waited for): a figure the other developers' load moves much less."""
    t, c = time.perf_counter(), _cpu()
    fn()
    if cpu is not None:
        cpu.append(_cpu() - c)
    return time.perf_counter() - t


def _cpu() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def talkinghead(root: Path, frames: int, repeat: int) -> None:
    from renderme360 import load
    from renderme360.export.talkinghead import export_talkinghead
    from renderme360.export.video import CRF, PRESET

    data = _take(root, frames, 1, "s1_all")
    perf = load(data, "0026", "s1_all")
    jpgs = root / "jpgs"
    jpgs.mkdir(exist_ok=True)
    for i, f in enumerate(perf.image_frame_ids("25")):  # what extract writes; not timed
        (jpgs / f"frame_{i:06d}.jpg").write_bytes(perf.image_bytes("25", f))

    def export(dest: Path) -> Any:
        shutil.rmtree(dest, ignore_errors=True)
        return export_talkinghead([perf], "25", dest, name="bench", size=512, crop="face")

    summary = export(root / "warm")  # imports (scipy.signal ~0.7 s), listings: not per frame
    crop = json.loads((root / "warm" / "bench" / "camera.json").read_text())["crop"]
    print(f"talkinghead, 1 camera x {frames} full-resolution frames -> {summary.frames} frames "
          f"512x512 at 25 fps (decode 1/{crop['decode_scale']}, box {crop['w']} px; both x264 "
          f"preset {PRESET}, CRF {CRF})")  # fmt: skip
    ffmpeg = shutil.which("ffmpeg")
    cli = [sys.executable, "-m", "renderme360", "export", "talkinghead", str(data),
           "--performance", "s1_all", "--camera", "25", "--size", "512", "--crop", "face",
           "--name", "bench", "-o"]  # fmt: skip
    ours, theirs, whole, cpu_ours, cpu_theirs, cpu_whole = [], [], [], [], [], []
    for r in range(repeat):
        ours.append(_timed(lambda r=r: export(root / f"th{r}"), cpu_ours))
        if ffmpeg:
            cmd = _ffmpeg(ffmpeg, jpgs, crop, root / "ff.mp4")
            theirs.append(_timed(lambda cmd=cmd: subprocess.run(cmd, check=True), cpu_theirs))
        dest = root / f"cli{r}"
        shutil.rmtree(dest, ignore_errors=True)
        run = [*cli, str(dest)]
        run_cli = lambda run=run: subprocess.run(run, check=True, capture_output=True)  # noqa: E731
        whole.append(_timed(run_cli, cpu_whole))
        line = (f"  round {r + 1}: load {os.getloadavg()[0]:.1f}; export {ours[-1]:.2f} s "
                f"(CPU {cpu_ours[-1]:.2f} s), whole CLI process {whole[-1]:.2f} s "
                f"(CPU {cpu_whole[-1]:.2f} s)")  # fmt: skip
        if theirs:
            line += (f", ffmpeg {theirs[-1]:.2f} s (CPU {cpu_theirs[-1]:.2f} s); ffmpeg / export "
                     f"= {theirs[-1] / ours[-1]:.2f} (CPU {cpu_theirs[-1] / cpu_ours[-1]:.2f}), "
                     f"ffmpeg / CLI = {theirs[-1] / whole[-1]:.2f} "
                     f"(CPU {cpu_theirs[-1] / cpu_whole[-1]:.2f})")  # fmt: skip
        print(line, flush=True)
    o, w = statistics.median(ours), statistics.median(whole)
    print(
        f"  export talkinghead (in process, warm): median {o:.2f} s "
        f"({frames / o:.0f} source frames/s); whole CLI process: median {w:.2f} s"
    )
    if not theirs:
        print("  ffmpeg: not found on PATH: comparison skipped (apt-get install ffmpeg)")
        return
    f = statistics.median(theirs)
    ratios = sorted(t / e for t, e in zip(theirs, ours, strict=True))
    per_cli = sorted(t / c for t, c in zip(theirs, whole, strict=True))
    cpu_cli = sorted(t / c for t, c in zip(cpu_theirs, cpu_whole, strict=True))
    print(
        f"  ffmpeg on the extracted JPEGs: median {f:.2f} s; ffmpeg / export per round "
        f"{', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f}); "
        f"ffmpeg / CLI per round {', '.join(f'{x:.2f}' for x in per_cli)} (median "
        f"{statistics.median(per_cli):.2f}); CPU ffmpeg / CLI per round "
        f"{', '.join(f'{x:.2f}' for x in cpu_cli)} (median {statistics.median(cpu_cli):.2f})"
    )


class TreeCPU(threading.Thread):
    """CPU seconds of a process and all its descendants (forkserver pool workers included,
    which the root never reaps, so its rusage lacks them), sampled from ``/proc`` every
    ``interval`` s: each process's last seen utime + stime (a worker's last < ``interval`` s
    is missed). Also the most processes seen at once."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.ticks: dict[int, int] = {}
        self.most = 0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        parent: dict[int, int] = {}
        times: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        stat = f.read()
                except OSError:
                    continue
                fields = stat[stat.rindex(b")") + 2 :].split()
                parent[int(name)] = int(fields[1])
                times[int(name)] = int(fields[11]) + int(fields[12])
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            if pid in times:
                tree.append(pid)
                todo.extend(p for p, pp in parent.items() if pp == pid)
        for pid in tree:
            self.ticks[pid] = max(self.ticks.get(pid, 0), times[pid])
        self.most = max(self.most, len(tree))

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def seconds(self) -> float:
        self._stop_event.set()
        self.join()
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def _tree_run(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, the process tree's CPU seconds and most processes of ``cmd``."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = TreeCPU(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {err.decode()[-500:]}")
    return wall, sampler.seconds(), sampler.most


def _pool_start(n: int) -> float:
    """Seconds to start ``n`` workers (forkserver, the exports' preloads) and run a no-op in
    each, in a fresh process (a forkserver lives as long as its process): the fixed cost a
    parallel export pays before its first clip."""
    code = (
        "import os, time; from renderme360.workers import WorkerPool; t = time.perf_counter()\n"
        f"with WorkerPool({n}, preload=['cv2', 'numpy', 'renderme360.export.reduce']) as p:\n"
        f"    [f.result() for f in [p.submit(os.getpid) for _ in range({n})]]\n"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def clips(root: Path, cameras: int, frames: int, workers: list[int], repeat: int) -> None:
    from renderme360.export.video import cpu_threads

    data = _take(root, frames, cameras, "s3_all")
    cmd = [sys.executable, "-m", "renderme360", "export", "clips", str(data),
           "--performance", "s3_all", "--clip-seconds", "0.5", "--fps", "16", "--size", "256",
           "--crop", "full", "-q"]  # fmt: skip
    took: dict[int, list[float]] = {n: [] for n in workers}
    cpu: dict[int, list[float]] = {n: [] for n in workers}
    for r in range(repeat):
        for n in workers:  # side by side in each round
            dest = root / f"clips{n}"
            shutil.rmtree(dest, ignore_errors=True)
            wall, seconds, _ = _tree_run([*cmd, "--workers", str(n), "-o", str(dest)])
            took[n].append(wall)
            cpu[n].append(seconds)
        base = took[workers[0]][-1]
        each = ", ".join(f"workers {n} ({cpu_threads(n)} thread(s) each) {took[n][-1]:.2f} s, "
                         f"CPU {cpu[n][-1]:.2f} s (x{base / took[n][-1]:.2f})"
                         for n in workers)  # fmt: skip
        print(f"  clips round {r + 1}: load {os.getloadavg()[0]:.1f}; {each}", flush=True)
    with open(root / f"clips{workers[0]}" / "clips.csv") as f:
        videos = sum(1 for _ in f) - 1
    base = statistics.median(took[workers[0]])
    for n in workers:
        m, c = statistics.median(took[n]), statistics.median(cpu[n])
        print(f"clips, {cameras} cameras x {frames} frames: {videos} clips, workers {n}: "
              f"median {m:.2f} s, CPU {c:.2f} s ({c / m:.2f} cores busy), speed-up "
              f"x{base / m:.2f}; pool start alone {_pool_start(n):.2f} s")  # fmt: skip


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
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {os.cpu_count()} CPUs ({usable} usable by this process), load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; ffmpeg: "
          f"{shutil.which('ffmpeg') or 'not found'}", flush=True)  # fmt: skip
    if args.frames:
        talkinghead(root, args.frames, args.repeat)
    if args.cameras:
        clips(
            root,
            args.cameras,
            args.clip_frames,
            [int(w) for w in args.workers.split(",")],
            args.repeat,
        )
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

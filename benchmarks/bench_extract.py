"""Benchmark ``renderme360 extract`` against the floor, ``cp`` and the decode/re-encode way.

Usage::

    python benchmarks/bench_extract.py [--cameras 8 --frames 24] [--repeat 3]
                                       [--json out.json] [--workdir DIR] [--keep]

It synthesises a full-resolution performance (and one with twice the frames), warms the page
cache by reading the SMC files and runs one untimed round, then runs every contender as a fresh
process, round-robin for each repeat, and reports the median wall time (Python start-up and
imports included). Before each run the previous output is deleted and ``os.sync()`` is called
(untimed), so no run pays for another one's dirty pages. Children cache byte-code under the work
folder (``PYTHONPYCACHEPREFIX``), as a normal install would.

Memory: ``ru_maxrss`` of the child from ``os.wait4`` (its own peak, and that of children it
reaps), plus the peak PSS of the whole process tree sampled from ``/proc`` every 50 ms (pool
workers of a forkserver are not reaped by the child, so only the sample sees them). I/O: the
child's ``rchar``/``wchar`` from ``/proc/PID/io``, read while it is a zombie.

Contenders: ``floor`` (h5py reads every image/mask dataset, writes it to a file), the same plus
``os.sync()`` (against ``extract --sync``), ``cp`` of the SMC files, ``reencode`` (the published
reader's decode + re-encode), and ``renderme360 extract`` (images+masks with 1 and 2 workers,
1 worker with ``--sync``, 1 worker without checksums, a full extraction with default workers,
and 1 worker on twice the frames for memory flatness). Then ``explore --json`` on a 60-camera x
300-frame small-resolution performance, against a minimal h5py probe. Every renderme360 run is
checked: image and mask counts and bytes equal what the SMC files store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py

from renderme360.pipeline.execute import SMALL_JOB_BYTES

SUBJECT = "0026"
PERF = "e0"
KEY = f"{SUBJECT}_{PERF}"
TARGET_FLOOR_RATIO = 1.3  # extract (images+masks, 1 worker) / floor must be at most this
TARGET_REENCODE_RATIO = 20.0  # decode-reencode / extract must be at least this
MB = 1e6
IMPORT_SLACK = 8e6  # bytes of .py/.pyc files a CLI may read beyond a bare h5py script

FLOOR_SCRIPT = """\
import os, sys
import h5py

out = sys.argv[1]
for path in sys.argv[2:]:
    with h5py.File(path, "r") as f:
        cams = f.get("Camera")
        if cams is None:
            continue
        for cam in cams:
            for kind in ("color", "mask"):
                group = cams[cam].get(kind)
                if group is None:
                    continue
                folder = os.path.join(out, kind, cam)
                os.makedirs(folder, exist_ok=True)
                for frame in group:
                    data = group[frame][()]
                    with open(os.path.join(folder, frame), "wb") as fh:
                        fh.write(data)
"""

REENCODE_SCRIPT = """\
import os, sys
import cv2
import h5py

out = sys.argv[1]
for path in sys.argv[2:]:
    with h5py.File(path, "r") as f:
        cams = f.get("Camera")
        if cams is None:
            continue
        for cam in cams:
            for kind in ("color", "mask"):
                group = cams[cam].get(kind)
                if group is None:
                    continue
                folder = os.path.join(out, kind, cam)
                os.makedirs(folder, exist_ok=True)
                for frame in group:
                    img = cv2.imdecode(group[frame][()], cv2.IMREAD_COLOR)
                    if kind == "mask":
                        cv2.imwrite(os.path.join(folder, frame + ".png"), img.max(axis=2))
                    else:
                        cv2.imwrite(
                            os.path.join(folder, frame + ".jpg"),
                            img,
                            [cv2.IMWRITE_JPEG_QUALITY, 95],
                        )
"""

PROBE_SCRIPT = """\
import sys
import h5py

n = 0
for path in sys.argv[1:]:
    with h5py.File(path, "r") as f:
        cams = f.get("Camera")
        if cams is None:
            continue
        for cam in cams:
            for kind in ("color", "mask"):
                group = cams[cam].get(kind)
                if group is None:
                    continue
                for frame in group:
                    ds = group[frame]
                    n += ds.id.get_offset() is not None and ds.size > 0
print(n)
"""

# What the re-encode contender imports beyond the others (it is not run in the warm-up round).
IMPORT_WARMUP = "import cv2, h5py, numpy"


@dataclass
class Dataset:
    """One synthesised performance: its root, SMC files and what they store."""

    root: Path
    smc_files: list[Path]
    images: int = 0
    masks: int = 0
    image_bytes: int = 0
    mask_bytes: int = 0
    smc_bytes: int = 0

    @property
    def files(self) -> int:
        """Stored image + mask datasets."""
        return self.images + self.masks

    @property
    def payload(self) -> int:
        """Stored image + mask bytes."""
        return self.image_bytes + self.mask_bytes


@dataclass
class Sample:
    """One measured process."""

    seconds: float
    maxrss_kb: int
    tree_peak_kb: int | None
    processes: int
    rchar: int | None
    wchar: int | None
    files_out: int

    @classmethod
    def of(cls, run: Run, files_out: int, own_io: bool = True) -> Sample:
        """A sample from a run; I/O counts only when the child (and what it reaps) did it all."""
        rchar, wchar = (run.io.get("rchar"), run.io.get("wchar")) if own_io else (None, None)
        return cls(
            run.seconds, run.maxrss_kb, run.tree_peak_kb, run.processes, rchar, wchar, files_out
        )


@dataclass
class Contender:
    """A command measured as a whole process, with a check of what it wrote."""

    name: str
    label: str
    data: Dataset
    command: Callable[[Path], list[str]]
    check: Callable[[Path, Dataset], int] | None = None
    pool: bool = False  # work done in pool workers: the child's own I/O counters miss it
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        """Median of one Sample attribute over the repeats (None when not measured)."""
        vals = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(vals) if vals else None


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class TreeSampler(threading.Thread):
    """Samples the whole process tree under ``root`` (forkserver workers included).

    ``wait4`` only sees processes the child reaps itself; pool workers started by a forkserver
    are reaped by the forkserver, so their memory never reaches the child's rusage. This thread
    reads ``/proc`` every ``interval`` seconds and keeps the peak of the summed PSS of the tree
    (proportional set size: pages shared after a fork are not counted twice).
    """

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_sum_kb = 0
        self.max_processes = 0
        self._stop_event = threading.Event()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, ()))
        return tree

    def sample(self) -> None:
        """Add one observation of the tree's summed proportional memory."""
        total, n = 0, 0
        for pid in self._tree():
            try:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                    for line in f:
                        if line.startswith(b"Pss:"):
                            total += int(line.split()[1])
                            break
                n += 1
            except (OSError, ValueError, IndexError):
                continue
        self.peak_sum_kb = max(self.peak_sum_kb, total)
        self.max_processes = max(self.max_processes, n)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        """Stop sampling (the caller joins)."""
        self._stop_event.set()


@dataclass
class Run:
    """What one process run measured."""

    seconds: float
    maxrss_kb: int
    io: dict[str, int]
    tree_peak_kb: int | None
    processes: int


def run_measured(cmd: list[str], stdout: Path, stderr: Path) -> Run:
    """Run ``cmd``; return wall seconds, the child's own ru_maxrss (KB), its /proc io and
    the sampled peak of its whole process tree.

    The child is waited for without being reaped (``waitid(WNOWAIT)``) so that its
    ``/proc/PID/io`` can still be read, then reaped with ``os.wait4`` for its rusage.
    """
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        seconds = time.perf_counter() - t0
        sampler.stop()
        sampler.join()
    io: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{proc.pid}/io").read_text().splitlines():
            k, _, v = line.partition(":")
            io[k.strip()] = int(v)
    except (OSError, ValueError):
        io = {}
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = stderr.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{cmd[:4]}... exited with {proc.returncode}:\n{tail}")
    tree = sampler.peak_sum_kb or None  # None: it ended before the first sample
    return Run(seconds, int(usage.ru_maxrss), io, tree, max(1, sampler.max_processes))


def venv_tool() -> list[str]:
    """How to start the renderme360 CLI with this interpreter."""
    script = Path(sys.executable).with_name("renderme360")
    return [str(script)] if script.exists() else [sys.executable, "-m", "renderme360"]


def synth(root: Path, cameras: int, frames: int, resolution: str) -> Dataset:
    """Synthesise one performance (release 21: anno + raw files) and index what it stores."""
    if not (root / "raw" / SUBJECT / f"{KEY}_raw.smc").exists():
        log(f"synth {cameras} cameras x {frames} frames ({resolution}) -> {root}")
        cmd = [*venv_tool(), "synth", str(root), "--performances", PERF, "--cameras"]
        cmd += [str(cameras), "--frames", str(frames), "--resolution", resolution]
        subprocess.run([*cmd, "--release", "21", "-q"], check=True, stdout=subprocess.DEVNULL)
    files = sorted(root.rglob("*.smc"))
    ds = Dataset(root, files, smc_bytes=sum(p.stat().st_size for p in files))
    for path in files:
        with h5py.File(path, "r") as f:
            cams = f.get("Camera")
            for cam in cams or ():
                for kind in ("color", "mask"):
                    group = cams[cam].get(kind)
                    for frame in group or ():
                        n = int(group[frame].size)
                        if kind == "color":
                            ds.images, ds.image_bytes = ds.images + 1, ds.image_bytes + n
                        else:
                            ds.masks, ds.mask_bytes = ds.masks + 1, ds.mask_bytes + n
    return ds


def warm_cache(paths: list[Path]) -> None:
    """Read files once so every timed run sees a warm page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def count_files(root: Path) -> int:
    """Regular files under ``root``."""
    return sum(len(files) for _d, _s, files in os.walk(root)) if root.exists() else 0


def check_plain(out: Path, data: Dataset) -> int:
    """Floor / re-encode output: one file per stored dataset."""
    n = count_files(out)
    assert n == data.files, f"{out}: {n} files written, expected {data.files}"
    return n


def check_cp(out: Path, data: Dataset) -> int:
    """cp output: every SMC file, same size."""
    n = count_files(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    assert (n, size) == (len(data.smc_files), data.smc_bytes), f"{out}: bad copy"
    return n


def check_extract(out: Path, data: Dataset) -> int:
    """renderme360 output: as many image/mask files as stored datasets, byte-identical sizes."""
    perf = out / KEY
    got = {"images": [0, 0], "masks": [0, 0]}
    for dirpath, _dirs, files in os.walk(perf):
        parts = Path(dirpath).relative_to(perf).parts
        kind = next((p for p in parts if p in got), None)
        if kind and parts[-1].startswith("cam_"):
            got[kind][0] += len(files)
            got[kind][1] += sum(os.stat(os.path.join(dirpath, f)).st_size for f in files)
    want = {"images": [data.images, data.image_bytes], "masks": [data.masks, data.mask_bytes]}
    assert got == want, f"{perf}: wrote (files, bytes) {got}, expected {want}"
    assert (perf / ".extraction_complete").is_file(), f"{perf}: no completion marker"
    return count_files(perf)


def contenders(data: Dataset, data2x: Dataset, scripts: Path) -> list[Contender]:
    """Everything measured in the round-robin, in run order."""
    py = sys.executable
    tool = venv_tool()
    floor_py, reenc_py = scripts / "floor.py", scripts / "reencode.py"
    floor_sync_py = scripts / "floor_sync.py"
    floor_py.write_text(FLOOR_SCRIPT)
    floor_sync_py.write_text(FLOOR_SCRIPT + "os.sync()\n")
    reenc_py.write_text(REENCODE_SCRIPT)
    smc = [str(p) for p in data.smc_files]
    smc2x = [str(p) for p in data2x.smc_files]
    im = ["--modalities", "images,masks", "--no-preview"]
    ncpu = os.cpu_count() or 1

    def extract(d: Dataset, *extra: str) -> Callable[[Path], list[str]]:
        def cmd(out: Path) -> list[str]:
            base = [*tool, "extract", str(d.root), "-o", str(out), "--subject", SUBJECT]
            return [*base, "--performance", PERF, *extra, "-q", "--yes"]

        return cmd

    return [
        Contender("floor", "floor (h5py read + write)", data,
                  lambda o: [py, str(floor_py), str(o), *smc], check_plain),
        Contender("floor_sync", "floor + os.sync() at the end (information)", data,
                  lambda o: [py, str(floor_sync_py), str(o), *smc], check_plain),
        Contender("cp", "cp of the SMC files", data,
                  lambda o: ["cp", *smc, str(o)], check_cp),
        Contender("reencode", "decode/re-encode (published way)", data,
                  lambda o: [py, str(reenc_py), str(o), *smc], check_plain),
        Contender("extract_w1", "extract images+masks, 1 worker", data,
                  extract(data, *im, "--workers", "1"), check_extract),
        Contender("extract_w2", "extract images+masks, 2 workers", data,
                  extract(data, *im, "--workers", "2"), check_extract, pool=True),
        Contender("extract_w1_sync", "extract images+masks, 1 worker, --sync", data,
                  extract(data, *im, "--workers", "1", "--sync"), check_extract),
        Contender("extract_w1_nochecksum", "extract images+masks, 1 worker, --no-checksum", data,
                  extract(data, *im, "--workers", "1", "--no-checksum"), check_extract),
        Contender("extract_full", "extract all modalities (default workers, previews)",
                  data, extract(data), check_extract,
                  pool=ncpu > 1 and data.payload >= SMALL_JOB_BYTES),
        Contender("floor_2x", "floor, 2x frames", data2x,
                  lambda o: [py, str(floor_py), str(o), *smc2x], check_plain),
        Contender("extract_w1_2x", "extract images+masks, 1 worker, 2x frames", data2x,
                  extract(data2x, *im, "--workers", "1"), check_extract),
    ]  # fmt: skip


def fresh(path: Path) -> None:
    """Remove ``path``, flush every dirty page (untimed), recreate it empty."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    path.mkdir(parents=True)


def warm_up(cs: list[Contender], work: Path) -> None:
    """Run every contender but the slow re-encode once, untimed (byte-code caches, page cache)."""
    subprocess.run([sys.executable, "-c", IMPORT_WARMUP], check=True)
    for c in cs:
        if c.name != "reencode":
            out = work / "out" / c.name
            fresh(out)
            run_measured(c.command(out), work / "warmup.out", work / "warmup.err")
    shutil.rmtree(work / "out", ignore_errors=True)


def measure(cs: list[Contender], repeat: int, work: Path) -> None:
    """Round-robin: every contender once per repeat, each into a fresh output folder."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    for rep in range(repeat):
        for c in cs:
            out = work / "out" / c.name
            fresh(out)
            run = run_measured(
                c.command(out), logs / f"{c.name}.{rep}.out", logs / f"{c.name}.{rep}.err"
            )
            n = c.check(out, c.data) if c.check else count_files(out)
            c.samples.append(Sample.of(run, n, own_io=not c.pool))
            log(
                f"repeat {rep + 1}/{repeat} {c.name:<22} {run.seconds:7.2f} s "
                f"{run.maxrss_kb / 1024:6.0f} MB RSS {(run.tree_peak_kb or 0) / 1024:6.0f} MB tree"
            )
    shutil.rmtree(work / "out", ignore_errors=True)


def measure_explore(data: Dataset, repeat: int, work: Path) -> dict[str, Any]:
    """Wall time, peak RSS and bytes read of ``explore --json`` on ``data``, interleaved with a
    minimal h5py probe (list every image/mask dataset and ask HDF5 for its offset): the least a
    probe reads and costs, so bytes read well above it would be payload."""
    probe_py = work / "probe_floor.py"
    probe_py.write_text(PROBE_SCRIPT)
    cmds = {
        "explore": [*venv_tool(), "explore", str(data.root), "--json"],
        "probe_floor": [sys.executable, str(probe_py), *map(str, data.smc_files)],
    }
    samples: dict[str, list[Sample]] = {k: [] for k in cmds}
    for rep in range(repeat):
        for name, cmd in cmds.items():
            os.sync()
            run = run_measured(cmd, work / f"{name}.{rep}.out", work / f"{name}.{rep}.err")
            samples[name].append(Sample.of(run, 0))
            log(f"explore repeat {rep + 1}/{repeat} {name:<12} {run.seconds:7.2f} s")
    json.loads((work / "explore.0.out").read_text())  # it printed valid JSON

    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(x, attr) or 0 for x in samples[name])

    extra = med("explore", "rchar") - med("probe_floor", "rchar")
    return {
        "blobs": data.files,
        "payload_bytes": data.payload,
        "smc_bytes": data.smc_bytes,
        "seconds": med("explore", "seconds"),
        "seconds_samples": [x.seconds for x in samples["explore"]],
        "maxrss_kb": med("explore", "maxrss_kb"),
        "rchar": med("explore", "rchar"),
        "probe_floor_seconds": med("probe_floor", "seconds"),
        "probe_floor_rchar": med("probe_floor", "rchar"),
        # Explore imports more modules than the probe; below IMPORT_SLACK it is import noise.
        "reads_payload": extra >= max(0.5 * data.payload, IMPORT_SLACK),
    }


def machine(work: Path) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    df = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout
    fs = df.splitlines()[-1].split()[1] if df.strip() else "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024**2, 1),
        "workdir": str(work),
        "workdir_fs": fs,
        "python": platform.python_version(),
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
        "kernel": platform.release(),
    }


def _mb(n: float | None) -> float | None:
    return None if n is None else n / MB


def _kb_mb(n: float | None) -> float | None:
    return None if n is None else n / 1024


def _load(v: Any) -> str:
    return "/".join(f"{x:.2f}" for x in v)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}"


def summarise(cs: list[Contender], data: Dataset) -> dict[str, Any]:
    """Medians per contender and the ratios against the targets."""
    rows = {}
    for c in cs:
        secs = c.median("seconds") or float("nan")
        rows[c.name] = {
            "label": c.label,
            "seconds": secs,
            "mb_per_s": c.data.payload / MB / secs,
            "files_per_s": c.data.files / secs,
            "maxrss_mb": (c.median("maxrss_kb") or 0) / 1024,
            "tree_peak_mb": _kb_mb(c.median("tree_peak_kb")),
            "processes": max((x.processes for x in c.samples), default=0),
            "read_mb": _mb(c.median("rchar")),
            "written_mb": _mb(c.median("wchar")),
            "files_out": c.samples[-1].files_out if c.samples else 0,
            "samples": [asdict(s) for s in c.samples],
        }
    sec = {k: v["seconds"] for k, v in rows.items()}
    ratios = {
        "extract_w1_over_floor": sec["extract_w1"] / sec["floor"],
        "reencode_over_extract_w1": sec["reencode"] / sec["extract_w1"],
        "extract_w1_over_cp": sec["extract_w1"] / sec["cp"],
        "extract_w1_sync_over_floor_sync": sec["extract_w1_sync"] / sec["floor_sync"],
        "extract_w2_over_floor": sec["extract_w2"] / sec["floor"],
        "extract_w1_2x_over_floor_2x": sec["extract_w1_2x"] / sec["floor_2x"],
        "extract_w1_nochecksum_over_floor": sec["extract_w1_nochecksum"] / sec["floor"],
    }
    rss1, rss2 = rows["extract_w1"]["maxrss_mb"], rows["extract_w1_2x"]["maxrss_mb"]
    return {
        "rows": rows,
        "ratios": ratios,
        "targets": {
            "extract_w1_over_floor_max": TARGET_FLOOR_RATIO,
            "reencode_over_extract_w1_min": TARGET_REENCODE_RATIO,
            "floor_met": ratios["extract_w1_over_floor"] <= TARGET_FLOOR_RATIO,
            "reencode_met": ratios["reencode_over_extract_w1"] >= TARGET_REENCODE_RATIO,
        },
        "memory_flatness": {
            "maxrss_mb_1x": rss1,
            "maxrss_mb_2x": rss2,
            "ratio_2x_over_1x": rss2 / rss1 if rss1 else float("nan"),
        },
    }


def render(result: dict[str, Any]) -> str:
    """The result as Markdown tables (printed, and pasted into RESULTS.md)."""
    d, s = result["dataset"], result["summary"]
    lines = [
        f"Dataset: {d['cameras']} cameras x {d['frames']} frames, full resolution; "
        f"{d['images']} images ({d['image_bytes'] / MB:.1f} MB) + {d['masks']} masks "
        f"({d['mask_bytes'] / MB:.1f} MB) stored; SMC files {d['smc_bytes'] / MB:.1f} MB. "
        f"Median of {result['repeat']} runs. Load average (1, 5, 15 min) before "
        f"{_load(result['loadavg_before'])}, after {_load(result['loadavg_after'])}.",
        "",
        "| contender | s | MB/s | files/s | peak RSS MB (wait4) | tree peak PSS MB (sampled) "
        "| max procs | read MB | written MB | files out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"].values():
        lines.append(
            f"| {r['label']} | {r['seconds']:.2f} | {r['mb_per_s']:.0f} | {r['files_per_s']:.0f}"
            f" | {r['maxrss_mb']:.0f} | {_fmt(r['tree_peak_mb'])} | {r['processes']}"
            f" | {_fmt(r['read_mb'])} | {_fmt(r['written_mb'])} | {r['files_out']} |"
        )
    lines += [
        "",
        "MB/s and files/s count the stored image+mask bytes and datasets for every row (cp copies "
        "whole SMC files, the full extraction writes more). peak RSS (wait4) is the child's own "
        "ru_maxrss (with what it reaps); forkserver pool workers are not in it, the sampled tree "
        "peak (PSS summed over the process tree every 50 ms) is. read/written MB are rchar/wchar "
        "of the child; n/a when pool workers did part of the work.",
    ]
    lines += ["", "| contender | every run, s |", "|---|---|"]
    lines += [
        f"| {r['label']} | {', '.join(format(x['seconds'], '.2f') for x in r['samples'])} |"
        for r in s["rows"].values()
    ]
    ra, t = s["ratios"], s["targets"]
    ok = {True: "met", False: "MISSED"}
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---:|---|",
        f"| extract (images+masks, 1 worker) / floor | {ra['extract_w1_over_floor']:.2f} "
        f"| <= {TARGET_FLOOR_RATIO} ({ok[t['floor_met']]}) |",
        f"| decode-reencode / extract (1 worker) | {ra['reencode_over_extract_w1']:.1f} "
        f"| >= {TARGET_REENCODE_RATIO:.0f} ({ok[t['reencode_met']]}) |",
        f"| extract (1 worker) / cp | {ra['extract_w1_over_cp']:.2f} | (information) |",
        f"| extract (1 worker, --sync) / (floor + os.sync) "
        f"| {ra['extract_w1_sync_over_floor_sync']:.2f} | (information: both flush to disk) |",
        f"| extract (2 workers) / floor | {ra['extract_w2_over_floor']:.2f} | (information) |",
        f"| extract (1 worker) / floor, both on 2x frames "
        f"| {ra['extract_w1_2x_over_floor_2x']:.2f} | (information: fixed costs amortised) |",
        f"| extract (1 worker, --no-checksum) / floor "
        f"| {ra['extract_w1_nochecksum_over_floor']:.2f} | (information) |",
    ]
    m = s["memory_flatness"]
    lines += [
        "",
        f"Memory flatness (extract images+masks, 1 worker): peak RSS {m['maxrss_mb_1x']:.0f} MB "
        f"at {d['frames']} frames, {m['maxrss_mb_2x']:.0f} MB at {2 * d['frames']} frames "
        f"(x{m['ratio_2x_over_1x']:.2f}).",
    ]
    e = result.get("explore")
    if e:
        verdict = "it READS PAYLOADS" if e["reads_payload"] else "no payload is read"
        lines += [
            "",
            f"explore --json on {e['label']} ({e['blobs']} image/mask blobs, "
            f"{e['payload_bytes'] / MB:.0f} MB of stored payload, SMC files "
            f"{e['smc_bytes'] / MB:.0f} MB): {e['seconds']:.2f} s "
            f"(runs {', '.join(f'{x:.2f}' for x in e['seconds_samples'])}; "
            f"{1e6 * e['seconds'] / e['blobs']:.0f} us per blob), peak RSS "
            f"{e['maxrss_kb'] / 1024:.0f} MB, read {e['rchar'] / MB:.1f} MB. A minimal h5py "
            f"probe (list every dataset, get its offset) takes {e['probe_floor_seconds']:.2f} s "
            f"and reads {e['probe_floor_rchar'] / MB:.1f} MB: {verdict} "
            f"(explore/probe floor = {e['seconds'] / e['probe_floor_seconds']:.1f}x).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, synthesise data, measure, print and save the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--workdir", type=Path, help="default: a new folder under the temp dir")
    ap.add_argument("--keep", action="store_true", help="keep synthesised data and outputs")
    ap.add_argument("--explore-cameras", type=int, default=60)
    ap.add_argument("--explore-frames", type=int, default=300)
    ap.add_argument("--explore-repeat", type=int, help="explore runs (default: --repeat)")
    ap.add_argument("--no-explore", action="store_true", help="skip the explore timing")
    args = ap.parse_args(argv)
    if args.workdir:
        work = args.workdir.absolute()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="rm360_bench_"))
    log(f"workdir {work}")
    # Children cache byte-code as a normal install does (this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would recompile the package on every run), outside src/.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    load_before = os.getloadavg()
    try:
        data = synth(work / "data", args.cameras, args.frames, "full")
        data2x = synth(work / "data2x", args.cameras, 2 * args.frames, "full")
        log("warm-up: reading the SMC files, one untimed round (re-encode: imports only)")
        warm_cache(data.smc_files + data2x.smc_files)
        cs = contenders(data, data2x, work)
        warm_up(cs, work)
        measure(cs, args.repeat, work)
        result: dict[str, Any] = {
            "machine": machine(work),
            "loadavg_before": load_before,
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "repeat": args.repeat,
            "dataset": {
                "cameras": args.cameras,
                "frames": args.frames,
                **{k: v for k, v in asdict(data).items() if k not in ("root", "smc_files")},
            },
            "summary": summarise(cs, data),
        }
        if not args.no_explore:
            small = synth(work / "small", args.explore_cameras, args.explore_frames, "small")
            warm_cache(small.smc_files)
            ex = measure_explore(small, args.explore_repeat or args.repeat, work)
            ex["label"] = f"{args.explore_cameras} cameras x {args.explore_frames} frames (small)"
            result["explore"] = ex
        result["loadavg_after"] = os.getloadavg()
        text = render(result)
        print(text)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
            log(f"results written to {args.json}")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

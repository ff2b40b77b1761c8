"""Benchmark extraction at real performance sizes: 60 cameras, hundreds to thousands of frames.

Usage::

    python benchmarks/bench_sizes.py [--repeat 3] [--full] [--workdir DIR] [--keep]
                                     [--json out.json]

A real speech performance holds 60 cameras x ~2,500 frames of images and as many masks
(~300,000 files). Synthetic performances at the "small" resolution (96x120 images of a few KB)
make the per-file costs visible. Every contender runs as a fresh process (Python start-up and
imports included); contenders of one case run round-robin for each repeat and the median is
reported. Before each run the previous output is deleted and ``os.sync()`` called (untimed).

Cases (the default run writes up to 120,000 files; ``--full`` adds 60 x 2,500 = 300,000):

1. **Memory**: ``extract`` of images+masks, 1 worker, previews on (the defaults), on 60 cameras
   x 250 and x 1,000 frames (30,000 and 120,000 files): peak RSS of the process (``wait4``).
   Targets: under 150 MB, and within 20 % between the two.
2. **Per-file cost**: on 60 x 600 frames (72,000 files), ``extract`` of images+masks (1 worker,
   ``--no-preview``) against the file-system floor: a minimal loop that creates, writes and
   renames (no fsync) the same files with the same bytes from memory. The floor is the loop's
   own time (its process loads the bytes first, untimed); ``extract`` is the whole process.
   Target: at most 2x. The survey alone (``extract --dry-run``: start-up, probing every blob
   of the SMC files through HDF5, planning) is timed beside it to show where the time goes.
3. **Verify**: ``renderme360 verify`` of that output against a minimal loop that opens, reads
   and sha256-hashes every listed file, and ``sha256sum -c SHA256SUMS`` (information).
4. **Dry run of the whole dataset**: ``extract --dry-run --json`` over 100 and 1,000 tiny
   synthetic performances (real naming: ``raw/0001/0001_e0_raw.smc`` and its anno file, 10
   performances a subject), reported as seconds per performance.

Every ``extract`` output is checked: image and mask counts equal what the SMC files store.
Peak RSS is GNU time's ``%M`` of the measured command (``wait4`` of the harness's own child
would start from the harness's RSS at fork time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_extract import fresh, log, machine, run_measured, venv_tool

PERF = "s1"
KEY = f"0026_{PERF}"
TARGET_RSS_MB = 150
TARGET_FLAT = 1.2
TARGET_FLOOR_RATIO = 2.0
TARGET_VERIFY_RATIO = 1.5  # "little more than hashing their bytes"
# Peak RSS is read through GNU time: a child's own ru_maxrss (wait4) starts from the RSS of the
# process that forked it, here this harness once it has held a payload of ~100 MB.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
TINY_PERFS = ("e0", "e1", "e2", "e3", "s1", "s2", "s3", "h0", "h1", "h2")

# The file-system floor: the same files, the same bytes, from memory. The bytes are loaded
# (untimed) from one blob the harness prepared; the loop's own time is printed as JSON.
FLOOR_SCRIPT = """\
import json, os, sys, time
out, blob, index = sys.argv[1], sys.argv[2], sys.argv[3]
with open(blob, "rb") as f:
    payload = f.read()
with open(index) as f:
    files = json.load(f)
made = set()
tmp_dir = os.path.join(out, ".tmp")
t0 = time.perf_counter()
os.makedirs(tmp_dir, exist_ok=True)
for i, (rel, start, size) in enumerate(files):
    final = os.path.join(out, rel)
    parent = os.path.dirname(final)
    if parent not in made:
        os.makedirs(parent, exist_ok=True)
        made.add(parent)
    tmp = os.path.join(tmp_dir, f"{i}.part")
    with open(tmp, "xb") as fh:
        fh.write(payload[start : start + size])
    os.replace(tmp, final)
os.rmdir(tmp_dir)
print(json.dumps({"loop_seconds": time.perf_counter() - t0, "files": len(files)}))
"""

# Hashing the bytes of every listed file: what verify cannot avoid.
HASH_SCRIPT = """\
import hashlib, json, os, sys, time
folder = sys.argv[1]
t0 = time.perf_counter()
n = 0
with open(os.path.join(folder, "SHA256SUMS")) as f:
    for line in f:
        digest, rel = line.rstrip("\\n").split("  ", 1)
        with open(os.path.join(folder, rel), "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() != digest:
                sys.exit("mismatch: " + rel)
        n += 1
print(json.dumps({"loop_seconds": time.perf_counter() - t0, "files": n}))
"""


@dataclass
class Contender:
    """A command run as a whole process; ``inner`` reads a loop time the process printed."""

    name: str
    label: str
    command: Callable[[Path], list[str]]
    fresh_out: bool = True
    inner: bool = False
    check: Callable[[Path], None] | None = None
    seconds: list[float] = field(default_factory=list)
    loop: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)

    def median(self) -> float:
        """Median time: the loop's own time for the floors, else the whole process."""
        return statistics.median(self.loop if self.inner else self.seconds)


def synth(root: Path, frames: int) -> Path:
    """60 cameras x ``frames`` frames, small images (release 21: anno + raw files)."""
    if not (root / "raw" / "0026" / f"{KEY}_raw.smc").exists():
        log(f"synth 60 cameras x {frames} frames -> {root}")
        cmd = [*venv_tool(), "synth", str(root), "--performances", PERF, "--cameras", "60"]
        cmd += ["--frames", str(frames), "--resolution", "small", "--release", "21", "-q"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return root


def extract_cmd(data: Path, *extra: str) -> Callable[[Path], list[str]]:
    """``renderme360 extract`` of images+masks with 1 worker into the given folder."""
    base = [*venv_tool(), "extract", str(data), "--modalities", "images,masks", "--workers", "1"]
    return lambda out: [*base, "-o", str(out), "-q", *extra]


def check_extract(frames: int) -> Callable[[Path], None]:
    """Raise unless the output holds 60 x frames images and as many masks."""

    def check(out: Path) -> None:
        doc = json.loads((out / KEY / "manifest.json").read_text())
        counts = doc["counts"]
        if counts.get("images") != 60 * frames or counts.get("masks") != 60 * frames:
            raise RuntimeError(f"{out}: wrong counts {counts}")

    return check


def run(c: Contender, work: Path, rep: int) -> None:
    """One measured run of a contender."""
    out = work / "out" / c.name
    if c.fresh_out:
        fresh(out)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    stdout, stderr = logs / f"{c.name}.{rep}.out", logs / f"{c.name}.{rep}.err"
    cmd = c.command(out)
    rss_file = logs / f"{c.name}.{rep}.rss"
    if GNU_TIME:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd]
    r = run_measured(cmd, stdout, stderr)
    c.seconds.append(r.seconds)
    c.rss_kb.append(int(rss_file.read_text().split()[-1]) if GNU_TIME else r.maxrss_kb)
    if c.inner:
        c.loop.append(json.loads(stdout.read_text().strip().splitlines()[-1])["loop_seconds"])
    if c.check:
        c.check(out)
    inner = f" (loop {c.loop[-1]:.2f} s)" if c.inner else ""
    log(
        f"repeat {rep + 1} {c.name:<24} {r.seconds:7.2f} s{inner} {c.rss_kb[-1] / 1024:6.0f} MB RSS"
    )


def round_robin(cs: list[Contender], repeat: int, work: Path) -> None:
    for rep in range(repeat):
        for c in cs:
            run(c, work, rep)


def prepare_floor(data: Path, work: Path) -> tuple[Path, Path, Path]:
    """Extract once (untimed) and pack every image/mask into one blob + index for the floor;
    return (blob, index, the extracted performance folder)."""
    out = work / "reference"
    if not (out / KEY / ".extraction_complete").exists():
        fresh(out)
        subprocess.run([*extract_cmd(data, "--no-preview")(out)], check=True)
    perf = out / KEY
    blob, index = work / "floor_payload.bin", work / "floor_index.json"
    files = []
    with open(blob, "wb") as f:
        for line in (perf / "manifest.jsonl").read_text().splitlines():
            e = json.loads(line)
            if e.get("modality") in ("images", "masks"):
                data_bytes = (perf / e["path"]).read_bytes()
                files.append((e["path"], f.tell(), len(data_bytes)))
                f.write(data_bytes)
    index.write_text(json.dumps(files))
    return blob, index, perf


def case_memory(work: Path, frames: list[int], repeat: int) -> dict[str, Any]:
    cs = [
        Contender(
            f"extract_{n}",
            f"extract images+masks, 60 x {n} frames ({120 * n:,} files)",
            extract_cmd(synth(work / f"data_60x{n}", n)),
            check=check_extract(n),
        )
        for n in frames
    ]
    round_robin(cs, repeat, work)
    rows = []
    for n, c in zip(frames, cs, strict=True):
        rows.append(
            {
                "frames": n,
                "files": 120 * n,
                "seconds": statistics.median(c.seconds),
                "peak_rss_mb": statistics.median(c.rss_kb) / 1024,
                "runs_rss_mb": [round(x / 1024) for x in c.rss_kb],
            }
        )
    peaks = [r["peak_rss_mb"] for r in rows]
    small = next(r for r in rows if r["frames"] == frames[0])
    large = next(r for r in rows if r["frames"] == frames[1])
    return {
        "rows": rows,
        "max_rss_mb": max(peaks),
        "ratio_1000_250": large["peak_rss_mb"] / small["peak_rss_mb"],
        "ratio_all": max(peaks) / min(peaks),
    }


def case_floor(work: Path, frames: int, repeat: int) -> dict[str, Any]:
    data = synth(work / f"data_60x{frames}", frames)
    blob, index, _ref = prepare_floor(data, work)
    script = work / "floor.py"
    script.write_text(FLOOR_SCRIPT)
    cs = [
        Contender(
            "floor",
            "floor: create, write, rename from memory (loop time)",
            lambda out: [sys.executable, str(script), str(out), str(blob), str(index)],
            inner=True,
        ),
        Contender(
            "extract",
            "extract images+masks, 1 worker, --no-preview (whole process)",
            extract_cmd(data, "--no-preview"),
            check=check_extract(frames),
        ),
        Contender(
            "survey",
            "extract --dry-run (start-up, probe, plan)",
            extract_cmd(data, "--dry-run", "--json"),
        ),
    ]
    round_robin(cs, repeat, work)
    floor, extract, survey = (c.median() for c in cs)
    return {
        "frames": frames,
        "files": 120 * frames,
        "contenders": {
            c.name: {"label": c.label, "median": c.median(), "runs": c.loop or c.seconds}
            for c in cs
        },
        "ratio": extract / floor,
        "ratio_without_survey": (extract - survey) / floor,
    }


def case_verify(work: Path, frames: int, repeat: int) -> dict[str, Any]:
    perf = work / "reference" / KEY
    script = work / "hash.py"
    script.write_text(HASH_SCRIPT)
    cs = [
        Contender(
            "hash_loop",
            "open, read, sha256 every listed file (loop time)",
            lambda _out: [sys.executable, str(script), str(perf)],
            fresh_out=False,
            inner=True,
        ),
        Contender(
            "verify",
            "renderme360 verify (whole process)",
            lambda _out: [*venv_tool(), "verify", str(perf), "-q"],
            fresh_out=False,
        ),
    ]
    if shutil.which("sha256sum"):
        cs.append(
            Contender(
                "sha256sum",
                "sha256sum -c --quiet SHA256SUMS (information)",
                lambda _out: ["sh", "-c", f"cd '{perf}' && sha256sum -c --quiet SHA256SUMS"],
                fresh_out=False,
            )
        )
    round_robin(cs, repeat, work)
    by = {c.name: c for c in cs}
    return {
        "files": sum(1 for _ in open(perf / "SHA256SUMS")),
        "contenders": {
            c.name: {
                "label": c.label,
                "median": c.median(),
                "runs": c.loop or c.seconds,
                "rss_mb": statistics.median(c.rss_kb) / 1024,
            }
            for c in cs
        },
        "ratio": by["verify"].median() / by["hash_loop"].median(),
    }


def tiny_dataset(root: Path, subjects: int, template: Path) -> Path:
    """``subjects`` x 10 tiny performances, copied from one synthesised subject with the
    subject id changed in the names and in the files' attributes."""
    import h5py

    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(1, subjects + 1):
        sid = f"{i:04d}"
        for src in sorted(template.rglob("*.smc")):
            role = src.parent.parent.name  # raw / anno
            dst = root / role / sid / src.name.replace("0001_", f"{sid}_", 1)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            with h5py.File(dst, "r+") as f:
                old = f.attrs["actor_id"]
                f.attrs["actor_id"] = sid.encode() if isinstance(old, bytes) else sid
    (root / ".complete").write_text("")
    return root


def case_survey(work: Path, counts: list[int], repeat: int) -> dict[str, Any]:
    template = work / "tiny_template"
    if not (template / "raw" / "0001").exists():
        from renderme360.synth import synthesize

        synthesize(template, subject="0001", performances=TINY_PERFS, cameras=1, frames=2)
    cs = []
    for n in counts:
        root = tiny_dataset(work / f"tiny_{n}", n // len(TINY_PERFS), template)
        cmd = [*venv_tool(), "extract", str(root), "--dry-run", "--json"]
        cs.append(
            Contender(
                f"dry_run_{n}", f"dry run of {n} performances", lambda o, c=cmd: [*c, "-o", str(o)]
            )
        )
    round_robin(cs, repeat, work)
    rows = []
    for n, c in zip(counts, cs, strict=True):
        s = statistics.median(c.seconds)
        rows.append(
            {
                "performances": n,
                "seconds": s,
                "per_performance_ms": 1000 * s / n,
                "peak_rss_mb": statistics.median(c.rss_kb) / 1024,
                "runs": c.seconds,
            }
        )
    a, b = rows[0], rows[-1]
    marginal = (b["seconds"] - a["seconds"]) / (b["performances"] - a["performances"])
    return {"rows": rows, "marginal_ms": 1000 * marginal}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB, work dir on "
        f"{m['workdir_fs']}; Python {m['python']}, h5py {m['h5py']} / HDF5 {m['hdf5']}.",
        f"Load average (1, 5, 15 min) before {r['load_before']}, after {r['load_after']}; "
        f"median of {r['repeat']} runs; {r['wall_seconds']:.0f} s in all.",
        "",
        "| memory case | files | s | peak RSS MB | every run, MB |",
        "|---|---:|---:|---:|---|",
    ]
    mem = r["memory"]
    for row in mem["rows"]:
        out.append(
            f"| extract images+masks, 60 x {row['frames']} | {row['files']:,} | "
            f"{row['seconds']:.1f} | {row['peak_rss_mb']:.0f} | "
            f"{', '.join(map(str, row['runs_rss_mb']))} |"
        )
    fl, ve, su = r["floor"], r["verify"], r["survey"]
    out += [
        "",
        f"| per-file case, 60 x {fl['frames']} ({fl['files']:,} files) | s | every run, s |",
    ]
    out.append("|---|---:|---|")
    for c in fl["contenders"].values():
        runs = ", ".join(f"{x:.2f}" for x in c["runs"])
        out.append(f"| {c['label']} | {c['median']:.2f} | {runs} |")
    out += ["", f"| verify case ({ve['files']:,} files) | s | every run, s | peak RSS MB |"]
    out.append("|---|---:|---|---:|")
    for c in ve["contenders"].values():
        runs = ", ".join(f"{x:.2f}" for x in c["runs"])
        out.append(f"| {c['label']} | {c['median']:.2f} | {runs} | {c['rss_mb']:.0f} |")
    out += ["", "| dry run | performances | s | ms per performance | peak RSS MB |"]
    out.append("|---|---:|---:|---:|---:|")
    for row in su["rows"]:
        out.append(
            f"| extract --dry-run --json | {row['performances']:,} | {row['seconds']:.2f} | "
            f"{row['per_performance_ms']:.1f} | {row['peak_rss_mb']:.0f} |"
        )

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    out += [
        "",
        "| target | value | |",
        "|---|---:|---|",
        f"| peak RSS < {TARGET_RSS_MB} MB | {mem['max_rss_mb']:.0f} MB | "
        f"{verdict(mem['max_rss_mb'] < TARGET_RSS_MB)} |",
        f"| peak RSS {mem['rows'][1]['frames']:,} / {mem['rows'][0]['frames']:,} frames "
        f"<= {TARGET_FLAT} | {mem['ratio_1000_250']:.2f} | "
        f"{verdict(mem['ratio_1000_250'] <= TARGET_FLAT)} |",
        f"| extract / floor <= {TARGET_FLOOR_RATIO} | {fl['ratio']:.2f} | "
        f"{verdict(fl['ratio'] <= TARGET_FLOOR_RATIO)} |",
        f"| (extract - survey) / floor | {fl['ratio_without_survey']:.2f} | information |",
        f"| verify / hash loop <= {TARGET_VERIFY_RATIO} | {ve['ratio']:.2f} | "
        f"{verdict(ve['ratio'] <= TARGET_VERIFY_RATIO)} |",
        f"| dry run, ms per performance at {su['rows'][0]['performances']:,} / "
        f"{su['rows'][-1]['performances']:,} (marginal) | "
        f"{su['rows'][0]['per_performance_ms']:.1f} / {su['rows'][-1]['per_performance_ms']:.1f}"
        f" ({su['marginal_ms']:.1f}) | information: linear when they agree |",
    ]
    if len(mem["rows"]) > 2:
        out.append(
            f"| peak RSS, largest / smallest ({mem['rows'][-1]['files']:,} / "
            f"{mem['rows'][0]['files']:,} files) | {mem['ratio_all']:.2f} | information |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="add 60 x 2,500 frames (300,000 files)")
    ap.add_argument("--memory-frames", default="250,1000", help="frames of the memory case")
    ap.add_argument("--floor-frames", type=int, default=600)
    ap.add_argument("--performances", default="100,1000", help="dry-run sizes (multiples of 10)")
    ap.add_argument("--workdir", type=Path, help="default: a new folder under the temp dir")
    ap.add_argument("--keep", action="store_true", help="keep synthesised data and outputs")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rm360-sizes-"))
    work.mkdir(parents=True, exist_ok=True)
    # the tool runs as installed: its bytecode cached (a machine may ask Python not to write it)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(work / "pycache"))
    t0 = time.monotonic()
    result: dict[str, Any] = {"machine": machine(work), "repeat": args.repeat}
    result["load_before"] = loadavg()
    frames = [int(x) for x in args.memory_frames.split(",")] + ([2500] if args.full else [])
    try:
        result["memory"] = case_memory(work, frames, args.repeat)
        result["floor"] = case_floor(work, args.floor_frames, args.repeat)
        result["verify"] = case_verify(work, args.floor_frames, args.repeat)
        counts = [int(x) for x in args.performances.split(",")]
        result["survey"] = case_survey(work, counts, args.repeat)
    finally:
        shutil.rmtree(work / "out", ignore_errors=True)
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = loadavg()
    result["wall_seconds"] = time.monotonic() - t0
    text = render(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

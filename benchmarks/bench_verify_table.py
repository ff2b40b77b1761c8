"""Benchmark what ``verify`` costs to *report* many problems: the table against ``--json``.

Usage::

    python benchmarks/bench_verify_table.py [--files 500000] [--repeat 3] [--src DIR]

Builds a performance folder whose ``manifest.jsonl`` lists ``--files`` files that are all
missing (no file is hashed: what is timed is reading the list and reporting), then runs
``renderme360 verify DIR`` (the table) and ``renderme360 verify DIR --json`` as fresh processes,
stdout to ``/dev/null``, and prints the median seconds of each and their ratio. ``--src`` puts
another checkout's ``src/`` first on ``PYTHONPATH`` (say the code before a change) so two versions
compare on one machine. Results: ``benchmarks/RESULTS.md`` ("verify: the table of many problems").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(folder: Path, n: int) -> None:
    """A complete-looking performance folder listing ``n`` files, none of which exists."""
    folder.mkdir(parents=True)
    manifest = {"actor": "0026", "performance": "s1_all", "total_files": n}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / ".extraction_complete").write_text("{}")
    with open(folder / "manifest.jsonl", "w") as f:
        for i in range(n):
            cam, frame = divmod(i, 5000)
            path = f"from_raw/images/cam_{cam % 60:02d}/frame_{frame + 5000 * (cam // 60):06d}.jpg"
            f.write(json.dumps({"path": path, "bytes": 1000, "sha256": "0" * 64}) + "\n")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one fresh process (exit 5: problems found, as expected)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - t0
    if proc.returncode != 5:
        raise SystemExit(f"{cmd}: exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=500_000, help="listed files (all missing)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", help="a checkout's src/ to put first on PYTHONPATH")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.src, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="rm360-bench-verify-") as tmp:
        folder = Path(tmp) / "0026_s1_all"
        build(folder, args.files)
        base = [sys.executable, "-m", "renderme360", "verify", str(folder)]
        runs: dict[str, list[float]] = {"table": [], "json": []}
        for _ in range(args.repeat):  # round-robin: a load spike hits both alike
            runs["table"].append(timed(base, env))
            runs["json"].append(timed([*base, "--json"], env))
    table, as_json = (statistics.median(runs[k]) for k in ("table", "json"))
    print(f"{args.files:,} listed files, all missing ({args.repeat} runs, median):")
    print(f"  verify (table)  {table:8.2f} s")
    print(f"  verify --json   {as_json:8.2f} s")
    print(f"  table / json    {table / as_json:8.2f}x")


if __name__ == "__main__":
    main()

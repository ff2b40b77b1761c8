"""Benchmark extraction from object storage: moto's S3 server on loopback (run by hand).

Usage::

    python benchmarks/bench_remote.py [--performances 4 --cameras 8 --frames 8]
                                      [--resolution small|full] [--workdir DIR] [--json out.json]

Synthesises a few performances, uploads them to moto's S3 server on 127.0.0.1 (started and
stopped here; the same WSGI counter the tests use counts object bytes sent), then times, each as
a fresh ``renderme360`` process (Python start-up included):

* ``remote``: ``extract s3://...`` (ranged reads of the blobs, no local copy);
* ``download+local``: s3fs ``get`` of every file (what ``aws s3 cp --recursive`` does) then
  ``extract`` of the local copy: the sum of both;
* ``sample``: ``extract s3://... --sample``: bytes the server sent / bytes of the files;
* ``staging``: ``extract s3://... --staging DIR --staging-max (largest performance x 2)``, the
  next performance copied while one extracts;
* ``download-then-extract, one by one``: for each performance, ``get`` its files, extract,
  delete them (what a bounded-disk script does without prefetch).

Every run's output is checked: the same image/mask files (names and sha256) as a local run.
Loopback S3 has no latency and moto serves from memory on the same 2 cores as the extractor:
the ratios say what each way costs in requests and CPU, not what a WAN link would give.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from remote_servers import S3_ENV, s3_server, upload_tree

from renderme360.synth import synthesize

BUCKET, PREFIX = "bench", "renderme360"


def images(out: Path) -> dict[str, str]:
    """sha256 of every copied image/mask file under an output root, by relative path."""
    found = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.parent.parent.name in ("images", "masks"):
            found[p.relative_to(out).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def cli(*args: object, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run ``renderme360 extract ARGS --json -q``; (seconds, its JSON document)."""
    cmd = [sys.executable, "-m", "renderme360", "extract", *map(str, args), "--json", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return seconds, json.loads(proc.stdout)


def get(url: str, dest: Path) -> float:
    """s3fs ``get`` of a file or prefix into ``dest``; seconds."""
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    t0 = time.perf_counter()
    fs.get(url, str(dest), recursive=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--performances", type=int, default=4)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--resolution", choices=("small", "full"), default="small")
    ap.add_argument("--workdir", help="keep files here (default: a temporary folder)")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench-remote-"))
    names = ["e0", "h0", "s1_all", "s2_all", "s3_all", "s4_all", "h1_2bk", "e1"]
    perfs = names[: a.performances]
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    synthesize(data, performances=perfs, cameras=a.cameras, frames=a.frames,
               resolution=a.resolution)  # fmt: skip
    file_bytes = sum(p.stat().st_size for p in data.rglob("*.smc"))
    os.environ.update(S3_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    figures: dict[str, Any] = {
        "performances": len(perfs), "cameras": a.cameras, "frames": a.frames,
        "resolution": a.resolution, "file_bytes": file_bytes,
    }  # fmt: skip
    with s3_server() as (endpoint, counters):
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        upload_tree(data, endpoint, BUCKET, PREFIX)
        url = f"s3://{BUCKET}/{PREFIX}"
        _, _ = cli(data, "-o", work / "local", env=env)
        want = images(work / "local")

        def fresh(name: str) -> Path:
            shutil.rmtree(work / name, ignore_errors=True)
            return work / name

        counters.reset()
        t, _ = cli(url, "-o", fresh("remote"), env=env)
        assert images(work / "remote") == want
        figures["remote_s"] = t
        figures["remote_server_bytes"] = counters.bytes
        figures["remote_requests"] = counters.requests

        counters.reset()
        t_get = get(url, fresh("downloaded"))
        t_ext, _ = cli(work / "downloaded", "-o", fresh("after_download"), env=env)
        assert images(work / "after_download") == want
        figures["download_s"], figures["download_extract_s"] = t_get, t_ext
        figures["download_server_bytes"] = counters.bytes

        counters.reset()
        t, _ = cli(url, "--sample", "-o", fresh("sample"), env=env)
        figures["sample_s"] = t
        figures["sample_fraction"] = counters.bytes / file_bytes

        per_perf = max(
            sum(p.stat().st_size for p in data.rglob(f"*_{name}_*.smc")) for name in perfs
        )
        limit = 2 * per_perf
        counters.reset()
        t, _ = cli(url, "-o", fresh("staged"), "--staging", fresh("staging"),
                     "--staging-max", limit, env=env)  # fmt: skip
        assert images(work / "staged") == want
        figures["staging_s"], figures["staging_max"] = t, limit
        figures["staging_server_bytes"] = counters.bytes

        t0 = time.perf_counter()
        out = fresh("one_by_one")
        for name in perfs:
            tmp = fresh("one")
            for p in sorted(data.rglob(f"*_{name}_*.smc")):
                rel = p.relative_to(data).as_posix()
                get(f"{url}/{rel}", tmp / rel)
            cli(tmp, "-o", out, env=env)
            shutil.rmtree(tmp)
        figures["one_by_one_s"] = time.perf_counter() - t0
        assert images(out) == want
    print_figures(figures)
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1) + "\n")
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_figures(f: dict[str, Any]) -> None:
    mb = 1e6
    print(
        f"{f['performances']} performances, {f['cameras']} cameras x {f['frames']} frames "
        f"({f['resolution']}), {f['file_bytes'] / mb:.1f} MB of SMC files on loopback S3 (moto)"
    )
    both = f["download_s"] + f["download_extract_s"]
    print(
        f"remote extract            {f['remote_s']:7.2f} s  server sent "
        f"{f['remote_server_bytes'] / mb:.1f} MB in {f['remote_requests']} GETs "
        f"({f['remote_server_bytes'] / f['file_bytes']:.3f} x the files)"
    )
    print(
        f"s3fs get + local extract  {both:7.2f} s  ({f['download_s']:.2f} + "
        f"{f['download_extract_s']:.2f}); remote / this = {f['remote_s'] / both:.2f}"
    )
    print(
        f"--sample                  {f['sample_s']:7.2f} s  fetched "
        f"{100 * f['sample_fraction']:.2f} % of the file bytes"
    )
    print(
        f"--staging (max {f['staging_max'] / mb:.1f} MB) {f['staging_s']:7.2f} s  server sent "
        f"{f['staging_server_bytes'] / mb:.1f} MB"
    )
    print(
        f"get, extract, delete 1x1  {f['one_by_one_s']:7.2f} s; staging / this = "
        f"{f['staging_s'] / f['one_by_one_s']:.2f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

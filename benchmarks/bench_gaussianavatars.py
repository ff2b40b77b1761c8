"""Benchmark ``export gaussianavatars --downscale 2`` against the loop a user writes.

Usage::

    python benchmarks/bench_gaussianavatars.py [--cameras 16 --frames 30] [--repeat 3]
                                              [--workers N] [--workdir DIR] [--json out.json]

Synthesises a full-resolution expression take (2448x2048 JPEGs, PNG masks, distorted rig),
extracts images, masks and calibration, then, round-robin for each repeat, times
- ``peer``: per image ``cv2.imread`` (image and mask) + ``cv2.undistort`` (both) +
  ``cv2.resize(INTER_AREA)`` to half size + composite on white + ``cv2.imwrite`` (PNG, image
  and mask), one process; its principal point stays where it was (it does less than the export);
- ``export``: ``export_gaussianavatars(..., downscale=2)``: reduced (DCT) decode, one remap map
  per camera, composite, PNG, in worker processes (pool start-up, FLAME files, JSON included).
Page cache is warm (one untimed round first); medians and the ratio are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

TARGET_SPEEDUP = 2.0


def _extract(data: Path, out: Path, cameras: int, frames: int) -> Path:
    from renderme360.cli import main
    from renderme360.synth import synthesize

    if (out / "0026_e0" / ".extraction_complete").exists():
        return out / "0026_e0"
    synthesize(data, "0026", ["e0"], 21, cameras=cameras, frames=frames, resolution="full")
    argv = ["extract", str(data), "-o", str(out), "-q", "--no-preview", "--no-checksum"]
    argv += ["--modalities", "metadata,calibration,images,masks,flame"]
    assert main(argv) == 0
    return out / "0026_e0"


def peer(perf_dir: Path, dest: Path) -> int:
    """What a user writes: full decode, undistort, resize, composite, PNG; one at a time."""
    import cv2
    import numpy as np

    from renderme360 import load

    perf = load(perf_dir)
    n = 0
    for cam in perf.image_camera_ids:
        c = perf.cameras[cam]
        for frame in perf.image_frame_ids(cam):
            img = cv2.imread(str(perf.image_path(cam, frame)))
            mask = cv2.imread(str(perf.mask_path(cam, frame)), cv2.IMREAD_GRAYSCALE)
            img, mask = cv2.undistort(img, c.K, c.D), cv2.undistort(mask, c.K, c.D)
            h, w = img.shape[:2]
            img = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            a = mask.astype(np.float32)[..., None] / 255.0
            out = (img * a + 255.0 * (1 - a)).astype(np.uint8)
            cv2.imwrite(str(dest / f"{frame:05d}_{cam}.png"), out)
            cv2.imwrite(str(dest / f"{frame:05d}_{cam}_mask.png"), mask)
            n += 1
    return n


def export(perf_dir: Path, dest: Path, workers: int | None) -> int:
    from renderme360 import load
    from renderme360.export import export_gaussianavatars

    s = export_gaussianavatars(load(perf_dir), dest, downscale=2, workers=workers)
    return s.images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ga_"))
    perf_dir = _extract(work / "smc", work / "out", args.cameras, args.frames)
    times: dict[str, list[float]] = {"peer": [], "export": []}
    for rnd in range(args.repeat + 1):  # round 0 warms the page cache, untimed
        for name in ("peer", "export"):
            dest = work / f"dest_{name}"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            t0 = time.perf_counter()
            n = peer(perf_dir, dest) if name == "peer" else export(perf_dir, dest, args.workers)
            dt = time.perf_counter() - t0
            assert n == args.cameras * args.frames, n
            if rnd:
                times[name].append(dt)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["peer"] / med["export"]
    images = args.cameras * args.frames
    print(f"{images} images (2448x2048 -> downscale 2), medians of {args.repeat} rounds:")
    print(f"  peer   {med['peer']:.2f} s  ({1000 * med['peer'] / images:.0f} ms/image)")
    print(f"  export {med['export']:.2f} s  ({1000 * med['export'] / images:.0f} ms/image)")
    verdict = "met" if ratio >= TARGET_SPEEDUP else "NOT met"
    print(f"  peer / export = {ratio:.2f} (target >= {TARGET_SPEEDUP}: {verdict})")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "median": med, "ratio": ratio}))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

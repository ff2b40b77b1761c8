"""``renderme360 export nerfstudio|colmap``: parse, call :mod:`renderme360.export`, render."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

EPILOG = """\
examples:
  renderme360 export nerfstudio OUT/0026_e0 --frames 0                 # one time step
  renderme360 export nerfstudio OUT/0026_e0 --frames 0:300:10 --downscale 4 --masks
  renderme360 export colmap OUT/0026_e0 --frame 0 --downscale 2       # 3D Gaussian Splatting
  renderme360 export colmap DATA --subject 0026 --performance e0 --frame 0

Conventions (principal point, axes, downscale crop) are in README.txt inside every export."""


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``export`` command and its two formats to the top-level subparsers."""
    ex = sub.add_parser(
        "export",
        help="export a performance for NeRF/3DGS training (nerfstudio, COLMAP)",
        description="Write a training-ready view of one performance: nerfstudio/instant-ngp "
        "transforms.json, or a COLMAP sparse model with an images/ folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fmts = ex.add_subparsers(title="formats", metavar="FORMAT")

    def shared(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "perf",
            metavar="PERF",
            help="extracted performance folder (OUT/0026_e0), or a dataset root with "
            "--subject/--performance (read straight from the SMC files)",
        )
        p.add_argument("--subject", help="with a dataset root: subject id, e.g. 0026")
        p.add_argument("--performance", help="with a dataset root: performance, e.g. e0")
        p.add_argument(
            "--cameras", help="ids like 0,25,30-35, or ring:N / front:N (default: all with images)"
        )
        p.add_argument(
            "--downscale",
            type=int,
            default=1,
            choices=(1, 2, 4, 8),
            help="reduce images by this factor (JPEG decoded at reduced size); intrinsics scaled",
        )
        p.add_argument("--masks", action="store_true", help="export masks too")
        p.add_argument("-o", "--output", help="export folder (default: see README.txt / --help)")
        p.add_argument("--workers", type=int, help="processes for --downscale (default: CPUs)")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")
        common(p)

    ns = fmts.add_parser(
        "nerfstudio",
        help="transforms.json (nerfstudio, instant-ngp, dynamic NeRFs)",
        description="nerfstudio/instant-ngp transforms.json, camera_model OPENCV. "
        "Default folder: PERF/exports/nerfstudio_{frames}[_down{k}]/ (from SMC files: "
        "./renderme360_exports/{actor}_{perf}/...).",
    )
    shared(ns)
    ns.add_argument("--frames", help="N or START:STOP[:STEP] (default: every frame with images)")
    ns.set_defaults(func=cmd_nerfstudio)

    co = fmts.add_parser(
        "colmap",
        help="COLMAP sparse model + images/ (3D Gaussian Splatting and most splatting code)",
        description="COLMAP sparse/0 model of one frame, images/cam_XX.jpg, 3D keypoints as "
        "points3D. Default folder: PERF/exports/colmap_{frame}[_down{k}]/ (from SMC files: "
        "./renderme360_exports/{actor}_{perf}/...).",
    )
    shared(co)
    co.add_argument("--frame", type=int, required=True, help="frame index")
    co.add_argument("--text", action="store_true", help="also write the .txt model")
    co.set_defaults(func=cmd_colmap)
    ex.set_defaults(func=lambda args: _no_format(ex))


def _no_format(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _load(args: argparse.Namespace) -> Any:
    from ..errors import UsageError
    from ..loader import load

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    return load(args.perf, subject=args.subject, performance=args.performance)


def cmd_nerfstudio(args: argparse.Namespace) -> int:
    from ..export.run import export_nerfstudio

    perf = _load(args)
    with _ProgressBar(args) as progress:
        summary = export_nerfstudio(
            perf,
            args.output,
            frames=args.frames,
            cameras=args.cameras,
            downscale=args.downscale,
            masks=args.masks,
            workers=args.workers,
            progress=progress,
        )
    return _report(args, summary, "transforms.json")


def cmd_colmap(args: argparse.Namespace) -> int:
    from ..export.run import export_colmap

    perf = _load(args)
    with _ProgressBar(args) as progress:
        summary = export_colmap(
            perf,
            args.frame,
            args.output,
            cameras=args.cameras,
            downscale=args.downscale,
            masks=args.masks,
            text=args.text,
            workers=args.workers,
            progress=progress,
        )
    return _report(args, summary, "sparse/0")


def _report(args: argparse.Namespace, summary: Any, main_file: str) -> int:
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
        return 0
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    if summary.missing:
        print(
            f"note: {len(summary.missing)} camera/frame pairs have no image and are left out "
            f"(first: {summary.missing[0]})",
            file=sys.stderr,
        )
    if args.quiet:
        print(summary.dest)
        return 0
    how = []
    for key in ("linked", "copied", "stored", "reduced", "reused"):
        n = getattr(summary, key)
        if n:
            how.append(f"{n} {key}")
    if summary.format == "nerfstudio" and summary.downscale == 1 and not how:
        how.append("referenced where they lie")
    pts = f", {summary.points3d} points3D" if summary.format == "colmap" else ""
    print(
        f"{summary.format}: {len(summary.cameras)} cameras x {len(summary.frames)} frames, "
        f"{summary.images} images ({', '.join(how)}), {summary.masks} masks{pts}, "
        f"{summary.seconds:.2f} s"
    )
    print(f"wrote {summary.dest}/{main_file} (conventions: {summary.dest}/README.txt)")
    return 0


class _ProgressBar:
    """A rich progress bar for the image work on a terminal; silent otherwise."""

    def __init__(self, args: argparse.Namespace) -> None:
        from ..export.run import Progress

        self.enabled = not (args.quiet or args.json) and sys.stderr.isatty()
        outer = self

        class _P(Progress):
            def start(self, total: int, what: str) -> None:
                outer._start(total, what)

            def advance(self, n: int) -> None:
                outer._advance(n)

            def finish(self) -> None:
                outer._stop()

        self.progress = _P()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        return self.progress

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self, total: int, what: str) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task(what, total=total)

    def _advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

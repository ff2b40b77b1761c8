"""``renderme360 export nerfstudio|colmap|talkinghead|clips``: parse, call the export, render."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from ..config import positive_int
from ..export.video import CROPS
from .render import err_console

EPILOG = """\
examples:
  renderme360 export nerfstudio OUT/0026_e0 --frames 0                 # one time step
  renderme360 export nerfstudio OUT/0026_e0 --frames 0:300:10 --downscale 4 --masks
  renderme360 export colmap OUT/0026_e0 --frame 0 --downscale 2       # 3D Gaussian Splatting
  renderme360 export colmap DATA --subject 0026 --performance e0 --frame 0

Default folder: PERF/exports/{format}_{frames}[_{cameras}][_down{k}]/; from SMC files
./renderme360_exports/{actor}_{perf}/ the same. Conventions (principal point, axes,
downscale crop) are in README.txt inside every export."""


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``export nerfstudio|colmap|talkinghead|clips`` to the top-level subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    ex = sub.add_parser("export", help="export for NeRF/3DGS (nerfstudio, COLMAP) or audio-driven "
                        "training (video)", epilog=EPILOG, formatter_class=raw,
                        description="Write a training-ready view of one performance.")  # fmt: skip
    fmts = ex.add_subparsers(title="formats", metavar="FORMAT", dest="export_format")
    ns = fmts.add_parser("nerfstudio", help="transforms.json (nerfstudio, instant-ngp, NeRFs)")
    ns.add_argument("--frames", help="N or START:STOP[:STEP] (default: every frame with images)")
    co = fmts.add_parser("colmap", help="COLMAP sparse model + images/ (3D Gaussian Splatting)")
    co.add_argument("--frame", type=int, required=True, help="frame index")
    co.add_argument("--text", action="store_true", help="also write the .txt model")
    th = fmts.add_parser("talkinghead", help="one camera of speech takes: ID.mp4 + aud.wav")
    th.add_argument("--camera", required=True, help="camera id, e.g. 25")
    th.add_argument("--name", help="ID: folder and file stem (default: actor_takes)")
    cl = fmts.add_parser("clips", help="short mp4 + 16 kHz wav clips and clips.csv")
    cl.add_argument("--clip-seconds", type=float, default=5.0, help="window (default 5)")
    for p in (ns, co, th, cl):
        if p in (th, cl):
            p.add_argument("--fps", type=positive_int, default=25 if p is th else 16)
            p.add_argument("--size", type=positive_int, default=512, help="pixels (long side)")
            p.add_argument("--crop", choices=CROPS, default=CROPS[p is cl], help="crop")
        perf_help = "extracted performance folder, or a dataset root with --subject/--performance"
        p.add_argument("perf", metavar="PERF", help=perf_help, nargs="+" if p in (th, cl) else None)
        p.add_argument("--subject", help="with a dataset root: subject id, e.g. 0026")
        p.add_argument("--performance", help="with a dataset root: performance, e.g. e0")
        if p is not th:
            p.add_argument("--cameras", help="ids like 0,25,30-35, ring:N / front:N (default: all)")
        if p in (ns, co):
            p.add_argument("--downscale", type=int, default=1, choices=(1, 2, 4, 8),
                           help="reduce images k times (JPEG decoded at reduced size)")  # fmt: skip
            p.add_argument("--masks", action="store_true", help="export masks too")
        p.add_argument("-o", "--output", help="export folder", required=p in (th, cl))
        p.epilog, p.formatter_class = EPILOG, raw
        if p is not th:
            p.add_argument("--workers", type=positive_int, help="processes (default: CPUs)")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")
        common(p)
    ex.set_defaults(command="export", export_format=None, _help=ex.print_help)


def cmd_export(args: argparse.Namespace) -> int:
    """Run one export and print its summary (or JSON)."""
    from ..export import run
    from ..export.talkinghead import video_export
    from ..loader import load, load_many

    if args.export_format is None:
        args._help()
        return 2
    fmt, progress = args.export_format, _progress(args)
    if fmt in ("talkinghead", "clips"):  # several takes; a root gives those selected
        perfs = load_many(args.perf, args.subject, args.performance)
        summary = video_export(fmt, perfs, vars(args), progress)
    else:
        perf = load(args.perf, subject=args.subject, performance=args.performance)
        opts = dict(cameras=args.cameras, downscale=args.downscale, masks=args.masks,
                    workers=args.workers, progress=progress)  # fmt: skip
        if fmt == "colmap":
            summary = run.export_colmap(perf, args.frame, args.output, text=args.text, **opts)
        else:
            summary = run.export_nerfstudio(perf, args.output, frames=args.frames, **opts)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
        return 0
    for note in summary.note_lines():
        print(f"note: {note}", file=sys.stderr)
    print(summary.dest if args.quiet else "\n".join(summary.result_lines()))
    return 0


def _progress(args: argparse.Namespace) -> Any:
    from ..export.run import Progress  # a rich bar on a terminal; silent otherwise

    class Bar(Progress):
        def start(self, total: int, what: str) -> None:
            import rich.progress as rp

            cols = (what, rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeRemainingColumn())
            self.bar = rp.Progress(*cols, console=err_console())
            self.bar.start()
            self.advance = partial(self.bar.advance, self.bar.add_task(what, total=total))
            self.finish = self.bar.stop

    return Progress() if args.quiet or args.json or not sys.stderr.isatty() else Bar()

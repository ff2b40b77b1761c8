"""``renderme360 export FORMAT``: parse, call :mod:`renderme360.export`, render."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..config import CROPS, frame_index, positive_int

if TYPE_CHECKING:
    from ..export import Progress

GA_KEYS = ("size", "background", "val_camera", "flame_model", "max_flame_error")
EPILOG = """\
examples:
  renderme360 export nerfstudio OUT/0026_e0 --frames 0                 # one time step
  renderme360 export nerfstudio OUT/0026_e0 --frames 0:300:10 --downscale 4 --masks
  renderme360 export colmap OUT/0026_e0 --frame 0 --downscale 2       # 3D Gaussian Splatting
  renderme360 export gaussianavatars DATA --subject 0026 --performance e0 --downscale 2
  renderme360 export talkinghead OUT/0026_s1_all OUT/0026_s2_all --camera 25 -o data
  renderme360 export clips DATA --subject 0026 --performance 's*' --cameras 25 -o clips

Default folder: PERF/exports/{format}_{frames}[_{cameras}][_down{k}]/; from SMC files
./renderme360_exports/{actor}_{perf}/ the same. Conventions (principal point, axes,
downscale crop, timing) are in README.txt inside every export."""


class _Summary(Protocol):
    """What the command prints of an export's summary (each export returns its own dataclass)."""

    @property
    def dest(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def note_lines(self) -> list[str]: ...
    def result_lines(self) -> list[str]: ...


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``export nerfstudio|colmap|gaussianavatars|talkinghead|clips`` to the subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    ex = sub.add_parser("export", help="export for NeRF/3DGS (nerfstudio, COLMAP), FLAME avatars "
                        "(GaussianAvatars) or audio-driven training (video)", epilog=EPILOG,
                        formatter_class=raw,
                        description="Write a training-ready view of one performance.")  # fmt: skip
    fmts = ex.add_subparsers(title="formats", metavar="FORMAT", dest="export_format")
    ns = fmts.add_parser("nerfstudio", help="transforms.json (nerfstudio, instant-ngp, NeRFs)")
    ga = fmts.add_parser("gaussianavatars", help="FLAME avatars: GaussianAvatars / VHAP layout")
    for p in (ns, ga):
        p.add_argument("--frames", help="N or START:STOP[:STEP] (default: every frame with images)")
    ga.add_argument("--size", type=positive_int, help="image width (instead of --downscale)")
    ga.add_argument("--background", choices=("white", "black"), default="white")
    ga.add_argument("--val-camera", help="validation camera (default: VHAP's, see README.txt)")
    ga.add_argument("--flame-model", metavar="PKL", help="your FLAME .pkl: error of the fits (mm)")
    ga.add_argument("--max-flame-error", type=float, metavar="MM", help="refuse frames above it")
    co = fmts.add_parser("colmap", help="COLMAP sparse model + images/ (3D Gaussian Splatting)")
    co.add_argument("--frame", type=frame_index, required=True, help="frame index")
    co.add_argument("--text", action="store_true", help="also write the .txt model")
    for p in (ns, co):  # gaussianavatars always writes binary fg_masks/
        p.add_argument("--masks", action="store_true", help="export masks too")
        p.add_argument("--soft-masks", action="store_true", help="reduced masks: keep 0..255")
    th = fmts.add_parser("talkinghead", help="one camera of speech takes: ID.mp4 + aud.wav")
    th.add_argument("--camera", required=True, help="camera id, e.g. 25")
    th.add_argument("--name", help="ID: folder and file stem (default: actor_takes)")
    cl = fmts.add_parser("clips", help="short mp4 + 16 kHz wav clips and clips.csv")
    cl.add_argument("--clip-seconds", type=float, default=5.0, help="window (default 5)")
    for p in (ns, co, ga, th, cl):
        video = p in (th, cl)
        if video:
            p.add_argument("--fps", type=positive_int, default=25 if p is th else 16)
            p.add_argument("--size", type=positive_int, default=512, help="pixels (long side)")
            p.add_argument("--crop", choices=CROPS, default=CROPS[p is cl], help="crop")
        perf_help = "extracted performance folder, or a dataset root with --subject/--performance"
        p.add_argument("perf", metavar="PERF", help=perf_help, nargs="+" if video else None)
        p.add_argument("--subject", help="with a dataset root: subject id, e.g. 0026")
        p.add_argument("--performance", help="with a dataset root: performance, e.g. e0")
        if p is not th:
            p.add_argument("--cameras", help="ids like 0,25,30-35, ring:N / front:N (default: all)")
        if not video:
            p.add_argument("--downscale", type=int, default=1, choices=(1, 2, 4, 8),
                           help="reduce images k times (JPEG decoded at reduced size)")  # fmt: skip
        p.add_argument("-o", "--output", help="export folder", required=video)
        p.epilog, p.formatter_class = EPILOG, raw
        if p is not th:
            p.add_argument("--workers", type=positive_int, help="processes (default: CPUs)")
        p.add_argument("--wait", action="store_true", help="wait for another export into it")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")
        p.add_argument("--allow-incomplete", action="store_true", help="accept an unfinished PERF")
        common(p)
    ex.set_defaults(command="export", export_format=None, _help=ex.print_help)


def cmd_export(args: argparse.Namespace) -> int:
    """Run one export and print its summary (or JSON)."""
    from ..loader import load, load_many

    if args.export_format is None:
        return args._help() or 2  # print_help() returns None
    fmt, progress = args.export_format, _progress(args)
    summary: _Summary
    if fmt in ("talkinghead", "clips"):  # several takes; a root gives those selected
        from ..export.talkinghead import video_export

        perfs = load_many(args.perf, args.subject, args.performance, args.allow_incomplete)
        summary = video_export(fmt, perfs, vars(args), progress)
    else:
        from ..export import export_colmap, export_gaussianavatars, export_nerfstudio

        perf = load(args.perf, args.subject, args.performance,
                    allow_incomplete=args.allow_incomplete)  # fmt: skip
        keys = ("cameras", "downscale", "masks", "workers", "wait", "soft_masks")
        opts = {k: getattr(args, k) for k in keys if hasattr(args, k)} | {"progress": progress}
        if fmt == "colmap":
            summary = export_colmap(perf, args.frame, args.output, text=args.text, **opts)
        else:  # nerfstudio, or gaussianavatars with its own options (GA_KEYS)
            fn = export_nerfstudio if fmt == "nerfstudio" else export_gaussianavatars
            extra = {k: v for k, v in vars(args).items() if k in GA_KEYS}
            summary = fn(perf, args.output, frames=args.frames, **extra, **opts)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1, allow_nan=False))
        return 0
    for note in summary.note_lines():
        print(f"note: {note}", file=sys.stderr)
    print(summary.dest if args.quiet else "\n".join(summary.result_lines()))
    return 0


def _progress(args: argparse.Namespace) -> Progress:
    """A rich bar for the image work on a terminal; silent otherwise."""
    from ..export import Progress
    from .progress import rich_bar

    if args.quiet or args.json or not sys.stderr.isatty():
        return Progress()

    class Bar(Progress):
        def start(self, total: int, what: str) -> None:
            from rich.progress import MofNCompleteColumn

            self.bar = rich_bar(MofNCompleteColumn())
            self.bar.start()
            self.task = self.bar.add_task(what, total=total)

        def advance(self, n: int) -> None:
            self.bar.advance(self.task, n)

        def finish(self) -> None:  # called once, after start()
            self.bar.stop()

    return Bar()

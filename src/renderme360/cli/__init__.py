"""Command line: parse arguments, call the library, render results. Nothing else.

discover -> survey (inventory + plan) -> check space / confirm -> execute -> record / verify
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import DiskFullError, Interrupted, Renderme360Error, UsageError

PROG = "renderme360"
CONFIRM_BYTES = 50 * 10**9
KEEP_PLANNED_TASKS = 200_000  # above this, plans are dropped after the survey and redone
EPILOG_EXTRACT = """\
examples:
  renderme360 extract DATA --subject 0026 --performance e0 -o OUT
  renderme360 extract DATA --subject 0026 -o OUT                 # every performance of 0026
  renderme360 extract DATA -o OUT --performance 's*' --modalities audio,images --cameras ring:8
  renderme360 extract DATA -o OUT --sample                        # a few cameras and frames first
  renderme360 extract --config examples/avatar_research.yaml

Output layout: OUT/{actor}_{perf}/from_anno|from_raw|from_smc/{images,masks,...}; see README.
Re-running the same command resumes an interrupted extraction and skips finished ones."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``renderme360``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except Renderme360Error as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted; finished files are kept: run the same command again to resume")
        return Interrupted.exit_code
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the output filesystem failed us outside a writer (full, read-only)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _error(f"disk full ({exc.filename or 'output'}); free space and re-run to resume")
            return DiskFullError.exit_code
        _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return 1


def _error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING
    if getattr(args, "verbose", 0):
        level = logging.INFO if args.verbose == 1 else logging.DEBUG
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(
        level=level, format=f"{PROG}: %(levelname)s: %(message)s", stream=sys.stderr
    )


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Extract RenderMe360 SMC files into ordinary, byte-exact files "
        "(images, masks, calibration, keypoints, FLAME, UV, scans, audio).",
        epilog="Start with: renderme360 demo   (makes synthetic data and extracts it)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
        sp.add_argument("-q", "--quiet", action="store_true", help="only errors and the result")

    ex = sub.add_parser(
        "explore",
        help="inventory of SMC files (writes nothing)",
        description="Probe SMC files and show what each one really holds, and what "
        "a full extraction would write. Writes nothing.",
    )
    ex.add_argument("path", help="dataset root, subject folder, or one .smc file")
    ex.add_argument("--subject", help="only these subjects (comma list)")
    ex.add_argument("--performance", help="only these performances (comma list or globs)")
    ex.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common(ex)
    ex.set_defaults(func=cmd_explore)

    x = sub.add_parser(
        "extract",
        help="extract performances into folders",
        description="Extract the SMC files of one or many performances into the "
        "documented folder layout. Images, masks, UV textures and scan masks are "
        "the stored bytes, byte-identical.",
        epilog=EPILOG_EXTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    x.add_argument("root", nargs="?", help="dataset root (any release layout) or one .smc file")
    x.add_argument("-o", "--output", help="output root (default: ./renderme360_out)")
    x.add_argument("--subject", help="subject id(s), comma list (default: every subject found)")
    x.add_argument(
        "--performance", help="performance(s): comma list or globs like 's*' (default: all)"
    )
    x.add_argument(
        "--modalities",
        help="comma list of: metadata, calibration, images, masks, audio, "
        "keypoints2d, keypoints3d, flame, uv, scan, scan_masks (default: all)",
    )
    x.add_argument(
        "--cameras", help="ids like 0,25,30-35, or ring:N / front:N chosen from calibration"
    )
    x.add_argument("--frames", help="START:STOP[:STEP] frame indices, for every per-frame modality")
    x.add_argument(
        "--sample",
        action="store_true",
        help=f"start small: --cameras {'ring:4'} --frames {'0:30:10'} unless given",
    )
    lay = x.add_mutually_exclusive_group()
    lay.add_argument(
        "--layout",
        choices=("separate", "combined"),
        help="separate (default): from_anno/ from_raw/ folders; combined: one merged tree",
    )
    lay.add_argument(
        "--separate",
        dest="layout",
        action="store_const",
        const="separate",
        help="alias of --layout separate",
    )
    lay.add_argument(
        "--combine",
        "--combined",
        dest="layout",
        action="store_const",
        const="combined",
        help="alias of --layout combined",
    )
    x.add_argument(
        "--image-mode",
        choices=("copy", "reencode"),
        help="copy stored bytes (default) "
        "or decode and re-encode (lossy, slow; only if you need it)",
    )
    x.add_argument("--jpeg-quality", type=int, default=95, help="with --image-mode reencode (95)")
    x.add_argument(
        "--no-checksum",
        action="store_true",
        help="skip sha256 in the manifest (enables kernel-side copies)",
    )
    x.add_argument(
        "--no-preview",
        dest="preview",
        action="store_false",
        default=None,
        help="do not write visualization/ previews",
    )
    x.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: CPU cores; 1 when under 256 MB is left to write)",
    )
    x.add_argument("--scheduler", help="dask.distributed scheduler address (needs [cluster] extra)")
    x.add_argument("--config", help="YAML job file; flags given here override it")
    x.add_argument(
        "--dry-run", action="store_true", help="print the plan and its size; write nothing"
    )
    x.add_argument("-y", "--yes", action="store_true", help="do not ask before large extractions")
    x.add_argument(
        "--force", action="store_true", help="extract even if free space looks too small"
    )
    x.add_argument(
        "--sync",
        action="store_true",
        help="flush written data to disk before marking each performance complete "
        "(network filesystems, power-loss safety; slower)",
    )
    x.add_argument(
        "--wait",
        action="store_true",
        help="wait for another process extracting the same performance",
    )
    x.add_argument("--json", action="store_true", help="print the result as JSON")
    common(x)
    x.set_defaults(func=cmd_extract)

    v = sub.add_parser(
        "verify",
        help="re-check extracted files against manifest (and source)",
        description="Check every file listed in manifest.json (size, sha256) and, "
        "with --source, against the stored bytes of the SMC files.",
    )
    v.add_argument("folders", nargs="+", help="OUT/{actor}_{perf} folder(s)")
    v.add_argument("--source", help="dataset root holding the SMC files")
    v.add_argument("--json", action="store_true", help="print JSON")
    common(v)
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser(
        "synth",
        help="write synthetic SMC files (for tests and demos)",
        description="Generate faithful synthetic RenderMe360 SMC files.",
    )
    s.add_argument("out", help="output folder")
    s.add_argument("--subject", default="0026")
    s.add_argument("--performances", default="e0,s1_all,h0,h1_2bk")
    s.add_argument("--release", type=int, choices=(21, 500), default=21)
    s.add_argument("--cameras", type=int, default=4, help="cameras holding images (1..60)")
    s.add_argument("--frames", type=int, default=3)
    s.add_argument("--resolution", choices=("small", "full"), default="small")
    s.add_argument("--seed", type=int, default=0)
    common(s)
    s.set_defaults(func=cmd_synth)

    d = sub.add_parser(
        "demo",
        help="synthesise a small subject and extract it",
        description="Make synthetic SMC files for one subject and extract them.",
    )
    d.add_argument(
        "out", nargs="?", default="renderme360-demo", help="folder (default: ./renderme360-demo)"
    )
    d.add_argument("--workers", type=int, default=None)
    common(d)
    d.set_defaults(func=cmd_demo)
    return p


# ---------------------------------------------------------------------------- explore
def cmd_explore(args: argparse.Namespace) -> int:
    from ..pipeline.discover import discover
    from ..pipeline.run import Request, survey_all
    from .render import explore_table

    perfs = discover(args.path, args.subject, args.performance)
    req = Request(out_root=Path(os.devnull))
    surveys = survey_all(perfs, req)
    docs = [_explore_doc(s) for s in surveys]
    if args.json:
        print(json.dumps({"root": str(args.path), "performances": docs}, indent=1, default=str))
    else:
        explore_table(docs)
    return 1 if any(f.get("error") for d in docs for f in d["files"].values()) else 0


def _explore_doc(s: Any) -> dict[str, Any]:
    files: dict[str, Any] = {}
    plan = s.plan
    for role, path in s.perf.files.items():
        inv = plan.inventories.get(role) if plan else None
        files[role] = inv.summary() if inv else {"source": {"path": str(path)}, "error": s.error}
    return {
        "actor": s.perf.actor,
        "performance": s.perf.performance,
        "files": files,
        "extract_bytes": plan.total_bytes if plan else 0,
        "extract_files": plan.total_files if plan else 0,
        "extract_bytes_by_modality": plan.bytes_by("modality") if plan else {},
        "warnings": plan.warnings if plan else [],
    }


# ---------------------------------------------------------------------------- extract
def _settings(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Merge config jobs with command-line flags (flags win)."""
    from ..config import load_config

    jobs = load_config(args.config) if args.config else [{}]
    flags = {
        "data_root": args.root,
        "output": args.output,
        "subjects": args.subject,
        "performances": args.performance,
        "cameras": args.cameras,
        "frames": args.frames,
        "modalities": args.modalities,
        "layout": args.layout,
        "workers": args.workers,
        "image_mode": args.image_mode,
        "preview": args.preview,
    }
    merged = []
    for job in jobs:
        m = {**job, **{k: v for k, v in flags.items() if v is not None}}
        if args.sample:
            m.setdefault("cameras", "ring:4")
            m.setdefault("frames", "0:30:10")
        if not m.get("data_root"):
            raise UsageError("no dataset root: give ROOT or data_root in --config")
        m.setdefault("output", "renderme360_out")
        merged.append(m)
    return merged


def cmd_extract(args: argparse.Namespace) -> int:
    from ..output.reports import human_bytes
    from ..pipeline.discover import discover
    from ..pipeline.execute import make_executor
    from ..pipeline.run import Request, check_space, extract_batch, survey_all
    from ..selection import Selection, parse_cameras, parse_frames, parse_modalities
    from ..tasks import Options
    from .render import CliProgress, plan_table, summary_table

    if not 1 <= args.jpeg_quality <= 100:
        raise UsageError("--jpeg-quality must be 1..100")
    jobs = []
    for m in _settings(args):
        selection = Selection(
            parse_modalities(m.get("modalities")),
            parse_cameras(m.get("cameras")),
            parse_frames(m.get("frames")),
        )
        options = Options(m.get("image_mode") or "copy", args.jpeg_quality, not args.no_checksum)
        req = Request(
            Path(m["output"]),
            selection,
            m.get("layout") or "separate",
            options,
            preview=m.get("preview", True) is not False,
            wait=args.wait,
            sync=args.sync,
        )
        perfs = discover(m["data_root"], m.get("subjects"), m.get("performances"))
        jobs.append((req, perfs, m))

    quiet = args.quiet or args.json
    all_outcomes = []
    for req, perfs, m in jobs:
        surveys = survey_all(perfs, req)
        for s in surveys:  # which cameras were chosen and why (information, not a warning)
            for note in s.plan.notes if s.plan and not quiet else []:
                if note != "all cameras":
                    print(f"{s.perf.key}: {note}", file=sys.stderr)
        if args.dry_run:
            if args.json:
                print(json.dumps(_dry_run_doc(surveys, req), indent=1, default=str))
            else:
                plan_table(surveys, req, quiet=False)
            continue
        need, free = check_space(surveys, req.out_root, args.force)
        if not quiet:
            plan_table(surveys, req, quiet=args.quiet, free=free)
        if need > CONFIRM_BYTES and not args.yes:
            _confirm(need)
        if sum(len(s.plan.tasks) for s in surveys if s.plan) > KEEP_PLANNED_TASKS:
            for s in surveys:
                s.compact()  # bound memory: re-plan each performance just before it runs
        executor = make_executor(m.get("workers"), args.scheduler, total_bytes=need)
        progress = CliProgress(
            enabled=not quiet, total_bytes=need, total_files=sum(s.remaining_files for s in surveys)
        )
        _second_interrupt_exits()
        try:
            with progress:
                outcomes = extract_batch(perfs, req, executor, progress, surveys=surveys)
        except KeyboardInterrupt:
            _error(
                f"stopped by Ctrl-C after writing {progress.files:,} files "
                f"({human_bytes(progress.bytes)}) in this run"
            )
            raise
        finally:
            executor.close()
        all_outcomes.extend(outcomes)
    if args.dry_run:
        return 0
    if args.json:
        print(
            json.dumps({"performances": [o.__dict__ for o in all_outcomes]}, indent=1, default=str)
        )
    else:
        summary_table(all_outcomes, quiet=args.quiet)
    failed = [o for o in all_outcomes if o.status == "failed"]
    return 6 if failed else 0


def _second_interrupt_exits() -> None:
    """First Ctrl-C: stop cleanly (KeyboardInterrupt); second: exit at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    count = [0]

    def handler(signum: int, frame: Any) -> None:
        count[0] += 1
        if count[0] == 1:
            raise KeyboardInterrupt
        _error("interrupted twice: exiting now; re-run the same command to resume")
        os._exit(Interrupted.exit_code)

    signal.signal(signal.SIGINT, handler)


def _confirm(need: int) -> None:
    from ..output.reports import human_bytes

    if not sys.stdin.isatty():
        raise UsageError(
            f"this extraction writes {human_bytes(need)}; pass --yes to confirm "
            "(no terminal to ask)"
        )
    answer = input(f"This extraction writes {human_bytes(need)}. Continue? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("cancelled")


def _dry_run_doc(surveys: Sequence[Any], req: Any) -> dict[str, Any]:
    perfs = []
    for s in surveys:
        plan = s.plan
        perfs.append(
            {
                "performance": s.perf.key,
                "status": "complete"
                if s.complete
                else ("unreadable" if plan is None else "planned"),
                "error": s.error,
                "files": plan.total_files if plan else 0,
                "bytes": plan.total_bytes if plan else 0,
                "remaining_files": s.remaining_files,
                "remaining_bytes": s.remaining_bytes,
                "bytes_by_modality": plan.bytes_by("modality") if plan else {},
                "files_by_modality": plan.files_by_modality() if plan else {},
                "cameras": plan.cameras if plan else None,
                "folders": sorted({t.key.rsplit("/", 1)[0] for t in plan.tasks}) if plan else [],
                "notes": plan.notes if plan else [],
                "warnings": plan.warnings if plan else [],
                "out_dir": str(Path(req.out_root) / s.perf.key),
            }
        )
    return {
        "dry_run": True,
        "output": str(req.out_root),
        "layout": req.layout,
        "performances": perfs,
        "total_bytes": sum(p["remaining_bytes"] for p in perfs),
    }


# ---------------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    from ..verify import verify
    from .render import verify_table

    reports = [verify(f, args.source) for f in args.folders]
    if args.json:
        print(json.dumps([r.__dict__ for r in reports], indent=1))
    else:
        verify_table(reports, quiet=args.quiet)
    return 0 if all(r.ok for r in reports) else 5


# ---------------------------------------------------------------------------- synth / demo
def cmd_synth(args: argparse.Namespace) -> int:
    from ..pipeline.discover import split_list
    from ..synth import synthesize

    paths = synthesize(
        args.out,
        args.subject,
        split_list(args.performances),
        args.release,
        args.cameras,
        args.frames,
        args.resolution,
        args.seed,
    )
    if not args.quiet:
        for p in paths:
            print(p)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..pipeline.discover import discover
    from ..pipeline.execute import make_executor
    from ..pipeline.run import Request, extract_batch, survey_all
    from ..synth import synthesize
    from .render import CliProgress, summary_table

    out = Path(args.out)
    data = out / "smc"
    extracted = out / "extracted"
    synthesize(data, "0026", ["e0", "s1_all", "h1_2bk"], 21, cameras=6, frames=4)
    synthesize(data / "release500", "0041", ["s3_all"], 500, cameras=6, frames=4)
    perfs = discover(data)
    req = Request(extracted)
    surveys = survey_all(perfs, req)
    executor = make_executor(args.workers if args.workers else 1)
    progress = CliProgress(
        enabled=not args.quiet,
        total_bytes=sum(s.remaining_bytes for s in surveys),
        total_files=sum(s.remaining_files for s in surveys),
    )
    try:
        with progress:
            outcomes = extract_batch(perfs, req, executor, progress, surveys=surveys)
    finally:
        executor.close()
    summary_table(outcomes, quiet=args.quiet)
    first = extracted / "0026_e0"
    print(
        f"\nSynthetic SMC files: {data}\nExtracted:           {extracted}\n"
        f"Look at:  {first / 'extraction_info.txt'}\n"
        f"          {first / 'visualization'}\n"
        f"Check:    renderme360 verify {first} --source {data}\n"
        f"Explore:  renderme360 explore {data}"
    )
    return 6 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

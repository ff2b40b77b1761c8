"""Command line: parse arguments, call the library, render results. Nothing else.

discover -> survey (inventory + plan) -> check space / confirm -> execute -> record / verify
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import Interrupted, Renderme360Error, Terminated, UsageError
from ..smc.source import redact
from ..textsafe import printable_streams, strict_json
from .export import cmd_export
from .parser import PROG, build_parser

CONFIRM_BYTES = 50 * 10**9


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``renderme360``; returns the process exit code."""
    printable_streams(sys.stdout, sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    as_json = getattr(args, "json", False)
    from ..stops import StopSignals, interrupted_message, requested_stop

    restore = StopSignals().install_until_restored()
    try:
        return int(COMMANDS[args.command](args) or 0)
    except Renderme360Error as exc:
        return _error(exc.cli_message or str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt as exc:
        return _stopped(exc, interrupted_message(args.command), as_json)
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the output filesystem failed us outside a writer (full, read-only)
        if errors.is_disk_full(exc):
            msg = f"disk full ({exc.filename or 'output'}); free space and re-run to resume"
            return _error(msg, errors.DiskFullError.exit_code, as_json)
        msg = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        return _error(msg, 1, as_json)
    except Exception as exc:  # a bug: one line, the traceback only with -v
        logging.getLogger(PROG).info("traceback", exc_info=True)
        stop = requested_stop()  # a stop raised inside C code comes out as another error
        if stop is not None:
            return _stopped(stop, interrupted_message(args.command), as_json)
        msg = f"unexpected error: {type(exc).__name__}: {errors.one_line(exc)} (-v for details)"
        return _error(msg, 1, as_json)
    finally:
        restore()


def _stopped(stop: BaseException, msg: str, as_json: bool) -> int:
    """Exit 143 for SIGTERM, 130 for Ctrl-C, saying what is true of the output."""
    return _error(msg, getattr(stop, "exit_code", Interrupted.exit_code), as_json)


def _error(msg: str, code: int = 1, as_json: bool = False) -> int:
    """One line on stderr (a URL without credentials); with --json also on stdout."""
    print(f"{PROG}: error: {redact(msg)}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": redact(msg), "exit_code": code}, allow_nan=False), flush=True)
    return code


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING
    if getattr(args, "verbose", 0):
        level = logging.INFO if args.verbose == 1 else logging.DEBUG
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(
        level=level, format=f"{PROG}: %(levelname)s: %(message)s", stream=sys.stderr
    )


# ---------------------------------------------------------------------------- explore
def cmd_explore(args: argparse.Namespace) -> int:
    from ..pipeline.discover import discover
    from ..pipeline.documents import explore_document
    from ..pipeline.run import Request, survey_all
    from .render import explore_table

    perfs = discover(args.path, args.subject, args.performance)
    req = Request(out_root=Path(os.devnull))
    surveys = survey_all(perfs, req)
    docs = [explore_document(s) for s in surveys]
    if args.json:
        print(strict_json({"root": redact(str(args.path)), "performances": docs}))
    else:
        explore_table(docs)
    return 1 if any(f.get("error") for d in docs for f in d["files"].values()) else 0


# ---------------------------------------------------------------------------- extract
def cmd_extract(args: argparse.Namespace) -> int:
    from ..config import FLAG_KEYS, merge_settings
    from ..pipeline.discover import discover
    from ..pipeline.documents import dry_run_document
    from ..pipeline.execute import make_executor
    from ..pipeline.run import Request, check_space, survey_all
    from ..pipeline.staging import staging_from_flags
    from ..tasks import Options
    from .render import plan_table, summary_table

    if not 1 <= args.jpeg_quality <= 100:
        raise UsageError("--jpeg-quality must be 1..100")
    jobs = []
    flags = {k: getattr(args, k) for k in FLAG_KEYS}
    for m in merge_settings(args.config, flags, sample=args.sample):
        options = Options(m.get("image_mode") or "copy", args.jpeg_quality, not args.no_checksum)
        req = Request.from_settings(m, options, wait=args.wait, sync=args.sync)
        perfs = discover(m["data_root"], m.get("subjects"), m.get("performances"))
        jobs.append((req, perfs, m))

    quiet = args.quiet or args.json
    all_outcomes, failed_plans = [], False
    retire = _delete_after_verify(args, jobs)
    for req, perfs, m in jobs:
        surveys = survey_all(perfs, req)
        for s in surveys:  # which cameras were chosen and why (information, not a warning)
            for note in s.plan.notes if s.plan and not quiet else []:
                if note != "all cameras":
                    print(f"{s.perf.key}: {note}", file=sys.stderr)
        failed_plans = failed_plans or any(s.error for s in surveys)
        if args.dry_run:
            if args.json:
                print(strict_json(dry_run_document(surveys, req)))
            else:
                plan_table(surveys, req, quiet=False)
            continue
        need, free = check_space(surveys, req.out_root, args.force)
        if not quiet:
            plan_table(surveys, req, quiet=args.quiet, free=free)
        if need > CONFIRM_BYTES and not args.yes:
            _confirm(need)
        staging = staging_from_flags(args.staging, args.staging_max, surveys, args.scheduler)
        executor = make_executor(m.get("workers"), args.scheduler, total_bytes=need)
        outcomes = _run_batch(perfs, req, surveys, executor, quiet, need, (staging, retire))
        all_outcomes.extend(outcomes)
    if args.dry_run:  # a performance that would fail (no match, unreadable) fails the dry run
        return errors.ExtractionFailed.exit_code if failed_plans else 0
    doc = {"performances": [o.__dict__ for o in all_outcomes]}
    if args.json:
        print(strict_json(doc))
    else:
        summary_table(all_outcomes, quiet=args.quiet)
        for line in retire.lines() if retire else []:
            print(line, file=sys.stderr)
    return _batch_exit_code(all_outcomes)


def _delete_after_verify(args: argparse.Namespace, jobs: list[Any]) -> Any:
    """``--delete-source``: what deletes the verified sources (None without the flag)."""
    from ..verify import DeleteAfterVerify

    return DeleteAfterVerify((r, p) for r, p, _ in jobs) if args.delete_source else None


def _run_batch(
    perfs: Sequence[Any],
    req: Any,
    surveys: Sequence[Any],
    executor: Any,
    quiet: bool,
    need: int,
    hooks: Sequence[Any] = (),
) -> list[Any]:
    """Run a surveyed batch with a progress bar; Ctrl-C or SIGTERM says what was written, then
    stops (SIGTERM terminates worker processes at once). ``hooks`` (staging, delete after
    verify; None when not asked) run before and after each performance."""
    from ..output.reports import human_bytes
    from ..pipeline.run import extract_batch
    from ..stops import StopSignals
    from .progress import CliProgress

    total_files = sum(s.remaining_files for s in surveys)
    progress = CliProgress(enabled=not quiet, total_bytes=need, total_files=total_files)
    stopping = StopSignals().install()
    stopping.executor = executor
    try:
        with progress:
            return extract_batch(
                perfs,
                req,
                executor,
                progress,
                surveys=surveys,
                before=lambda r, s: [h.before(r, s) for h in hooks if hasattr(h, "before")],
                after=lambda r, s, o: [h.after(r, s, o) for h in hooks if h],
            )
    except KeyboardInterrupt as exc:
        executor.terminate()  # workers would otherwise finish their units first
        _error(
            f"stopped by {'SIGTERM' if isinstance(exc, Terminated) else 'Ctrl-C'} after writing "
            f"{progress.files:,} files ({human_bytes(progress.bytes)}) in this run"
        )
        raise
    finally:
        stopping.executor = None
        executor.close()
        for h in hooks:
            if hasattr(h, "close"):
                h.close()


def _batch_exit_code(outcomes: Sequence[Any]) -> int:
    """The batch's exit code; a locked performance is also named on stderr, in any format."""
    from ..pipeline.run import batch_exit_code

    for o in outcomes:
        if o.status == "locked":
            _error(o.error)
    return batch_exit_code(outcomes)


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


# ---------------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    from ..verify import verify_many
    from .render import verify_table

    reports, skipped = verify_many(args.folders, args.source)
    if args.json:
        print(strict_json([r.__dict__ for r in reports]))
    else:
        verify_table(reports, skipped, quiet=args.quiet)
    return 0 if all(r.ok for r in reports) else errors.VerifyError.exit_code


def cmd_check(args: argparse.Namespace) -> int:
    from ..loader import load
    from ..loader.check import check_geometry
    from .render import check_table

    perf = load(args.path, args.subject, args.performance, allow_incomplete=args.allow_incomplete)
    report = check_geometry(perf, args.max_error)
    if args.json:
        print(strict_json(report.to_dict()))
    else:
        check_table(report, show_all=args.all, quiet=args.quiet)
    return 0 if report.ok else errors.VerifyError.exit_code


# ---------------------------------------------------------------------------- synth / demo
def cmd_synth(args: argparse.Namespace) -> int:
    from ..pipeline.discover import split_list
    from ..synth import synthesize

    a, pf = args, split_list(args.performances)
    paths = synthesize(a.out, a.subject, pf, a.release, a.cameras, a.frames, a.resolution, a.seed)
    if not args.quiet:
        for p in paths:
            print(p)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..pipeline.discover import discover
    from ..pipeline.execute import make_executor
    from ..pipeline.run import Request, survey_all
    from ..synth import demo_guide, synthesize
    from .render import summary_table

    out = Path(args.out)
    data = out / "smc"
    extracted = out / "extracted"
    synthesize(data, "0026", ["e0", "s1_all", "h1_2bk"], 21, cameras=6, frames=4)
    synthesize(data / "release500", "0041", ["s3_all"], 500, cameras=6, frames=4)
    perfs = discover(data)
    req = Request(extracted)
    surveys = survey_all(perfs, req)
    executor = make_executor(args.workers if args.workers else 1)
    need = sum(s.remaining_bytes for s in surveys)
    outcomes = _run_batch(perfs, req, surveys, executor, args.quiet, need)
    summary_table(outcomes, quiet=args.quiet)
    print(demo_guide(data, extracted))  # absolute paths, commands runnable without the venv
    return _batch_exit_code(outcomes)


COMMANDS = {
    "explore": cmd_explore,
    "extract": cmd_extract,
    "verify": cmd_verify,
    "check": cmd_check,
    "export": cmd_export,
    "synth": cmd_synth,
    "demo": cmd_demo,
}

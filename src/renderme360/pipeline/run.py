"""Extraction of performances: survey (plan + what is left), run (execute + journal), finish.

``survey`` decides, for each performance, what remains to be written (resume reads the plan and
the journal, never file counts); ``run_performance`` executes it under a lock and writes the
manifest, reports and completion marker; ``extract_batch`` does both for many performances and
keeps going when one fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    DiskFullError,
    ExtractionFailed,
    InsufficientSpaceError,
    LockedError,
    Renderme360Error,
    UsageError,
    is_disk_full,
)
from ..output.layout import EXTRACTION_INFO, JOURNAL, SIZE_SUMMARY, parse_path
from ..output.outdir import OutputDir, Written, free_bytes
from ..output.read import Record, as_record, files_in_place, iter_file_entries, read_marker
from ..output.reports import (
    Tally,
    append_batch_row,
    extraction_info,
    human_bytes,
    size_summary,
)
from ..output.walk import walk
from ..selection import Selection, parse_cameras, parse_frames, parse_modalities
from ..smc.source import source_id
from ..tasks import Options, Unit
from .discover import Performance
from .execute import Executor, SerialExecutor
from .inventory import probe, read_camera_poses
from .plan import Plan, plan_performance, request_fingerprint
from .record import (
    FileListWriter,
    Journal,
    consolidate_journal,
    iter_journal,
    performance_lock,
    recorded_form,
    recorded_scopes,
    remove_marker,
    scan_previous,
    write_manifest,
    write_marker,
)
from .resume import is_current, left_to_do
from .scope import Scope, describe_union

log = logging.getLogger(__name__)
# Room kept free beyond the planned bytes: estimates of arrays and audio may come out a little
# larger, and reports, previews and filesystem blocks take some space too.
SPACE_MARGIN_FRACTION = 0.03
SPACE_MARGIN_BYTES = 4 * 10**6
SPACE_MARGIN_PER_PERFORMANCE = 1 * 10**6  # its reports and previews


def space_margin(need: int, performances: int = 1) -> int:
    """Bytes kept free beyond ``need``: a few percent plus a few MB."""
    return (
        int(need * SPACE_MARGIN_FRACTION)
        + SPACE_MARGIN_BYTES
        + SPACE_MARGIN_PER_PERFORMANCE * max(1, performances)
    )


@dataclass
class Request:
    """What to extract and how: the same for every performance of a batch."""

    out_root: Path
    selection: Selection = field(default_factory=Selection)
    layout: str = "separate"
    options: Options = field(default_factory=Options)
    preview: bool = True
    wait: bool = False
    sync: bool = False  # os.sync() before each completion marker

    @classmethod
    def from_settings(
        cls, m: Mapping[str, Any], options: Options, wait: bool = False, sync: bool = False
    ) -> Request:
        """The request of one merged job (see :func:`renderme360.config.merge_settings`)."""
        selection = Selection(
            parse_modalities(m.get("modalities")),
            parse_cameras(m.get("cameras")),
            parse_frames(m.get("frames")),
        )
        preview = m.get("preview", True) is not False
        layout = m.get("layout") or "separate"
        return cls(Path(m["output"]), selection, layout, options, preview, wait, sync)


@dataclass
class Survey:
    """One performance before execution: its plan and what is left to write."""

    perf: Performance
    fingerprint: str
    plan: Plan | None = None
    remaining: list[Unit] = field(default_factory=list)
    complete: bool = False
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)  # files of this performance that failed
    compacted: tuple[int, int] | None = None  # (bytes, files) left, once the plan is dropped

    @property
    def remaining_bytes(self) -> int:
        if self.compacted:
            return self.compacted[0]
        return sum(u.nbytes for u in self.remaining)

    @property
    def remaining_files(self) -> int:
        if self.compacted:
            return self.compacted[1]
        return sum(u.count for u in self.remaining)

    def compact(self) -> None:
        """Drop the plan, keeping its totals, so a large batch holds one plan at a time;
        ``extract_batch`` plans the performance again just before running it."""
        if self.plan is not None:
            self.compacted = (self.remaining_bytes, self.remaining_files)
            self.plan, self.remaining = None, []


@dataclass
class Outcome:
    """How one performance ended: done, skipped (already complete), failed, locked (another
    process is extracting it), or interrupted."""

    key: str
    actor: str
    performance: str
    status: str
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cameras: int = 0
    frames: int = 0
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    out_dir: str = ""
    #: Requests made and bytes read from the source files (survey and extraction).
    fetched: dict[str, int] = field(default_factory=dict)
    #: With ``--delete-source``: each source file, deleted or kept and why (one line each).
    source_files: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The MANIFEST.csv row of this outcome."""
        return {
            "subject": self.actor,
            "performance": self.performance,
            "status": self.status,
            "cameras": self.cameras,
            "frames": self.frames,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "source_files": "; ".join(self.source_files),
        }


@dataclass
class Estimate:
    """Bytes written against a planned total that is partly estimated (arrays, audio): the total
    grows when files come out bigger, so ``done`` never passes it (a bar never passes 100 %)."""

    total: int
    done: int = 0

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        self.total = max(self.total, self.done)

    def text(self, speed: float | None = None) -> str:
        """``1.2 MB of ~3.4 MB, 5.0 MB/s``: sizes in one unit style, the total marked estimated."""
        rate = f", {human_bytes(speed)}/s" if speed else ""
        return f"{human_bytes(self.done)} of ~{human_bytes(self.total)}{rate}"

    def settle(self, overestimate: int | None = None) -> int:
        """Drop an overestimate from the total (default: all of it, the total becomes what was
        written, as when a part is finished); return how much was dropped."""
        before = self.total
        gap = self.total - self.done if overestimate is None else overestimate
        self.total = max(self.done, self.total - max(gap, 0))
        return before - self.total


class Progress:
    """Callbacks the executor calls; the CLI renders them, the library stays silent."""

    def performance_started(self, key: str, files: int, nbytes: int) -> None:
        """A performance begins (files and bytes left to write)."""

    def advance(self, files: int, nbytes: int) -> None:
        """Some files were written."""

    def finishing(self, key: str) -> None:
        """Every data file of a performance is written; previews and the manifest come next."""

    def performance_finished(self, outcome: Outcome) -> None:
        """A performance ended."""


def survey(perf: Performance, req: Request) -> Survey:
    """Plan one performance and subtract what a previous run already wrote."""
    try:
        sources = {role: source_id(p) for role, p in perf.files.items()}
    except OSError as exc:  # vanished, a dangling symlink, no permission
        if exc.filename is None:  # a remote file: the message names it
            return Survey(perf, "", error=str(exc))
        return Survey(perf, "", error=f"{exc.filename}: cannot read ({exc.strerror or exc})")
    fp = request_fingerprint(req.selection, req.layout, req.options, sources)
    out_dir = Path(req.out_root) / perf.key
    refuse_other_form(out_dir, req)
    s = Survey(perf, fp)
    marker = read_marker(out_dir)
    if marker is not None and marker.get("fingerprint") == fp and files_in_place(out_dir):
        s.complete = True
        return s
    poses = req.selection.needs_camera_poses
    inventories = {role: probe(p, role, camera_poses=poses) for role, p in perf.files.items()}
    readable = [inv for inv in inventories.values() if inv.ok]
    if not readable:
        s.error = "; ".join(inv.error or "" for inv in inventories.values())
        return s
    # What the readable files hold is still extracted, but the performance cannot be complete.
    s.unreadable = [inv.error or inv.source.path for inv in inventories.values() if not inv.ok]
    previous = previous_scopes(out_dir)
    s.plan = plan_performance(
        perf, inventories, req.out_root, req.selection, req.layout, req.options, previous
    )
    s.remaining = left_to_do(s.plan, scan_previous(out_dir, is_current(s.plan)))
    if covered_by_complete_folder(s, marker, out_dir):
        s.complete = True  # a narrower selection into a complete folder: nothing to change
    return s


def refuse_other_form(out_dir: Path, req: Request) -> None:
    """UsageError (exit 2) when ``out_dir`` already holds an extraction of another
    ``--layout`` or ``--image-mode``: two layouts in one folder would shadow each other (the
    loader reads one), and two image modes would rewrite every image."""
    if not out_dir.is_dir():
        return
    held = recorded_form(out_dir)
    for key, flag, asked in (
        ("layout", "--layout", req.layout),
        ("image_mode", "--image-mode", req.options.image_mode),
    ):
        there = held.get(key)
        if there is not None and there != asked:
            raise UsageError(
                f"{out_dir} already holds an extraction with {flag} {there}; this run asks for "
                f"{flag} {asked}: use {flag} {there.split(' and ')[0]}, or another output "
                "folder (-o)"
            )


def previous_scopes(out_dir: Path) -> list[Scope]:
    """The selections a folder already holds (union rule: a new run adds to them)."""
    if not out_dir.is_dir():
        return []
    scopes = [Scope.from_record(d) for d in recorded_scopes(out_dir)]
    return [s for s in scopes if s is not None]


def covered_by_complete_folder(s: Survey, marker: dict[str, Any] | None, out_dir: Path) -> bool:
    """Whether a complete folder already holds everything this run would write, with the same
    content: then nothing (not even the reports) is rewritten."""
    return (
        marker is not None
        and s.plan is not None
        and not s.remaining
        and not s.unreadable
        and files_in_place(out_dir)
    )


def check_space(surveys: Sequence[Survey], out_root: Path, force: bool = False) -> tuple[int, int]:
    """(bytes needed, bytes free); raise InsufficientSpaceError unless it fits or ``force``."""
    need = sum(s.remaining_bytes for s in surveys)
    free = free_bytes(out_root)
    margin = space_margin(need, sum(1 for s in surveys if s.remaining_bytes))
    if need and need + margin > free and not force:
        raise InsufficientSpaceError(
            f"the extraction needs {human_bytes(need + margin)} ({human_bytes(need)} of files "
            f"+ {human_bytes(margin)} for estimates, reports and previews) but {out_root} has "
            f"{human_bytes(free)} free; free space, narrow the selection, or pass --force"
        )
    return need, free


def run_performance(
    s: Survey, req: Request, executor: Executor, progress: Progress | None = None
) -> Outcome:
    """Execute what a survey left to do, then record it; never raises for a per-file problem."""
    progress = progress or Progress()
    perf = s.perf
    out_dir = Path(req.out_root) / perf.key
    outcome = Outcome(perf.key, perf.actor, perf.performance, "done", out_dir=str(out_dir))
    if s.complete:
        outcome.status = "skipped"
        _fill_counts(outcome, out_dir)
        return outcome
    if s.plan is None:
        outcome.status, outcome.error = "failed", s.error or "nothing readable"
        return outcome
    plan = s.plan
    outcome.warnings = list(plan.warnings)
    start = time.monotonic()
    out = OutputDir(out_dir)
    with performance_lock(out, wait=req.wait):
        # Another process may have finished part of the work while we waited for the lock.
        remove_marker(out_dir)
        out.clean_tmp()
        state = consolidate_journal(out_dir, is_current(plan))
        remaining = left_to_do(plan, state)
        todo_files = sum(u.count for u in remaining)
        progress.performance_started(perf.key, todo_files, sum(u.nbytes for u in remaining))
        failures: list[str] = []
        journal = Journal(out_dir)
        journal.add_scopes(
            (sc.record() for sc in plan.scopes),
            layout=plan.layout,
            image_mode=plan.options.image_mode,
        )
        fetched = _add_fetched({}, *(inv.fetched for inv in plan.inventories.values()))
        outcome.fetched = fetched
        try:
            written = _execute(
                remaining, out, req.options, executor, journal, failures, progress, fetched
            )
        finally:
            journal.close()
            out.clean_tmp()
            _remove_empty_dirs(out_dir)
        exec_seconds = time.monotonic() - start
        missing = todo_files - written
        tally: Tally | None = None
        if failures or missing or s.unreadable:
            outcome.status = "failed"
            shown = s.unreadable + (
                failures[:3] or ([f"{missing} planned files missing"] if missing else [])
            )
            outcome.error = "; ".join(shown) + (
                f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
            )
        else:
            progress.finishing(perf.key)
            try:
                tally = _finish(plan, out, req, exec_seconds, fetched)
            except BaseException:
                out.clean_tmp()  # nothing half-written stays behind, whatever went wrong
                raise
    outcome.seconds = time.monotonic() - start
    _fill_counts(outcome, out_dir, tally)
    return outcome


def _execute(
    units: list[Unit],
    out: OutputDir,
    options: Options,
    executor: Executor,
    journal: Journal,
    failures: list[str],
    progress: Progress,
    fetched: dict[str, int],
) -> int:
    """Run the units, journaling each result as it comes; return how many files were written
    (counted, not kept: the journal holds the records). ``fetched`` adds up what the units
    read from their sources."""
    written = 0
    for _i, result in executor.run(units, str(out.root), options):
        _add_fetched(fetched, result.fetched)
        new = result.done
        journal.add(new)
        for key, text in result.tracebacks:
            journal.add_error(key, text)
            log.info("unexpected failure of %s:\n%s", key or "a unit", text.rstrip())
        written += len(new)
        failures.extend(msg for _key, msg in result.failed)
        progress.advance(len(new) + len(result.failed), sum(r.bytes for r in new))
        if result.fatal:
            raise DiskFullError(result.fatal)
    return written


def _add_fetched(total: dict[str, int], *more: Mapping[str, int]) -> dict[str, int]:
    """Add request and byte counts into ``total`` (returned)."""
    for m in more:
        for k in ("requests", "bytes"):
            total[k] = total.get(k, 0) + int(m.get(k, 0))
    return total


def _finish(
    plan: Plan, out: OutputDir, req: Request, seconds: float, fetched: Mapping[str, int]
) -> Tally:
    """Previews, reports, the file lists and manifest, and the completion marker last.

    Every pass over the files reads the journal as a stream: nothing per file is kept.
    """
    t0 = time.monotonic()
    extra: list[Written] = []
    holds_calibration = any(s.includes("calibration") for s in plan.scopes)
    for warning in calibration_warnings(out.root) if holds_calibration else ():
        if warning not in plan.warnings:
            log.warning("%s: %s", out.root.name, warning)
            plan.warnings.append(warning)
    doc = plan_document(plan)
    if req.preview:
        try:
            from ..preview import make_previews

            paths = (r.path for r in iter_journal(out.root))
            notes: list[str] = []
            extra.extend(make_previews(out, paths, rig=whole_rig(plan), notes=notes))
            if notes:
                plan.warnings.extend(dict.fromkeys(notes))  # once each, in order
                doc = plan_document(plan)
        except (Renderme360Error, OSError, ValueError) as exc:
            if is_disk_full(exc):
                raise
            plan.warnings.append(f"previews not written: {exc}")
            doc = plan_document(plan)
    listed = FileListWriter(out, plan.layout)
    try:
        listed.add_journal()
        tally = listed.write_records()
        extra.append(out.write_text(EXTRACTION_INFO, extraction_info(doc, tally, plan.layout)))
        extra.append(out.write_text(SIZE_SUMMARY, size_summary(tally, plan.layout)))
        for w in extra:
            listed.add_extra(w)
    except BaseException:
        listed.abort()
        raise
    listed.commit()
    timings = {"extract": seconds, "finish": time.monotonic() - t0}
    doc = {**doc, "fetched": dict(fetched)}
    write_manifest(out, plan_doc=doc, listed=listed, timings=timings)
    write_marker(
        out,
        plan.fingerprint,
        listed.total_files,
        tally.bytes,
        sync=req.sync,
        selections=[sc.record() for sc in plan.scopes],
    )
    with contextlib.suppress(FileNotFoundError):
        (out.root / JOURNAL).unlink()
    out.clean_tmp()
    return tally


def calibration_warnings(out_dir: Path) -> list[str]:
    """One line per extracted camera whose K, D or RT holds NaN or Inf (read back from the
    calibration ``.npz`` files this folder's journal records; they keep the values as stored)."""
    import numpy as np

    from ..camera import calibration_problem

    found: dict[str, str] = {}
    for r in iter_journal(out_dir):
        if r.modality != "calibration" or not r.path.endswith(".npz"):
            continue
        try:
            with np.load(out_dir / r.path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k in ("camera_ids", "K", "D", "RT")}
        except (OSError, ValueError):
            continue  # verify reports an unreadable file; here only the values matter
        if "camera_ids" in arrays:
            ids = [str(c) for c in arrays["camera_ids"].tolist()]
            cams = {c: {k: arrays[k][i] for k in ("K", "D", "RT") if k in arrays}
                    for i, c in enumerate(ids)}  # fmt: skip
        else:
            parsed = parse_path(r.path)
            cams = {parsed.camera: arrays} if parsed and parsed.camera else {}
        for cam, cal in cams.items():
            why = calibration_problem(cal)
            if why:
                found.setdefault(cam, why)
    return [
        f"calibration of camera {cam}: {why}; kept as stored in the .npz files, left out of "
        "cameras.json, of exports and of check"
        for cam, why in sorted(found.items())
    ]


def whole_rig(plan: Plan) -> dict[str, Any] | None:
    """RT of every camera of the rig, read from the source, when the union selects only some
    cameras (the rig preview then shows the rest greyed); None otherwise or if unreadable."""
    if all(sc.cameras is None for sc in plan.scopes):
        return None
    for role in ("anno", "smc", "raw"):
        inv = plan.inventories.get(role)
        if inv is not None and inv.ok and inv.calibration:
            return read_camera_poses(inv)
    return None


def plan_document(plan: Plan) -> dict[str, Any]:
    """What manifest.json and extraction_info.txt say about the plan."""
    return {
        "actor": plan.actor,
        "performance": plan.performance,
        "layout": plan.layout,
        "selection": describe_union(plan.scopes),
        "selections": [sc.record() for sc in plan.scopes],
        "options": {
            "image_mode": plan.options.image_mode,
            "jpeg_quality": plan.options.jpeg_quality,
            "checksum": plan.options.checksum,
        },
        "cameras_selected": plan.cameras,
        "notes": plan.notes,
        "warnings": plan.warnings,
        "sources": {role: src.record() for role, src in plan.sources.items()},
        "source_inventory": {role: inv.summary() for role, inv in plan.inventories.items()},
        "fingerprint": plan.fingerprint,
    }


def _remove_empty_dirs(root: Path) -> None:
    """Remove folders left empty by a failed write (no empty camera folder, ever)."""
    if not root.is_dir() or root.is_symlink():
        return
    for dirpath, dirnames, filenames in walk(root, topdown=False):
        if dirpath != str(root) and not dirnames and not filenames:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        elif dirpath != str(root) and not filenames:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # succeeds only if its subfolders were removed


def _fill_counts(outcome: Outcome, out_dir: Path, tally: Tally | None = None) -> None:
    """Files, bytes, cameras and frames of a performance folder (streamed from its lists)."""
    if tally is None:
        tally = Tally("separate")
        if (out_dir / JOURNAL).is_file():  # a run that stopped: what it recorded so far
            records: Iterable[Record] = iter_journal(out_dir)
        else:
            records = filter(None, map(as_record, iter_file_entries(out_dir)))
        for r in records:
            tally.add(r)
    outcome.files = tally.files
    outcome.bytes = tally.bytes
    outcome.cameras, outcome.frames = len(tally.cameras), len(tally.frames)


#: Above this many planned tasks in a batch, plans are dropped after the survey and redone
#: just before each performance runs (memory stays bounded whatever the batch size).
KEEP_PLANNED_TASKS = 200_000


def bound_memory(surveys: Sequence[Survey]) -> None:
    """Drop the plans of a large batch (keeping their totals); ``extract_batch`` re-plans."""
    if sum(s.plan.total_files for s in surveys if s.plan) > KEEP_PLANNED_TASKS:
        for s in surveys:
            s.compact()


def extract_batch(
    performances: Sequence[Performance],
    req: Request,
    executor: Executor | None = None,
    progress: Progress | None = None,
    surveys: Sequence[Survey] | None = None,
    record_batch: bool = True,
    after: Callable[[Request, Survey, Outcome], object] | None = None,
    before: Callable[[Request, Survey], object] | None = None,
) -> list[Outcome]:
    """Extract many performances; a failure is recorded and the next one goes on.

    ``before`` runs just before a performance (staging points it at local copies); ``after``
    runs when it has ended, before its row is recorded (``--delete-source``
    verifies it there and deletes what it may; staging removes its copies).

    DiskFullError and KeyboardInterrupt stop the batch (the performance in hand stays resumable).
    """
    executor = executor or SerialExecutor()
    progress = progress or Progress()
    outcomes = []
    todo = list(surveys) if surveys is not None else [survey(p, req) for p in performances]
    bound_memory(todo)
    for s in todo:
        started = time.monotonic()
        try:
            if s.compacted:
                s = survey(s.perf, req)
            if before is not None:
                before(req, s)
            outcome = run_performance(s, req, executor, progress)
        except (DiskFullError, KeyboardInterrupt):
            if record_batch:
                stopped = interrupted_outcome(s, req, time.monotonic() - started)
                with contextlib.suppress(OSError):  # the disk may be why we stopped
                    append_batch_row(Path(req.out_root), stopped.row())
            raise
        except LockedError as exc:  # not a failure of the data: another run has it in hand
            outcome = Outcome(
                s.perf.key, s.perf.actor, s.perf.performance, "locked", error=str(exc)
            )
        except Renderme360Error as exc:
            outcome = Outcome(
                s.perf.key, s.perf.actor, s.perf.performance, "failed", error=str(exc)
            )
        except Exception as exc:  # never a bare traceback: this performance fails, others run
            outcome = _unexpected_outcome(s, req, exc)
        if after is not None:
            after(req, s, outcome)
        progress.performance_finished(outcome)
        if record_batch:
            append_batch_row(Path(req.out_root), outcome.row())
        outcomes.append(outcome)
    return outcomes


def interrupted_outcome(s: Survey, req: Request, seconds: float = 0.0) -> Outcome:
    """The MANIFEST.csv row of a performance stopped part-way: what its folder holds so far,
    and the ``seconds`` it ran before it was stopped."""
    out_dir = Path(req.out_root) / s.perf.key
    outcome = Outcome(
        s.perf.key,
        s.perf.actor,
        s.perf.performance,
        "interrupted",
        out_dir=str(out_dir),
        seconds=seconds,
    )
    with contextlib.suppress(OSError):
        _fill_counts(outcome, out_dir)
    return outcome


def batch_exit_code(outcomes: Sequence[Outcome]) -> int:
    """6 when a performance failed, else 4 when one was locked by another process, else 0."""
    if any(o.status == "failed" for o in outcomes):
        return ExtractionFailed.exit_code
    return LockedError.exit_code if any(o.status == "locked" for o in outcomes) else 0


def _unexpected_outcome(s: Survey, req: Request, exc: Exception) -> Outcome:
    """A performance failed by an exception no check anticipated: one line for the summary,
    the traceback under ``-v`` and in the performance's journal."""
    from .execute import Unexpected

    bad = Unexpected.of(exc, s.perf.key)
    log.info("unexpected failure of %s:\n%s", s.perf.key, bad.traceback.rstrip())
    out_dir = Path(req.out_root) / s.perf.key
    if out_dir.is_dir() and not out_dir.is_symlink():
        try:
            journal = Journal(out_dir)
            try:
                journal.add_error("", bad.traceback)
            finally:
                journal.close()
        except (OSError, Renderme360Error):
            log.debug("could not record the traceback in %s", out_dir, exc_info=True)
    return Outcome(s.perf.key, s.perf.actor, s.perf.performance, "failed", error=bad.message)


def survey_all(
    performances: Sequence[Performance],
    req: Request,
    on_each: Callable[[Survey], None] | None = None,
) -> list[Survey]:
    """Survey every performance; a file that cannot be planned becomes a failed survey."""
    out = []
    for p in performances:
        try:
            s = survey(p, req)
        except UsageError:
            raise
        except Renderme360Error as exc:
            s = Survey(p, "", error=str(exc))
        except Exception as exc:  # never a bare traceback: this performance fails, others run
            from .execute import Unexpected

            bad = Unexpected.of(exc, p.key)
            log.info("unexpected failure of %s:\n%s", p.key, bad.traceback.rstrip())
            s = Survey(p, "", error=bad.message)
        if on_each:
            on_each(s)
        out.append(s)
    return out

"""What the CLI shows people: rich tables and progress bars (plain lines when not on a terminal)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..output.reports import fetched_line, human_bytes
from ..verify import VerifyReport, summarise_problems, verify_total

if TYPE_CHECKING:
    from rich.console import Console

    from ..pipeline.run import Outcome

# rich is imported only when a table or a bar is shown: `-q` batch runs never pay for it.


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would assume 80 columns; tables in logs and files may be wider (message
    # lines are printed with soft_wrap: never cut at any width, so they stay greppable). Never
    # markup or emoji codes: names, paths, SMC attributes ("[/x]") are literal; colour: _styled.
    return Console(stderr=stderr, width=None if stream.isatty() else 160, markup=False, emoji=False)


def _styled(*parts: str | tuple[str, str]) -> Any:
    """Literal text; a ``(text, style)`` part is coloured: ``_styled(("bad", "red"), " x")``."""
    from rich.text import Text

    return Text.assemble(*parts)


def _out() -> Console:
    return _console(False)


def err_console() -> Console:
    """The console on standard error (progress bars, warnings)."""
    return _console(True)


def _table(title: str) -> Any:
    from rich.table import Table

    return Table(title=title)


EXPLORE_COLUMNS: tuple[str, ...] = (
    "performance",
    "file",
    "size",
    "img cams",
    "mask cams",
    "frames",
    "audio",
)
EXPLORE_COLUMNS += ("kp2d cams", "kp3d", "FLAME", "UV", "scan", "extract")


def explore_table(docs: Sequence[dict[str, Any]]) -> None:
    """One row per SMC file: what it holds; then the bytes a full extraction would write."""
    t = _table("RenderMe360 SMC inventory")
    for col in EXPLORE_COLUMNS:
        t.add_column(col, justify="left" if col in ("performance", "file") else "right")
    total = 0
    notes = []
    for d in docs:
        first = True
        for role, f in d["files"].items():
            name = f"{d['actor']}_{d['performance']}" if first else ""
            size = human_bytes(f["source"].get("size", 0)) if "size" in f["source"] else "?"
            if f.get("error"):
                t.add_row(name, role, size, _styled(("unreadable", "red")), *[""] * 9)
                notes.append(_styled(("unreadable", "red"), f" {f['error']}"))  # names the file
            else:
                img, msk = f["images"], f["masks"]
                frames = max([*img.values(), *msk.values(), 0])
                audio = f"{f['audio']['seconds']:.1f}s" if f.get("audio") else "-"
                scan = f"{f['scan']['vertices']:,}v" if f.get("scan") else "-"
                kp = (len(f["keypoints2d"]), f["keypoints3d"], f["flame"], f["uv"], scan)
                cells = [str(n) for n in (len(img), len(msk), frames, audio, *kp)]
                extract = human_bytes(d["extract_bytes"]) if first else ""
                t.add_row(name, role, size, *cells, extract)
            first = False
        total += d["extract_bytes"]
        notes.extend(
            _styled(("warning", "yellow"), f" {d['actor']}_{d['performance']}: {w}")
            for w in d.get("warnings", [])
        )
    _out().print(t)
    for n in notes:
        _out().print(n, highlight=False, soft_wrap=True)
    _out().print(f"{len(docs)} performance(s); a full extraction writes {human_bytes(total)}.")


def plan_table(
    surveys: Sequence[Any], req: Any, quiet: bool = False, free: int | None = None
) -> None:
    """What will be written, per performance, before anything is."""
    if quiet:
        return
    t = _table(f"Extraction plan -> {req.out_root}")
    for col in ("performance", "status", "files", "size", "left to write", "modalities"):
        t.add_column(col, justify="right" if col in ("files", "size", "left to write") else "left")
    for s in surveys:
        if s.complete:
            t.add_row(s.perf.key, _styled(("complete", "green")), "", "", "0 B", "")
        elif s.plan is None:
            t.add_row(s.perf.key, _styled(("failed", "red")), "", "", "", s.error or "")
        else:
            p = s.plan
            status = "resume" if s.remaining_files < p.total_files else "new"
            mods = ", ".join(f"{m} {human_bytes(b)}" for m, b in p.bytes_by("modality").items())
            t.add_row(
                s.perf.key,
                status,
                f"{p.total_files:,}",
                human_bytes(p.total_bytes),
                human_bytes(s.remaining_bytes),
                mods,
            )
    _out().print(t)
    need = sum(s.remaining_bytes for s in surveys)
    line = f"To write: {human_bytes(need)} in {sum(s.remaining_files for s in surveys):,} files"
    if free is not None:
        line += f"; free on output filesystem: {human_bytes(free)}"
    _out().print(line + " (images/masks exact, arrays and audio estimated).")
    for s in surveys:
        for w in s.plan.warnings if s.plan else []:
            err_console().print(
                _styled(("warning", "yellow"), f" {s.perf.key}: {w}"), soft_wrap=True
            )


def check_table(report: Any, show_all: bool = False, quiet: bool = False) -> None:
    """The geometry check: a row per camera (text from the report), notes, then the verdict."""
    if not quiet:
        headers, rows, notes = report.table(show_all)
        t = _table(f"Geometry check {report.performance}: 3D keypoints reprojected (pixels)")
        for h in headers:
            t.add_column(h, justify="left" if h == "pose" else "right")
        for row in rows:
            t.add_row(*row, style=None if row[-1].startswith("ok") else "red")
        _out().print(t)
        for note in notes:
            _out().print(note, highlight=False, soft_wrap=True)
    _out().print(
        report.verdict(), style=None if report.ok else "red", highlight=False, soft_wrap=True
    )


def summary_table(outcomes: Sequence[Outcome], quiet: bool = False) -> None:
    """Per performance: done / skipped / failed with reason (one plain line when quiet)."""
    n = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "failed", "locked")}
    line = f"{n['done']} done, {n['skipped']} skipped (already complete), {n['failed']} failed"
    if n["locked"]:
        line += f", {n['locked']} locked by another process"
    line += fetched_line([o.fetched for o in outcomes])
    if quiet and not n["failed"] and not n["locked"]:
        print(line)
        return
    t = _table("Extraction summary")
    for col in ("performance", "status", "files", "size", "seconds", "folder / error"):
        t.add_column(col, justify="right" if col in ("files", "size", "seconds") else "left")
    colour = {"done": "green", "skipped": "cyan", "failed": "red", "locked": "yellow"}
    for o in outcomes:
        c = colour.get(o.status, "white")
        t.add_row(
            o.key,
            _styled((o.status, c)),
            f"{o.files:,}",
            human_bytes(o.bytes),
            f"{o.seconds:.1f}",
            o.error or o.out_dir,
        )
    _out().print(t)
    _out().print(line)


def verify_table(
    reports: Sequence[VerifyReport], skipped: Sequence[str] = (), quiet: bool = False
) -> None:
    """Skipped paths, a line per folder, its first bad files, the rest counted by kind, a total."""
    err_console().print(
        "\n".join(skipped), highlight=False, end="\n" if skipped else "", soft_wrap=True
    )
    for r in reports:
        state = ("OK", "green") if r.ok else (f"{len(r.problems):,} problem(s)", "red")
        src = f", {r.against_source:,} against source" if r.against_source else ""
        head = _styled(f"{r.folder}: ", state, f" ({r.checked:,} files checked{src})")
        lines = summarise_problems(r.problems, "  bad ")  # one print: a print each cost 14x
        _out().print(
            head, *(["\n".join(lines)] if lines else []), sep="\n", highlight=False, soft_wrap=True
        )
    if len(reports) > 1:
        _out().print(verify_total(reports))

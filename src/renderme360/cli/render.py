"""What the CLI shows people: rich tables and progress bars (plain lines when not on a terminal)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..output.reports import human_bytes
from ..pipeline.run import Outcome
from ..pipeline.run import Progress as ProgressBase

if TYPE_CHECKING:
    from rich.console import Console

# rich is imported only when a table or a bar is shown: `-q` batch runs never pay for it.


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would assume 80 columns; tables in logs and files may be wider.
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def _out() -> Console:
    return _console(False)


def _err() -> Console:
    return _console(True)


def _table(title: str) -> Any:
    from rich.table import Table

    return Table(title=title)


EXPLORE_COLUMNS = ("performance", "file", "size", "img cams", "mask cams", "frames", "audio")
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
                t.add_row(name, role, size, "[red]unreadable[/red]", *[""] * 9)
                notes.append(f"[red]unreadable[/red] {f['source']['path']}: {f['error']}")
            else:
                img, msk = f["images"], f["masks"]
                frames = max([*img.values(), *msk.values(), 0])
                audio = f"{f['audio']['seconds']:.1f}s" if f.get("audio") else "-"
                scan = f"{f['scan']['vertices']:,}v" if f.get("scan") else "-"
                t.add_row(
                    name,
                    role,
                    size,
                    str(len(img)),
                    str(len(msk)),
                    str(frames),
                    audio,
                    str(len(f["keypoints2d"])),
                    str(f["keypoints3d"]),
                    str(f["flame"]),
                    str(f["uv"]),
                    scan,
                    human_bytes(d["extract_bytes"]) if first else "",
                )
            first = False
        total += d["extract_bytes"]
        notes.extend(
            f"[yellow]warning[/yellow] {d['actor']}_{d['performance']}: {w}"
            for w in d.get("warnings", [])
        )
    _out().print(t)
    for n in notes:
        _out().print(n, highlight=False)
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
            t.add_row(s.perf.key, "[green]complete[/green]", "", "", "0 B", "")
        elif s.plan is None:
            t.add_row(s.perf.key, "[red]unreadable[/red]", "", "", "", s.error or "")
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
            _err().print(f"[yellow]warning[/yellow] {s.perf.key}: {w}")


def summary_table(outcomes: Sequence[Outcome], quiet: bool = False) -> None:
    """Per performance: done / skipped / failed with reason (one plain line when quiet)."""
    n = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "failed")}
    line = f"{n['done']} done, {n['skipped']} skipped (already complete), {n['failed']} failed"
    if quiet and not n["failed"]:
        print(line)
        return
    t = _table("Extraction summary")
    for col in ("performance", "status", "files", "size", "seconds", "folder / error"):
        t.add_column(col, justify="right" if col in ("files", "size", "seconds") else "left")
    colour = {"done": "green", "skipped": "cyan", "failed": "red"}
    for o in outcomes:
        c = colour.get(o.status, "white")
        t.add_row(
            o.key,
            f"[{c}]{o.status}[/{c}]",
            f"{o.files:,}",
            human_bytes(o.bytes),
            f"{o.seconds:.1f}",
            o.error or o.out_dir,
        )
    _out().print(t)
    _out().print(line)


def verify_table(reports: Sequence[Any], quiet: bool = False) -> None:
    """One line per folder, then each bad file."""
    for r in reports:
        state = "[green]OK[/green]" if r.ok else f"[red]{len(r.problems)} problem(s)[/red]"
        src = f", {r.checked_against_source} against source" if r.checked_against_source else ""
        _out().print(f"{r.folder}: {state} ({r.checked} files checked{src})")
        for p in r.problems:
            _out().print(f"  [red]bad[/red] {p}")


class CliProgress(ProgressBase):
    """Progress bars on a terminal (files, bytes, rate, ETA); a line per performance otherwise."""

    def __init__(self, enabled: bool, total_bytes: int, total_files: int) -> None:
        self.enabled = enabled
        self.files = 0
        self.bytes = 0
        self.tty = enabled and sys.stderr.isatty()
        self._last = 0.0
        self._bar: Any = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                MofNCompleteColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=_err(),
                transient=False,
            )
            self._all = self._bar.add_task("all", total=total_bytes or 1)
            self._cur = None

    def __enter__(self) -> CliProgress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def performance_started(self, key: str, files: int, nbytes: int) -> None:
        if self._bar:
            if self._cur is not None:
                self._bar.remove_task(self._cur)
            self._cur = self._bar.add_task(key, total=nbytes or 1)
        elif self.enabled:
            print(f"{key}: writing {files:,} files ({human_bytes(nbytes)})", file=sys.stderr)

    def advance(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bytes += nbytes
        if self._bar:
            self._bar.advance(self._all, nbytes)
            if self._cur is not None:
                self._bar.advance(self._cur, nbytes)

    def performance_finished(self, outcome: Outcome) -> None:
        if self.enabled and not self._bar:
            print(f"{outcome.key}: {outcome.status} {outcome.error}".rstrip(), file=sys.stderr)

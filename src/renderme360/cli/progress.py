"""Progress on the terminal: the extraction's rich bars, or a plain line per performance;
:func:`rich_bar` builds every bar (the export's too)."""

from __future__ import annotations

import sys
from typing import Any

from ..output.reports import human_bytes
from ..pipeline.run import Estimate, Outcome, Progress
from .render import err_console


def rich_bar(*columns: Any, console: Any = None) -> Any:
    """A rich progress bar on standard error: the task's description (literal: keys, paths), a
    bar, ``columns``, then the time left. Not started: the caller starts and stops it."""
    import rich.progress as rp

    desc = rp.TextColumn("{task.description}", markup=False)
    cols = (desc, rp.BarColumn(), *columns, rp.TimeRemainingColumn())
    return rp.Progress(*cols, console=console or err_console())


class CliProgress(Progress):
    """Bars on a terminal (sizes are :class:`Estimate` s); a line per performance otherwise."""

    def __init__(self, enabled: bool, total_bytes: int, total_files: int, console: Any = None):
        self.enabled, self.files, self.bytes, self._total_files = enabled, 0, 0, total_files
        self._bar: Any = None
        self._est = {"all": Estimate(total_bytes)}
        if enabled and (console is not None or sys.stderr.isatty()):
            import rich.progress as rp

            size = rp.TextColumn("{task.fields[size]}")
            self._bar = rich_bar(rp.TaskProgressColumn(), size, console=console)
            add = self._bar.add_task
            self._ids = {"all": add("all", size=""), "cur": add("", size="", visible=False)}
            self._show("all")

    def __enter__(self) -> CliProgress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def _show(self, name: str, **fields: Any) -> None:
        est, task_id = self._est[name], self._ids[name]
        files = f"{self.files:,}/{self._total_files:,} files  " if name == "all" else ""
        size = files + est.text(next(t.speed for t in self._bar.tasks if t.id == task_id))
        self._bar.update(task_id, total=max(est.total, 1), completed=est.done, size=size, **fields)

    def performance_started(self, key: str, files: int, nbytes: int) -> None:
        self._est["cur"] = Estimate(nbytes)
        if self._bar:
            self._bar.reset(self._ids["cur"], description=key, visible=True)
            self._show("cur")
        elif self.enabled:
            print(f"{key}: writing {files:,} files ({human_bytes(nbytes)})", file=sys.stderr)

    def advance(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bytes += nbytes
        for name, est in self._est.items():
            est.add(nbytes)
            if self._bar:
                self._show(name)

    def finishing(self, key: str) -> None:
        self._est["all"].settle(self._est["cur"].settle())
        if self._bar:
            self._show("cur", description=f"{key}: finishing: previews, manifest")
            self._show("all")
        elif self.enabled:
            print(f"{key}: finishing: previews, manifest", file=sys.stderr)

    def performance_finished(self, outcome: Outcome) -> None:
        if self._bar:
            self._bar.update(self._ids["cur"], description=f"{outcome.key}: {outcome.status}")
        elif self.enabled:
            print(f"{outcome.key}: {outcome.status} {outcome.error}".rstrip(), file=sys.stderr)

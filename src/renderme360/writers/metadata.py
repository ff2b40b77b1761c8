"""Metadata writer: text rendered at planning time (``info.json``, ``info.txt``), written as is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..output.outdir import Written

if TYPE_CHECKING:
    from ..tasks import Task
    from . import WriteContext


def write_text_task(ctx: WriteContext, task: Task) -> Written:
    """Write text rendered at planning time (``task.text``)."""
    return ctx.out.write_text(task.key, task.text or "")

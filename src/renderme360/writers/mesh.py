"""Scan mesh writer: ``scan/mesh.ply`` (format in :mod:`renderme360.formats.ply`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SMCFormatError
from ..formats.ply import write_ply_stream
from ..output.outdir import Written

if TYPE_CHECKING:
    from ..tasks import Task
    from . import WriteContext


def write_ply_task(ctx: WriteContext, task: Task) -> Written:
    """``scan/mesh.ply``."""
    scan = ctx.reader.read_scan()
    if scan is None:
        raise SMCFormatError(f"{ctx.source}: scan disappeared since planning")
    with ctx.out.open_atomic(task.key, ctx.options.checksum) as f:
        write_ply_stream(f, scan["vertex"], scan["vertex_indices"])
    return f.written(task.key)

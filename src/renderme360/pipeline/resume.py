"""Resume: which planned files are already in place and current, and what is left to write."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..output.read import Record, path_exists_with_size
from ..tasks import Unit
from .plan import Plan


def valid_records(out_dir: Path, records: dict[str, Record]) -> dict[str, Record]:
    """Records whose file is still in place with its recorded size."""
    return {k: r for k, r in records.items() if path_exists_with_size(out_dir, r.path, r.bytes)}


def left_to_do(plan: Plan, records: Mapping[str, Record]) -> list[Unit]:
    """The plan's units minus the tasks already done: a record with the same key, variant and
    source identity (size, mtime) means the file is in place and current."""
    units = []
    for unit in plan.units:
        src = unit.source
        todo = [
            t
            for t in unit.tasks
            if not (
                (r := records.get(t.key)) is not None
                and r.variant == t.variant
                and (r.source_size, r.source_mtime_ns) == (src.size, src.mtime_ns)
            )
        ]
        if todo:
            units.append(Unit(unit.role, unit.source, todo))
    return units

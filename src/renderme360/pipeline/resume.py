"""Resume: which planned files are already in place and current, and what is left to write.

Earlier file lists are read as streams (:mod:`.record`); what is kept is one entry per file
already recorded, and nothing at all for a fresh extraction.
"""

from __future__ import annotations

from collections.abc import Callable

from ..output.read import Record
from ..tasks import Unit
from .plan import Plan
from .record import ResumeState


def is_current(plan: Plan) -> Callable[[Record], bool]:
    """Whether a recorded file was written the way this plan would write it: same variant
    (copy, re-encode quality, selection-dependent content) from the same version (size, mtime)
    of the same source file."""
    sources = {role: (src.size, src.mtime_ns) for role, src in plan.sources.items()}
    variants = plan.variants()

    def current(r: Record) -> bool:
        want = variants.get((r.role, r.key))
        variant_ok = (
            r.variant == want
            if want is not None
            else r.variant == (plan.options.variant(r.modality))
        )
        return variant_ok and sources.get(r.role) == (r.source_size, r.source_mtime_ns)

    return current


def left_to_do(plan: Plan, state: ResumeState) -> list[Unit]:
    """The plan's units minus the tasks already done (units untouched when nothing is: a fresh
    run builds no task to decide it)."""
    if not state.done:
        return list(plan.units)
    units = []
    for unit in plan.units:
        left = unit.without(state.is_done)
        if left is not None:
            units.append(left)
    return units

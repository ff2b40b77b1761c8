"""Several performances at once: every take under a root (extracted or SMC), or a list of
paths, selected by subject and performance patterns (the video exports read several takes)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import EmptySelectionError, NotFoundError
from .performance import Performance, load


def load_many(
    paths: Sequence[str | os.PathLike[str]],
    subjects: str | None = None,
    performances: str | None = None,
    allow_incomplete: bool | None = None,
) -> list[Performance]:
    """Each path as :func:`load` opens it; a root holding several performances gives those
    matching ``subjects`` (``"0026,0041"``) and ``performances`` (``"s1_all,s*"``: shell
    patterns, in that order). A selection matching nothing exits 6 naming what exists.
    ``allow_incomplete`` as for :func:`load`."""
    from ..pipeline.discover import split_list

    subs, pats = split_list(subjects), split_list(performances)
    out: list[Performance] = []
    for path in paths:
        found = _candidates(path)
        if found is None:  # one performance (a folder, a file)
            out.append(load(path, allow_incomplete=allow_incomplete))
            continue
        chosen = [k for k in found if not subs or k[0] in subs]
        if pats:
            chosen = [k for p in pats for k in chosen if fnmatch.fnmatchcase(k[1], p)]
        if not chosen:
            names = ", ".join(f"{a}_{p}" for a, p in found[:20]) + (
                " ..." if len(found) > 20 else ""
            )
            raise EmptySelectionError(
                f"{path}: no performance matches subject {subjects or 'any'}, performance "
                f"{performances or 'any'} (performances there: {names or 'none'})"
            )
        out += [
            load(path, subject=a, performance=p, allow_incomplete=allow_incomplete)
            for a, p in dict.fromkeys(chosen)
        ]
    return out


def _candidates(path: str | os.PathLike[str]) -> list[tuple[str, str]] | None:
    """(actor, performance) under a root holding several; None for a single performance (a
    folder, a file, a URL of a file). A URL of a folder lists its SMC files."""
    from ..output.extracted import looks_extracted
    from ..output.layout import parse_performance_dir
    from ..pipeline.discover import find_smc_files, group_performances
    from ..smc.source import RemotePath, as_location

    loc = as_location(path)
    if isinstance(loc, RemotePath):
        if loc.suffix == ".smc":
            return None
        groups, _ = group_performances(find_smc_files(loc))
        return [(g.actor, g.performance) for g in groups]
    root = Path(loc)
    if not root.exists():
        raise NotFoundError(f"{root}: no such file or folder")
    if root.is_file() or looks_extracted(root):
        return None
    extracted = [parse_performance_dir(p.name) for p in sorted(root.iterdir())
                 if looks_extracted(p)]  # fmt: skip
    found = [k for k in extracted if k]
    if not found:
        groups, _ = group_performances(find_smc_files(root))
        found = [(g.actor, g.performance) for g in groups]
    return found

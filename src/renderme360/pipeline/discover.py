"""Find SMC files under a root in any release layout and group them into performances.

Pure functions over paths: nothing here opens an SMC file.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NotFoundError, UsageError
from ..naming import parse_smc_name
from ..output.walk import walk
from ..smc.source import RemotePath, as_location, list_files

log = logging.getLogger(__name__)

SKIP_DIRS = {".git", "__pycache__"}


@dataclass
class Performance:
    """The SMC files of one performance of one actor, by role (``anno``, ``raw``, ``smc``)."""

    actor: str
    performance: str
    files: dict[str, Path | RemotePath] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``{actor}_{performance}``."""
        return f"{self.actor}_{self.performance}"


def find_smc_files(root: str | os.PathLike[str] | RemotePath) -> list[Path] | list[RemotePath]:
    """Every ``*.smc`` file under root (or root itself if it is a file), sorted.

    Symlinked directories are not descended into, so a link cycle cannot hang discovery. A URL
    root (``s3://bucket/prefix``, ``https://host/path/``: :mod:`..smc.source`) is listed
    through fsspec and gives :class:`RemotePath` files.
    """
    location = as_location(root)
    if isinstance(location, RemotePath):
        return list_files(location, ".smc")
    root = location
    if root.is_file():
        return [root] if root.suffix == ".smc" else []
    if not root.is_dir():
        raise NotFoundError(f"{root}: no such file or folder")
    found: list[Path] = []
    for dirpath, dirnames, filenames in walk(root):  # iterative, bounded depth
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        found.extend(Path(dirpath) / f for f in filenames if f.endswith(".smc"))
    return sorted(found)


def group_performances(
    paths: Iterable[Path | RemotePath],
) -> tuple[list[Performance], list[Path | RemotePath]]:
    """Group SMC paths by (actor, performance); return the groups and names not understood.

    When a role appears twice (two copies of the same anno file), the shortest path wins; the
    others are logged (INFO, shown with ``-v``) and left out.
    """
    groups: dict[tuple[str, str], Performance] = {}
    unknown: list[Path | RemotePath] = []
    for path in sorted(paths, key=lambda p: (len(p.parts), str(p))):
        name = parse_smc_name(path.name)
        if name is None:
            unknown.append(path)
            continue
        perf = groups.setdefault(
            (name.actor, name.performance), Performance(name.actor, name.performance)
        )
        if name.role in perf.files:
            log.info("%s: ignored, %s is used for %s", path, perf.files[name.role], perf.key)
        else:
            perf.files[name.role] = path
    ordered = sorted(groups.values(), key=lambda p: (p.actor, _perf_sort_key(p.performance)))
    return ordered, unknown


def _perf_sort_key(perf: str) -> tuple[str, int, str]:
    digits = "".join(ch for ch in perf[1:].split("_")[0] if ch.isdigit())
    return (perf[:1], int(digits) if digits else 0, perf)


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]``; None -> []."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


def select_performances(
    performances: Sequence[Performance],
    subjects: str | Sequence[str] | None = None,
    patterns: str | Sequence[str] | None = None,
) -> list[Performance]:
    """Keep performances matching subject ids and shell-style performance globs.

    An explicitly named subject or performance that matches nothing is an error listing what
    exists, so a typo never silently extracts nothing.
    """
    wanted_subjects = split_list(subjects)
    wanted_perfs = split_list(patterns)
    actors = sorted({p.actor for p in performances})
    for s in wanted_subjects:
        if s not in actors:
            shown = ", ".join(actors[:20]) + (" ..." if len(actors) > 20 else "")
            raise NotFoundError(f"subject {s!r} not found; subjects found: {shown or 'none'}")
    chosen = [p for p in performances if not wanted_subjects or p.actor in wanted_subjects]
    if wanted_perfs:
        names = sorted({p.performance for p in chosen}, key=_perf_sort_key)
        for pat in wanted_perfs:
            if not any(fnmatch.fnmatchcase(n, pat) for n in names):
                raise NotFoundError(
                    f"performance {pat!r} not found; "
                    f"performances found: {', '.join(names) or 'none'}"
                )
        chosen = [
            p
            for p in chosen
            if any(fnmatch.fnmatchcase(p.performance, pat) for pat in wanted_perfs)
        ]
    if not chosen:
        raise UsageError("no SMC files matched the selection")
    return chosen


def discover(
    root: str | os.PathLike[str] | RemotePath,
    subjects: str | Sequence[str] | None = None,
    patterns: str | Sequence[str] | None = None,
) -> list[Performance]:
    """Find, group and select the performances under root."""
    files = find_smc_files(root)
    if not files:
        raise NotFoundError(f"{as_location(root)}: no .smc files found")
    performances, _unknown = group_performances(files)
    if not performances:
        raise NotFoundError(
            f"{as_location(root)}: no .smc file follows the name grammar {{actor}}_{{perf}}.smc"
        )
    return select_performances(performances, subjects, patterns)

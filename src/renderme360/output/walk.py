"""The one folder walk: iterative (no RecursionError however deep), never through symlinks, and
bounded in depth.

Python 3.11's ``os.walk`` (and ``Path.rglob``) recurse once per level: 1,200 nested folders
under a data root, a performance folder or an export destination raised RecursionError. Every
walk of the package goes through :func:`walk`, which keeps a stack instead and does not descend
below :data:`MAX_DEPTH` levels (no dataset or output folder comes near; it is said once per walk).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

#: Folders deeper than this below the walk's root are not descended (said once per walk). The
#: dataset is 3 levels deep, an extracted performance 5, an export 3.
MAX_DEPTH = 64


def _scan(path: str) -> tuple[list[str], list[str], list[str]] | None:
    """(sub-folders to descend, sub-folder names as os.walk lists them, other names) of one
    folder, or None when it cannot be read (os.walk skips those too). A symlink to a folder is
    listed as a folder but never descended."""
    dirs: list[str] = []
    descend: list[str] = []
    files: list[str] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (dirs if is_dir else files).append(entry.name)
                if is_dir and not entry.is_symlink():
                    descend.append(entry.name)
    except OSError:
        return None
    return descend, dirs, files


def walk(
    root: str | os.PathLike[str],
    topdown: bool = True,
    max_depth: int = MAX_DEPTH,
    note: Callable[[str], object] | None = None,
) -> Iterator[tuple[str, list[str], list[str]]]:
    """``(dirpath, dirnames, filenames)`` like ``os.walk(root, topdown, followlinks=False)``,
    without recursion. Top-down, removing names from ``dirnames`` prunes them (as with os.walk);
    bottom-up, every folder comes after the folders inside it. Folders more than ``max_depth``
    levels below ``root`` are listed in their parent but not descended: ``note`` (default: a
    logged warning) is told once, naming the first one."""
    top = os.fspath(root)
    told = False
    stack: list[tuple[str, int]] = [(top, 0)]
    later: list[tuple[str, list[str], list[str]]] = []  # bottom-up: yielded reversed at the end
    while stack:
        path, depth = stack.pop()
        scanned = _scan(path)
        if scanned is None:
            continue
        descend, dirnames, filenames = scanned
        if topdown:
            yield path, dirnames, filenames
            kept = set(dirnames)  # the caller may have pruned them
            descend = [d for d in descend if d in kept]
        else:
            later.append((path, dirnames, filenames))
        if descend and depth >= max_depth:
            if not told:
                told = True
                first = os.path.join(path, descend[0])
                first = first if len(first) <= 200 else f"{first[:120]}...{first[-60:]}"
                message = (
                    f"{top}: folders deeper than {max_depth} levels are not searched "
                    f"(first: {first})"
                )
                (note or log.warning)(message)
            continue
        # reversed onto the stack: folders are visited in the order of dirnames
        stack.extend((os.path.join(path, d), depth + 1) for d in reversed(descend))
    yield from reversed(later)


def remove_tree(root: str | os.PathLike[str]) -> None:
    """Remove ``root`` and everything in it without recursion (``shutil.rmtree`` recurses once
    per level in Python 3.11): symlinks are removed, never followed. Raises OSError as rmtree."""
    for dirpath, dirnames, filenames in walk(root, topdown=False, max_depth=sys.maxsize):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            os.unlink(os.path.join(dirpath, name))
        os.rmdir(dirpath)

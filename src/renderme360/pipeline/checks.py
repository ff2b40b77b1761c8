"""Selection checks against what a performance holds: which cameras a rule resolves to, and
whether the asked cameras and frames select anything (an error) or less than they name (a note).
No file I/O: everything comes from the inventories."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..errors import EmptySelectionError, SMCFormatError, UsageError
from ..modalities import PER_CAMERA, PER_FRAME
from ..selection import Selection, resolve_cameras
from .inventory import FileInventory, frames_held


def _ranges(ids: Sequence[str]) -> str:
    """``00,01,02,05`` -> ``00..02, 05`` (ids of the same width)."""
    out: list[str] = []
    nums = sorted(int(i) for i in ids)
    width = len(ids[0]) if ids else 2
    start = prev = None
    for n in [*nums, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            a, b = f"{start:0{width}d}", f"{prev:0{width}d}"
            out.append(a if start == prev else f"{a}..{b}")
        start = prev = n
    return ", ".join(out)


def _check_cameras_exist(
    key: str, selection: Selection, cameras: Sequence[str], invs: Sequence[FileInventory]
) -> list[str]:
    """Raise when none of the asked camera ids exists; a note for those that do not."""
    held = {m for inv in invs for m in inv.modalities()}
    if not any(m in PER_CAMERA and m in held for m in selection.modalities):
        return []
    existing = {
        c for inv in invs for c in (*inv.images, *inv.masks, *inv.calibration, *inv.scan_masks)
    } | {c for inv in invs for c, fr in inv.keypoints2d.items() if fr}
    with_images = sorted({c for inv in invs for c in inv.images})
    where = (
        f"cameras with images are {_ranges(with_images)}"
        if with_images
        else f"cameras are {_ranges(sorted(existing)) or 'none'}"
    )
    absent = sorted(set(cameras) - existing)
    if absent and len(absent) == len(cameras):
        what = (
            f"camera {absent[0]} does not"
            if len(absent) == 1
            else f"cameras {_ranges(absent)} do not"
        )
        raise EmptySelectionError(f"{what} exist in {key}: {where}")
    return [f"cameras {_ranges(absent)} do not exist in {key} ({where})"] if absent else []


def _frames_held(invs: Sequence[FileInventory], modalities: Iterable[str]) -> set[int]:
    """Every frame index that any of ``modalities`` has data for."""
    have: set[int] = set()
    for inv in invs:
        for m in modalities:
            if m in PER_FRAME:
                have.update(frames_held(inv, m))
    return have


def check_selection_matches(
    key: str,
    selection: Selection,
    cameras: Sequence[str] | None,
    inventories: Iterable[FileInventory],
) -> list[str]:
    """Raise EmptySelectionError when the frames or cameras asked for select nothing this
    performance holds; return notes when they select less than they name (a short take)."""
    invs = list(inventories)
    notes: list[str] = []
    spec = selection.cameras
    if cameras is not None and spec is not None and spec.ids is not None:
        notes.extend(_check_cameras_exist(key, selection, cameras, invs))
    frames = selection.frames
    held = {m for inv in invs for m in inv.modalities()}
    per_frame = [m for m in selection.modalities if m in PER_FRAME and m in held]
    have = _frames_held(invs, per_frame) if frames is not None else set()
    if frames is None or not have:
        return notes
    n_have = len(have)
    span = f"{key} has {n_have} frame{'s' if n_have != 1 else ''} ({min(have)}..{max(have)})"
    chosen = frames.filter(sorted(have))
    if not chosen:
        raise EmptySelectionError(f"frames {frames} select nothing: {span}")
    nominal = frames.nominal()
    if nominal is not None and len(chosen) < nominal:
        n = len(chosen)
        notes.append(
            f"frames {frames} select {n} frame{'s' if n != 1 else ''} "
            f"({', '.join(map(str, chosen))}) of {nominal} named: {span}"
        )
    return notes


def resolve_selection_cameras(
    selection: Selection, inventories: Mapping[str, FileInventory]
) -> tuple[list[str] | None, str]:
    """The camera ids a selection's camera rule names for these inventories (None = all) and
    a note saying how they were chosen; ``ring:N``/``front:N`` use the calibrated poses."""
    spec = selection.cameras
    if spec is None or spec.ids is not None:
        return resolve_cameras(spec, [], None)
    available = sorted(
        {c for inv in inventories.values() for c in inv.images}
        or {c for inv in inventories.values() for c in inv.masks}
    )
    for inv in inventories.values():
        if inv.calibration:  # the first calibrated file decides, as the inventory recorded it
            if inv.calibration_error is not None:
                raise SMCFormatError(inv.calibration_error)
            if inv.camera_rt is None:
                raise UsageError(
                    f"--cameras {spec}: the inventory of {inv.source.path} holds no camera poses "
                    "(probe it with camera_poses=True)"
                )
            return resolve_cameras(spec, available, inv.camera_rt)
    return resolve_cameras(spec, available, None)


__all__ = ["PER_CAMERA", "PER_FRAME", "check_selection_matches", "resolve_selection_cameras"]

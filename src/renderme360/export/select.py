"""What an export takes from a performance: its cameras and frames as asked, the checks of
their poses, the destination folder and the names of both in it. Shared by every export."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..camera import Camera
from ..errors import EmptySelectionError, InvalidIdError, Renderme360Error, UsageError
from ..naming import validate_actor, validate_performance
from ..selection import FrameRange, parse_cameras, resolve_cameras
from .conventions import DOWNSCALES, Intrinsics, intrinsics, rigid_c2w, w2c_from_c2w

if TYPE_CHECKING:
    from ..loader.performance import Performance


def select_cameras(
    perf: Performance, cameras: str | None, command: str = "nerfstudio"
) -> tuple[list[str], str]:
    """Cameras with images and calibration, as asked (ids, ``ring:N``, ``front:N``, or all),
    and a note saying how. An incomplete extracted folder is refused (IncompleteError, exit
    6) unless loaded with ``allow_incomplete=True``; then the note says it."""
    perf.require_complete()
    chosen, note = _select_cameras(perf, cameras, command)
    if not perf.complete:
        note += f"; {perf.folder} is an incomplete extraction (--allow-incomplete)"
    return chosen, note


def _select_cameras(perf: Performance, cameras: str | None, command: str) -> tuple[list[str], str]:
    fmt, _, tail = command.partition(" ")  # "colmap --frame N": the frame follows the ids
    hint = perf.single_file_hint(f"renderme360 export {fmt}", tail)  # before any listing
    refused = perf.calibration_problems  # NaN/Inf in K, D or RT: left out, named in a note
    available = [c for c in perf.image_camera_ids if c not in refused]
    calibrated = perf.cameras
    spec = parse_cameras(cameras)
    chosen, note = resolve_cameras(spec, available, {c: cam.c2w for c, cam in calibrated.items()})
    asked = None if spec is None or spec.ids is None else set(spec.ids)
    unusable = [c for c in refused if c in perf.image_camera_ids and (asked is None or c in asked)]
    left_out = [f"camera {c} left out: its calibration {refused[c]}" for c in unusable]
    if chosen is None:
        chosen = [c for c in available if c in calibrated]
        if not chosen:
            why = "; ".join(left_out) or hint
            raise UsageError(
                f"{perf_name(perf)}: no camera has both images and calibration"
                + (f"; {why}" if why else "")
            )
        return chosen, "; ".join([note, *left_out])
    chosen = [c for c in chosen if c not in unusable]
    if not chosen:
        raise EmptySelectionError(f"{perf_name(perf)}: {'; '.join(left_out)}")
    note = "; ".join([note, *left_out])
    no_images = [c for c in chosen if c not in available]
    if no_images:  # as extract: left out with a note; exit code 6 when nothing is left
        what = f"no images for camera {', '.join(no_images)} (cameras with images: "
        if len(no_images) == len(chosen):
            raise EmptySelectionError(
                f"{perf_name(perf)}: {what}{ids_text(available) or 'none'})"
                + (f"; {hint}" if hint else "")
            )
        chosen = [c for c in chosen if c in available]
        note = f"{note}; {what}{ids_text(available)}): left out"
    no_calib = [c for c in chosen if c not in calibrated]
    if no_calib:
        raise InvalidIdError(
            f"{perf_name(perf)}: no calibration for camera {', '.join(no_calib)}"
            + (f"; {hint}" if hint else "")
        )
    return chosen, note


def ids_text(ids: list[str]) -> str:
    """Camera ids for a message: all of them, or the first 12 and the count."""
    return ", ".join(ids) if len(ids) <= 12 else f"{', '.join(ids[:12])}, ... ({len(ids)})"


def perf_name(perf: Performance) -> str:
    """``{actor}_{performance}``: how messages and file names name a performance."""
    return f"{perf.actor}_{perf.performance}"


def frames_token(rng: FrameRange | None, chosen: list[int] | None = None) -> str:
    """Default folder-name part for a frame selection: ``all``, ``000012``, ``000000-000300``.

    A range reaching past the take (``0:99`` of 3 frames) is named by the frames ``chosen``."""
    if rng is None:
        return "all"
    nominal = rng.nominal()
    if chosen and nominal is not None and len(chosen) < nominal:
        if len(chosen) == 1:
            return f"{chosen[0]:06d}"
        rng = FrameRange(rng.start, min(rng.stop or 0, chosen[-1] + 1), rng.step)
    if rng.stop == rng.start + 1:
        return f"{rng.start:06d}"
    stop = "end" if rng.stop is None else f"{rng.stop:06d}"
    return f"{rng.start:06d}-{stop}" + (f"-s{rng.step}" if rng.step != 1 else "")


def cameras_token(cameras: str | None, exported: list[str] | None = None) -> str:
    """Default folder-name part for a camera selection: ``""`` (all), ``_ring4``, ``_front2``,
    ``_cam22+25+30-35`` (a long list: ``_cam{count}-{hash}``), so that exports of different
    camera selections do not share a folder (and prune each other). An id list is named by the
    cameras ``exported`` (ids left out for lack of images are not in the name)."""
    spec = parse_cameras(cameras)
    if spec is None:
        return ""
    if spec.rule:
        return f"_{spec.rule}{spec.count}"
    ids = sorted(int(c) for c in (exported if exported is not None else spec.ids or ()))
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    text = "+".join(f"{r[0]:02d}" + (f"-{r[-1]:02d}" if len(r) > 1 else "") for r in runs)
    if len(text) > 40:
        text = f"{len(ids)}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return f"_cam{text}"


def default_dest(perf: Performance, fmt: str, token: str, downscale: int) -> Path:
    """``PERF/exports/{fmt}_{token}[_down{k}]`` for an extracted folder; for SMC files
    ``./renderme360_exports/{actor}_{perf}/{fmt}_{token}[_down{k}]`` (the dataset root is often
    read-only and holds no image files to point at)."""
    name = f"{fmt}_{token}" + (f"_down{downscale}" if downscale > 1 else "")
    root = perf.folder
    if root is not None:
        return root / "exports" / name
    actor = validate_actor(perf.actor, "performance")  # ids become a path: grammar checked
    performance = validate_performance(perf.performance, "performance")
    return Path("renderme360_exports") / f"{actor}_{performance}" / name


def asked_dest(dest: str | os.PathLike[str] | None) -> Path | None:
    """The export folder asked for; None for the default. An empty name is refused (it would
    otherwise mean the current folder or, silently, the default)."""
    if dest is None:
        return None
    if not str(dest).strip():
        raise UsageError("the export folder (-o/--output) is an empty name")
    return Path(dest)


def check_downscale(k: int) -> None:
    """``--downscale`` is one of :data:`DOWNSCALES` (else a usage error)."""
    if k not in DOWNSCALES:
        raise UsageError(f"--downscale must be one of {', '.join(map(str, DOWNSCALES))}, got {k}")


def frames_text(frames: list[int]) -> str:
    """Frame indices for README.txt and messages: all of them, or the first..last (count)."""
    if len(frames) <= 10:
        return ", ".join(map(str, frames))
    return f"{frames[0]}..{frames[-1]} ({len(frames)} frames)"


def frame_pairs(
    perf: Performance, cams: list[str], rng: FrameRange | None, masks: bool, notes: list[str]
) -> tuple[list[int], list[tuple[int, str]], list[str]]:
    """Chosen frames, the (frame, camera) pairs with an image, and the pairs without one; a
    range naming more frames than the take holds adds a note.

    No frame with an image in the range, or (with ``masks``) an image without its mask, is an
    error naming what is there: nerfstudio needs ``mask_path`` on every frame or on none."""
    per_cam = {c: set(perf.image_frame_ids(c)) for c in cams}
    every = sorted(set().union(*per_cam.values()))
    chosen = rng.filter(every) if rng else every
    if not chosen:
        raise EmptySelectionError(
            f"{perf_name(perf)}: no images in frames {rng} for cameras {ids_text(cams)} "
            f"(frames with images: {frames_text(every) or 'none'})"
        )
    nominal = rng.nominal() if rng else None
    if nominal is not None and len(chosen) < nominal:
        notes.append(
            f"frames {rng} select {len(chosen)} of the {nominal} frames named "
            f"({frames_text(chosen)}): {perf_name(perf)} has images in frames {frames_text(every)}"
        )
    pairs = [(f, c) for f in chosen for c in cams if f in per_cam[c]]
    missing = [f"camera {c} frame {f}" for f in chosen for c in cams if f not in per_cam[c]]
    if masks:
        mask_frames = {c: set(perf.mask_frame_ids(c)) for c in cams}
        lacking = [(f, c) for f, c in pairs if f not in mask_frames[c]]
        if lacking:
            f, c = lacking[0]
            raise InvalidIdError(
                f"{perf_name(perf)}: --masks: {len(lacking)} of {len(pairs)} images have no mask "
                f"(first: camera {c} frame {f}); choose cameras/frames with masks"
            )
    return chosen, pairs, missing


def check_poses(perf: Performance, cams: list[str]) -> None:
    """Every chosen camera's pose is a rigid 4x4 matrix; the error names the camera."""
    for c in cams:
        try:
            rigid_c2w(perf.cameras[c].c2w)
        except Renderme360Error as exc:
            raise Renderme360Error(f"{perf_name(perf)}: camera {c}: {exc}") from None


def camera_intrinsics(cam: Camera, k: int) -> Intrinsics:
    """The intrinsics of ``cam`` reduced ``k`` times; an error names the camera."""
    try:
        return intrinsics(cam.K, cam.D, cam.width, cam.height, k)
    except Renderme360Error as exc:
        raise Renderme360Error(f"camera {cam.id}: {exc}") from None


def pose_notes(perf: Performance, cams: list[str], frames: list[int]) -> list[str]:
    """A note per camera whose pose looks inverted: most 3D keypoints of the first exported
    frame that has them lie behind it (z <= 0). Nothing without 3D keypoints."""
    try:
        f3, k3 = perf.keypoints3d()
    except Renderme360Error:
        return []
    rows = {int(f): i for i, f in enumerate(np.asarray(f3))}
    frame = next((f for f in frames if f in rows), None)
    if frame is None:
        return []
    pts = np.asarray(k3[rows[frame]], dtype=np.float64).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    notes = []
    for c in cams:
        w2c = w2c_from_c2w(perf.cameras[c].c2w)
        behind = int(((pts @ w2c[:3, :3].T + w2c[:3, 3])[:, 2] <= 0).sum())
        if len(pts) and behind > len(pts) // 2:
            notes.append(
                f"camera {c}: {behind} of {len(pts)} 3D keypoints of frame {frame} lie behind "
                "it; its pose looks inverted (exported as stored; see renderme360 check)"
            )
    return notes

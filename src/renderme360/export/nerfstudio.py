"""nerfstudio / instant-ngp ``transforms.json`` content (per-frame intrinsics, OPENCV model)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .conventions import Intrinsics, c2w_to_nerfstudio


def frame_entry(
    file_path: str,
    intr: Intrinsics,
    c2w_opencv: np.ndarray,
    mask_path: str | None = None,
    camera_id: int | None = None,
    frame_index: int | None = None,
    time: float | None = None,
) -> dict[str, Any]:
    """One ``frames[]`` entry: image path relative to the export, intrinsics (corner-origin
    principal point), distortion, and camera-to-world in nerfstudio's OpenGL axes."""
    k1, k2, p1, p2, k3 = intr.dist
    entry: dict[str, Any] = {"file_path": file_path}
    if mask_path is not None:
        entry["mask_path"] = mask_path
    entry.update(
        fl_x=intr.fx,
        fl_y=intr.fy,
        cx=intr.cx,
        cy=intr.cy,
        w=intr.width,
        h=intr.height,
        k1=k1,
        k2=k2,
        p1=p1,
        p2=p2,
        k3=k3,
        transform_matrix=c2w_to_nerfstudio(c2w_opencv).tolist(),
    )
    if camera_id is not None:
        entry["camera_id"] = camera_id
    if frame_index is not None:
        entry["frame_index"] = frame_index
    if time is not None:
        entry["time"] = time
    return entry


def frame_times(frames: list[int]) -> dict[int, float]:
    """``time`` in [0, 1] proportional to the frame index (first selected 0, last 1)."""
    lo, hi = min(frames), max(frames)
    span = hi - lo
    return {f: (f - lo) / span if span else 0.0 for f in frames}


def transforms(frames: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole file: ``camera_model`` OPENCV, frames, and our own (ignored) metadata keys."""
    doc: dict[str, Any] = {"camera_model": "OPENCV"}
    if extra:
        doc.update(extra)
    doc["frames"] = frames
    return doc

"""nerfstudio / instant-ngp ``transforms.json`` content (per-frame intrinsics, OPENCV model)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .conventions import Intrinsics, c2w_to_nerfstudio


def _json(value: Any) -> str:
    """Strict JSON (no NaN/Infinity: a non-finite value is a bug upstream, never written)."""
    return json.dumps(value, allow_nan=False)


def camera_fields(intr: Intrinsics, c2w_opencv: np.ndarray) -> dict[str, Any]:
    """The per-camera keys of a ``frames[]`` entry: intrinsics (corner-origin principal point),
    distortion, and ``transform_matrix`` (camera-to-world, nerfstudio's OpenGL axes)."""
    k1, k2, p1, p2, k3 = intr.dist
    return {
        "fl_x": intr.fx,
        "fl_y": intr.fy,
        "cx": intr.cx,
        "cy": intr.cy,
        "w": intr.width,
        "h": intr.height,
        "k1": k1,
        "k2": k2,
        "p1": p1,
        "p2": p2,
        "k3": k3,
        "transform_matrix": c2w_to_nerfstudio(c2w_opencv).tolist(),
    }


def frame_entry(
    file_path: str,
    camera: dict[str, Any],
    mask_path: str | None = None,
    camera_id: int | None = None,
    frame_index: int | None = None,
    time: float | None = None,
) -> dict[str, Any]:
    """One ``frames[]`` entry: image path relative to the export, then :func:`camera_fields`,
    then the dynamic-scene keys when given."""
    entry: dict[str, Any] = {"file_path": file_path}
    if mask_path is not None:
        entry["mask_path"] = mask_path
    entry.update(camera)
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


CAMERA_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2", "k3")
_SHARED = frozenset((*CAMERA_KEYS, "transform_matrix"))


def dumps(doc: dict[str, Any]) -> str:
    """JSON text with one line per frame: readable, and fast for 18,000 frames (an indented
    dump runs the pure-Python encoder; here each camera's fields are encoded once)."""
    head = {k: v for k, v in doc.items() if k != "frames"}
    lines = [f" {_json(k)}: {_json(v)}," for k, v in head.items()]
    cache: dict[tuple[Any, ...], str] = {}
    frames = []
    for entry in doc.get("frames", []):
        tm = entry.get("transform_matrix")
        key = (id(tm), *(entry.get(k) for k in CAMERA_KEYS))
        shared = cache.get(key) if tm is not None else None
        if shared is None:
            shared = ", ".join(
                f"{_json(k)}: {_json(entry[k])}"
                for k in (*CAMERA_KEYS, "transform_matrix")
                if k in entry
            )
            if tm is not None:
                cache[key] = shared
        pre, post = {}, {}
        seen_camera = False
        for k, v in entry.items():
            if k in _SHARED:
                seen_camera = True
            elif seen_camera:
                post[k] = v
            else:
                pre[k] = v
        parts = [_json(pre)[1:-1], shared, _json(post)[1:-1]]
        frames.append("  {" + ", ".join(p for p in parts if p) + "}")
    body = ",\n".join(frames)
    return "{\n" + "\n".join(lines) + '\n "frames": [\n' + body + "\n ]\n}\n"

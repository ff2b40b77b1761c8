"""``export nerfstudio``: nerfstudio / instant-ngp ``transforms.json`` (per-frame intrinsics,
OPENCV model) for the chosen cameras and frames, with the images it names placed beside it."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..selection import parse_frames
from .conventions import Intrinsics, c2w_to_nerfstudio
from .placer import Placer
from .readme import nerfstudio_text, readme_text
from .record import finish, staged
from .select import (
    asked_dest,
    camera_intrinsics,
    cameras_token,
    check_downscale,
    check_poses,
    default_dest,
    frame_pairs,
    frames_token,
    pose_notes,
    select_cameras,
)
from .summary import ExportSummary, Progress

if TYPE_CHECKING:
    from ..loader.performance import Performance


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


def export_nerfstudio(
    perf: Performance,
    dest: str | os.PathLike[str] | None = None,
    frames: str | None = None,
    cameras: str | None = None,
    downscale: int = 1,
    masks: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    wait: bool = False,
    soft_masks: bool = False,
) -> ExportSummary:
    """Write ``transforms.json`` (nerfstudio / instant-ngp) for the chosen cameras and frames.

    At downscale 1 ``file_path`` points at the extracted images where they lie (relative to
    the export); from SMC files, and at downscale k, images are written under ``images[_k]/``.
    """
    t0 = time.perf_counter()
    check_downscale(downscale)
    progress = progress or Progress()
    rng = parse_frames(frames)
    cams, note = select_cameras(perf, cameras)
    check_poses(perf, cams)
    notes = [note] if note != "all cameras" else []
    chosen, pairs, missing = frame_pairs(perf, cams, rng, masks, notes)
    if len(chosen) > 1:
        notes.append(
            f"{len(chosen)} frames in one transforms.json: ns-train nerfacto/splatfacto ignore "
            "time and fit them as one static scene; export one frame (--frames N) for them, or "
            "train a dynamic-scene method (README.txt)"
        )
    token = frames_token(rng, chosen) + cameras_token(cameras, cams)
    dest_path = asked_dest(dest) or default_dest(perf, "nerfstudio", token, downscale)
    with staged(dest_path, wait) as (out, previous):
        summary = ExportSummary(
            "nerfstudio", str(out.root), str(perf.source), perf.actor, perf.performance, cams,
            chosen, downscale, missing=missing, notes=notes,
        )  # fmt: skip
        placer = Placer(perf, out, downscale, previous, summary, soft_masks=soft_masks)
        summary.notes.extend(pose_notes(perf, cams, chosen))
        suffix = f"_{downscale}" if downscale > 1 else ""
        times = frame_times(chosen)
        fields = {}
        for c in cams:
            cam = perf.cameras[c]
            fields[c] = camera_fields(camera_intrinsics(cam, downscale), cam.c2w)
        entries = []
        several = len(chosen) > 1
        for f, c in pairs:
            stem = f"cam_{c}/frame_{f:06d}"
            img = placer.place("color", c, f, f"images{suffix}/{stem}", colmap=False)
            msk = (
                placer.place("mask", c, f, f"masks{suffix}/{stem}", colmap=False) if masks else None
            )
            entries.append(
                frame_entry(
                    img,
                    fields[c],
                    mask_path=msk,
                    camera_id=int(c) if several else None,
                    frame_index=f if several else None,
                    time=times[f] if several else None,
                )
            )
        summary.images = len(pairs)
        summary.masks = len(pairs) if masks else 0
        placer.run(progress, workers)
        meta = {
            "actor": perf.actor,
            "performance": perf.performance,
            "downscale": downscale,
            "principal_point": "image corner origin: cx = cx_opencv + 0.5",
            "units": "metres",
        }
        doc = transforms(entries, {"renderme360": meta})
        out.write_bytes("transforms.json", dumps(doc).encode())
        placer.record["transforms.json"] = {}
        body = nerfstudio_text(several, downscale, perf.folder is not None, masks, soft_masks)
        refs = ("transforms.json", placer.refs)
        return finish(out, previous, placer.record, summary, readme_text(summary, body), t0, refs)

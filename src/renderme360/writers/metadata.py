"""Metadata of one source file: ``info.json`` for machines and ``info.txt`` for people.

Rendered at planning time from the inventory (small, exact size), written by ``write_text_task``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..fsutil import Written

if TYPE_CHECKING:
    from ..inventory import FileInventory
    from ..plan import Task
    from ..selection import Selection
    from . import WriteContext


def info_doc(inv: FileInventory) -> dict[str, Any]:
    """The metadata document of one source file."""
    cam = inv.camera_info or {}
    return {
        "actor_id": inv.actor_id,
        "performance": inv.performance,
        "capture_date": inv.capture_date,
        "actor_info": inv.actor_info,
        "camera_info": {
            "num_device": cam.get("num_device"),
            "num_frame": cam.get("num_frame"),
            "resolution": cam.get("resolution"),
            "resolution_order": "[height, width]",
        },
        "source_file": {"path": inv.source.path, "role": inv.role, "bytes": inv.source.size},
        "inventory": {
            "modalities": inv.modalities(),
            "cameras_with_images": sorted(inv.images),
            "cameras_with_masks": sorted(inv.masks),
            "frames_per_camera": {
                "images": {c: len(f) for c, f in sorted(inv.images.items())},
                "masks": {c: len(f) for c, f in sorted(inv.masks.items())},
                "keypoints2d": {c: len(f) for c, f in sorted(inv.keypoints2d.items())},
            },
            "frames": {
                "keypoints3d": len(inv.keypoints3d),
                "flame": len(inv.flame),
                "uv": len(inv.uv),
            },
            "calibrated_cameras": inv.calibration,
            "audio": inv.audio,
            "scan": inv.scan,
            "scan_mask_cameras": inv.scan_masks,
        },
    }


def info_json(inv: FileInventory, selection: Selection) -> str:
    """``info.json`` text (the selection in force is recorded too)."""
    doc = info_doc(inv)
    doc["selection"] = selection.describe()
    return json.dumps(doc, indent=2, default=str) + "\n"


def info_text(inv: FileInventory) -> str:
    """``info.txt``: the same facts, for people."""
    d = info_doc(inv)
    a, c, i = d["actor_info"], d["camera_info"], d["inventory"]
    res = c["resolution"]
    lines = [
        f"RenderMe360 {inv.actor_id}_{inv.performance} ({inv.role} file)",
        f"source: {inv.source.path} ({inv.source.size:,} bytes)",
        f"capture date: {inv.capture_date or 'unknown'}",
        "actor: " + ", ".join(f"{k} {v}" for k, v in a.items()),
        f"cameras: {c['num_device']} devices, {c['num_frame']} frames, "
        + (f"{res[1]}x{res[0]} (width x height)" if res else "resolution unknown"),
        f"modalities held: {', '.join(i['modalities']) or 'none'}",
        f"cameras with images ({len(i['cameras_with_images'])}): "
        + (", ".join(i["cameras_with_images"]) or "none"),
        f"cameras with masks ({len(i['cameras_with_masks'])}): "
        + (", ".join(i["cameras_with_masks"]) or "none"),
        f"frames with 3D keypoints: {i['frames']['keypoints3d']}, FLAME: {i['frames']['flame']}, "
        f"UV textures: {i['frames']['uv']}",
    ]
    if inv.audio:
        lines.append(
            f"audio: {inv.audio['seconds']:.2f} s at {inv.audio['sample_rate']} Hz, "
            f"shape {inv.audio['shape']} {inv.audio['dtype']}"
        )
    if inv.scan:
        lines.append(f"scan: {inv.scan['vertices']:,} vertices, {inv.scan['faces']:,} faces")
    return "\n".join(lines) + "\n"


def write_text_task(ctx: WriteContext, task: Task) -> Written:
    """Write text rendered at planning time (``task.args[0]``)."""
    return ctx.out.write_text(task.key, task.args[0])

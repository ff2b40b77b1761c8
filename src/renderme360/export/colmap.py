"""``export colmap``: a COLMAP sparse model of one frame (:mod:`.colmap_model` writes its
files), the images and masks it names, and points3D from the frame's keypoints."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np

from ..errors import EmptySelectionError, InvalidIdError, UsageError
from ..selection import parse_cameras
from . import colmap_model as cm
from .conventions import rotmat_to_quat, w2c_from_c2w
from .placer import Placer
from .points import keypoint_points
from .readme import colmap_text, readme_text
from .record import finish, staged
from .select import (
    asked_dest,
    camera_intrinsics,
    cameras_token,
    check_downscale,
    check_poses,
    default_dest,
    frames_text,
    ids_text,
    perf_name,
    pose_notes,
    select_cameras,
)
from .summary import ExportSummary, Progress

if TYPE_CHECKING:
    from ..loader.performance import Performance


def export_colmap(
    perf: Performance,
    frame: int,
    dest: str | os.PathLike[str] | None = None,
    cameras: str | None = None,
    downscale: int = 1,
    masks: bool = False,
    text: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    wait: bool = False,
    soft_masks: bool = False,
) -> ExportSummary:
    """Write a COLMAP sparse model of one frame: ``sparse/0/{cameras,images,points3D}.bin``,
    ``images/cam_XX.jpg`` (hard links, copies or reduced copies), ``masks/`` with ``masks``.

    ``points3D`` holds the frame's 3D keypoints; their observations are the 2D keypoints of the
    cameras that have them (2D index ``33 + i`` is 3D index ``i``), at dataset pixel + 0.5.
    """
    t0 = time.perf_counter()
    check_downscale(downscale)
    progress = progress or Progress()
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
        raise UsageError(f"--frame must be a frame index >= 0, got {frame!r}")
    frame = int(frame)
    cams, note = select_cameras(perf, cameras, f"colmap --frame {frame}")
    check_poses(perf, cams)
    explicit = cameras is not None and parse_cameras(cameras) is not None
    with_frame = [c for c in cams if frame in set(perf.image_frame_ids(c))]
    if explicit and len(with_frame) < len(cams):
        lacking = [c for c in cams if c not in with_frame]
        raise EmptySelectionError(
            f"{perf_name(perf)}: no image for camera {', '.join(lacking)} frame {frame} "
            f"(cameras with an image in frame {frame}: {ids_text(with_frame) or 'none'})"
        )
    if not with_frame:
        every = sorted(set().union(*(set(perf.image_frame_ids(c)) for c in cams)))
        raise EmptySelectionError(
            f"{perf_name(perf)}: no image for frame {frame} (frames with images: "
            f"{frames_text(every) or 'none'})"
        )
    missing = [f"camera {c} frame {frame}" for c in cams if c not in with_frame]
    cams = with_frame
    if masks:
        lacking = [c for c in cams if frame not in set(perf.mask_frame_ids(c))]
        if lacking:
            raise InvalidIdError(
                f"{perf_name(perf)}: --masks: no mask for camera {', '.join(lacking)} frame {frame}"
            )
    token = f"{frame:06d}" + cameras_token(cameras, cams)
    dest_path = asked_dest(dest) or default_dest(perf, "colmap", token, downscale)
    with staged(dest_path, wait) as (out, previous):
        summary = ExportSummary(
            "colmap", str(out.root), str(perf.source), perf.actor, perf.performance, cams, [frame],
            downscale, missing=missing, notes=[note] if note != "all cameras" else [],
        )  # fmt: skip
        placer = Placer(perf, out, downscale, previous, summary, soft_masks=soft_masks)
        summary.notes.extend(pose_notes(perf, cams, [frame]))
        cameras_out, images_out = [], []
        names: dict[str, str] = {}
        for i, c in enumerate(cams, start=1):
            cam = perf.cameras[c]
            intr = camera_intrinsics(cam, downscale)
            cameras_out.append(cm.camera_from_intrinsics(i, intr))
            rel = placer.place("color", c, frame, f"images/cam_{c}", colmap=True)
            names[c] = rel.split("/", 1)[1]
            if masks:  # COLMAP's mask convention: masks/{image name}.png
                placer.place("mask", c, frame, f"masks/{names[c]}", colmap=True)
            w2c = w2c_from_c2w(cam.c2w)
            images_out.append(cm.Image(i, rotmat_to_quat(w2c[:3, :3]), w2c[:3, 3], i, names[c]))
        summary.images = len(cams)
        summary.masks = len(cams) if masks else 0
        points = keypoint_points(perf, frame, cams, images_out, downscale, summary)
        placer.run(progress, workers)
        for name, data in cm.model_files(cameras_out, images_out, points, text).items():
            out.write_bytes(f"sparse/0/{name}", data)
            placer.record[f"sparse/0/{name}"] = {}
        body = colmap_text(text, masks, downscale, soft_masks)
        refs = ("the model", placer.refs)
        return finish(out, previous, placer.record, summary, readme_text(summary, body), t0, refs)

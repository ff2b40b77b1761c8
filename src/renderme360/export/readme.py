"""The README.txt texts of the training exports: a head naming what was exported, the
format's own part, then the shared conventions (:data:`.conventions.CONVENTIONS_TEXT`)."""

from __future__ import annotations

from .conventions import CONVENTIONS_TEXT
from .select import frames_text
from .summary import ExportSummary


def readme_text(summary: ExportSummary, body: str) -> str:
    """README.txt: what was exported (from ``summary``), ``body``, then the conventions."""
    head = (
        f"renderme360 {summary.format} export of {summary.actor}_{summary.performance}\n"
        f"source: {summary.source}\n"
        f"cameras: {', '.join(summary.cameras)}\n"
        f"frames: {frames_text(summary.frames)}\n"
        f"downscale: {summary.downscale}\n\n"
    )
    return head + body + "\n" + CONVENTIONS_TEXT


def nerfstudio_text(
    several: bool, downscale: int, folder: bool, masks: bool, soft: bool = False
) -> str:
    """What README.txt says about a nerfstudio export (before the shared conventions)."""
    suffix = f"_{downscale}" if downscale > 1 else ""
    lines = [
        "transforms.json: nerfstudio / instant-ngp format, camera_model OPENCV; per frame",
        "fl_x fl_y cx cy w h k1 k2 p1 p2 k3 and transform_matrix (camera-to-world, OpenGL axes).",
    ]
    if several:
        lines.append("Several frames: each entry has time (0..1 by frame index), camera_id and")
        lines.append("frame_index, as dynamic-scene codebases read them.")
    if downscale == 1 and folder:
        lines.append("file_path: the extracted images where they lie (relative to this folder).")
    elif downscale == 1:
        lines.append("images/: the images as stored in the SMC files (byte-identical).")
    else:
        lines.append(f"images{suffix}/: the images reduced {downscale}x; intrinsics match them.")
    if masks:
        lines.append(f"mask_path: masks{suffix}/ (or the extracted masks), 0 = background.")
        lines += mask_lines(downscale, soft)
    if several:
        lines += [
            "Time: nerfstudio's nerfstudio-data reads no time, so ns-train nerfacto (or",
            "splatfacto) fits all these frames as ONE static scene: whatever moves blurs. For a",
            "static method export one frame per folder (--frames N) and train that; for the time",
            "series use a dynamic-scene method that reads each frame's time (D-NeRF-style",
            "loaders, e.g. 4DGaussians or K-Planes).",
        ]
    else:
        lines.append(
            "Train: ns-train nerfacto --data THIS_FOLDER nerfstudio-data --downscale-factor 1"
        )
    return "\n".join(lines) + "\n"


def mask_lines(downscale: int, soft: bool) -> list[str]:
    """README.txt on what the exported masks hold."""
    if downscale == 1:
        return [
            "Masks are single-channel (nerfstudio reads no other): a mask stored with more",
            "channels is written as a 1-channel PNG copy (max over its colour channels).",
        ]
    if soft:
        return [
            f"Reduced masks are soft (--soft-masks): the area average (0..255) of each {downscale}x"
            f"{downscale} block; nerfstudio takes every non-zero pixel for foreground.",
        ]
    return [
        f"Reduced masks are binary: 255 where at least half of a {downscale}x{downscale} block",
        "is foreground (area average >= 128), else 0; --soft-masks keeps the average.",
    ]


def colmap_text(text: bool, masks: bool, downscale: int = 1, soft: bool = False) -> str:
    """What README.txt says about a COLMAP export (before the shared conventions)."""
    return (
        "sparse/0/: COLMAP model (cameras, images, points3D .bin" + (" and .txt" if text else "")
        + "), one camera and one image per rig camera;\n"
        "image names are images/cam_XX.*, XX the dataset camera id"
        + ("; masks/cam_XX.*.png (COLMAP's mask naming)" if masks else "") + ".\n"
        + ("".join(f"{line}\n" for line in mask_lines(downscale, soft)) if masks else "")
        + "points3D: the frame's 3D facial keypoints, observed at the 2D keypoints (+0.5 px).\n"
        "3D Gaussian Splatting: python train.py -s THIS_FOLDER (its loader needs PINHOLE cameras:\n"
        "with distortion, undistort first: colmap image_undistorter --image_path images\n"
        "--input_path sparse/0 --output_path undistorted, then train on undistorted/).\n"
    )  # fmt: skip

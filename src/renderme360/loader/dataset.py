"""A map-style dataset of one performance's (camera, frame) images, for training loops.

``len(ds)`` and ``ds[i]`` -> a dict of numpy arrays, so a PyTorch ``DataLoader`` takes it as is
(its default collate turns numpy arrays into tensors) with any number of workers: the dataset
pickles (SMC readers reopen in each worker) and decodes nothing until an item is asked for.
No torch import here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidIdError, UsageError
from ..formats.image import SCALES
from ..naming import camera_key

if TYPE_CHECKING:
    from .performance import Performance


class FrameDataset:
    """Every (camera, frame) with a colour image among the chosen cameras and frames.

    Items are ``{"image": (H, W, 3) uint8 RGB, "mask": (H, W) uint8 (when masks are used),
    "K": (3, 3) float64 (scaled with the image), "c2w": (4, 4) float64 OpenCV axes,
    "frame": int, "camera": str}``, camera by camera (in the order given), frame by frame.

    Parameters
    ----------
    performance
        From :func:`renderme360.load`.
    cameras, frames
        Camera ids and frame indices to use (default: every camera with images, every frame).
        A named camera without images or calibration, or a named frame none of the chosen
        cameras has an image of, raises InvalidIdError naming what there is.
    scale
        1, 2, 4 or 8: images decoded at ``1/scale`` size, ``K`` to match.
    masks
        True: include masks (every item must have one); False: never; None (default): include
        them when every item has one.
    """

    def __init__(
        self,
        performance: Performance,
        cameras: Iterable[int | str] | None = None,
        frames: Iterable[int] | None = None,
        scale: int = 1,
        masks: bool | None = None,
    ) -> None:
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, np.integer))
            or scale not in SCALES
        ):
            raise UsageError(f"scale must be one of {SCALES}, got {scale!r}")
        self.performance = performance
        self.scale = scale
        perf = performance
        refused = perf.calibration_problems  # NaN/Inf calibration: left out (load warned)
        with_images = perf.image_camera_ids
        if cameras is None:
            cams = [c for c in with_images if c not in refused]
        else:
            cams = list(dict.fromkeys(camera_key(c) for c in cameras))
            for cam in cams:
                if cam not in with_images:
                    have = ", ".join(with_images) or "none"
                    raise InvalidIdError(
                        f"camera {cam} has no images (cameras with images: {have})"
                    )
        missing = [c for c in cams if c not in perf.cameras]
        if missing:
            why = "".join(
                f"; camera {c}: calibration {refused[c]}" for c in refused if c in missing
            )
            raise InvalidIdError(
                f"camera(s) {', '.join(missing)} have images but no usable calibration{why}"
            )
        wanted = None if frames is None else {int(f) for f in frames}
        image_frames = {c: perf.image_frame_ids(c) for c in cams}  # one listing per camera
        if wanted is not None:
            held = {f for c in cams for f in image_frames[c]}
            absent = sorted(wanted - held)
            if absent:
                shown = ", ".join(map(str, absent[:10])) + (" ..." if len(absent) > 10 else "")
                span = f"{min(held)}..{max(held)}, {len(held)} frames" if held else "none"
                raise InvalidIdError(
                    f"frame(s) {shown} have no image in the chosen cameras (frames: {span})"
                )
        self.items: list[tuple[str, int]] = [
            (cam, f) for cam in cams for f in image_frames[cam] if wanted is None or f in wanted
        ]
        have_masks = self._every_item_has_a_mask(perf, cams)
        if masks and not have_masks:
            raise UsageError("masks=True but some chosen (camera, frame) have no mask")
        self.masks = have_masks if masks is None else bool(masks)
        self._cameras = {c: perf.cameras[c].scaled(scale) for c in cams}

    def _every_item_has_a_mask(self, perf: Performance, cams: list[str]) -> bool:
        """Whether every item has a mask: one mask listing per camera, then a set lookup per
        item (linear in cameras x frames; a set per item was quadratic)."""
        masked: dict[str, set[int]] = {}
        for c, f in self.items:
            if c not in masked:
                masked[c] = set(perf.mask_frame_ids(c))
            if f not in masked[c]:
                return False
        return True

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        if index < 0:
            index += len(self.items)
        if not 0 <= index < len(self.items):
            raise IndexError(f"index {index} out of range for {len(self.items)} items")
        cam, frame = self.items[index]
        camera = self._cameras[cam]
        item: dict[str, Any] = {
            "image": self.performance.image(cam, frame, scale=self.scale),
            "K": camera.K.copy(),
            "c2w": camera.c2w.copy(),
            "frame": frame,
            "camera": cam,
        }
        if self.masks:
            item["mask"] = self.performance.mask(cam, frame, scale=self.scale)
        return item

    def __repr__(self) -> str:
        p = self.performance
        return f"<FrameDataset {p.actor}_{p.performance}: {len(self)} images, scale 1/{self.scale}>"

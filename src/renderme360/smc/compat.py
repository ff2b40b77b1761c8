"""The published ``SMCReader`` API (drop-in for the dataset's reader), on top of the extraction API.

Methods here exist for user code written against the published reader: decoded images, the whole
calibration, MP3/PLY helpers. Extraction itself uses :class:`.reader.ExtractionReader` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from ..errors import InvalidIdError, SMCFormatError
from ..formats.image import decode_image
from ..naming import camera_key
from . import schema
from .reader import ExtractionReader, _frame_arg, _guard


class SMCReader(ExtractionReader):
    """Read one SMC file. Drop-in compatible with the published ``SMCReader``.

    Parameters
    ----------
    file_path
        Path of an ``.smc`` file. It is opened read-only without HDF5 file locking, so other
        readers are never blocked; use the reader as a context manager or call :meth:`close`.

    Raises
    ------
    SMCFormatError
        The file is not HDF5, is truncated, or lacks the root attributes of an SMC file.
    """

    def __init__(self, file_path: str | os.PathLike[str]) -> None:
        super().__init__(file_path)
        self.__calibration_dict__: dict[str, dict[str, np.ndarray]] | None = None

    def get_available_keys(self) -> list[str]:
        """Top-level groups of the file (``Camera``, ``Calibration``, ``FLAME``, ...)."""
        return list(self.smc.keys())

    @_guard
    def get_Calibration_all(self) -> dict[str, dict[str, np.ndarray]] | None:
        """``{cam: {'K', 'D', 'RT'}}`` for every calibrated camera; RT is camera-to-world."""
        if schema.CALIBRATION not in self.smc:
            return None
        if self.__calibration_dict__ is None:
            self.__calibration_dict__ = {
                cam: self.get_Calibration(cam) for cam in self.list_calibration_cameras()
            }
        return self.__calibration_dict__

    @_guard
    def get_img(
        self,
        Camera_id: int | str,
        Image_type: str,
        Frame_id: int | str | list[int | str] | None = None,
        disable_tqdm: bool = True,
    ) -> np.ndarray:
        """Decoded image(s): colour BGR (H, W, 3), mask (H, W) uint8.

        ``Frame_id`` may be one id, a list (stacked on axis 0) or None for every stored frame.
        A 3-channel mask is reduced with a max over channels, as the published reader does.
        """
        del disable_tqdm  # accepted for compatibility; this reader shows no progress bars
        if Image_type not in ("color", "mask"):
            raise InvalidIdError(f"invalid Image_type {Image_type!r}: expected 'color' or 'mask'")
        if Frame_id is None or isinstance(Frame_id, list):
            frames = self.list_frames(Camera_id, Image_type) if Frame_id is None else Frame_id
            if not frames:
                raise InvalidIdError(
                    f"{self.path}: camera {camera_key(Camera_id)} has no {Image_type} frames"
                )
            return np.stack([self.get_img(Camera_id, Image_type, f) for f in frames], axis=0)
        data = self.get_img_bytes(Camera_id, Image_type, Frame_id)
        what = f"{Image_type} camera {camera_key(Camera_id)} frame {_frame_arg(Frame_id)}"
        return decode_image(data, grayscale=Image_type == "mask", what=f"{self.path}: {what}")

    def get_img_bytes(self, Camera_id: int | str, Image_type: str, Frame_id: int | str) -> bytes:
        """The stored encoded bytes (a JPEG/PNG file) of one colour image or mask, undecoded."""
        if Image_type not in ("color", "mask"):
            raise InvalidIdError(f"invalid Image_type {Image_type!r}: expected 'color' or 'mask'")
        return self.read_blob(Image_type, Camera_id, Frame_id)

    @staticmethod
    def writemp3(
        f: str | os.PathLike[str], sr: int, x: np.ndarray, normalized: bool = False
    ) -> None:
        """Write audio as MP3 (via libsndfile; no ffmpeg). Float data in [-1, 1) as in the
        published reader with ``normalized=True``; integer data is scaled from its full range."""
        from ..formats.audio import write_mp3

        write_mp3(Path(f), np.asarray(x), int(sr), normalized=normalized)

    @_guard
    def get_FLAME(self, Frame_id: int | str) -> dict[str, np.ndarray] | None:
        """Every dataset stored for one frame (global_pose, exp, verts, albedos, ...) or None."""
        frame = _frame_arg(Frame_id)
        group = self.smc.get(schema.FLAME)
        if group is None or frame not in group:
            return None
        node = group[frame]
        if not isinstance(node, h5py.Group):
            raise SMCFormatError(f"{self.path}: FLAME/{frame} is not a group")
        return {name: self._read_array(node, name) for name in self._safe_member_names(node)}

    @_guard
    def get_uv(
        self,
        Frame_id: int | str | list[int | str] | None = None,
        disable_tqdm: bool = True,
    ) -> np.ndarray | None:
        """Decoded BGR UV texture(s): one frame, a list, or all (None); None when absent."""
        del disable_tqdm
        if schema.UV_TEXTURE not in self.smc:
            return None
        if Frame_id is None or isinstance(Frame_id, list):
            frames = self.list_uv_frames() if Frame_id is None else Frame_id
            return np.stack([self.get_uv(f) for f in frames], axis=0)
        data = self.read_blob("uv", None, Frame_id)
        return decode_image(data, what=f"{self.path}: UV_texture/{_frame_arg(Frame_id)}")

    def get_uv_bytes(self, Frame_id: int | str) -> bytes:
        """Stored encoded bytes of one UV texture."""
        return self.read_blob("uv", None, Frame_id)

    @_guard
    def get_scanmask(self, Camera_id: int | str | None = None) -> np.ndarray | None:
        """Decoded scan mask of one camera (H, W) or all cameras stacked (None); None if absent."""
        if schema.SCAN_MASK not in self.smc:
            return None
        if Camera_id is None:
            return np.stack([self.get_scanmask(c) for c in self.list_scanmask_cameras()], axis=0)
        data = self.read_blob("scan_mask", Camera_id, None)
        return decode_image(
            data, grayscale=True, what=f"{self.path}: ScanMask/{camera_key(Camera_id)}"
        )

    def get_scanmask_bytes(self, Camera_id: int | str) -> bytes:
        """Stored encoded bytes of one scan mask."""
        return self.read_blob("scan_mask", Camera_id, None)

    @staticmethod
    def write_ply(scan: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
        """Write a scan mesh as binary little-endian PLY (vectorised, stored precision)."""
        from ..formats.ply import write_ply

        write_ply(Path(path), scan["vertex"], scan["vertex_indices"])

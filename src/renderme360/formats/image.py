"""Encoded images: extension from magic bytes, and decoding (OpenCV, imported only when used)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import SMCFormatError


def image_extension(data: bytes | memoryview) -> str | None:
    """File extension of encoded image bytes from their magic number, or None if unknown."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    return None


def decode_image(data: bytes, grayscale: bool = False, what: str = "image") -> np.ndarray:
    """Decode encoded bytes with OpenCV: BGR (H, W, 3), or (H, W) uint8 for masks.

    Masks stored as grayscale are decoded as grayscale directly; a 3-channel mask is reduced
    with a max over channels (the published reader's rule).
    """
    import cv2  # imported here: only decoding needs OpenCV

    if image_extension(data) is None:
        raise SMCFormatError(f"{what}: bytes are not an encoded image (unknown magic)")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED if grayscale else cv2.IMREAD_COLOR)
    if img is None:
        raise SMCFormatError(f"{what}: encoded image is corrupt and cannot be decoded")
    if grayscale:
        if img.ndim == 3:
            img = img[..., :3].max(axis=2)
        if img.dtype != np.uint8:
            img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    return img


def image_channels(src: str | os.PathLike[str] | bytes) -> int | None:
    """Channels an encoded image declares (1 gray, 2 gray+alpha, 3, 4), read from its header
    only (Pillow parses no pixels here); None when the header is not one Pillow reads. A file
    is opened without following a symlink and must be a regular file (never blocks on a FIFO).
    A palette PNG counts as 3 (its values are indices, not intensities)."""
    import io
    import stat

    from PIL import Image, UnidentifiedImageError

    if isinstance(src, (bytes, bytearray, memoryview)):
        fh: Any = io.BytesIO(bytes(src))
    else:
        fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        fh = os.fdopen(fd, "rb")
    try:
        with fh, Image.open(fh) as img:
            mode, bands = img.mode, len(img.getbands())
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return 3 if mode == "P" else bands

"""Encoded images: extension from magic bytes, and decoding (OpenCV, imported only when used)."""

from __future__ import annotations

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

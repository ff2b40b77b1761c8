"""The one image module: sniff, declared size, pixel budget, decoding (full and reduced at 1/2,
1/4, 1/8) and the exact-block area reduction. OpenCV underneath, imported only when decoding.

Every reader of stored images (loader, preview, export) decodes here, so the budget is checked
once for all of them: the size an image declares in its header is read first (``(width,
height)``, always in that order) and an image above the budget is refused with one line naming
it, before a pixel is allocated. JPEG is reduced inside libjpeg's inverse DCT (OpenCV
``IMREAD_REDUCED_*``: ``ceil(w / k) x ceil(h / k)``); other formats are decoded whole and reduced
with :func:`area_reduce`.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..errors import BudgetError, Renderme360Error, SMCFormatError

#: Reduction factors of a decode (``image(scale=k)``, ``export --downscale k``, previews).
SCALES = (1, 2, 4, 8)
#: JPEG quality of the images the tool encodes (reduced export copies, synthetic data).
JPEG_QUALITY = 95

#: Pixels an image may declare when nothing better is known (the preview budget too): 50 M,
#: ten times a RenderMe360 frame (2448 x 2048).
DEFAULT_MAX_PIXELS = 50_000_000

#: Slack over the calibration's width x height an image of that camera may declare ...
BUDGET_TOLERANCE = 1.05
#: ... and any image may declare this many (2048 x 2048, at most 64 MB decoded as 16-bit RGBA).
MIN_BUDGET_PIXELS = 1 << 22


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


def declared_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """``(width, height)`` an encoded image declares in its header (JPEG frame header, PNG
    IHDR, BMP info header), without decoding; None when not found."""
    data = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if data[12:16] != b"IHDR" or len(data) < 24:
            return None
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(int(w)), abs(int(h))
    if data[:2] == b"\xff\xd8":
        frame = _jpeg_frame(data)
        return None if frame is None else frame[:2]
    return None


#: Channels of a PNG by its IHDR colour type (a palette counts as 3: indices, not intensities).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def declared_channels(data: bytes | memoryview) -> int | None:
    """Channels a PNG (IHDR colour type) or JPEG (frame header component count) declares,
    without decoding; None for other formats or a header not found."""
    data = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if data[12:16] != b"IHDR" or len(data) < 26:
            return None
        return _PNG_CHANNELS.get(data[25])
    if data[:2] == b"\xff\xd8":
        frame = _jpeg_frame(data)
        return None if frame is None or frame[2] not in (1, 3, 4) else frame[2]
    return None


def _jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """``(width, height, components)`` of a JPEG's frame header."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header seen
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 10 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h), data[i + 9]
        i += 2 + length
    return None


def pixel_budget(width: int | None = None, height: int | None = None) -> int:
    """Pixels an image may declare: the calibration's ``width x height`` with a little slack
    (never below :data:`MIN_BUDGET_PIXELS`) when known, else :data:`DEFAULT_MAX_PIXELS`."""
    if width and height and width > 0 and height > 0:
        return max(int(width * height * BUDGET_TOLERANCE) + 1, MIN_BUDGET_PIXELS)
    return DEFAULT_MAX_PIXELS


def check_budget(data: bytes | memoryview, max_pixels: int, what: str) -> tuple[int, int]:
    """The declared ``(width, height)`` of an image within ``max_pixels``; BudgetError (one
    line naming ``what``) above it; SMCFormatError when the header declares no size."""
    size = declared_size(data)
    if size is None:
        raise SMCFormatError(f"{what}: not a decodable image (no image size in its header)")
    w, h = size
    if w * h > max_pixels:
        raise BudgetError(
            f"{what}: declares {w} x {h} pixels, above the budget of {max_pixels:,}; not decoded"
        )
    return size


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


def decode(
    data: bytes | memoryview,
    *,
    scale: int = 1,
    grayscale: bool = False,
    unchanged: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    what: str = "image",
) -> tuple[np.ndarray, int]:
    """Decode stored bytes under the pixel budget: ``(image, factor)``, where ``factor`` is
    the reduction already applied (``scale`` for JPEG, reduced in the DCT; 1 for other formats,
    which callers reduce with :func:`area_reduce` by ``scale // factor``).

    BGR (H, W, 3) by default, (H, W) with ``grayscale``, as stored with ``unchanged`` (JPEG
    then as colour or grayscale per ``grayscale``). EXIF orientation is ignored: calibrations
    and keypoints refer to the stored pixels. Every failure is one line naming ``what``.
    """
    import cv2  # imported here: only decoding needs OpenCV

    k = _check_scale(scale)
    if image_extension(data) is None:
        raise SMCFormatError(f"{what}: bytes are not an encoded image (unknown magic)")
    if max_pixels is not None:
        check_budget(data, max_pixels, what)
    jpeg = bytes(data[:3]) == b"\xff\xd8\xff"
    factor = k if jpeg else 1
    if jpeg and not (unchanged and k == 1):
        flag = read_flag(k, grayscale)
    elif unchanged:
        flag = cv2.IMREAD_UNCHANGED
    else:
        flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        buf = np.frombuffer(data, dtype=np.uint8)
        img = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        raise SMCFormatError(f"{what}: cannot be decoded ({_first_line(exc)})") from None
    if img is None or img.size == 0:
        raise SMCFormatError(f"{what}: encoded image is corrupt and cannot be decoded")
    return img, factor


def read_flag(scale: int, grayscale: bool = False) -> int:
    """The OpenCV read flag decoding a JPEG at ``1/scale`` (in the DCT domain), colour or gray."""
    import cv2

    k = _check_scale(scale)
    if k == 1:
        return int(cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    return int(getattr(cv2, f"IMREAD_REDUCED_{'GRAYSCALE' if grayscale else 'COLOR'}_{k}"))


def encode(img: np.ndarray, ext: str, quality: int = JPEG_QUALITY) -> bytes:
    """``img`` (uint8, BGR or one channel) encoded as ``ext``: ``.jpg``/``.jpeg`` at JPEG
    ``quality``, or ``.png``; Renderme360Error when OpenCV cannot."""
    import cv2

    jpeg = ext.lower() in (".jpg", ".jpeg")
    ok, buf = cv2.imencode(ext, img, [cv2.IMWRITE_JPEG_QUALITY, quality] if jpeg else [])
    if not ok:
        raise Renderme360Error(f"cannot encode {ext}")
    return bytes(buf.tobytes())


def area_reduce(img: np.ndarray, k: int, exact: bool = True) -> np.ndarray:
    """``img`` area-averaged by ``k``: ``exact`` averages whole k x k blocks (a partial last
    row/column is cropped: ``floor`` sizes, corner-origin intrinsics / k stay exact); otherwise
    to ``ceil`` sizes (the size of a JPEG reduced in the DCT)."""
    import cv2

    if k == 1:
        return np.ascontiguousarray(img)
    h, w = img.shape[:2]
    if exact:
        th, tw = h // k, w // k
        img = img[: th * k, : tw * k]
    else:
        th, tw = math.ceil(h / k), math.ceil(w / k)
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)


def to_gray_mask(img: np.ndarray) -> np.ndarray:
    """A mask as (H, W) uint8: a max over colour channels, 16-bit samples to their top 8 bits."""
    if img.ndim == 3:
        img = img[..., :3].max(axis=2)
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    return img


def image_channels(data: bytes | bytearray | memoryview) -> int | None:
    """Channels an encoded image declares (1 gray, 2 gray+alpha, 3, 4), read from its header
    only: PNG and JPEG by :func:`declared_channels`, other formats by Pillow (no pixels
    parsed); None when the header is not one they read. A palette PNG counts as 3 (its values
    are indices, not intensities). ``data``: the image's bytes, or its first 64 KiB."""
    head = bytes(data[:65536])
    if image_extension(head) in ("png", "jpg"):
        return declared_channels(head)
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            mode, bands = img.mode, len(img.getbands())
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return 3 if mode == "P" else bands


def decode_image(
    data: bytes, grayscale: bool = False, what: str = "image", max_pixels: int | None = None
) -> np.ndarray:
    """Decode encoded bytes whole: BGR (H, W, 3), or (H, W) uint8 for masks.

    Masks stored as grayscale are decoded as grayscale directly; a 3-channel mask is reduced
    with a max over channels (the published reader's rule). ``max_pixels``: the pixel budget
    (None: unchecked, for bytes the tool itself validated).
    """
    img, _ = decode(
        data, grayscale=grayscale, unchanged=grayscale, max_pixels=max_pixels, what=what
    )
    return to_gray_mask(img) if grayscale else img


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__

"""Previews under ``visualization/``, drawn from files already extracted into a performance folder.

Four pictures, each written only when its inputs exist:

``cameras_frame_NNNNNN.jpg``
    contact sheet of every extracted camera at one frame (the smallest frame number among those
    that the largest number of cameras have), downscaled tiles labelled ``cam XX``;
``masks_overlay.jpg``
    up to 8 cameras with image and mask of the same frame: mask tinted green, contour in yellow;
``keypoints_overlay.jpg``
    up to 8 cameras with 2D keypoints drawn on an image of a frame that has keypoints;
``camera_rig.png``
    top and front views of the camera centres and viewing directions from
    ``calibration/all_cameras.npz``, labelled by camera id.

Inputs are found by their relative paths in the output layout (README) under any source
folder (``from_anno/``, ``from_raw/``, ``from_smc/`` or none); images and masks are paired by camera
and frame, not by folder. OpenCV and matplotlib are imported only when a preview is drawn.
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BudgetError, Renderme360Error
from .formats.image import DEFAULT_MAX_PIXELS, area_reduce, declared_size, decode, encode
from .formats.npz import read_npz
from .modalities import STREAMS
from .output.layout import VISUALIZATION_FILES, OutputPath, parse_path, source_order
from .output.outdir import OutputDir, Written
from .output.read import FrameFiles, choose_sources
from .safeopen import open_regular, read_regular

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

CONTACT_SHEET = VISUALIZATION_FILES["contact_sheet"]
MASKS_OVERLAY = VISUALIZATION_FILES["masks_overlay"]
KEYPOINTS_OVERLAY = VISUALIZATION_FILES["keypoints_overlay"]
CAMERA_RIG = VISUALIZATION_FILES["camera_rig"]
# Images larger than this are not decoded for a preview (a 30000 x 30000 PNG would take 2.7 GB:
# OpenCV decodes PNG in full before reducing it); they are skipped with a note. Real frames are
# about 5 million pixels, UV textures at most 17 million.
MAX_PREVIEW_PIXELS = DEFAULT_MAX_PIXELS
MAX_PREVIEW_FILE_BYTES = 64 << 20

TILE_WIDTH = 320  # widest tile of the contact sheet, pixels
OVERLAY_TILE_WIDTH = 480  # widest tile of the mask and keypoint overlays
MAX_OVERLAY_CAMERAS = 8
PREVIEW_QUALITY = 90  # JPEG quality of previews: looked at, not trained on
REDUCE_FROM_WIDTH = 1000  # images at least this wide are decoded at 1/2, 1/4 or 1/8 scale
MASK_ALPHA = 0.4

_GAP = 4
_TITLE_H = 30
_BACKGROUND = (32, 32, 32)
_OUTLINE_OFFSETS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
_MASK_TINT = (0, 255, 0)  # BGR green
_CONTOUR = (0, 255, 255)  # BGR yellow
_KEYPOINT = (0, 0, 255)  # BGR red

# Where one camera/frame appears under several source folders, the one layout.source_order
# prefers wins: images from raw, annotations (masks, keypoints, calibration) from anno.
_IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "jp2"})

# What reading a damaged or unexpected file may raise (and our own refusals: a pixel budget, a
# file that is not regular): the file is skipped with a warning.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    Renderme360Error,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    EOFError,
    zipfile.BadZipFile,
)


@dataclass
class _Inputs:
    """Preview inputs found among the extracted files (relative paths)."""

    images: dict[str, FrameFiles] = field(default_factory=dict)  # cam -> frame -> path
    masks: dict[str, FrameFiles] = field(default_factory=dict)
    keypoints: dict[str, str] = field(default_factory=dict)  # cam -> path
    calibration: str | None = None


@dataclass
class _Tile:
    """A decoded, downscaled image and the factors from full-image pixels to tile pixels."""

    image: np.ndarray  # BGR uint8
    sx: float
    sy: float


def make_previews(
    out: OutputDir,
    files: Iterable[str],
    max_cameras: int = 60,
    rig: Mapping[str, np.ndarray] | None = None,
    notes: list[str] | None = None,
) -> list[Written]:
    """Write visualization/* previews from already-extracted files (relative paths in `files`,
    read once as a stream); return what was written. Each preview only when its inputs exist.

    ``rig`` (camera id -> RT of every camera of the rig, read from the source) lets the rig plot
    show the whole rig greyed, with the extracted cameras highlighted.

    Unreadable images, masks or arrays are skipped with a warning; errors while writing (disk
    full, unsafe paths) propagate. At most ``max_cameras`` images are read for the contact sheet
    and at most 8 images (and 8 masks) for each overlay.
    """
    if max_cameras < 1:
        raise ValueError(f"max_cameras must be at least 1, not {max_cameras}")
    inputs = _find_inputs(files)
    written: list[Written] = []
    cache = _TileCache(out, notes if notes is not None else [])

    frame = _common_frame(inputs.images)
    if frame is not None:
        sheet = _contact_sheet(inputs, cache, frame, max_cameras)
        if sheet is not None:
            written.append(_write_jpeg(out, CONTACT_SHEET.format(frame=frame), sheet))
        overlay = _masks_overlay(out, inputs, cache, frame)
        if overlay is not None:
            written.append(_write_jpeg(out, MASKS_OVERLAY, overlay))
        overlay = _keypoints_overlay(out, inputs, cache, frame)
        if overlay is not None:
            written.append(_write_jpeg(out, KEYPOINTS_OVERLAY, overlay))

    if inputs.calibration is not None:
        png = _camera_rig(out, inputs.calibration, set(inputs.images), rig)
        if png is not None:
            written.append(out.write_bytes(CAMERA_RIG, png))

    if not written:
        log.info("no previews: nothing extracted that a preview can show")
    return written


# --------------------------------------------------------------------------- inputs


def _find_inputs(files: Iterable[str]) -> _Inputs:
    """Sort the extracted files into preview inputs, choosing one source folder per item.

    ``files`` is read once, as a stream: images and masks go into :class:`FrameFiles` (a bit
    per frame), the few other inputs through :func:`choose_sources`.
    """

    def preference(p: OutputPath) -> tuple[str | None, ...]:
        return (None, *source_order(p.modality))

    def accept(p: OutputPath) -> bool:
        if p.modality in STREAMS:
            return p.ext.lower() in _IMAGE_EXTS
        if p.modality == "keypoints2d":
            return True
        return p.modality == "calibration" and p.camera is None and p.ext == "npz"

    found = _Inputs()
    others: list[str] = []
    for rel in files:
        p = parse_path(rel)
        if p is None or not accept(p):
            continue
        if p.modality not in STREAMS or p.camera is None or p.frame is None:
            others.append(rel)
            continue
        order = preference(p)
        if p.source not in order:
            continue
        table = getattr(found, p.modality)  # images or masks
        frames = table.get(p.camera)
        if frames is None:
            frames = table[p.camera] = FrameFiles(p.modality, p.camera)
        frames.add(order.index(p.source), p, rel)
    for (modality, cam, _frame), (rel, _p) in choose_sources(others, preference, accept).items():
        if modality == "keypoints2d" and cam is not None:
            found.keypoints[cam] = rel
        elif modality == "calibration":
            found.calibration = rel
    return found


def _common_frame(images: Mapping[str, Iterable[int]]) -> int | None:
    """The smallest frame number among those that the largest number of cameras have."""
    counts: dict[int, int] = {}
    for frames in images.values():
        for f in frames:
            counts[f] = counts.get(f, 0) + 1
    if not counts:
        return None
    return min(counts, key=lambda f: (-counts[f], f))


def _spread(items: Sequence[str], k: int) -> list[str]:
    """Up to ``k`` items evenly spaced over ``items`` (all of them when there are few)."""
    n = len(items)
    if n <= k:
        return list(items)
    if k == 1:
        return [items[0]]
    return [items[round(i * (n - 1) / (k - 1))] for i in range(k)]


# --------------------------------------------------------------------------- decoding


def _reduce_factor(width: int, target: int) -> int:
    """Decode scale divisor: 1 for small images, else the largest of 2, 4, 8 that still leaves
    at least ``target`` pixels of width."""
    if width < REDUCE_FROM_WIDTH:
        return 1
    for f in (8, 4, 2):
        if width / f >= target:
            return f
    return 2


def _too_large(path: Path, notes: list[str]) -> tuple[bytes | None, tuple[int, int] | None]:
    """The bytes and (width, height) of an image small enough to decode for a preview; else
    (None, None), with a warning (and a note when it is above the budget). Checked before any
    pixel is decoded: an image whose header gives no size is not decoded either."""
    try:
        data = read_regular(path, MAX_PREVIEW_FILE_BYTES)
    except BudgetError:
        why = f"{path.stat().st_size:,} bytes"
    else:
        size = declared_size(data)
        if size is None and data:
            log.warning("preview: skipping %s: no image size in its header", path)
            return None, None
        if size is None or size[0] * size[1] <= MAX_PREVIEW_PIXELS:
            return data, size
        why = f"{size[0]} x {size[1]} pixels"
    note = f"preview skipped {path}: {why}, above the preview budget"
    notes.append(note)
    log.warning("%s", note)
    return None, None


def _decode(
    path: Path, grayscale: bool, target: int, notes: list[str] | None = None
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Decode an image, reduced when it is wide and ``target`` pixels of width are enough;
    return it and the full (width, height), or None (with a warning) if it cannot be read or
    is above the preview budget (then also with a note in ``notes``)."""
    try:
        data, size = _too_large(path, notes if notes is not None else [])
        if data is None:
            return None
        if not data:
            raise ValueError("empty file")
        factor = _reduce_factor(size[0], target) if size else 1
        # Pixel coordinates (keypoints) refer to the stored pixels: EXIF rotation is ignored.
        img, done = decode(
            data, scale=factor, grayscale=grayscale, max_pixels=MAX_PREVIEW_PIXELS, what=str(path)
        )
        img = area_reduce(img, factor // done, exact=False)
    except _READ_ERRORS as exc:
        log.warning("preview: skipping %s: %s", path, exc)
        return None
    if size is None:
        size = (img.shape[1] * factor, img.shape[0] * factor)
    return img, size


class _TileCache:
    """Decodes each image at most once per tile width and keeps its tile."""

    def __init__(self, out: OutputDir, notes: list[str]) -> None:
        self.out = out
        self.notes = notes  # images skipped for the pixel budget
        self.tiles: dict[tuple[str, int], _Tile | None] = {}

    def get(self, rel: str, width: int) -> _Tile | None:
        """The tile of image ``rel`` at most ``width`` pixels wide, or None if unreadable."""
        if (rel, width) not in self.tiles:
            self.tiles[rel, width] = self._load(rel, width)
        return self.tiles[rel, width]

    def _load(self, rel: str, width: int) -> _Tile | None:
        import cv2

        decoded = _decode(self.out.root / rel, grayscale=False, target=width, notes=self.notes)
        if decoded is None:
            return None
        img, (full_w, full_h) = decoded
        h, w = img.shape[:2]
        if w > width:
            new_h = max(1, round(h * width / w))
            img = cv2.resize(img, (width, new_h), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        return _Tile(np.ascontiguousarray(img), w / full_w, h / full_h)


# --------------------------------------------------------------------------- drawing


_LABEL_SCALE = 0.55
_MIN_LABEL_SCALE = 0.35


def _text_width(text: str, scale: float) -> int:
    import cv2

    (w, _h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    return int(w) + 2  # the outline


def _label_scale(text: str, room: int) -> float:
    """The largest scale (down to a readable minimum) at which ``text`` fits ``room`` pixels."""
    need = _text_width(text, _LABEL_SCALE)
    return max(_MIN_LABEL_SCALE, min(_LABEL_SCALE, _LABEL_SCALE * room / max(need, 1)))


def _labelled(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` with ``text`` in its top-left corner, never clipped: the text shrinks to fit a
    small image, and the image is padded (right, bottom) when even that is not enough."""
    margin = 6
    scale = _label_scale(text, img.shape[1] - 2 * margin)
    need_w = _text_width(text, scale) + 2 * margin
    need_h = 26
    h, w = img.shape[:2]
    if need_w > w or need_h > h:
        padded = np.empty((max(h, need_h), max(w, need_w), 3), np.uint8)
        padded[:] = _BACKGROUND
        padded[:h, :w] = img
        img = padded
    _label(img, text, (margin, 20), scale)
    return img


def _label(
    img: np.ndarray, text: str, origin: tuple[int, int] = (6, 20), scale: float = _LABEL_SCALE
) -> None:
    """White text with a dark outline, readable on any background (draws in place)."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    x, y = origin
    # A thicker stroke would also widen the glyph advance; shifted copies keep the outline exact.
    for dx, dy in _OUTLINE_OFFSETS:
        cv2.putText(img, text, (x + dx, y + dy), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, origin, font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _sheet(tiles: Sequence[np.ndarray], title: str) -> np.ndarray:
    """Tiles in a grid of equal cells (row-major, about 4:3 overall) under a title bar."""
    cell_w = max(t.shape[1] for t in tiles)
    cell_h = max(t.shape[0] for t in tiles)
    n = len(tiles)
    cols = min(n, max(1, math.ceil(math.sqrt(n * cell_h / cell_w * 4 / 3))))
    rows = math.ceil(n / cols)
    width = max(cols * (cell_w + _GAP) + _GAP, 200, _text_width(title, _LABEL_SCALE) + 2 * _GAP + 8)
    height = _TITLE_H + rows * (cell_h + _GAP) + _GAP
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = _BACKGROUND
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y = _TITLE_H + _GAP + r * (cell_h + _GAP)
        x = _GAP + c * (cell_w + _GAP)
        canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    _label(canvas, title, (_GAP + 4, 21))
    return canvas


def _write_jpeg(out: OutputDir, rel: str, img: np.ndarray) -> Written:
    written = out.write_bytes(rel, encode(img, ".jpg", PREVIEW_QUALITY))
    log.info("preview: wrote %s", rel)
    return written


# --------------------------------------------------------------------------- previews


def _contact_sheet(
    inputs: _Inputs, cache: _TileCache, frame: int, max_cameras: int
) -> np.ndarray | None:
    cams = sorted(c for c, frames in inputs.images.items() if frame in frames)
    if len(cams) > max_cameras:
        log.info("preview: contact sheet shows %d of %d cameras", max_cameras, len(cams))
        cams = _spread(cams, max_cameras)
    tiles = []
    for cam in cams:
        tile = cache.get(inputs.images[cam][frame], TILE_WIDTH)
        if tile is not None:
            tiles.append(_labelled(tile.image.copy(), f"cam {cam}"))
    if not tiles:
        return None
    total = len(inputs.images)
    return _sheet(tiles, f"frame {frame:06d}: {len(tiles)} of {total} cameras")


def _masks_overlay(
    out: OutputDir, inputs: _Inputs, cache: _TileCache, frame: int
) -> np.ndarray | None:
    import cv2

    pairs: dict[int, list[str]] = {}
    for cam in sorted(inputs.masks):
        for f in set(inputs.masks[cam]) & set(inputs.images.get(cam, ())):
            pairs.setdefault(f, []).append(cam)
    if not pairs:
        return None
    if frame not in pairs:
        frame = min(pairs, key=lambda f: (-len(pairs[f]), f))
    tiles = []
    for cam in _spread(pairs[frame], MAX_OVERLAY_CAMERAS):
        tile = cache.get(inputs.images[cam][frame], OVERLAY_TILE_WIDTH)
        if tile is None:
            continue
        decoded = _decode(
            out.root / inputs.masks[cam][frame], True, OVERLAY_TILE_WIDTH, cache.notes
        )
        if decoded is None:
            continue
        mask_img = decoded[0]
        h, w = tile.image.shape[:2]
        if mask_img.shape[:2] != (h, w):
            mask_img = cv2.resize(mask_img, (w, h), interpolation=cv2.INTER_AREA)
        mask = mask_img > (0 if int(mask_img.max()) <= 1 else 127)
        img = tile.image.copy()
        tint = np.empty_like(img)
        tint[:] = _MASK_TINT
        blended = cv2.addWeighted(img, 1.0 - MASK_ALPHA, tint, MASK_ALPHA, 0.0)
        img[mask] = blended[mask]
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(img, contours, -1, _CONTOUR, 2, cv2.LINE_8)
        tiles.append(_labelled(img, f"cam {cam}"))
    if not tiles:
        return None
    return _sheet(tiles, f"masks (green, contour yellow) at frame {frame:06d}")


def _read_npz(path: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The named arrays of an npz file, or None (with a warning) if it cannot be read."""
    try:
        with open_regular(path) as f:
            return read_npz(f, names, str(path))
    except _READ_ERRORS as exc:
        log.warning("preview: skipping %s: %s", path, exc)
        return None


def _keypoints_overlay(
    out: OutputDir, inputs: _Inputs, cache: _TileCache, frame: int
) -> np.ndarray | None:
    import cv2

    chosen: dict[str, int] = {}  # camera -> frame to draw
    for cam in sorted(set(inputs.keypoints) & set(inputs.images)):
        arrays = _read_npz(out.root / inputs.keypoints[cam], ["frame_ids"])
        if arrays is None:
            continue
        stored = {int(v) for v in arrays["frame_ids"].reshape(-1)}
        usable = stored & set(inputs.images[cam])
        if usable:
            chosen[cam] = frame if frame in usable else min(usable)
    tiles = []
    count = 0
    for cam in _spread(sorted(chosen), MAX_OVERLAY_CAMERAS):
        f = chosen[cam]
        rel = inputs.keypoints[cam]
        arrays = _read_npz(out.root / rel, ["frame_ids", "keypoints"])
        if arrays is None:
            continue
        ids, kps = arrays["frame_ids"].reshape(-1), arrays["keypoints"]
        if kps.ndim != 3 or kps.shape[0] != ids.shape[0] or kps.shape[2] < 2:
            log.warning("preview: skipping %s: keypoints of shape %s", rel, kps.shape)
            continue
        tile = cache.get(inputs.images[cam][f], OVERLAY_TILE_WIDTH)
        if tile is None:
            continue
        pts = kps[int(np.flatnonzero(ids == f)[0]), :, :2].astype(np.float64)
        pts = pts[np.isfinite(pts).all(axis=1)]
        img = tile.image.copy()
        for x, y in pts:
            center = (round((x + 0.5) * tile.sx - 0.5), round((y + 0.5) * tile.sy - 0.5))
            cv2.circle(img, center, 3, (0, 0, 0), -1, cv2.LINE_8)
            cv2.circle(img, center, 2, _KEYPOINT, -1, cv2.LINE_8)
        count = max(count, kps.shape[1])
        tiles.append(_labelled(img, f"cam {cam} frame {f:06d}"))
    if not tiles:
        return None
    return _sheet(tiles, f"2D keypoints ({count} per face)")


def _camera_rig(
    out: OutputDir,
    rel: str,
    with_images: set[str],
    rig: Mapping[str, np.ndarray] | None = None,
) -> bytes | None:
    """PNG of camera centres and viewing directions (top and front view), or None.

    With ``rig`` (every camera's RT), the cameras not in ``rel`` are drawn greyed around the
    extracted ones."""
    arrays = _read_npz(out.root / rel, ["camera_ids", "RT"])
    if arrays is None:
        return None
    ids = [_camera_label(v) for v in arrays["camera_ids"].reshape(-1)]
    extracted = set(ids)
    rt = arrays["RT"]
    if rig and extracted <= set(rig) and len(rig) > len(extracted):
        ids = sorted(rig)
        rt = np.stack([np.asarray(rig[c], np.float64) for c in ids])
    if rt.ndim != 3 or rt.shape[1:] != (4, 4) or rt.shape[0] != len(ids) or not ids:
        log.warning("preview: skipping %s: RT of shape %s for %d ids", rel, rt.shape, len(ids))
        return None
    rt = rt.astype(np.float64)
    centers, dirs = rt[:, :3, 3], rt[:, :3, 2]
    ok = np.isfinite(centers).all(axis=1) & np.isfinite(dirs).all(axis=1)
    if not ok.any():
        log.warning("preview: skipping %s: no camera with a finite pose", rel)
        return None
    ids = [c for c, good in zip(ids, ok, strict=True) if good]
    centers, dirs = centers[ok], dirs[ok]
    norms = np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs = np.divide(dirs, norms, out=np.zeros_like(dirs), where=norms > 0)
    mid = centers.mean(axis=0)
    spread = float(np.median(np.linalg.norm(centers - mid, axis=1)))
    if not spread > 0:
        spread = 1.0
    state = np.array(
        [2 if c in with_images else 1 if c in extracted else 0 for c in ids], dtype=np.int8
    )
    return _render_rig(ids, centers, dirs, mid, spread, state, rel)


def _camera_label(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value)
    return f"{int(text):02d}" if text.isascii() and text.isdigit() and len(text) <= 2 else text


def _render_rig(
    ids: list[str],
    centers: np.ndarray,
    dirs: np.ndarray,
    mid: np.ndarray,
    spread: float,
    state: np.ndarray,
    source: str,
) -> bytes:
    """Draw the rig; ``state`` per camera: 0 not extracted (grey), 1 calibration only,
    2 with extracted images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    arrow = 0.3 * spread
    # World up is -y. Seen from above, x to the right puts z up the page; seen from the front
    # (from -z), x is to the right and -y is up.
    views = [
        ("top view (from above)", "x", "z", (0, 1.0), (2, 1.0)),
        ("front view (from -z)", "x", "-y (up)", (0, 1.0), (1, -1.0)),
    ]
    for k, (name, xlabel, ylabel, (ia, sa), (ib, sb)) in enumerate(views):
        ax = fig.add_subplot(1, 2, k + 1)
        px, py = sa * centers[:, ia], sb * centers[:, ib]
        dx, dy = sa * dirs[:, ia] * arrow, sb * dirs[:, ib] * arrow
        for sel, colour, text, z in (
            (state == 0, "0.75", "not extracted", 0),
            (state == 1, "tab:blue", "calibration only", 2),
            (state == 2, "tab:orange", "with extracted images", 4),
        ):
            if not sel.any():
                continue
            ax.scatter(px[sel], py[sel], s=22, c=colour, label=text, zorder=z + 1)
            ax.quiver(
                px[sel],
                py[sel],
                dx[sel],
                dy[sel],
                color=colour,
                angles="xy",
                scale_units="xy",
                scale=1.0,
                width=0.004,
                zorder=z,
            )
        ox, oy = px - sa * mid[ia], py - sb * mid[ib]
        r = np.hypot(ox, oy)
        r[r == 0] = 1.0
        off = 0.08 * spread
        for cam, x, y, ux, uy, st in zip(ids, px, py, ox / r, oy / r, state, strict=True):
            ax.annotate(
                cam,
                (x + ux * off, y + uy * off),
                color="0.6" if st == 0 else "black",
                fontsize=7,
                ha="center",
                va="center",
                annotation_clip=False,
            )
        ax.plot([sa * mid[ia]], [sb * mid[ib]], marker="+", color="0.4", ms=10, ls="none")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_aspect("equal", adjustable="datalim")
        ax.margins(0.12)
        ax.grid(True, lw=0.4, alpha=0.5)
        if k == 0:
            ax.legend(loc="upper right", fontsize=8)
    chosen = int((state > 0).sum())
    fig.suptitle(
        (
            f"Camera rig: {chosen} of {len(ids)} cameras extracted"
            if chosen < len(ids)
            else f"Camera rig: {len(ids)} cameras"
        )
        + ", centres and viewing directions "
        "(RT camera-to-world, OpenCV axes, world up = -y)"
    )
    fig.text(0.01, 0.01, f"source: {source}; + marks the mean of the centres", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()

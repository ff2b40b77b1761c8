"""Probe SMC files: what each one really holds, without reading image payloads.

Nothing is assumed from a file's role: every file is probed for every modality. The result is
a tree of dataclasses that serialises to JSON (``explore --json``); per-blob sizes and offsets are
kept beside it for the planner but left out of the JSON.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Renderme360Error, one_line
from ..formats.image import image_extension
from ..modalities import BY_BLOB_KIND, MODALITIES, PER_FRAME, spec
from ..naming import validate_actor, validate_performance
from ..smc.reader import BlobLocation, ExtractionReader
from ..smc.source import RemotePath, as_location, source_id
from ..smc.streams import BlobStream
from ..tasks import SourceId
from ..textsafe import finite_json

log = logging.getLogger(__name__)

BlobKey = tuple[str, str, int]  # (kind, camera or "", frame or -1)


class BlobIndex:
    """``(kind, camera, frame) -> BlobLocation`` for every blob of a file, held compactly as
    one :class:`BlobStream` per (kind, camera). Behaves as a read/write mapping."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], BlobStream] = {}

    def stream(self, kind: str, cam: str) -> BlobStream | None:
        """The blobs of one stream (``cam`` is "" for UV textures)."""
        return self._streams.get((kind, cam))

    def set_stream(self, kind: str, cam: str, stream: BlobStream) -> None:
        """Hold a whole stream's blobs (replacing what was held for it)."""
        self._streams[(kind, cam)] = stream

    def __setitem__(self, key: BlobKey, loc: BlobLocation) -> None:
        kind, cam, frame = key
        s = self._streams.get((kind, cam))
        if s is None:
            s = self._streams[(kind, cam)] = BlobStream()
        s.put(frame, loc)

    def __getitem__(self, key: BlobKey) -> BlobLocation:
        kind, cam, frame = key
        s = self._streams.get((kind, cam))
        i = None if s is None else s.position(frame)
        if s is None or i is None:
            raise KeyError(key)
        return s.location(i)

    def get(self, key: BlobKey, default: BlobLocation | None = None) -> BlobLocation | None:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        """Whether a blob is held; a key not of the ``(kind, camera, frame)`` form is not."""
        if not (isinstance(key, tuple) and len(key) == 3):
            return False
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def items(self) -> Iterator[tuple[BlobKey, BlobLocation]]:
        for (kind, cam), s in self._streams.items():
            for i, frame in enumerate(s.frames):
                yield (kind, cam, frame), s.location(i)

    def __iter__(self) -> Iterator[BlobKey]:
        return (key for key, _loc in self.items())

    def keys(self) -> Iterator[BlobKey]:
        return iter(self)

    def values(self) -> Iterator[BlobLocation]:
        return (loc for _key, loc in self.items())

    def total_bytes(self, kind: str) -> int:
        """Stored bytes of every blob of one kind."""
        return sum(sum(s.sizes) for (k, _c), s in self._streams.items() if k == kind)

    def signature(self, kind: str) -> list[tuple[str, bytes, bytes]]:
        """Frames and sizes of every stream of one kind: equal when two files hold the same
        blobs (by frame and size)."""
        return sorted(
            (cam, s.frames.tobytes(), s.sizes.tobytes())
            for (k, cam), s in self._streams.items()
            if k == kind
        )


@dataclass
class FileInventory:
    """What one SMC file holds. Lists are sorted; cameras are 2-digit strings."""

    role: str
    source: SourceId
    error: str | None = None
    actor_id: str = ""
    performance: str = ""
    capture_date: str = ""
    actor_info: dict[str, Any] = field(default_factory=dict)
    camera_info: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    images: dict[str, list[int]] = field(default_factory=dict)
    masks: dict[str, list[int]] = field(default_factory=dict)
    calibration: list[str] = field(default_factory=list)
    audio: dict[str, Any] | None = None
    keypoints2d: dict[str, list[int]] = field(default_factory=dict)
    keypoints3d: list[int] = field(default_factory=list)
    flame: list[int] = field(default_factory=list)
    flame_fields: dict[str, list[Any]] = field(default_factory=dict)
    flame_missing: dict[str, list[int]] = field(default_factory=dict)  # field -> frames without it
    uv: list[int] = field(default_factory=list)
    scan: dict[str, Any] | None = None
    scan_masks: list[str] = field(default_factory=list)
    blobs: BlobIndex = field(default_factory=BlobIndex, repr=False)
    extensions: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    #: Camera-to-world RT of each calibrated camera (what ``ring:``/``front:`` need; None when
    #: not probed, see ``probe(camera_poses=True)``), and why the calibration could not be read
    #: if it could not (only those selections then fail).
    camera_rt: dict[str, np.ndarray] | None = field(default=None, repr=False)
    #: Requests and bytes the probe fetched from the file (``{"requests": n, "bytes": n}``).
    fetched: dict[str, int] = field(default_factory=dict, repr=False)
    calibration_error: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the file could be read."""
        return self.error is None

    def modalities(self) -> list[str]:
        """Names of the modalities this file really holds (canonical order)."""
        return [m for m in MODALITIES if HOLDS[m](self)]

    def blob_bytes(self, kind: str) -> int:
        """Total stored bytes of one blob kind (color, mask, uv, scan_mask)."""
        return self.blobs.total_bytes(kind)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (counts and bytes instead of per-frame lists)."""
        # field by field: asdict would deep-copy every blob location (one per image) first
        per_frame = (*PER_FRAME, "flame_missing")
        skip = {"blobs", "extensions", "camera_rt", "calibration_error", "source", "fetched"}
        skip.update(per_frame)
        d = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in skip}
        d["source"] = self.source.record()
        d["modalities"] = self.modalities()
        for name in PER_FRAME:  # the field of a per-frame modality is named after it
            held = getattr(self, name)
            d[name] = (
                {cam: len(frames) for cam, frames in held.items()}
                if isinstance(held, dict)
                else len(held)
            )
        d["flame_missing"] = {k: len(v) for k, v in self.flame_missing.items()}
        d["bytes"] = {k: self.blob_bytes(k) for k in BY_BLOB_KIND}
        return d


#: Whether a file holds each modality, by modality name (every spec needs one).
HOLDS: dict[str, Callable[[FileInventory], bool]] = {
    "metadata": lambda inv: inv.ok,
    "calibration": lambda inv: bool(inv.calibration),
    "images": lambda inv: bool(inv.images),
    "masks": lambda inv: bool(inv.masks),
    "audio": lambda inv: inv.audio is not None,
    "keypoints2d": lambda inv: any(inv.keypoints2d.values()),
    "keypoints3d": lambda inv: bool(inv.keypoints3d),
    "flame": lambda inv: bool(inv.flame),
    "uv": lambda inv: bool(inv.uv),
    "scan": lambda inv: inv.scan is not None,
    "scan_masks": lambda inv: bool(inv.scan_masks),
}


def frames_held(inv: FileInventory, modality: str) -> list[int]:
    """Every frame a file holds of a per-frame modality (of any camera): its field is named
    after it and is either ``{camera: frames}`` or a list of frames."""
    held = getattr(inv, spec(modality).name)
    if isinstance(held, dict):
        return [f for frames in held.values() for f in frames]
    return list(held)


def probe(
    path: str | os.PathLike[str] | RemotePath, role: str, camera_poses: bool = False
) -> FileInventory:
    """Open one SMC file and record everything it holds; a read error is recorded, not raised.

    ``camera_poses`` also reads every camera's RT (for ``ring:``/``front:`` camera rules; it costs
    a few reads per calibrated camera, so only when a selection needs it).
    """
    where = as_location(path)  # a URL is shown without its credentials
    try:
        source = source_id(where)
    except OSError as exc:  # vanished, dangling symlink, no permission
        source = SourceId(str(where.absolute()), 0, 0)
        inv = FileInventory(role=role, source=source)
        inv.error = f"{where}: cannot read ({exc.strerror or exc})"
        log.debug("%s", inv.error)  # recorded in inv.error: the caller reports it once
        return inv
    inv = FileInventory(role=role, source=source)
    try:
        with ExtractionReader(where) as reader:
            try:
                _probe_into(reader, inv, camera_poses)
            finally:  # what a remote file cost (a local one counts nothing)
                inv.fetched = reader.source().stats.as_dict() if source.url else {}
    except Renderme360Error as exc:
        inv.error = str(exc)
        log.debug("%s", exc)
    except Exception as exc:  # a hostile file reached a failure mode nobody anticipated
        inv.error = f"{where}: cannot read ({type(exc).__name__}: {one_line(exc)})"
        log.debug("unexpected error while probing %s", where, exc_info=True)
    if inv.error is not None:  # nothing half-probed may reach the planner
        _clear(inv)
    return inv


def _clear(inv: FileInventory) -> None:
    """Forget what was probed before a failure: an unreadable file contributes nothing."""
    fresh = FileInventory(role=inv.role, source=inv.source, error=inv.error)
    for name in inv.__dataclass_fields__:
        setattr(inv, name, getattr(fresh, name))


def _probe_into(r: ExtractionReader, inv: FileInventory, camera_poses: bool = False) -> None:
    where = str(r.path)
    actor, performance, inv.capture_date = r.identity()
    inv.actor_id = validate_actor(actor, where)
    inv.performance = validate_performance(performance, where)
    inv.actor_info = r.read_actor_info()
    inv.camera_info = r.read_camera_info()
    for kind, target in (("color", inv.images), ("mask", inv.masks)):
        for cam in r.list_cameras(kind):
            stream = r.blob_stream(cam, kind)
            frames = list(stream.frames)
            target[cam] = frames
            inv.blobs.set_stream(kind, cam, stream)
            if frames:
                first = stream.location(0)
                inv.extensions[(kind, cam)] = _stream_extension(r, kind, cam, frames[0], first)
    inv.calibration = r.list_calibration_cameras()
    if camera_poses:
        inv.camera_rt, inv.calibration_error = _camera_rts(r, inv.calibration)
    inv.audio = r.audio_info()
    for cam in r.list_keypoints2d_cameras():
        frames = r.list_keypoints2d_frames(cam)
        if frames:
            inv.keypoints2d[cam] = frames
    inv.keypoints3d = r.list_keypoints3d_frames()
    inv.flame = r.list_flame_frames()
    if inv.flame:
        # every frame's fields: a field some frames lack is reported, never silently dropped
        holders = r.flame_field_frames()
        for name, frames in sorted(holders.items(), key=lambda kv: kv[1][0]):
            if name not in inv.flame_fields:
                fields = r.flame_fields(frames[0])
                inv.flame_fields.update(
                    (k, [list(s), t]) for k, (s, t) in fields.items() if k not in inv.flame_fields
                )
            if len(frames) < len(inv.flame):
                held = set(frames)
                inv.flame_missing[name] = [f for f in inv.flame if f not in held]
    inv.uv = r.list_uv_frames()
    for frame in inv.uv:
        inv.blobs[("uv", "", frame)] = r.blob_location("uv", None, frame)
    if inv.uv:
        inv.extensions[("uv", "")] = _stream_extension(r, "uv", None, inv.uv[0])
    inv.scan = r.scan_info()
    inv.scan_masks = r.list_scanmask_cameras()
    for cam in inv.scan_masks:
        inv.blobs[("scan_mask", cam, -1)] = r.blob_location("scan_mask", cam, None)
        inv.extensions[("scan_mask", cam)] = _stream_extension(r, "scan_mask", cam, None)


def read_camera_poses(inv: FileInventory) -> dict[str, np.ndarray] | None:
    """Every calibrated camera's RT: from the inventory when probed with poses, else read from
    its file; None when unreadable (callers then do without)."""
    if inv.camera_rt is not None:
        return inv.camera_rt
    try:
        with ExtractionReader(inv.source.location) as r:
            rts, _error = _camera_rts(r, inv.calibration)
    except (Renderme360Error, OSError) as exc:
        log.info("camera poses of %s not read: %s", inv.source.path, exc)
        return None
    return rts or None


def _camera_rts(r: ExtractionReader, cams: list[str]) -> tuple[dict[str, np.ndarray], str | None]:
    """RT of each calibrated camera; a calibration that cannot be read is recorded, not raised
    (it fails only a camera selection that needs it, as it did when read at planning time)."""
    try:
        return {c: r.calibration_of(c)["RT"] for c in cams}, None
    except Renderme360Error as exc:
        return {}, str(exc)


def _stream_extension(
    r: ExtractionReader,
    kind: str,
    cam: str | None,
    frame: int | None,
    where: BlobLocation | None = None,
) -> str:
    """Extension of a stream from the magic bytes of its first blob ("bin" when unknown)."""
    if where is not None and where.offset is not None:  # straight from the file, no HDF5 read
        head = r.source().read_at(where.offset, min(16, where.nbytes))
    else:
        head = r.read_blob_head(kind, cam, frame)
    return image_extension(head) or "bin"


# ---------------------------------------------------------------- metadata documents
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


def info_json(inv: FileInventory, selection: Mapping[str, str]) -> str:
    """``info.json`` text (what the folder's selections cover is recorded too)."""
    doc = info_doc(inv)
    doc["selection"] = dict(selection)
    return json.dumps(finite_json(doc), indent=2, default=str, allow_nan=False) + "\n"


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

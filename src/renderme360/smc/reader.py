"""Extraction API of RenderMe360 SMC (HDF5) files: what each file holds, and its stored bytes.

:class:`ExtractionReader` lists and reads what extraction needs (stored bytes without decoding,
where those bytes lie in the file, listings of every modality) without reading image payloads.
HDF5 paths come from :mod:`.schema`, checks from :mod:`.h5safe`; every name read from the file
is validated before it is returned, and every failure is a
:class:`~renderme360.errors.Renderme360Error`. The published API is :mod:`.compat`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import h5py
import numpy as np
from h5py import h5l

from ..errors import (
    InvalidIdError,
    Renderme360Error,
    SMCFormatError,
    SMCNotFoundError,
    SMCOpenError,
    one_line,
)
from ..naming import CAMERA_RE, FRAME_RE, camera_key
from . import h5safe, schema
from .h5safe import BlobLocation, declared_bytes, to_py, to_str
from .headers import HeaderProbe
from .schema import (
    ACTOR_INFO_KEYS,
    KEYPOINT2D_CAMERAS,
    MAX_FRAMES,
    MAX_RESOLUTION,
    REQUIRED_ROOT_ATTRS,
)
from .source import ByteSource, RemotePath, Stamp, as_location
from .streams import BlobStream

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R", bound="ExtractionReader")


def _has_members(group: h5py.Group) -> bool:
    """Whether a group has a member: the first one found ends the walk (len() counts all)."""
    seen: list[bytes] = []

    def first(name: bytes) -> bool:
        seen.append(name)
        return True  # True stops the walk

    group.id.links.iterate(first)
    return bool(seen)


__all__ = ["BlobLocation", "ExtractionReader"]


def _guard(method: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """Turn low-level HDF5/numpy failures into SMCFormatError naming the file (the method's
    signature is kept, so its callers stay type-checked)."""

    @functools.wraps(method)
    def wrapper(self: R, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except Renderme360Error:
            raise
        except (
            OSError,
            KeyError,
            ValueError,
            TypeError,
            RuntimeError,
            IndexError,
            OverflowError,
        ) as exc:
            raise SMCFormatError(
                f"{self.path}: cannot read ({method.__name__}): {one_line(exc)}"
            ) from exc

    return wrapper


def _frame_arg(frame: object) -> str:
    """Normalise a user-given frame id to the SMC key form (``"0"``, ``"17"``); anything else
    (an untrusted value of any type) is an InvalidIdError."""
    if isinstance(frame, (bool, np.bool_)):
        raise InvalidIdError(f"invalid frame id {frame!r}")
    if isinstance(frame, (int, np.integer)):
        if 0 <= int(frame) <= MAX_FRAMES:
            return str(int(frame))
    elif isinstance(frame, (str, bytes)):
        s = frame.decode("ascii", "replace") if isinstance(frame, bytes) else frame
        if s.isdigit() and len(s) <= 9:
            return str(int(s))
    raise InvalidIdError(f"invalid frame id {frame!r}: expected a non-negative integer")


#: Files of readers collected on a thread other than their own (see ``__del__``).
_ORPHANS: list[tuple[Any, Any]] = []


def _close_orphans() -> None:
    """Close what readers collected on another thread left open."""
    while _ORPHANS:
        try:
            smc, source = _ORPHANS.pop()
        except IndexError:
            return
        if smc is not None and smc.id.valid:
            smc.close()
        if source is not None:
            source.close()


class ExtractionReader:
    """Read one SMC file for extraction: listings, stored bytes, their offsets, checked arrays.

    Lenient about what a file lacks (None or ``[]``), strict about what it holds: every failure
    is a :class:`~renderme360.errors.Renderme360Error`. The published API is
    :class:`.compat.SMCReader`, a subclass.

    Parameters
    ----------
    file_path
        Path of an ``.smc`` file, opened read-only (see :func:`.h5safe.open_readonly` for how it
        shares the file with other openers in the process); use the reader as a context manager
        or call :meth:`close`.
    stamp
        The version of a URL the caller has just confirmed (opening asks no HEAD again).

    Raises
    ------
    SMCOpenError
        The file is missing, not HDF5 or truncated (also an ``OSError``).
    SMCFormatError
        The file lacks the root attributes of an SMC file.
    """

    def __init__(
        self, file_path: str | os.PathLike[str] | RemotePath, *, stamp: Stamp | None = None
    ) -> None:
        self._thread = threading.get_ident()  # the thread that may close it from __del__
        _close_orphans()
        self.path: Path | RemotePath = as_location(file_path)
        self._source: ByteSource | None = None
        self._header_probe: HeaderProbe | Literal[False] | None = None  # False: not usable
        self.smc: h5py.File | None = None
        if isinstance(self.path, RemotePath):
            self._open_remote(stamp)
            return
        if not self.path.is_file():  # a FIFO or device would block or stream forever
            if self.path.exists():
                raise SMCOpenError(f"{self.path}: not a regular file")
            raise SMCNotFoundError(f"{self.path}: no such file")
        try:
            self.smc = h5safe.open_readonly(self.path)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise SMCOpenError(
                f"{self.path}: not a readable HDF5/SMC file ({h5safe.open_failure(exc)})"
            ) from exc
        self._opened()

    def _open_remote(self, stamp: Stamp | None) -> None:
        """Open a URL: HDF5 reads it through a file object over a ranged-read source."""
        self._source = ByteSource.open(self.path, stamp)
        try:
            self.smc = h5py.File(self._source.file(), "r")
        except Renderme360Error:
            self.close()
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            self.close()
            raise SMCOpenError(
                f"{self.path}: not a readable HDF5/SMC file ({h5safe.open_failure(exc)})"
            ) from exc
        self._opened()

    def _opened(self) -> None:
        h5safe.bound_metadata_cache(self.smc)
        try:
            self._check_root()
        except BaseException:
            self.close()
            raise

    @property
    def _h5(self) -> h5py.File:
        """The open HDF5 file; a reader whose file was dropped refuses in one line."""
        if self.smc is None:
            raise SMCOpenError(f"{self.path}: the reader is closed")
        return self.smc

    def _check_root(self) -> None:
        """Refuse a file without the root attributes every SMC file has."""
        try:
            missing = [a for a in REQUIRED_ROOT_ATTRS if a not in self._h5.attrs]
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise SMCFormatError(
                f"{self.path}: cannot read root attributes ({one_line(exc)})"
            ) from exc
        if missing:
            raise SMCFormatError(
                f"{self.path}: not an SMC file: root attribute(s) {', '.join(missing)} missing"
            )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the HDF5 file and any raw descriptor opened for fast copies."""
        self._header_probe = None
        smc = getattr(self, "smc", None)
        if smc is not None and smc.id.valid:
            smc.close()
        source, self._source = getattr(self, "_source", None), None
        if source is not None:
            source.close()

    def __enter__(self) -> ExtractionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Garbage collection, possibly at interpreter shutdown when module globals (os, h5py,
        # logging's own) are already None: close quietly, never log or raise from here (a
        # message at exit would be noise, and logging itself may be torn down). No
        # contextlib.suppress: its module may be cleared too.
        # A reader collected on another thread (an fsspec I/O thread, a hashing thread) is
        # not closed there: HDF5's lock may be held by a thread that waits for this very one
        # (a remote read), a deadlock. Its file is closed by the next reader opened.
        try:
            if threading.get_ident() != getattr(self, "_thread", None):
                _ORPHANS.append((getattr(self, "smc", None), getattr(self, "_source", None)))
                self.smc = self._source = None
            else:
                self.close()
        except BaseException:
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    # ------------------------------------------------------------------ root attributes
    @_guard
    def identity(self) -> tuple[str, str, str]:
        """``(actor_id, performance_part, capture_date)`` decoded to ``str`` (date ``""`` when
        absent). Untrusted: validate before using them in a path."""
        a = self._h5.attrs
        date = a.get("capture_date")
        return (
            to_str(a["actor_id"]),
            to_str(a["performance_part"]),
            "" if date is None else to_str(date),
        )

    @_guard
    def read_actor_info(self) -> dict[str, Any]:
        """``age, color, gender, height, weight`` as JSON-safe values (None when absent)."""
        a = self._h5.attrs
        return {k: to_py(a[k]) if k in a else None for k in ACTOR_INFO_KEYS}

    @_guard
    def read_camera_info(self) -> dict[str, Any] | None:
        """``num_device, num_frame, resolution`` (height, width) of the Camera group, or None."""
        camera = self._get(schema.CAMERA)
        if camera is None:
            return None
        a = camera.attrs
        info = {k: to_py(a[k]) if k in a else None for k in ("num_device", "num_frame")}
        info["resolution"] = to_py(a["resolution"]) if "resolution" in a else None
        self._check_camera_info(info)
        return info

    def _check_camera_info(self, info: Mapping[str, Any]) -> None:
        for key, top in (("num_device", schema.MAX_DEVICES), ("num_frame", MAX_FRAMES)):
            v = info.get(key)
            if v is not None and (not isinstance(v, int) or not 0 <= v <= top):
                raise SMCFormatError(f"{self.path}: Camera attribute {key}={v!r} is out of range")
        res = info.get("resolution")
        if res is not None and (
            not isinstance(res, list)
            or len(res) != 2
            or not all(isinstance(x, int) and 0 < x <= MAX_RESOLUTION for x in res)
        ):
            raise SMCFormatError(f"{self.path}: Camera attribute resolution={res!r} is invalid")

    # ------------------------------------------------------------------ calibration
    @_guard
    def read_calibration_all(self) -> dict[str, dict[str, np.ndarray]] | None:
        """``{cam: {'K', 'D', 'RT'}}`` for every calibrated camera (None without calibration)."""
        if not self._has(schema.CALIBRATION):
            return None
        cams = self.list_calibration_cameras()
        return {cam: self.calibration_of(cam) for cam in cams}

    @_guard
    def read_calibration(self, Camera_id: int | str) -> dict[str, np.ndarray] | None:
        """``{'K' (3,3), 'D' (5,), 'RT' (4,4)}`` of one camera, shapes checked; RT maps camera
        to world. None when the file has no calibration; InvalidIdError for an absent camera."""
        if not self._has(schema.CALIBRATION):
            return None
        return self.calibration_of(Camera_id)

    @_guard
    def calibration_of(self, Camera_id: int | str) -> dict[str, np.ndarray]:
        """As :meth:`read_calibration` for a file known to hold calibration (a planned task, a
        listed camera): InvalidIdError when the camera's calibration is absent, never None."""
        cam = camera_key(Camera_id)
        node = self._get(f"{schema.CALIBRATION}/{cam}")
        if node is None:
            raise InvalidIdError(f"{self.path}: no calibration for camera {cam}")
        shapes = schema.CALIBRATION_SHAPES
        out = {}
        for name, shape in shapes.items():
            # shape checked from the header, before a byte is read (a K may declare 1 GiB)
            declared = getattr(self._child(node, name), "shape", None)
            if declared is not None and (
                math.prod(declared) != math.prod(shape)
                or (len(declared) != len(shape) and name != "D")
            ):
                raise SMCFormatError(
                    f"{self.path}: Calibration/{cam}/{name} has shape {declared}, expected {shape}"
                )
            arr = self._read_array(node, name)
            if name == "D" and arr.size == 5:
                arr = arr.reshape(5)
            if arr.shape != shape or not np.issubdtype(arr.dtype, np.number):
                raise SMCFormatError(
                    f"{self.path}: Calibration/{cam}/{name} has shape {arr.shape}, expected {shape}"
                )
            out[name] = arr
        return out

    @_guard
    def list_calibration_cameras(self) -> list[str]:
        """Camera ids with calibration, sorted."""
        group = self._get(schema.CALIBRATION)
        if group is None:
            return []
        cams = sorted(self._checked_keys(group, CAMERA_RE, "camera"))
        for cam in cams:  # headers only: K/D/RT must be stored inside this file
            node = self._child(group, cam)
            if isinstance(node, h5py.Group):
                links = h5safe.member_links(self.path, node, h5safe._ANY_NAME_RE, "dataset")
                for name, link in links.items():
                    h5safe.check_member_storage(self.path, node, name, link)
        return cams

    # ------------------------------------------------------------------ images
    @_guard
    def list_cameras(self, Image_type: str = "color") -> list[str]:
        """Cameras holding at least one frame of ``Image_type`` ('color' or 'mask'), sorted."""
        camera = self._get(schema.CAMERA)
        if camera is None:
            return []
        cams = []
        for cam in sorted(self._checked_keys(camera, CAMERA_RE, "camera")):
            sub = self._child(self._child(camera, cam), Image_type)
            if isinstance(sub, h5py.Group) and _has_members(sub):
                cams.append(cam)
        return cams

    @_guard
    def list_frames(self, Camera_id: int | str, Image_type: str = "color") -> list[int]:
        """Frame indices stored for one camera and image type, ascending ([] when none)."""
        cam = camera_key(Camera_id)
        sub = self._child(self._get(f"{schema.CAMERA}/{cam}"), Image_type)
        if sub is None:
            return []
        return sorted(int(k) for k in self._checked_keys(sub, FRAME_RE, "frame"))

    def get_img_bytes(self, Camera_id: int | str, Image_type: str, Frame_id: int | str) -> bytes:
        """The stored encoded bytes (a JPEG/PNG file) of one colour image or mask, undecoded."""
        if Image_type not in ("color", "mask"):
            raise InvalidIdError(f"invalid Image_type {Image_type!r}: expected 'color' or 'mask'")
        return self.read_blob(Image_type, Camera_id, Frame_id)

    # ------------------------------------------------------------------ generic blobs
    def _blob_dataset(self, kind: str, cam: int | str | None, frame: int | str | None) -> Any:
        """The h5py dataset of one encoded blob; InvalidIdError when it does not exist."""
        c = camera_key(cam) if kind in ("color", "mask", "scan_mask") else None
        f = _frame_arg(frame) if kind in ("color", "mask", "uv") else None
        path, what = schema.blob_path(kind, c, f)
        obj = self._get(path)
        if obj is None:
            raise InvalidIdError(f"{self.path}: no {what}")
        expected = f"{self.path}: {path} should be 1-D uint8 encoded bytes"
        if not isinstance(obj, h5py.Dataset):
            raise SMCFormatError(f"{expected}, found a group")
        if obj.shape is None or obj.ndim != 1 or obj.dtype != np.uint8:
            raise SMCFormatError(f"{expected}, found {obj.shape} {obj.dtype}")
        return self._checked_dataset(obj, kinds="u", limit=schema.MAX_BLOB_BYTES)

    @_guard
    def read_blob(
        self, kind: str, cam: int | str | None = None, frame: int | str | None = None
    ) -> bytes:
        """Stored bytes of a colour image, mask, UV texture or scan mask, undecoded."""
        dset = self._blob_dataset(kind, cam, frame)
        if dset.size == 0:
            return b""
        return dset[()].tobytes()

    @_guard
    def read_blob_head(
        self, kind: str, cam: int | str | None = None, frame: int | str | None = None, n: int = 16
    ) -> bytes:
        """First ``n`` stored bytes of a blob (enough for its magic number)."""
        dset = self._blob_dataset(kind, cam, frame)
        return dset[: min(n, dset.size)].tobytes() if dset.size else b""

    @_guard
    def blob_location(
        self, kind: str, cam: int | str | None = None, frame: int | str | None = None
    ) -> BlobLocation:
        """Size of a blob and, when stored contiguously without filters, its byte offset.

        With an offset the bytes can be copied straight from the file (``os.pread``,
        ``copy_file_range``) without HDF5; otherwise they must be read through :meth:`read_blob`.
        """
        dset = self._blob_dataset(kind, cam, frame)
        return BlobLocation(int(dset.size), h5safe.contiguous_offset(dset))

    def blob_locations(
        self, Camera_id: int | str, Image_type: str = "color"
    ) -> dict[int, BlobLocation]:
        """Every stored frame of one camera's colour or mask stream with its location, by frame
        (:meth:`blob_stream` as a dict: the same answer as :meth:`blob_location` frame by frame)."""
        stream = self.blob_stream(Camera_id, Image_type)
        return {frame: stream.location(i) for i, frame in enumerate(stream.frames)}

    @_guard
    def blob_stream(self, Camera_id: int | str, Image_type: str = "color") -> BlobStream:
        """Every stored frame of one camera's colour or mask stream with its offset and size.

        The same answer as :meth:`blob_location` frame by frame, in a fraction of the time:
        plain blobs (every real file) are located from their object headers (:mod:`.headers`,
        which holds every header to the checks HDF5 makes when it opens a dataset), a stream
        at a time, and trusted only if a sample (first, middle, last) equals HDF5's own answer;
        anything else goes through HDF5 and the checked path and its errors.
        """
        cam = camera_key(Camera_id)
        group = self._get(f"{schema.CAMERA}/{cam}/{Image_type}")
        if group is None:
            return BlobStream()
        links = h5safe.member_link_infos(self.path, group, FRAME_RE, "frame")
        keys = sorted(links, key=int)
        offsets, sizes = np.full(len(keys), -1, np.int64), np.zeros(len(keys), np.int64)
        # only a hard link is located from its header or low-level: it names an object of THIS
        # file, so the offset is one in this file; soft links take the checked path below
        hard = [i for i, k in enumerate(keys) if links[k][0] == h5l.TYPE_HARD]
        probe = self._probe()
        if probe is not None and hard:
            offsets[hard], sizes[hard] = probe.locations([links[keys[i]][1] for i in hard])

            def answer(j: int) -> BlobLocation | None:
                i = hard[j]
                return None if offsets[i] < 0 else BlobLocation(int(sizes[i]), int(offsets[i]))

            low_level = partial(h5safe.plain_blob_location, group.id)
            if not self._agrees(group, [keys[i] for i in hard], answer, low_level):
                offsets[:] = -1
        for i, key in enumerate(keys):
            if offsets[i] < 0:
                loc = None
                if links[key][0] == h5l.TYPE_HARD:
                    loc = h5safe.plain_blob_location(group.id, key)
                loc = loc or self.blob_location(Image_type, cam, key)
                offsets[i] = -1 if loc.offset is None else loc.offset
                sizes[i] = loc.nbytes
        return BlobStream.of(np.array(keys, np.int64), offsets, sizes)

    def _agrees(
        self,
        group: h5py.Group,
        keys: list[str],
        answer: Callable[[int], object],
        low_level: Callable[[str], object],
    ) -> bool:
        """Whether the header answers (``answer(i)`` for ``keys[i]``; None: no answer) of the
        first, middle and last member equal HDF5's own (``low_level(key)``)."""
        for i in {0, len(keys) // 2, len(keys) - 1}:
            fast = answer(i)
            if fast is not None and fast != low_level(keys[i]):
                log.debug("%s: %s/%s: header read disagrees", self.path, group.name, keys[i])
                return False
        return True

    def _hard_members(
        self,
        group: h5py.Group,
        links: dict[str, tuple[int, object]],
        from_header: Callable[[HeaderProbe, object], T | None],
        low_level: Callable[[str], T | None],
    ) -> dict[str, T | None]:
        """``from_header`` (:mod:`.headers`, one read per member) or else ``low_level`` (HDF5
        opens the member) for every hard-linked member of a group. The header answers are
        trusted only if a sample of them (first, middle, last) equals HDF5's own."""
        hard = {k: a for k, (kind, a) in links.items() if kind == h5l.TYPE_HARD}
        probe = self._probe()
        if probe is None or not hard:
            return {k: low_level(k) for k in hard}
        fast = {k: from_header(probe, a) for k, a in hard.items()}
        keys = list(fast)
        if not self._agrees(group, keys, lambda i: fast[keys[i]], low_level):
            return {k: low_level(k) for k in hard}
        return {k: low_level(k) if v is None else v for k, v in fast.items()}

    def _probe(self) -> HeaderProbe | None:
        """The object-header reader of this file, when its address sizes allow one."""
        if self._header_probe is None:
            plist = self._h5.id.get_create_plist()
            source = self.source()
            if HeaderProbe.usable(plist.get_sizes()):
                self._header_probe = HeaderProbe(source, int(plist.get_userblock()), source.size)
            else:
                self._header_probe = False
        return self._header_probe or None

    def source(self) -> ByteSource:
        """The file's bytes by range (:mod:`.source`: local ``pread`` or ranged requests, with
        request and byte counters), for reads by offset without HDF5; closed by close()."""
        if self._source is None:
            self._source = ByteSource.open(self.path)
        return self._source

    def raw_fd(self) -> int:
        """A read-only OS descriptor of a local file, for copying blobs by offset."""
        return self.source().fd

    # ------------------------------------------------------------------ audio
    @_guard
    def read_audio(self) -> dict[str, Any] | None:
        """``{'audio': ndarray, 'sample_rate': int}`` when the file holds audio, else None."""
        group = self._audio_group()
        if group is None:
            return None
        audio = self._read_array(group, "audio")
        if audio.ndim not in (1, 2) or audio.size == 0:
            raise SMCFormatError(f"{self.path}: audio has shape {audio.shape}, expected 1-D or 2-D")
        if audio.dtype.kind == "f" and not np.isfinite(audio).all():
            # corrupt samples; they also make the MP3 encoder abort the whole process
            raise SMCFormatError(f"{self.path}: audio holds NaN or infinite samples (corrupt)")
        return {"audio": audio, "sample_rate": self.audio_sample_rate()}

    def _audio_group(self) -> h5py.Group | None:
        group = self._get(schema.AUDIO_GROUP)
        if group is None:
            return None
        if not isinstance(group, h5py.Group) or self._child(group, "audio") is None:
            raise SMCFormatError(f"{self.path}: Camera/00/audio is not an audio group")
        return group

    @_guard
    def audio_info(self) -> dict[str, Any] | None:
        """Shape, dtype, sample rate and duration of the stored audio without reading samples."""
        group = self._audio_group()
        if group is None:
            return None
        dset = self._child(group, "audio")
        if not isinstance(dset, h5py.Dataset):
            raise SMCFormatError(f"{self.path}: Camera/00/audio/audio is not a dataset")
        self._checked_dataset(dset)
        shape = tuple(int(s) for s in dset.shape)
        if len(shape) not in (1, 2) or not all(shape):
            raise SMCFormatError(f"{self.path}: audio has shape {shape}, expected 1-D or 2-D")
        rate = self.audio_sample_rate()
        n = shape[0] if shape else 0
        return {
            "shape": list(shape),
            "dtype": str(dset.dtype),
            "sample_rate": rate,
            "seconds": n / rate if rate else 0.0,
            "nbytes": declared_bytes(dset),
        }

    def audio_sample_rate(self) -> int:
        """Sample rate stored beside the audio (Hz)."""
        group = self._audio_group()
        if group is None or self._child(group, "sample_rate") is None:
            raise SMCFormatError(f"{self.path}: audio has no sample_rate")
        rate = to_py(self._read_array(group, "sample_rate"))
        if isinstance(rate, list):
            rate = rate[0] if len(rate) == 1 else None
        if not isinstance(rate, (int, float)) or not 0 < rate <= 10_000_000 or rate != int(rate):
            raise SMCFormatError(f"{self.path}: invalid audio sample_rate {rate!r}")
        return int(rate)

    # ------------------------------------------------------------------ keypoints
    @_guard
    def read_keypoints2d(self, Camera_id: int | str, Frame_id: int | str) -> np.ndarray | None:
        """(106, 2) pixel landmarks of one camera and frame; None when absent or empty."""
        cam = camera_key(Camera_id)
        frame = _frame_arg(Frame_id)
        if cam not in KEYPOINT2D_CAMERAS or not self._has(schema.KEYPOINTS2D):
            return None
        node = self._get(f"{schema.KEYPOINTS2D}/{cam}")
        return self._frame_array(node, frame, f"Keypoints2d/{cam}", last_dim=2)

    @_guard
    def read_keypoints2d_frames(
        self, Camera_id: int | str, frames: list[int]
    ) -> list[np.ndarray | None]:
        """:meth:`read_keypoints2d` of many frames of one camera (its group looked up once)."""
        cam = camera_key(Camera_id)
        keys = [_frame_arg(f) for f in frames]
        if cam not in KEYPOINT2D_CAMERAS or not self._has(schema.KEYPOINTS2D):
            return [None] * len(keys)
        node = self._get(f"{schema.KEYPOINTS2D}/{cam}")
        return [self._frame_array(node, f, f"Keypoints2d/{cam}", last_dim=2) for f in keys]

    @_guard
    def read_keypoints3d(self, Frame_id: int | str) -> np.ndarray | None:
        """(73, 3) world landmarks of one frame; None when absent or empty."""
        frame = _frame_arg(Frame_id)
        return self._frame_array(self._get(schema.KEYPOINTS3D), frame, "Keypoints3d", last_dim=3)

    def _frame_array(self, node: Any, frame: str, where: str, last_dim: int) -> np.ndarray | None:
        """Per-frame array from a group of frames, or a row of a stacked (frames, n, d) dataset."""
        if node is None:
            return None
        if isinstance(node, h5py.Dataset):  # stacked form: one dataset, frames on axis 0
            self._checked_stack(node)
            if node.ndim != 3 or node.shape[-1] != last_dim:
                raise SMCFormatError(f"{self.path}: {where} has shape {node.shape}")
            idx = int(frame)
            if idx >= node.shape[0]:
                return None
            arr = np.asarray(node[idx])
        else:
            member = self._child(node, frame)
            if member is None:
                return None
            arr = h5safe.read_array(self.path, node, frame, member)
        if arr.size == 0:
            return None
        if arr.ndim != 2 or arr.shape[1] != last_dim or not np.issubdtype(arr.dtype, np.number):
            raise SMCFormatError(
                f"{self.path}: {where}/{frame} has shape {arr.shape} {arr.dtype}, "
                f"expected (n, {last_dim}) numbers"
            )
        return arr

    @_guard
    def list_keypoints2d_cameras(self) -> list[str]:
        """Frontal cameras (18..32, the only ones with 2-D keypoints) with an entry, sorted."""
        group = self._get(schema.KEYPOINTS2D)
        if group is None:
            return []
        keys = self._checked_keys(group, CAMERA_RE, "camera")
        return sorted(k for k in keys if k in KEYPOINT2D_CAMERAS)

    @_guard
    def list_keypoints2d_frames(self, Camera_id: int | str) -> list[int]:
        """Frames of one camera whose 2D keypoints are present and non-empty."""
        cam = camera_key(Camera_id)
        if cam not in KEYPOINT2D_CAMERAS or not self._has(schema.KEYPOINTS2D):
            return []
        return self._nonempty_frames(self._get(f"{schema.KEYPOINTS2D}/{cam}"), f"Keypoints2d/{cam}")

    @_guard
    def list_keypoints3d_frames(self) -> list[int]:
        """Frames whose 3D keypoints are present and non-empty."""
        return self._nonempty_frames(self._get(schema.KEYPOINTS3D), "Keypoints3d")

    def _nonempty_frames(self, node: Any, where: str) -> list[int]:
        if node is None:
            return []
        if isinstance(node, h5py.Dataset):
            self._checked_stack(node)
            if node.ndim != 3:
                raise SMCFormatError(f"{self.path}: {where} has shape {node.shape}")
            return list(range(node.shape[0])) if node.shape[1] else []
        links = h5safe.member_link_infos(self.path, node, FRAME_RE, "frame")
        prefix = f"{self.path}: "
        sizes = self._hard_members(
            node,
            links,
            HeaderProbe.declared_bytes,
            lambda k: h5safe.plain_nbytes(node.id, k, prefix, f"{node.name}/{k}"),
        )
        frames = []
        for key in links:
            nbytes = sizes.get(key)
            if nbytes is None:  # not a plain dataset in this file: look closer
                obj = self._child(node, key)
                nbytes = (
                    declared_bytes(self._checked_dataset(obj))
                    if isinstance(obj, h5py.Dataset)
                    else 0
                )
            if nbytes > 0:
                frames.append(int(key))
        return sorted(frames)

    # ------------------------------------------------------------------ FLAME, UV, scan
    @_guard
    def read_flame_field(self, Frame_id: int | str, name: str) -> np.ndarray:
        """One FLAME dataset of one frame (e.g. ``verts`` (5023, 3))."""
        frame = _frame_arg(Frame_id)
        node = self._get(f"{schema.FLAME}/{frame}")
        if not isinstance(node, h5py.Group):
            raise InvalidIdError(f"{self.path}: no FLAME parameters for frame {frame}")
        if self._child(node, name) is None:
            raise SMCFormatError(f"{self.path}: FLAME/{frame} has no {name!r} (other frames do)")
        return self._read_array(node, name)

    @_guard
    def list_flame_frames(self) -> list[int]:
        """Frames with FLAME parameters, ascending."""
        group = self._get(schema.FLAME)
        if group is None:
            return []
        return sorted(int(k) for k in self._checked_keys(group, FRAME_RE, "frame"))

    @_guard
    def flame_field_frames(self) -> dict[str, list[int]]:
        """FLAME field name -> frames that hold it, ascending. Every field of every frame is
        checked from its header (name, storage inside this file) without reading it."""
        group = self._get(schema.FLAME)
        if group is None:
            return {}
        out: dict[str, list[int]] = {}
        for key in sorted(self._checked_keys(group, FRAME_RE, "frame"), key=int):
            node = self._child(group, key)
            if not isinstance(node, h5py.Group):
                raise SMCFormatError(f"{self.path}: FLAME/{key} is not a group")
            for name in self._safe_member_names(node):
                link = node.id.links.get_info(name.encode("utf-8", "surrogateescape")).type
                h5safe.check_member_storage(self.path, node, name, link)
                out.setdefault(name, []).append(int(key))
        return out

    @_guard
    def flame_fields(self, Frame_id: int | str) -> dict[str, tuple[tuple[int, ...], str]]:
        """Name -> (shape, dtype) of the FLAME datasets of one frame, without reading them."""
        frame = _frame_arg(Frame_id)
        node = self._get(f"{schema.FLAME}/{frame}")
        if not isinstance(node, h5py.Group):
            return {}
        out = {}
        for name in self._safe_member_names(node):
            d = self._child(node, name)
            if isinstance(d, h5py.Dataset):
                self._checked_dataset(d)  # the planner sizes the output from these shapes
                out[name] = (tuple(int(s) for s in d.shape), str(d.dtype))
        return out

    def get_uv_bytes(self, Frame_id: int | str) -> bytes:
        """Stored encoded bytes of one UV texture."""
        return self.read_blob("uv", None, Frame_id)

    @_guard
    def list_uv_frames(self) -> list[int]:
        """Frames with a UV texture, ascending."""
        group = self._get(schema.UV_TEXTURE)
        if group is None:
            return []
        return sorted(int(k) for k in self._checked_keys(group, FRAME_RE, "frame"))

    @_guard
    def read_scan(self) -> dict[str, np.ndarray] | None:
        """``{'vertex': (n, 3), 'vertex_indices': (m, 3)}`` of the static scan, checked, or None."""
        group = self._get(schema.SCAN)
        if group is None:
            return None
        vertex = self._read_array(group, "vertex")
        faces = self._read_array(group, "vertex_indices")
        if vertex.ndim != 2 or vertex.shape[1] != 3 or not np.issubdtype(vertex.dtype, np.floating):
            raise SMCFormatError(
                f"{self.path}: Scan/vertex has shape {vertex.shape} {vertex.dtype}"
            )
        if faces.ndim != 2 or not np.issubdtype(faces.dtype, np.integer):
            raise SMCFormatError(
                f"{self.path}: Scan/vertex_indices has shape {faces.shape} {faces.dtype}"
            )
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertex)):
            raise SMCFormatError(f"{self.path}: Scan/vertex_indices point outside the vertices")
        return {"vertex": vertex, "vertex_indices": faces}

    @_guard
    def scan_info(self) -> dict[str, Any] | None:
        """Vertex and face counts of the scan without reading it, or None."""
        group = self._get(schema.SCAN)
        if group is None:
            return None
        if not isinstance(group, h5py.Group):
            raise SMCFormatError(f"{self.path}: Scan should be a group")
        vertex = self._child(group, "vertex")
        if vertex is None:
            return None
        v = self._checked_dataset(vertex, kinds="f")
        f = self._child(group, "vertex_indices")
        if f is not None:
            f = self._checked_dataset(f, kinds="iu")
        if v.ndim != 2 or v.shape[1] != 3 or (f is not None and f.ndim != 2):
            shapes = f"{v.shape} and {None if f is None else f.shape}"
            raise SMCFormatError(f"{self.path}: Scan vertex/vertex_indices have shapes {shapes}")
        return {
            "vertices": int(v.shape[0]) if v.ndim else 0,
            "faces": int(f.shape[0]) if f is not None and f.ndim else 0,
            "vertex_dtype": str(v.dtype),
        }

    def get_scanmask_bytes(self, Camera_id: int | str) -> bytes:
        """Stored encoded bytes of one scan mask."""
        return self.read_blob("scan_mask", Camera_id, None)

    @_guard
    def list_scanmask_cameras(self) -> list[str]:
        """Cameras with a scan mask, sorted."""
        group = self._get(schema.SCAN_MASK)
        if group is None:
            return []
        return sorted(self._checked_keys(group, CAMERA_RE, "camera"))

    # ------------------------------------------------------------------ checks (see h5safe)
    def _get(self, where: str) -> Any:
        """The object at ``where``, or None; never follows a link out of the file."""
        return h5safe.get(self.path, self._h5, where)

    def _child(self, group: Any, name: str) -> Any:
        return h5safe.child(self.path, group, name)

    def _has(self, where: str) -> bool:
        return h5safe.inside_path(self.path, self._h5, where) is not None

    def _checked_keys(self, group: Any, pattern: Any, what: str) -> list[str]:
        return h5safe.checked_keys(self.path, group, pattern, what)

    def _safe_member_names(self, group: h5py.Group) -> list[str]:
        return h5safe.safe_member_names(self.path, group)

    def _read_array(self, group: Any, name: str) -> np.ndarray:
        return h5safe.read_array(self.path, group, name)

    def _checked_stack(self, dset: h5py.Dataset) -> None:
        h5safe.checked_stack(self.path, dset)

    def _checked_dataset(
        self, dset: Any, kinds: str = "biuf", limit: int = schema.MAX_ARRAY_BYTES
    ) -> h5py.Dataset:
        return h5safe.checked_dataset(self.path, dset, kinds, limit)

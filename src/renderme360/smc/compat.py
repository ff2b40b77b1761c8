"""The published ``SMCReader`` API, call for call: a drop-in for the dataset's own reader.

Same methods, arguments, attribute types, return values and exception classes as the published
``renderme_360_reader.SMCReader`` (quirks included: ``get_Calibration(5)`` fails while
``get_Calibration('05')`` works, ``get_Keypoints2d(cam)`` hands back the camera's group,
``get_scanmask()`` asks for all 60 cameras). Where it asserts, :class:`InvalidArgumentError`
(an ``AssertionError``) is raised; where it raises ``KeyError``, :class:`MissingDataError` (a
``KeyError``); where it prints and returns None, None is returned and the note goes to the debug
log. Every exception raised on purpose is also a :class:`~renderme360.errors.Renderme360Error`.

Unlike the published reader, every name and dataset is checked before it is read (the extraction
reader's checks): where the published reader returns an ``h5py.Group``, this one returns a
:class:`GroupView` that checks each member on access; datasets are real ``h5py.Dataset`` objects,
checked first. The extraction API (``read_blob``, ``list_*``, ...) is inherited unchanged.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Concatenate, ParamSpec, TypeVar

import h5py
import numpy as np

from ..errors import (
    InvalidArgumentError,
    MissingDataError,
    Renderme360Error,
    SMCFormatError,
    SMCOpenError,
    UnsafeNameError,
    one_line,
)
from ..formats.image import image_extension
from ..naming import CAMERA_RE, FRAME_RE
from . import h5safe, schema
from .h5safe import to_str
from .reader import ExtractionReader

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R", bound="SMCReader")

#: Names a member of a returned group may have: frame numbers, camera ids, dataset names.
MEMBER_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
#: Largest attribute read (the real ones are a few bytes; a hostile file could declare more).
MAX_ATTR_BYTES = 1 << 20
IMAGE_TYPES = ("color", "mask")
SCANMASK_CAMERAS = tuple(f"{i:02d}" for i in range(60))


def _io_guard(method: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """HDF5 read failures (``OSError``, as from h5py) become SMCOpenError naming the file, which
    is still an ``OSError``; every other exception passes unchanged (its class is the contract).
    The method's signature is kept, so its callers stay type-checked."""

    @functools.wraps(method)
    def wrapper(self: R, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except Renderme360Error:
            raise
        except OSError as exc:
            raise SMCOpenError(
                f"{self.path}: cannot read ({method.__name__}): {one_line(exc)}"
            ) from exc

    return wrapper


def _hint(key: str) -> str:
    """Why a one-digit camera id fails (the published reader compares ``str(cam)`` to keys)."""
    if key.isdigit() and len(key) == 1:
        return f" (camera ids are 2-digit keys: '0{key}')"
    return ""


def _check_frame_type(frame: object) -> None:
    """The published rule: a frame argument is an int, a str, a list or None."""
    if not isinstance(frame, (list, int, str, type(None))):
        raise InvalidArgumentError(
            f"invalid Frame_id type {type(frame).__name__}: expected int, str, list or None"
        )


class GroupView(Mapping[str, Any]):
    """Read-only stand-in for an ``h5py.Group``: ``g[key]``, ``g.keys()``, iteration, ``len``,
    ``in``, ``items()``, ``g.attrs`` and ``g.name`` work as on the group.

    Each member is checked when it is reached: its name must be plain (letters, digits, ``_``),
    external links are refused, and a dataset must be numeric with a sane declared size before it
    is handed out (as the real ``h5py.Dataset``, so ``d[()]``, slicing, ``shape`` and ``dtype``
    behave as usual). Sub-groups come back as views.
    """

    __slots__ = ("_group", "_reader")

    def __init__(self, reader: ExtractionReader, group: h5py.Group) -> None:
        self._reader = reader
        self._group = group

    @property
    def attrs(self) -> h5py.AttributeManager:
        """The group's HDF5 attributes (e.g. ``num_frame``)."""
        return self._group.attrs

    @property
    def name(self) -> str:
        """The group's path in the file."""
        return self._group.name

    def __getitem__(self, key: str | bytes) -> Any:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if not isinstance(key, str):  # what h5py raises for g[0]
            raise TypeError(f"Accessing a group is done with bytes or str, not {type(key)}")
        node: Any = self._group
        for part in key.split("/"):
            if not isinstance(node, h5py.Group) or not MEMBER_RE.fullmatch(part):
                raise MissingDataError(f"{self._reader.path}: {self.name} has no member {key!r}")
            node = _member(self._reader, node, part)
            if node is None:
                raise MissingDataError(f"{self._reader.path}: {self.name} has no member {key!r}")
        return _public(self._reader, node)

    def __iter__(self) -> Iterator[str]:
        for key in self._group:
            if not MEMBER_RE.fullmatch(key):
                raise UnsafeNameError(
                    f"{self._reader.path}: refusing member name {key!r} in {self.name}"
                )
            yield key

    def __len__(self) -> int:
        return len(self._group)

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, str)
            and bool(MEMBER_RE.fullmatch(key))
            and _member(self._reader, self._group, key) is not None
        )

    def __repr__(self) -> str:
        return f"<GroupView {self.name!r} ({len(self)} members) of {str(self._reader.path)!r}>"


def _member(reader: ExtractionReader, group: h5py.Group, name: str) -> Any:
    """Member ``name`` of ``group``, or None when absent; an external link (also behind soft
    links) is refused before it is followed (see :func:`.h5safe.child`)."""
    return h5safe.child(reader.path, group, name)


def _public(reader: ExtractionReader, node: Any) -> Any:
    """What the published face hands out for an HDF5 object: a checked dataset, a group view."""
    if isinstance(node, h5py.Group):
        return GroupView(reader, node)
    if isinstance(node, h5py.Dataset):
        if node.id.get_create_plist().get_external_count():
            raise SMCFormatError(f"{reader.path}: {node.name} keeps its data in external files")
        return reader._checked_dataset(node)
    raise SMCFormatError(f"{reader.path}: {getattr(node, 'name', '?')} is neither group nor data")


class SMCReader(ExtractionReader):
    """Read one SMC file with the published reader's API (a drop-in replacement).

    Parameters
    ----------
    file_path
        Path of an ``.smc`` file. Opened read-only with HDF5's default file locking, like
        ``h5py.File(path)``; a file already open in the process with other locking flags (or on
        a filesystem without locks) is opened the way that works instead of failing.

    Raises
    ------
    SMCOpenError
        The file is missing (also a ``FileNotFoundError``), not HDF5 or truncated (an ``OSError``).
    MissingDataError
        A root attribute, ``/Camera`` or one of its attributes is absent (a ``KeyError``).

    Attributes
    ----------
    actor_id, performance_part, capture_date
        Root attributes as stored (a bytes-typed one is ``numpy.bytes_``: call ``.decode()``).
    actor_info
        ``dict(age, color, gender, height, weight)``, values as stored.
    Camera_info
        ``dict(num_device, num_frame, resolution)`` from ``/Camera``; ``resolution`` is the
        stored numpy array (height, width).
    """

    def _check_root(self) -> None:
        """Read the attributes the published reader reads in its constructor (KeyError if any
        is absent)."""
        self.__calibration_dict__: dict[str, dict[str, Any]] | None = None
        root = self.smc
        self.actor_id = self._attr(root, "actor_id")
        self.performance_part = self._attr(root, "performance_part")
        self.capture_date = self._attr(root, "capture_date")
        self.actor_info = {k: self._attr(root, k) for k in schema.ACTOR_INFO_KEYS}
        camera = self._top(schema.CAMERA)
        self.Camera_info = {
            k: self._attr(camera, k) for k in ("num_device", "num_frame", "resolution")
        }

    # ------------------------------------------------------------------ info
    def get_actor_info(self) -> dict[str, Any]:
        """``actor_info``: age, color, gender, height, weight as stored."""
        return self.actor_info

    def get_Camera_info(self) -> dict[str, Any]:
        """``Camera_info``: num_device, num_frame, resolution (numpy array) as stored."""
        return self.Camera_info

    def __read_color_from_bytes__(self, color_array: np.ndarray) -> np.ndarray | None:
        """``cv2.imdecode(color_array, cv2.IMREAD_COLOR)``: BGR, or None if undecodable."""
        import cv2

        return cv2.imdecode(color_array, cv2.IMREAD_COLOR)

    # ------------------------------------------------------------------ calibration
    @_io_guard
    def get_Calibration_all(self) -> dict[str, dict[str, Any]]:
        """``{cam: {'D', 'K', 'RT'}}`` for every key of ``/Calibration`` (stored arrays; RT is
        camera-to-world), computed once. KeyError when the file has no ``/Calibration``."""
        group = self._top(schema.CALIBRATION)
        if self.__calibration_dict__ is None:
            keys = list(self._checked_keys(group, CAMERA_RE, "camera"))
            self.__calibration_dict__ = {cam: self._calibration(group, cam) for cam in keys}
        return self.__calibration_dict__

    @_io_guard
    def get_Calibration(self, Camera_id: int | str) -> dict[str, Any]:
        """``{'D', 'K', 'RT'}`` of camera ``str(Camera_id)``, which must be a key of
        ``/Calibration``: ``25`` and ``'05'`` work, ``5`` does not (AssertionError)."""
        group = self._top(schema.CALIBRATION)
        cam = str(Camera_id)
        if not (CAMERA_RE.fullmatch(cam) and _member(self, group, cam) is not None):
            raise InvalidArgumentError(
                f"{self.path}: invalid Camera_id {cam!r}: no such key in /Calibration{_hint(cam)}"
            )
        return self._calibration(group, cam)

    def _calibration(self, group: h5py.Group, cam: str) -> dict[str, Any]:
        node = self._group(group, cam)
        return {k: self._stored(node, k)[()] for k in ("D", "K", "RT")}

    # ------------------------------------------------------------------ images
    @_io_guard
    def get_img(
        self,
        Camera_id: int | str,
        Image_type: str,
        Frame_id: int | str | list[int | str] | None = None,
        disable_tqdm: bool = True,
    ) -> np.ndarray:
        """Decoded image(s) of one camera: colour BGR (H, W, 3); mask (H, W) uint8, the max over
        the decoded channels. ``Frame_id``: one id (``str(Frame_id)`` must be a stored frame),
        a list (stacked), or None (every stored frame in numeric order, stacked)."""
        del disable_tqdm  # no progress bars: printing is not part of the contract
        cam = str(Camera_id)
        streams = self._camera(cam)
        if not (Image_type in IMAGE_TYPES and Image_type in streams):
            raise InvalidArgumentError(
                f"{self.path}: invalid Image_type {Image_type!r} for camera {cam}: "
                f"it holds {sorted(k for k in streams if k in IMAGE_TYPES)}"
            )
        _check_frame_type(Frame_id)
        frames_group = self._group(streams, Image_type)
        if isinstance(Frame_id, (str, int)):
            frame = str(Frame_id)
            if not (FRAME_RE.fullmatch(frame) and _member(self, frames_group, frame) is not None):
                raise InvalidArgumentError(
                    f"{self.path}: invalid Frame_id {frame!r}: camera {cam} has no {Image_type} "
                    "frame of that key"
                )
            data = self.read_blob(Image_type, cam, frame)
            img = self._decode(data, f"Camera/{cam}/{Image_type}/{frame}")
            return np.max(img, 2).astype(np.uint8) if Image_type == "mask" else img
        if Frame_id is None:
            frames: list[Any] = sorted(
                int(k) for k in self._checked_keys(frames_group, FRAME_RE, "frame")
            )
        else:
            frames = Frame_id
        return np.stack([self.get_img(cam, Image_type, f) for f in frames], axis=0)

    def _decode(self, data: bytes, what: str) -> np.ndarray:
        """Decode as the published reader does (``IMREAD_COLOR``), refusing what is no image."""
        if image_extension(data) is None:
            raise SMCFormatError(f"{self.path}: {what}: bytes are not an encoded image")
        img = self.__read_color_from_bytes__(np.frombuffer(data, dtype=np.uint8))
        if img is None:
            raise SMCFormatError(f"{self.path}: {what}: encoded image is corrupt")
        return img

    # ------------------------------------------------------------------ audio
    @_io_guard
    def get_audio(self) -> GroupView | None:
        """The group ``/Camera/00/audio`` (``a['audio'][()]``, ``a['sample_rate'][()]``) of a
        speech part; None when the part's first field has no ``s``; KeyError when absent."""
        part = self._part()
        if "s" not in part:
            log.debug("%s: no audio data in the performance part %s", self.path, part)
            return None
        node = self._group(self._group(self._top(schema.CAMERA), "00"), "audio")
        return GroupView(self, node)

    @staticmethod
    def writemp3(
        f: str | os.PathLike[str] | BinaryIO, sr: int, x: np.ndarray, normalized: bool = False
    ) -> None:
        """Write ``x`` as a 320 kb/s constant-bitrate MP3 (libsndfile; no ffmpeg), converted as
        the published reader does: int16 of ``x * 2**15`` when ``normalized`` else of ``x``;
        stereo when ``x`` is (N, 2), otherwise its samples in memory order as mono."""
        from ..formats.audio import encode_mp3

        x = np.asarray(x)
        channels = 2 if (x.ndim == 2 and x.shape[1] == 2) else 1
        pcm = np.int16(x * 2**15) if normalized else np.int16(x)
        # exactly the int16 samples, as float (libsndfile's 16-bit path to LAME distorts)
        frames = np.ascontiguousarray(pcm).reshape(-1, channels).astype(np.float32) / 2**15
        if hasattr(f, "write"):
            encode_mp3(f, frames, int(sr))
            return
        with open(os.fspath(f), "wb") as out:  # libsndfile refuses names of 1,024+ bytes
            encode_mp3(out, frames, int(sr))

    # ------------------------------------------------------------------ keypoints
    @_io_guard
    def get_Keypoints2d(
        self, Camera_id: int | str, Frame_id: int | str | list[int | str] | None = None
    ) -> Any:
        """2D landmarks of camera ``str(Camera_id)`` in ``'18'..'32'`` (else AssertionError).

        int/str frame: ``0 <= frame < num_frame`` (AssertionError), the (106, 2) dataset or None
        when missing or empty; None: the camera's group; list: present frames stacked. A camera
        without keypoints gives None; a file without ``/Keypoints2d`` a KeyError.
        """
        cam = str(Camera_id)
        if cam not in schema.KEYPOINT2D_CAMERAS:
            raise InvalidArgumentError(
                f"{self.path}: invalid Camera_id {cam!r}: 2D keypoints exist for cameras "
                "'18'..'32' only"
            )
        _check_frame_type(Frame_id)
        root = self._top(schema.KEYPOINTS2D)
        node = _member(self, root, cam)
        if node is None:
            log.debug("%s: no 2D keypoints for camera %s", self.path, cam)
            return None
        if isinstance(Frame_id, (str, int)):
            frame = self._frame_in_range(root, Frame_id)
            return self._frame_entry(node, frame)
        if Frame_id is None:
            return _public(self, node)
        found = [self.get_Keypoints2d(cam, f) for f in Frame_id]
        return np.stack([a for a in found if a is not None], axis=0)

    @_io_guard
    def get_Keypoints3d(self, Frame_id: int | str | list[int | str] | None = None) -> Any:
        """3D landmarks: int/str frame range-checked on ``num_frame`` (AssertionError), the
        (73, 3) dataset or None when missing or empty; None: the group; list: present frames
        stacked. KeyError when the file has no ``/Keypoints3d``."""
        _check_frame_type(Frame_id)
        root = self._top(schema.KEYPOINTS3D)
        if isinstance(Frame_id, (str, int)):
            return self._frame_entry(root, self._frame_in_range(root, Frame_id))
        if Frame_id is None:
            return GroupView(self, root)
        found = [self.get_Keypoints3d(f) for f in Frame_id]
        return np.stack([a for a in found if a is not None], axis=0)

    def _frame_in_range(self, group: h5py.Group, frame: int | str) -> int:
        """``int(frame)`` (a ValueError for text that is no number, as in the published reader),
        asserted within ``0 <= frame < group.attrs['num_frame']``."""
        index = int(frame)
        count = self._attr(group, "num_frame")
        if not (index >= 0 and index < count):
            raise InvalidArgumentError(
                f"{self.path}: invalid frame index {index} for {group.name}: num_frame is {count}"
            )
        return index

    def _frame_entry(self, node: Any, index: int) -> Any:
        """One frame of a keypoint group (None when missing or empty); a stacked
        (frames, n, d) dataset is read by row."""
        if isinstance(node, h5py.Dataset):
            self._checked_stack(node)
            if node.ndim != 3:
                raise SMCFormatError(f"{self.path}: {node.name} has shape {node.shape}")
            row = node[index] if index < node.shape[0] else None
            return row if row is not None and row.size else None
        if not isinstance(node, h5py.Group):
            raise SMCFormatError(f"{self.path}: {node.name} should be a group or an array")
        entry = _member(self, node, str(index))
        if entry is None:
            log.debug("%s: no data for %s frame %d", self.path, node.name, index)
            return None
        dset = _public(self, entry)
        if not isinstance(dset, h5py.Dataset) or not dset.shape:
            raise SMCFormatError(f"{self.path}: {node.name}/{index} is not an array")
        if len(dset) == 0:
            log.debug("%s: empty data for %s frame %d", self.path, node.name, index)
            return None
        return dset

    # ------------------------------------------------------------------ FLAME, UV, scan
    @_io_guard
    def get_FLAME(self, Frame_id: int | str | list[int | str] | None = None) -> Any:
        """FLAME parameters of an expression part (None for other parts or without ``/FLAME``).

        None: the ``/FLAME`` group; int/str: range-checked on ``num_frame`` (AssertionError),
        the frame's group (global_pose, ..., verts, albedos); list: ``np.stack`` of those groups,
        exactly as the published reader does; any other type: TypeError.
        """
        part = self._part()
        if "e" not in part:
            log.debug("%s: no FLAME data in the performance part %s", self.path, part)
            return None
        flame = _member(self, self.smc, schema.FLAME)
        if flame is None:
            log.debug("%s: no /FLAME group", self.path)
            return None
        if Frame_id is None:
            return _public(self, flame)
        if isinstance(Frame_id, list):
            return np.stack([self.get_FLAME(str(f)) for f in Frame_id], axis=0)
        if isinstance(Frame_id, (int, str)):
            index = self._frame_in_range(flame, Frame_id)
            node = _member(self, flame, str(index))
            if node is None:
                raise MissingDataError(f"{self.path}: /FLAME has no frame {index}")
            return _public(self, node)
        raise TypeError(f"Frame_id should be int, str, list or None, not {type(Frame_id).__name__}")

    @_io_guard
    def get_uv(
        self, Frame_id: int | str | list[int | str] | None = None, disable_tqdm: bool = True
    ) -> np.ndarray | None:
        """Decoded BGR UV texture(s) of an expression part (None for other parts or without
        ``/UV_texture``): one frame (a stored key, else AssertionError), a list, or all."""
        del disable_tqdm
        part = self._part()
        if "e" not in part:
            log.debug("%s: no UV data in the performance part %s", self.path, part)
            return None
        uv = _member(self, self.smc, schema.UV_TEXTURE)
        if uv is None:
            log.debug("%s: no /UV_texture group", self.path)
            return None
        _check_frame_type(Frame_id)
        if isinstance(Frame_id, (str, int)):
            frame = str(Frame_id)
            if not (FRAME_RE.fullmatch(frame) and _member(self, uv, frame) is not None):
                raise InvalidArgumentError(f"{self.path}: invalid Frame_id {frame!r} for UV")
            return self._decode(self.read_blob("uv", None, frame), f"UV_texture/{frame}")
        if Frame_id is None:
            frames: list[Any] = sorted(int(k) for k in self._checked_keys(uv, FRAME_RE, "frame"))
        else:
            frames = Frame_id
        images = [self.get_uv(f) for f in frames]  # never None: this part has /UV_texture
        return np.stack([img for img in images if img is not None], axis=0)

    @_io_guard
    def get_scanmesh(self) -> GroupView | None:
        """The ``/Scan`` group (``['vertex']`` (n, 3), ``['vertex_indices']`` (m, 3)) of an
        expression part; None for other parts; KeyError when absent."""
        part = self._part()
        if "e" not in part:
            log.debug("%s: no scan mesh in the performance part %s", self.path, part)
            return None
        return GroupView(self, self._top(schema.SCAN))

    @staticmethod
    def write_ply(scan: Mapping[str, Any], outpath: str | os.PathLike[str] | BinaryIO) -> None:
        """Write ``scan`` as the published reader does: ASCII PLY, float32 x/y/z, triangles with
        a constant white colour (``red``/``green``/``blue`` = 255). Built with whole-array
        operations instead of a Python loop per vertex; the bytes are the same."""
        from plyfile import PlyData, PlyElement

        points = np.asarray(scan["vertex"])
        vertex = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
        if len(points):
            vertex["x"], vertex["y"], vertex["z"] = points[:, 0], points[:, 1], points[:, 2]
        triangles = np.asarray(scan["vertex_indices"])
        face = np.empty(
            len(triangles),
            dtype=[("vertex_indices", "i4", (3,)), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
        )
        if len(triangles):
            face["vertex_indices"] = np.stack(
                [triangles[:, 0], triangles[:, 1], triangles[:, 2]], axis=1
            )
        face["red"] = face["green"] = face["blue"] = 255
        target = outpath if hasattr(outpath, "write") else os.fspath(outpath)
        PlyData(
            [PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")], text=True
        ).write(target)

    @_io_guard
    def get_scanmask(self, Camera_id: int | str | None = None) -> np.ndarray:
        """Decoded scan mask (H, W) uint8, max over channels, of camera ``str(Camera_id)`` (a key
        of ``/Camera``, else AssertionError); None: cameras ``'00'..'59'`` stacked. KeyError when
        ``/ScanMask`` or the camera's mask is absent."""
        if Camera_id is None:
            return np.stack([self.get_scanmask(c) for c in SCANMASK_CAMERAS], axis=0)
        if not isinstance(Camera_id, (str, int)):
            raise InvalidArgumentError(f"invalid Camera_id type {type(Camera_id).__name__}")
        cam = str(Camera_id)
        self._camera(cam)
        masks = self._top(schema.SCAN_MASK)
        if _member(self, masks, cam) is None:
            raise MissingDataError(f"{self.path}: /ScanMask has no camera {cam}")
        img = self._decode(self.read_blob("scan_mask", cam, None), f"ScanMask/{cam}")
        return np.max(img, 2).astype(np.uint8)

    # ------------------------------------------------------------------ helpers
    def _part(self) -> str:
        """First ``_`` field of the performance name (``s1`` of ``s1_all``), decoded."""
        return to_str(self.performance_part).split("_")[0]

    def _top(self, name: str) -> h5py.Group:
        """A top-level group; MissingDataError (a KeyError) when absent."""
        return self._group(self.smc, name)

    def _group(self, parent: h5py.Group, name: str) -> h5py.Group:
        """Member ``name`` of ``parent``, which must be a group; KeyError when absent."""
        if not isinstance(parent, h5py.Group):
            raise SMCFormatError(f"{self.path}: {parent.name} should be a group")
        node = _member(self, parent, name)
        if node is None:
            where = parent.name.rstrip("/")
            raise MissingDataError(f"{self.path}: no {where}/{name} in the file")
        if not isinstance(node, h5py.Group):
            raise SMCFormatError(f"{self.path}: {node.name} should be a group")
        return node

    def _stored(self, group: h5py.Group, name: str) -> h5py.Dataset:
        """Checked dataset ``name`` of ``group``; KeyError when absent."""
        node = _member(self, group, name)
        if node is None:
            raise MissingDataError(f"{self.path}: no {group.name}/{name} in the file")
        dset = _public(self, node)
        if not isinstance(dset, h5py.Dataset):
            raise SMCFormatError(f"{self.path}: {group.name}/{name} should be a dataset")
        return dset

    def _camera(self, cam: str) -> h5py.Group:
        """``/Camera/{cam}``; AssertionError when ``cam`` is not one of its keys."""
        camera = self._top(schema.CAMERA)
        if not (CAMERA_RE.fullmatch(cam) and _member(self, camera, cam) is not None):
            raise InvalidArgumentError(
                f"{self.path}: invalid Camera_id {cam!r}: no such key in /Camera{_hint(cam)}"
            )
        return self._group(camera, cam)

    def _attr(self, obj: h5py.Group, name: str) -> Any:
        """Attribute ``name`` of ``obj`` as h5py returns it (types as stored), after checking its
        size; MissingDataError (a KeyError) when absent."""
        if name not in obj.attrs:
            where = "root" if obj.name == "/" else obj.name
            raise MissingDataError(f"{self.path}: {where} attribute {name!r} is missing")
        size = h5py.h5a.open(obj.id, name.encode()).get_storage_size()
        if size > MAX_ATTR_BYTES:
            raise SMCFormatError(
                f"{self.path}: attribute {name!r} of {obj.name} holds {size:,} bytes; refusing it"
            )
        return obj.attrs[name]

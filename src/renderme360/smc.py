"""Reader of RenderMe360 SMC (HDF5) files: the only module that knows paths inside an SMC.

``SMCReader`` keeps the method names, arguments and return conventions of the dataset's published
reader, so swapping the import keeps user code working, and adds what extraction needs: stored
bytes without decoding, where those bytes lie in the file, and listings of what each file holds,
all without reading image payloads. Every name read from the file is validated before it is
returned, and every failure is a :class:`~renderme360.errors.Renderme360Error`.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np
from h5py import h5d, h5s, h5t

from .errors import InvalidIdError, Renderme360Error, SMCFormatError, UnsafeNameError
from .naming import CAMERA_RE, FRAME_RE, camera_key

log = logging.getLogger(__name__)

#: Image-like blobs an SMC stores as encoded bytes: (kind, needs camera, needs frame).
BLOB_KINDS = ("color", "mask", "uv", "scan_mask")
KEYPOINT2D_CAMERAS = tuple(f"{i:02d}" for i in range(18, 33))
REQUIRED_ROOT_ATTRS = ("actor_id", "performance_part")

# Upper bounds that keep a hostile file from making us allocate absurd memory.
MAX_BLOB_BYTES = 1 << 30  # one encoded image
MAX_ARRAY_BYTES = 1 << 30  # one numeric dataset (a scan mesh is ~3 MB, FLAME albedo ~0.8 MB)
MAX_FRAMES = 10_000_000
MAX_RESOLUTION = 100_000
# An unfiltered dataset larger than this must have its declared bytes stored in the file: HDF5
# would otherwise hand back fill values for storage that was never written (a few-KB file can
# declare gigabytes), which is never real SMC data.
SPARSE_OK_BYTES = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob's bytes lie: ``offset`` in the file when stored contiguous and unfiltered."""

    nbytes: int
    offset: int | None  # None: chunked, filtered or external storage; read through HDF5


def _guard(method: Callable[..., T]) -> Callable[..., T]:
    """Turn low-level HDF5/numpy failures into SMCFormatError naming the file."""

    @functools.wraps(method)
    def wrapper(self: SMCReader, *args: Any, **kwargs: Any) -> T:
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
                f"{self.path}: cannot read ({method.__name__}): {_one_line(exc)}"
            ) from exc

    return wrapper


def _one_line(exc: BaseException) -> str:
    raw = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # no quotes
    text = str(raw).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open_failure(exc: BaseException) -> str:
    """Why HDF5 could not open a file, in words a user can act on."""
    text = _one_line(exc)
    m = _TRUNCATED_RE.search(text)
    if m:
        have, want = int(m["eof"]), int(m["stored"])
        return (
            f"file is truncated: {have:,} of {want:,} bytes present; "
            "the download is probably incomplete"
        )
    if "file signature not found" in text:
        return "no HDF5 signature: not an HDF5 file, or its first bytes are damaged"
    return text


_TRUNCATED_RE = re.compile(r"truncated file: eof = (?P<eof>\d+).*stored_eof = (?P<stored>\d+)")


def _to_str(value: Any) -> str:
    """Decode an attribute that may come back as str, bytes or a 0-d numpy value."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    # h5py hands undecodable bytes back as lone surrogates, which no UTF-8 writer accepts
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


def _to_py(value: Any) -> Any:
    """Attribute -> plain, JSON-safe Python (str for text, int/float for scalars, lists).

    Whatever a hostile file stores (references, compound values, NaN) comes back as something
    ``json.dumps`` accepts without a ``default``: unknown objects and non-finite floats as text.
    """
    if isinstance(value, np.ndarray):
        if value.shape == ():
            return _to_py(value[()])
        return [_to_py(v) for v in value.tolist()]
    if isinstance(value, np.generic) and not isinstance(value, (np.bytes_, np.str_)):
        value = value.item()
    if isinstance(value, (bytes, np.bytes_, str)):
        return _to_str(value)
    if isinstance(value, (list, tuple)):
        return [_to_py(v) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    return str(value)


def _frame_arg(frame: int | str | np.integer) -> str:
    """Normalise a user-given frame id to the SMC key form (``"0"``, ``"17"``)."""
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


class SMCReader:
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
        self.path = Path(file_path)
        self._fd: int | None = None
        self.smc: h5py.File | None = None
        if not self.path.is_file():  # a FIFO or device would block or stream forever
            what = "not a regular file" if self.path.exists() else "no such file"
            raise SMCFormatError(f"{self.path}: {what}")
        try:
            self.smc = h5py.File(self.path, "r", locking=False)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise SMCFormatError(
                f"{self.path}: not a readable HDF5/SMC file ({_open_failure(exc)})"
            ) from exc
        try:
            missing = [a for a in REQUIRED_ROOT_ATTRS if a not in self.smc.attrs]
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            self.close()
            raise SMCFormatError(
                f"{self.path}: cannot read root attributes ({_one_line(exc)})"
            ) from exc
        if missing:
            self.close()
            raise SMCFormatError(
                f"{self.path}: not an SMC file: root attribute(s) {', '.join(missing)} missing"
            )
        self.__calibration_dict__: dict[str, dict[str, np.ndarray]] | None = None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the HDF5 file and any raw descriptor opened for fast copies."""
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)
        smc = getattr(self, "smc", None)
        if smc is not None and smc.id.valid:
            smc.close()

    def __enter__(self) -> SMCReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing useful to report
            log.debug("close() failed during garbage collection", exc_info=True)

    def __repr__(self) -> str:
        return f"SMCReader({str(self.path)!r})"

    # ------------------------------------------------------------------ root attributes
    @property
    @_guard
    def actor_id(self) -> str:
        """Actor id as stored (decoded to ``str``; validate before using it in a path)."""
        return _to_str(self.smc.attrs["actor_id"])

    @property
    @_guard
    def performance_part(self) -> str:
        """Performance name as stored, e.g. ``e0``, ``s1_all`` (decoded to ``str``)."""
        return _to_str(self.smc.attrs["performance_part"])

    @property
    @_guard
    def capture_date(self) -> str:
        """Capture date as stored (decoded to ``str``; empty when absent)."""
        value = self.smc.attrs.get("capture_date")
        return "" if value is None else _to_str(value)

    def get_available_keys(self) -> list[str]:
        """Top-level groups of the file (``Camera``, ``Calibration``, ``FLAME``, ...)."""
        return list(self.smc.keys())

    @_guard
    def get_actor_info(self) -> dict[str, Any]:
        """``id, perf_id, age, color, gender, height, weight`` (None for an absent attribute)."""
        a = self.smc.attrs
        keys = {"id": "actor_id", "perf_id": "performance_part"}
        info = {k: _to_py(a[v]) if v in a else None for k, v in keys.items()}
        for k in ("age", "color", "gender", "height", "weight"):
            info[k] = _to_py(a[k]) if k in a else None
        return info

    @_guard
    def get_Camera_info(self) -> dict[str, Any] | None:
        """``num_device, num_frame, resolution`` (height, width) of the Camera group, or None."""
        if "Camera" not in self.smc:
            return None
        a = self.smc["Camera"].attrs
        info = {k: _to_py(a[k]) if k in a else None for k in ("num_device", "num_frame")}
        info["resolution"] = _to_py(a["resolution"]) if "resolution" in a else None
        self._check_camera_info(info)
        return info

    def _check_camera_info(self, info: Mapping[str, Any]) -> None:
        for key, top in (("num_device", 1000), ("num_frame", MAX_FRAMES)):
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
    def get_Calibration_all(self) -> dict[str, dict[str, np.ndarray]] | None:
        """``{cam: {'K', 'D', 'RT'}}`` for every calibrated camera; RT is camera-to-world."""
        if "Calibration" not in self.smc:
            return None
        if self.__calibration_dict__ is None:
            self.__calibration_dict__ = {
                cam: self.get_Calibration(cam) for cam in self.list_calibration_cameras()
            }
        return self.__calibration_dict__

    @_guard
    def get_Calibration(self, Camera_id: int | str) -> dict[str, np.ndarray] | None:
        """``{'K' (3,3), 'D' (5,), 'RT' (4,4)}`` of one camera; RT maps camera to world."""
        if "Calibration" not in self.smc:
            return None
        cam = camera_key(Camera_id)
        group = self.smc["Calibration"]
        if cam not in group:
            raise InvalidIdError(f"{self.path}: no calibration for camera {cam}")
        shapes = {"K": (3, 3), "D": (5,), "RT": (4, 4)}
        out = {}
        for name, shape in shapes.items():
            arr = self._read_array(group[cam], name)
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
        if "Calibration" not in self.smc:
            return []
        return sorted(self._checked_keys(self.smc["Calibration"], CAMERA_RE, "camera"))

    # ------------------------------------------------------------------ images
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

    @_guard
    def list_cameras(self, Image_type: str = "color") -> list[str]:
        """Cameras holding at least one frame of ``Image_type`` ('color' or 'mask'), sorted."""
        if "Camera" not in self.smc:
            return []
        cams = []
        for cam in sorted(self._checked_keys(self.smc["Camera"], CAMERA_RE, "camera")):
            group = self.smc["Camera"][cam]
            if isinstance(group, h5py.Group) and Image_type in group:
                sub = group[Image_type]
                if isinstance(sub, h5py.Group) and len(sub) > 0:
                    cams.append(cam)
        return cams

    @_guard
    def list_frames(self, Camera_id: int | str, Image_type: str = "color") -> list[int]:
        """Frame indices stored for one camera and image type, ascending ([] when none)."""
        cam = camera_key(Camera_id)
        if "Camera" not in self.smc or cam not in self.smc["Camera"]:
            return []
        group = self.smc["Camera"][cam]
        if not isinstance(group, h5py.Group) or Image_type not in group:
            return []
        return sorted(int(k) for k in self._checked_keys(group[Image_type], FRAME_RE, "frame"))

    # ------------------------------------------------------------------ generic blobs
    def _blob_dataset(self, kind: str, cam: int | str | None, frame: int | str | None) -> Any:
        """The h5py dataset of one encoded blob; InvalidIdError when it does not exist."""
        if kind in ("color", "mask"):
            c, f = camera_key(cam), _frame_arg(frame)  # type: ignore[arg-type]
            path, what = f"Camera/{c}/{kind}/{f}", f"{kind} image for camera {c} frame {f}"
        elif kind == "uv":
            f = _frame_arg(frame)  # type: ignore[arg-type]
            path, what = f"UV_texture/{f}", f"UV texture for frame {f}"
        elif kind == "scan_mask":
            c = camera_key(cam)  # type: ignore[arg-type]
            path, what = f"ScanMask/{c}", f"scan mask for camera {c}"
        else:
            raise InvalidIdError(f"unknown blob kind {kind!r}: expected one of {BLOB_KINDS}")
        obj = self.smc.get(path)
        if obj is None:
            raise InvalidIdError(f"{self.path}: no {what}")
        expected = f"{self.path}: {path} should be 1-D uint8 encoded bytes"
        if not isinstance(obj, h5py.Dataset):
            raise SMCFormatError(f"{expected}, found a group")
        if obj.shape is None or obj.ndim != 1 or obj.dtype != np.uint8:
            raise SMCFormatError(f"{expected}, found {obj.shape} {obj.dtype}")
        return self._checked_dataset(obj, kinds="u", limit=MAX_BLOB_BYTES)

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
        return BlobLocation(int(dset.size), self._contiguous_offset(dset))

    @_guard
    def blob_locations(
        self, Camera_id: int | str, Image_type: str = "color"
    ) -> dict[int, BlobLocation]:
        """Every stored frame of one camera's colour or mask stream with its location, by frame.

        The same answer as :meth:`blob_location` frame by frame, in a fraction of the time:
        plain contiguous uint8 datasets (every real file) are read through HDF5's low-level
        calls; anything else goes through the checked path and its errors.
        """
        cam = camera_key(Camera_id)
        group = self.smc.get(f"Camera/{cam}/{Image_type}")
        if group is None:
            return {}
        keys = self._checked_keys(group, FRAME_RE, "frame")
        out = {}
        for key in sorted(keys, key=int):
            loc = _plain_blob_location(group.id, key)
            out[int(key)] = loc or self.blob_location(Image_type, cam, key)
        return out

    def _contiguous_offset(self, dset: h5py.Dataset) -> int | None:
        if dset.chunks is not None or dset.size == 0:
            return None
        plist = dset.id.get_create_plist()
        if plist.get_nfilters() or plist.get_external_count():
            return None
        offset = dset.id.get_offset()
        if offset is None or dset.id.get_storage_size() != dset.size:
            return None
        return int(offset)

    def raw_fd(self) -> int:
        """A read-only OS descriptor of the file, for copying blobs by offset; closed by close()."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return self._fd

    # ------------------------------------------------------------------ audio
    @_guard
    def get_audio(self) -> dict[str, Any] | None:
        """``{'audio': ndarray, 'sample_rate': int}`` of a speech part, else None.

        The published reader returns the HDF5 group; a dict with the same keys reads the same way.
        """
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
        group = self.smc.get("Camera/00/audio")
        if group is None:
            return None
        if not isinstance(group, h5py.Group) or "audio" not in group:
            raise SMCFormatError(f"{self.path}: Camera/00/audio is not an audio group")
        return group

    @_guard
    def audio_info(self) -> dict[str, Any] | None:
        """Shape, dtype, sample rate and duration of the stored audio without reading samples."""
        group = self._audio_group()
        if group is None:
            return None
        dset = group["audio"]
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
            "nbytes": _declared_bytes(dset),
        }

    def audio_sample_rate(self) -> int:
        """Sample rate stored beside the audio (Hz)."""
        group = self._audio_group()
        if group is None or "sample_rate" not in group:
            raise SMCFormatError(f"{self.path}: audio has no sample_rate")
        rate = _to_py(self._read_array(group, "sample_rate"))
        if isinstance(rate, list):
            rate = rate[0] if len(rate) == 1 else None
        if not isinstance(rate, (int, float)) or not 0 < rate <= 10_000_000 or rate != int(rate):
            raise SMCFormatError(f"{self.path}: invalid audio sample_rate {rate!r}")
        return int(rate)

    @staticmethod
    def writemp3(
        f: str | os.PathLike[str], sr: int, x: np.ndarray, normalized: bool = False
    ) -> None:
        """Write audio as MP3 (via libsndfile; no ffmpeg). Float data in [-1, 1) as in the
        published reader with ``normalized=True``; integer data is scaled from its full range."""
        from .writers.audio import write_mp3

        write_mp3(Path(f), np.asarray(x), int(sr), normalized=normalized)

    # ------------------------------------------------------------------ keypoints
    @_guard
    def get_Keypoints2d(self, Camera_id: int | str, Frame_id: int | str) -> np.ndarray | None:
        """(106, 2) pixel landmarks of one camera and frame; None when absent or empty."""
        cam = camera_key(Camera_id)
        frame = _frame_arg(Frame_id)
        if cam not in KEYPOINT2D_CAMERAS or "Keypoints2d" not in self.smc:
            return None
        node = self.smc["Keypoints2d"].get(cam)
        return self._frame_array(node, frame, f"Keypoints2d/{cam}", last_dim=2)

    @_guard
    def get_Keypoints3d(self, Frame_id: int | str) -> np.ndarray | None:
        """(73, 3) world landmarks of one frame; None when absent or empty."""
        frame = _frame_arg(Frame_id)
        return self._frame_array(self.smc.get("Keypoints3d"), frame, "Keypoints3d", last_dim=3)

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
            if frame not in node:
                return None
            arr = self._read_array(node, frame)
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
        """Cameras (within 18..32) with a Keypoints2d entry, sorted."""
        if "Keypoints2d" not in self.smc:
            return []
        keys = self._checked_keys(self.smc["Keypoints2d"], CAMERA_RE, "camera")
        return sorted(k for k in keys if k in KEYPOINT2D_CAMERAS)

    @_guard
    def list_keypoints2d_frames(self, Camera_id: int | str) -> list[int]:
        """Frames of one camera whose 2D keypoints are present and non-empty."""
        cam = camera_key(Camera_id)
        if "Keypoints2d" not in self.smc or cam not in KEYPOINT2D_CAMERAS:
            return []
        return self._nonempty_frames(self.smc["Keypoints2d"].get(cam), f"Keypoints2d/{cam}")

    @_guard
    def list_keypoints3d_frames(self) -> list[int]:
        """Frames whose 3D keypoints are present and non-empty."""
        return self._nonempty_frames(self.smc.get("Keypoints3d"), "Keypoints3d")

    def _nonempty_frames(self, node: Any, where: str) -> list[int]:
        if node is None:
            return []
        if isinstance(node, h5py.Dataset):
            self._checked_stack(node)
            if node.ndim != 3:
                raise SMCFormatError(f"{self.path}: {where} has shape {node.shape}")
            return list(range(node.shape[0])) if node.shape[1] else []
        frames = []
        for key in self._checked_keys(node, FRAME_RE, "frame"):
            nbytes = _plain_nbytes(node.id, key)
            if nbytes is None:  # not a plain dataset: look closer
                obj = node[key]
                nbytes = _declared_bytes(obj) if isinstance(obj, h5py.Dataset) else 0
            if nbytes > 0:
                frames.append(int(key))
        return sorted(frames)

    # ------------------------------------------------------------------ FLAME, UV, scan
    @_guard
    def get_FLAME(self, Frame_id: int | str) -> dict[str, np.ndarray] | None:
        """Every dataset stored for one frame (global_pose, exp, verts, albedos, ...) or None."""
        frame = _frame_arg(Frame_id)
        group = self.smc.get("FLAME")
        if group is None or frame not in group:
            return None
        node = group[frame]
        if not isinstance(node, h5py.Group):
            raise SMCFormatError(f"{self.path}: FLAME/{frame} is not a group")
        return {name: self._read_array(node, name) for name in self._safe_member_names(node)}

    @_guard
    def read_flame_field(self, Frame_id: int | str, name: str) -> np.ndarray:
        """One FLAME dataset of one frame (e.g. ``verts`` (5023, 3))."""
        frame = _frame_arg(Frame_id)
        node = self.smc.get(f"FLAME/{frame}")
        if not isinstance(node, h5py.Group):
            raise InvalidIdError(f"{self.path}: no FLAME parameters for frame {frame}")
        if name not in node:
            raise SMCFormatError(f"{self.path}: FLAME/{frame} has no {name!r} (other frames do)")
        return self._read_array(node, name)

    @_guard
    def list_flame_frames(self) -> list[int]:
        """Frames with FLAME parameters, ascending."""
        group = self.smc.get("FLAME")
        if group is None:
            return []
        return sorted(int(k) for k in self._checked_keys(group, FRAME_RE, "frame"))

    @_guard
    def flame_fields(self, Frame_id: int | str) -> dict[str, tuple[tuple[int, ...], str]]:
        """Name -> (shape, dtype) of the FLAME datasets of one frame, without reading them."""
        frame = _frame_arg(Frame_id)
        node = self.smc.get(f"FLAME/{frame}")
        if not isinstance(node, h5py.Group):
            return {}
        out = {}
        for name in self._safe_member_names(node):
            d = node[name]
            if isinstance(d, h5py.Dataset):
                self._checked_dataset(d)  # the planner sizes the output from these shapes
                out[name] = (tuple(int(s) for s in d.shape), str(d.dtype))
        return out

    @_guard
    def get_uv(
        self,
        Frame_id: int | str | list[int | str] | None = None,
        disable_tqdm: bool = True,
    ) -> np.ndarray | None:
        """Decoded BGR UV texture(s): one frame, a list, or all (None); None when absent."""
        del disable_tqdm
        if "UV_texture" not in self.smc:
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
    def list_uv_frames(self) -> list[int]:
        """Frames with a UV texture, ascending."""
        group = self.smc.get("UV_texture")
        if group is None:
            return []
        return sorted(int(k) for k in self._checked_keys(group, FRAME_RE, "frame"))

    @_guard
    def get_scanmesh(self) -> dict[str, np.ndarray] | None:
        """``{'vertex': (n, 3), 'vertex_indices': (m, 3)}`` of the static scan, or None."""
        group = self.smc.get("Scan")
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
        group = self.smc.get("Scan")
        if group is None:
            return None
        if not isinstance(group, h5py.Group):
            raise SMCFormatError(f"{self.path}: Scan should be a group")
        if "vertex" not in group:
            return None
        v = self._checked_dataset(group["vertex"], kinds="f")
        f = group.get("vertex_indices")
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

    @_guard
    def get_scanmask(self, Camera_id: int | str | None = None) -> np.ndarray | None:
        """Decoded scan mask of one camera (H, W) or all cameras stacked (None); None if absent."""
        if "ScanMask" not in self.smc:
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

    @_guard
    def list_scanmask_cameras(self) -> list[str]:
        """Cameras with a scan mask, sorted."""
        group = self.smc.get("ScanMask")
        if group is None:
            return []
        return sorted(self._checked_keys(group, CAMERA_RE, "camera"))

    @staticmethod
    def write_ply(scan: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
        """Write a scan mesh as binary little-endian PLY (vectorised, stored precision)."""
        from .writers.mesh import write_ply

        write_ply(Path(path), scan["vertex"], scan["vertex_indices"])

    # ------------------------------------------------------------------ helpers
    def has_group(self, name: str) -> bool:
        """Whether a top-level group (``FLAME``, ``Scan``, ...) exists."""
        return name in self.smc

    def _checked_keys(self, group: Any, pattern: Any, what: str) -> Iterator[str]:
        """Member names of a group, each checked against the documented grammar."""
        if not isinstance(group, h5py.Group):
            raise SMCFormatError(f"{self.path}: {group.name} should be a group")
        for key in group:
            if not pattern.fullmatch(key):
                raise UnsafeNameError(
                    f"{self.path}: refusing {what} key {key!r} in {group.name}: "
                    "not of the documented form"
                )
            yield key

    def _safe_member_names(self, group: h5py.Group) -> list[str]:
        names = []
        for key in group:
            if not key.isidentifier():
                raise UnsafeNameError(f"{self.path}: refusing dataset name {key!r} in {group.name}")
            names.append(key)
        return names

    def _read_array(self, group: Any, name: str) -> np.ndarray:
        dset = group.get(name) if isinstance(group, h5py.Group) else None
        if not isinstance(dset, h5py.Dataset):
            raise SMCFormatError(f"{self.path}: {getattr(group, 'name', '?')}/{name} is missing")
        return np.asarray(self._checked_dataset(dset)[()])

    def _checked_stack(self, dset: h5py.Dataset) -> None:
        """A per-frame array stacked on axis 0: sane size, and a sane frame count even when
        a row holds zero bytes (the frame list is built from the count)."""
        self._checked_dataset(dset)
        if dset.ndim >= 1 and dset.shape[0] > MAX_FRAMES:
            raise SMCFormatError(f"{self.path}: {dset.name} declares {dset.shape[0]:,} frames")

    def _checked_dataset(
        self, dset: Any, kinds: str = "biuf", limit: int = MAX_ARRAY_BYTES
    ) -> h5py.Dataset:
        """``dset`` if its dtype kind is one of ``kinds`` and its declared size is sane.

        Checked from the header alone, before anything is read: a hostile or corrupt file can
        declare any shape, and reading it would allocate that much memory.
        """
        if not isinstance(dset, h5py.Dataset):
            raise SMCFormatError(f"{self.path}: {dset.name} should be a dataset")
        what = f"{self.path}: {dset.name}"
        if dset.dtype.kind not in kinds:
            kind = "non-numeric" if kinds == "biuf" else "unexpected"
            raise SMCFormatError(f"{what} has {kind} dtype {dset.dtype}")
        nbytes = _declared_bytes(dset)
        if nbytes > limit:
            raise SMCFormatError(
                f"{what} declares shape {dset.shape} {dset.dtype} ({nbytes:,} bytes), too large "
                f"(limit {limit:,}); refusing to read it"
            )
        if nbytes > SPARSE_OK_BYTES and not _is_filtered(dset):
            stored = int(dset.id.get_storage_size())
            if stored < nbytes:
                raise SMCFormatError(
                    f"{what} declares {nbytes:,} bytes but only {stored:,} are stored "
                    "(never written or truncated)"
                )
        return dset


def _plain_blob_location(group_id: Any, name: str) -> BlobLocation | None:
    """Location of a contiguous, unfiltered, fully stored 1-D uint8 dataset; None for anything
    else (the caller then takes the checked path, which explains what is wrong)."""
    dsid = _open_dataset(group_id, name)
    if dsid is None:
        return None
    dtype = dsid.get_type()
    if not (
        isinstance(dtype, h5t.TypeIntegerID)
        and dtype.get_size() == 1
        and dtype.get_sign() == h5t.SGN_NONE
    ):
        return None
    space = dsid.get_space()
    if space.get_simple_extent_type() != h5s.SIMPLE or space.get_simple_extent_ndims() != 1:
        return None
    (n,) = space.get_simple_extent_dims()
    plist = dsid.get_create_plist()
    if (
        not 0 < n <= MAX_BLOB_BYTES
        or plist.get_layout() != h5d.CONTIGUOUS  # filters need chunks: none here
        or plist.get_external_count()
    ):
        return None
    offset = dsid.get_offset()
    if offset is None or dsid.get_storage_size() != n:
        return None
    return BlobLocation(int(n), int(offset))


def _open_dataset(group_id: Any, name: str) -> Any:
    """The low-level id of dataset ``name`` in a group, or None when it is not one."""
    try:
        return h5d.open(group_id, name.encode())
    except (KeyError, ValueError, TypeError, OSError, RuntimeError):
        return None


def _plain_nbytes(group_id: Any, name: str) -> int | None:
    """Declared bytes of a simple numeric dataset, read from its header alone; None for
    anything else (the caller then takes the checked high-level path)."""
    dsid = _open_dataset(group_id, name)
    if dsid is None:
        return None
    space = dsid.get_space()
    if space.get_simple_extent_type() != h5s.SIMPLE:
        return None
    n = dsid.get_type().get_size()
    for s in space.get_simple_extent_dims():
        n *= int(s)
    return n


def _declared_bytes(dset: h5py.Dataset) -> int:
    """Bytes a dataset declares (exact Python integers: no overflow on absurd shapes)."""
    shape = dset.shape
    if shape is None:  # null dataspace
        return 0
    n = dset.dtype.itemsize
    for s in shape:
        n *= int(s)
    return n


def _is_filtered(dset: h5py.Dataset) -> bool:
    """Whether a dataset's storage goes through filters (compression): stored < declared is fine."""
    return dset.chunks is not None and dset.id.get_create_plist().get_nfilters() > 0


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

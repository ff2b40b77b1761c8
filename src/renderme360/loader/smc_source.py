"""Read one performance straight from its SMC file(s): the SMC backend of :func:`renderme360.load`.

Answers the same questions as ``renderme360.output.extracted.ExtractedFolder``, from the
anno/raw pair (release of 21 subjects), the single raw file (500 subjects) or a lone ``.smc``
file. Every file is probed for every modality; where two files hold one, the combined layout's
preference decides (images and audio from raw, the rest from anno), so both backends return the
same values. Readers open lazily and are dropped when pickled (each worker process reopens its own).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidIdError, Renderme360Error, SMCFormatError, UsageError
from ..modalities import blob_modality
from ..naming import parse_smc_name
from ..output.layout import source_order
from ..smc.schema import MAX_BLOB_BYTES
from ..smc.source import RemotePath
from ..textsafe import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..smc.reader import ExtractionReader
    from ..smc.source import Location
    from ..smc.streams import BlobStream

log = logging.getLogger(__name__)

#: SMC probes telling whether a file holds a modality (cheap: listings, no payload read), by
#: modality name: the SMC backend's registry (the folder backend's is ``extracted.HOLDS``).
HOLDS: dict[str, Callable[[Any], bool]] = {
    "calibration": lambda r: bool(r.list_calibration_cameras()),
    "images": lambda r: bool(r.list_cameras("color")),
    "masks": lambda r: bool(r.list_cameras("mask")),
    "keypoints2d": lambda r: bool(r.list_keypoints2d_cameras()),
    "keypoints3d": lambda r: bool(r.list_keypoints3d_frames()),
    "flame": lambda r: bool(r.list_flame_frames()),
    "uv": lambda r: bool(r.list_uv_frames()),
    "scan": lambda r: r.scan_info() is not None,
    "audio": lambda r: r.audio_info() is not None,
}


class SMCSource:
    """The SMC file(s) of one performance.

    Parameters
    ----------
    files
        ``{role: path}`` with roles ``anno``, ``raw`` or ``smc`` (see :mod:`renderme360.discover`).
    """

    kind = "smc"

    def __init__(self, files: dict[str, Location], actor: str, performance: str) -> None:
        self.files = dict(files)
        self.ids = (actor, performance)
        self._readers: dict[str, ExtractionReader] = {}
        self._frames: dict[tuple[str, str], list[int]] = {}
        self._holders: dict[str, str | None] = {}  # modality -> role of the file holding it
        self._streams: dict[tuple[str, str], BlobStream | None] = {}
        self._lock = threading.Lock()  # readers, listings and streams made once (decode threads)

    @classmethod
    def find(
        cls,
        root: str | os.PathLike[str] | RemotePath,
        subject: str | None,
        performance: str | None,
    ) -> SMCSource:
        """The performance ``subject``/``performance`` under a dataset root (or one ``.smc``)."""
        from ..pipeline.discover import discover

        found = discover(root, subject, performance)
        if performance is not None:
            found = [p for p in found if p.performance == performance] or found
        if len(found) != 1:
            names = ", ".join(p.key for p in found[:10]) + (" ..." if len(found) > 10 else "")
            raise choose_one(
                f"{root}: {len(found)} performances match ({names}); ", " to choose one"
            )
        perf = found[0]
        return cls(perf.files, perf.actor, perf.performance)

    def single_file_hint(self, command: str | None = None) -> str:
        """For one anno or raw file opened alone that lacks images or calibration: one line
        saying where they live and how to read both files (``command``, e.g. ``"renderme360
        check"``, is shown with the dataset root and ``--subject/--performance``; None: the
        ``load`` call). "" when it does not apply."""
        if len(self.files) != 1:
            return ""
        lacking = [m for m in ("images", "calibration") if not self.holds(m)]
        if not lacking:
            return ""
        path = next(iter(self.files.values()))
        name = parse_smc_name(path.name)
        actor, perf = (name.actor, name.performance) if name else ("SUBJECT", "PERF")
        root = "DATA_ROOT"  # a URL: its root is not derived (it may carry credentials)
        if isinstance(path, Path):
            parent = path.absolute().parent
            if parent.name == actor and parent.parent.name in ("anno", "raw"):
                root = str(parent.parent.parent)
        how = (
            f"{command} {root} --subject {actor} --performance {perf}"
            if command
            else f"renderme360.load({root!r}, {actor!r}, {perf!r})"
        )
        return (
            f"{printable(path.name)} alone holds no {' and no '.join(lacking)}: images live in "
            f"the raw file ({actor}_{perf}_raw.smc) and calibration in the anno file "
            f"({actor}_{perf}_anno.smc); read both from the dataset root: {printable(how)}"
        )

    def __repr__(self) -> str:
        return f"SMCSource({ {k: str(v) for k, v in self.files.items()} })"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"] = {}  # open HDF5 files do not pickle; each process reopens its own
        state["_streams"] = {}  # nor do their byte sources; located again where needed
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every open reader (they reopen on the next read)."""
        readers, self._readers = self._readers, {}
        for r in readers.values():
            r.close()

    # ------------------------------------------------------------------ readers
    def _reader(self, role: str) -> ExtractionReader:
        r = self._readers.get(role)
        if r is None:
            from ..smc.reader import ExtractionReader

            with self._lock:
                r = self._readers.get(role)
                if r is None:
                    r = self._readers[role] = ExtractionReader(self.files[role])
        return r

    def _holder(self, modality: str) -> str | None:
        """Role of the file ``modality`` is read from (None: no file holds it), probed when
        first asked (an export of one camera's images and audio probes only those)."""
        if modality not in self._holders:
            found = None
            for role in source_order(modality):
                if role in self.files and HOLDS[modality](self._reader(role)):
                    found = role
                    break
            self._holders[modality] = found
        return self._holders[modality]

    def _for(self, modality: str) -> ExtractionReader | None:
        role = self._holder(modality)
        return None if role is None else self._reader(role)

    def holds(self, modality: str) -> bool:
        """Whether any of the files holds ``modality`` (one of ``loader.MODALITIES``)."""
        return modality in HOLDS and self._holder(modality) is not None

    # ------------------------------------------------------------------ metadata
    def _camera_info(self, modality: str) -> dict[str, Any]:
        r = self._for(modality)
        if r is None:
            return {}
        return r.read_camera_info() or {}

    def resolution(self) -> tuple[int, int] | None:
        """(height, width) of the colour images from the ``Camera`` attributes, or None."""
        res = self._camera_info("images").get("resolution")
        return (int(res[0]), int(res[1])) if res is not None and len(res) == 2 else None

    def num_frames(self) -> int | None:
        """``num_frame`` of the file holding the audio (for audio/frame alignment)."""
        n = self._camera_info("audio").get("num_frame")
        return int(n) if n else None

    # ------------------------------------------------------------------ calibration
    def calibration(self) -> dict[str, dict[str, np.ndarray]]:
        """``{cam: {"K", "D", "RT"}}`` (RT camera-to-world); {} when no file holds it."""
        r = self._for("calibration")
        if r is None:
            return {}
        return {cam: r.calibration_of(cam) for cam in r.list_calibration_cameras()}

    def calibration_one(self, cam: str) -> dict[str, np.ndarray] | None:
        """``{"K", "D", "RT"}`` of one camera (the file holding calibration read for it
        alone), None when it is not calibrated or no file holds calibration."""
        r = self._for("calibration")
        if r is None or cam not in r.list_calibration_cameras():
            return None
        return r.read_calibration(cam)

    def calibration_conflicts(self) -> list[Any]:
        """Always []: the calibration is read from one file (no copies to compare)."""
        return []

    # ------------------------------------------------------------------ images and masks
    def cameras(self, kind: str) -> list[str]:
        """Cameras holding ``kind`` ("color" or "mask") frames, sorted."""
        r = self._for(blob_modality(kind))
        return [] if r is None else r.list_cameras(kind)

    def frames(self, kind: str, cam: str) -> list[int]:
        """Frames of ``kind`` stored for one camera, ascending ([] when none)."""
        key = (kind, cam)
        if key not in self._frames:
            r = self._for(blob_modality(kind))
            self._frames[key] = [] if r is None else r.list_frames(cam, kind)
        return self._frames[key]

    def path(self, kind: str, cam: str, frame: int) -> Path | None:
        """Always None: SMC blobs are not files of their own."""
        del kind, cam, frame
        return None

    def blob(self, kind: str, cam: str, frame: int) -> bytes | None:
        """Stored bytes of a colour image or mask, or None when absent.

        A local file's plain blobs are read by offset (one ``pread``, no HDF5 call, the GIL
        released: what extraction copies), located once per stream by
        :meth:`~renderme360.smc.reader.ExtractionReader.blob_stream` (object headers checked
        against HDF5's own answer); anything else through HDF5's checked read."""
        r = self._for(blob_modality(kind))
        if r is None or frame not in self.frames(kind, cam):
            return None
        stream = self._stream(r, kind, cam)
        i = None if stream is None else stream.position(frame)
        if stream is not None and i is not None:
            loc = stream.location(i)
            if loc.offset is not None and 0 < loc.nbytes <= MAX_BLOB_BYTES:
                data = r.source().read_at(loc.offset, loc.nbytes)
                if len(data) != loc.nbytes:
                    raise SMCFormatError(
                        f"{r.path}: {kind} camera {cam} frame {frame}: file is truncated"
                    )
                return data
        return r.read_blob(kind, cam, frame)

    def _stream(self, r: ExtractionReader, kind: str, cam: str) -> BlobStream | None:
        """Offsets and sizes of one camera's blobs (a local file only), located once."""
        key = (kind, cam)
        if key not in self._streams:
            with self._lock:
                if key not in self._streams:
                    stream: BlobStream | None = None
                    if not isinstance(r.path, RemotePath):
                        try:
                            stream = r.blob_stream(cam, kind)
                            r.source()  # opened here, not by two decode threads at once
                        except Renderme360Error:  # a bad member: each frame's own read says
                            stream = None
                    self._streams[key] = stream
        return self._streams[key]

    # ------------------------------------------------------------------ keypoints, FLAME
    def keypoints2d_cameras(self) -> list[str]:
        """Cameras with at least one non-empty 2D keypoint frame, sorted."""
        r = self._for("keypoints2d")
        if r is None:
            return []
        return [c for c in r.list_keypoints2d_cameras() if r.list_keypoints2d_frames(c)]

    def keypoints2d(self, cam: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(frame_ids (M,), keypoints (M, 106, 2)) of one camera, or None."""
        r = self._for("keypoints2d")
        frames = [] if r is None else r.list_keypoints2d_frames(cam)
        if r is None or not frames:
            return None
        arrays = iter(r.read_keypoints2d_frames(cam, frames))
        return _stack(frames, lambda f: next(arrays), f"Keypoints2d/{cam}")

    def keypoints3d(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(frame_ids (M,), keypoints (M, 73, 3)), or None."""
        r = self._for("keypoints3d")
        frames = [] if r is None else r.list_keypoints3d_frames()
        if r is None or not frames:
            return None
        return _stack(frames, r.read_keypoints3d, "Keypoints3d")

    def flame(self, fields: Sequence[str] | None = None) -> dict[str, np.ndarray] | None:
        """``{"frame_ids": (M,), field: (M, ...)}`` (only ``fields`` if given), or None."""
        r = self._for("flame")
        frames = [] if r is None else r.list_flame_frames()
        if r is None or not frames:
            return None
        out = {"frame_ids": np.asarray(frames, dtype=np.int64)}
        stored = r.flame_fields(frames[0])
        missing = [n for n in fields or () if n not in stored]
        if missing:
            raise InvalidIdError(
                f"{r.path}: no FLAME field(s) {', '.join(missing)} "
                f"(stored: {', '.join(sorted(stored))})"
            )
        for name in sorted(stored) if fields is None else fields:
            _, out[name] = _stack(frames, lambda f, n=name: r.read_flame_field(f, n), name)
        return out

    # ------------------------------------------------------------------ UV, scan, audio
    def uv_frames(self) -> list[int]:
        """Frames with a UV texture, ascending."""
        r = self._for("uv")
        return [] if r is None else r.list_uv_frames()

    def uv_bytes(self, frame: int) -> bytes | None:
        """Stored bytes of one UV texture, or None."""
        r = self._for("uv")
        if r is None or frame not in self.uv_frames():
            return None
        return r.read_blob("uv", None, frame)

    def scan(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(vertices (V, 3) as stored, faces (F, 3) int64) of the scan mesh, or None."""
        r = self._for("scan")
        mesh = None if r is None else r.read_scan()
        if mesh is None:
            return None
        return mesh["vertex"], np.asarray(mesh["vertex_indices"], dtype=np.int64)

    def audio(self) -> tuple[np.ndarray, int] | None:
        """(samples as stored, sample_rate), or None."""
        r = self._for("audio")
        got = None if r is None else r.read_audio()
        return None if got is None else (got["audio"], int(got["sample_rate"]))


def _stack(frames: list[int], read: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """frame_ids and the per-frame arrays stacked (all frames must share one shape)."""
    arrays = [read(f) for f in frames]
    shapes = {None if a is None else a.shape for a in arrays}
    if len(shapes) != 1 or None in shapes:
        raise SMCFormatError(f"{what}: frames have differing shapes {sorted(map(str, shapes))}")
    return np.asarray(frames, dtype=np.int64), np.stack(arrays)


def choose_one(before: str, after: str = "") -> UsageError:
    """An error saying how to pick one performance: ``pass subject= and performance=`` in
    Python, ``pass --subject and --performance`` on the command line (``cli_message``)."""
    exc = UsageError(f"{before}pass subject= and performance={after}")
    exc.cli_message = f"{before}pass --subject and --performance{after}"
    return exc

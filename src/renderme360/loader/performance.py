"""Load one performance for training: ``renderme360.load(...)`` over extracted files or SMC files.

One implementation of every question ("which frames exist", "camera 25's mask of frame 3")
sits in :class:`Performance`; it asks a small backend (:class:`Source`) for stored bytes and
arrays. Two backends answer: ``output.extracted.ExtractedFolder`` (the files ``extract`` wrote)
and :class:`~.smc_source.SMCSource` (the SMC files themselves), so the same call returns the
same values on both. Nothing is read until asked; images decode on demand.

Conventions (once): ``c2w`` maps camera to world (OpenCV axes: x right, y down, z forward;
metres; world up is -y); images are RGB uint8 (H, W, 3); masks uint8 (H, W); keypoints are
``(frame_ids, points)`` with only the frames that have data. Audio is aligned to frames by
assuming the capture spans the audio exactly: ``fps = num_frames / (samples / sample_rate)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from ..camera import Camera, calibration_problem
from ..errors import IncompleteError, InvalidIdError, NotFoundError, UsageError
from ..formats.image import (
    DEFAULT_MAX_PIXELS,
    SCALES,
    area_reduce,
    declared_size,
    decode,
    decode_image,
    pixel_budget,
)
from ..modalities import LOADABLE, blob_modality, spec
from ..naming import camera_key
from .dataset import FrameDataset

if TYPE_CHECKING:
    from ..formats.timeline import Clock
    from ..output.extracted import CalibrationConflict
    from ..smc.source import Location

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Modalities a performance may hold (``Performance.modalities`` lists those present): those
#: of the modality table with a loader reader (see :data:`READERS`), in canonical order.
MODALITIES = LOADABLE


class Source(Protocol):
    """What a backend answers; :class:`Performance` builds every user-facing call on it."""

    kind: str

    @property
    def ids(self) -> tuple[str, str]: ...

    def holds(self, modality: str) -> bool: ...
    def resolution(self) -> tuple[int, int] | None: ...
    def num_frames(self) -> int | None: ...
    def calibration(self) -> dict[str, dict[str, np.ndarray]]: ...
    def calibration_one(self, cam: str) -> dict[str, np.ndarray] | None: ...
    def calibration_conflicts(self) -> Sequence[CalibrationConflict]: ...
    def cameras(self, kind: str) -> list[str]: ...
    def frames(self, kind: str, cam: str) -> list[int]: ...
    def path(self, kind: str, cam: str, frame: int) -> Path | None: ...
    def blob(self, kind: str, cam: str, frame: int) -> bytes | None: ...
    def keypoints2d_cameras(self) -> list[str]: ...
    def keypoints2d(self, cam: str) -> tuple[np.ndarray, np.ndarray] | None: ...
    def keypoints3d(self) -> tuple[np.ndarray, np.ndarray] | None: ...
    def flame(self, fields: Sequence[str] | None = None) -> dict[str, np.ndarray] | None: ...
    def uv_frames(self) -> list[int]: ...
    def uv_bytes(self, frame: int) -> bytes | None: ...
    def scan(self) -> tuple[np.ndarray, np.ndarray] | None: ...
    def audio(self) -> tuple[np.ndarray, int] | None: ...


def load(
    path: str | os.PathLike[str],
    subject: str | int | None = None,
    performance: str | None = None,
    *,
    allow_incomplete: bool | None = None,
) -> Performance:
    """Open one performance: an extracted folder, or SMC files under a dataset root.

    Parameters
    ----------
    path
        ``OUT/{actor}_{perf}`` written by ``extract`` (either layout), a dataset root holding
        SMC files (any release layout), or one ``.smc`` file.
    subject, performance
        Which performance to read under a dataset root or an output root ``OUT`` (``"0026"``
        or ``26``, ``"e0"``); not needed for one performance folder, a single file, or a root
        holding one performance.
    allow_incomplete
        For an extracted folder without its completion marker (``extract`` interrupted or
        still running): None (default) loads it with one warning, and ``check``/exports of it
        refuse; True loads it silently and lets them run (they note it); False refuses here.

    Raises
    ------
    NotFoundError
        ``path`` does not exist, or the subject/performance is not there.
    UsageError
        A dataset root holds several performances and none was chosen.
    IncompleteError
        ``allow_incomplete=False`` and the folder is incomplete (exit 6 in the CLI).
    """
    from ..output.extracted import ExtractedFolder, looks_extracted
    from ..output.layout import parse_performance_dir
    from ..smc.source import RemotePath, as_location
    from .smc_source import SMCSource, choose_one

    subject, performance = _id_arg(subject, "subject"), _id_arg(performance, "performance")
    location = as_location(path)
    if isinstance(location, RemotePath):  # SMC files behind a URL (s3://, https://, ...)
        return Performance(SMCSource.find(location, subject, performance))
    root = Path(location)
    if not root.exists():
        raise NotFoundError(f"{root}: no such file or folder")
    if subject is None and performance is None and looks_extracted(root):
        return _opened(Performance(ExtractedFolder(root)), allow_incomplete)
    if root.is_dir() and subject and performance:  # an output root: OUT/{actor}_{perf}
        candidate = root / f"{subject}_{performance}"
        if parse_performance_dir(candidate.name) and looks_extracted(candidate):
            return _opened(Performance(ExtractedFolder(candidate)), allow_incomplete)
    extracted = (
        sorted(p.name for p in root.iterdir() if looks_extracted(p)) if root.is_dir() else []
    )
    if extracted and subject is None and performance is None:
        shown = ", ".join(extracted[:10]) + (" ..." if len(extracted) > 10 else "")
        raise choose_one(f"{root} holds extracted performances ({shown}): load one folder, or ")
    return Performance(SMCSource.find(root, subject, performance))


def _opened(perf: Performance, allow_incomplete: bool | None) -> Performance:
    """A loaded folder: an incomplete one is refused, warned about once, or accepted."""
    perf.allow_incomplete = bool(allow_incomplete)
    if not perf.complete:
        if allow_incomplete is False:
            raise IncompleteError(perf.incomplete_message())
        if allow_incomplete is None:
            log.warning("%s", perf.incomplete_message(allow_flag=False))
    return perf


class Performance:
    """One performance of one actor: cameras, images, masks, keypoints, FLAME, UV, scan, audio.

    Create it with :func:`renderme360.load`. Camera ids are 2-digit strings (``"25"``; ints are
    accepted), frames are ints. Reading is lazy and cached per listing; arrays are returned as
    stored (no resampling, no filling of missing frames).
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        #: Set by ``load(..., allow_incomplete=True)``: check and exports may read an
        #: incomplete folder (see :meth:`require_complete`).
        self.allow_incomplete = False

    def __repr__(self) -> str:
        return f"<Performance {self.actor}_{self.performance} from {self.source!r}>"

    # ------------------------------------------------------------------ what is there
    @property
    def actor(self) -> str:
        """Actor id, e.g. ``"0026"``."""
        return self.source.ids[0]

    @property
    def performance(self) -> str:
        """Performance name, e.g. ``"e0"``, ``"s1_all"``."""
        return self.source.ids[1]

    @property
    def complete(self) -> bool:
        """False for an extracted folder without its completion marker (``extract`` was
        interrupted or is still running: files may be missing or about to change); True for
        a finished folder and for SMC files."""
        return bool(getattr(self.source, "complete", True))

    @property
    def folder(self) -> Path | None:
        """The extracted performance folder it is read from; None for SMC files."""
        from ..output.extracted import ExtractedFolder

        return self.source.root if isinstance(self.source, ExtractedFolder) else None

    @property
    def smc_files(self) -> dict[str, Location]:
        """``{role: path}`` of the SMC files it is read from; {} for an extracted folder."""
        from .smc_source import SMCSource

        return dict(self.source.files) if isinstance(self.source, SMCSource) else {}

    def incomplete_message(self, allow_flag: bool = True) -> str:
        """One line: this folder is incomplete, and how to finish it."""
        root = getattr(self.source, "root", self.source)
        out = Path(str(root)).parent
        line = (
            f"{root} is an incomplete extraction (no .extraction_complete: interrupted or still "
            f"running); finish it by re-running the extract command that wrote it "
            f"(renderme360 extract DATA -o {out} --subject {self.actor} --performance "
            f"{self.performance}, same options)"
        )
        if allow_flag:
            line += ", or pass --allow-incomplete (load(..., allow_incomplete=True))"
        return line

    def require_complete(self) -> None:
        """IncompleteError (exit 6) for an incomplete folder not loaded with
        ``allow_incomplete=True``: what ``check`` and the exports call before reading."""
        if not self.complete and not self.allow_incomplete:
            raise IncompleteError(self.incomplete_message())

    @cached_property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this performance holds, in :data:`MODALITIES` order."""
        return tuple(m for m in MODALITIES if self.source.holds(m))

    def has(self, modality: str) -> bool:
        """Whether this performance holds ``modality`` (probing that one alone: what an export
        of one kind of data asks before reading it)."""
        if "modalities" in self.__dict__:
            return modality in self.modalities
        return modality in MODALITIES and self.source.holds(modality)

    @cached_property
    def camera_ids(self) -> list[str]:
        """Cameras with images, masks or 2D keypoints (``cameras`` has every calibrated one)."""
        cams = set(self.source.cameras("color")) | set(self.source.cameras("mask"))
        cams |= set(self.source.keypoints2d_cameras())
        return sorted(cams)

    @cached_property
    def image_camera_ids(self) -> list[str]:
        """Cameras with colour images, sorted."""
        cams = self.source.cameras("color")
        if not cams:
            self._hint_single_file()
        return cams

    def single_file_hint(self, command: str | None = None, tail: str = "") -> str:
        """For a lone anno or raw file lacking images or calibration: one line saying they live
        in the other file of the pair, with ``command`` (or the ``load`` call) on the dataset
        root and the ids, then ``tail`` (``"--frame 0"``); "" otherwise. A caller that shows it
        stops the loader's own warning."""
        self._hinted = True
        hint = getattr(self.source, "single_file_hint", None)
        text = str(hint(command)) if callable(hint) else ""
        return f"{text} {tail}" if text and tail else text

    def _hint_single_file(self) -> None:
        """One warning, once, when a lone anno or raw file lacks images or calibration."""
        if not getattr(self, "_hinted", False):
            text = self.single_file_hint()
            if text:
                log.warning("%s", text)

    @cached_property
    def frame_ids(self) -> list[int]:
        """Every frame with data of any per-frame modality (images, masks, keypoints, FLAME, UV)."""
        frames: set[int] = set()
        for kind in ("color", "mask"):
            for cam in self.source.cameras(kind):
                frames.update(self.source.frames(kind, cam))
        for cam in self.source.keypoints2d_cameras():
            got = self.source.keypoints2d(cam)
            if got is not None:
                frames.update(int(f) for f in got[0])
        kp3d = self.source.keypoints3d()
        if kp3d is not None:
            frames.update(int(f) for f in kp3d[0])
        flame = self.source.flame(fields=())
        if flame is not None:
            frames.update(int(f) for f in flame["frame_ids"])
        frames.update(self.source.uv_frames())
        return sorted(frames)

    def image_frame_ids(self, camera: int | str) -> list[int]:
        """Frames with a colour image for one camera, ascending."""
        return list(self.source.frames("color", camera_key(camera)))

    def mask_frame_ids(self, camera: int | str) -> list[int]:
        """Frames with a mask for one camera, ascending."""
        return list(self.source.frames("mask", camera_key(camera)))

    # ------------------------------------------------------------------ cameras
    @cached_property
    def cameras(self) -> CameraMap:
        """Every calibrated camera by id: a read-only mapping of :class:`Camera`.

        Ids are 2-digit strings; ``cameras[25]`` works too. An id not calibrated raises
        InvalidIdError (a KeyError) naming the calibrated ones. An extracted folder is read
        from ``calibration/all_cameras.npz``; where its other copies (``cameras.json``,
        ``cam_XX.npz``) disagree, a warning names them (see :attr:`calibration_conflicts`).
        """
        for conflict in self.calibration_conflicts:
            log.warning("%s: calibration copies disagree: %s", self._name, conflict)
        calibration = self._calibration
        if not calibration:
            self._hint_single_file()
        refused = self.calibration_problems
        for cam, why in refused.items():
            log.warning("%s: camera %s left out: its calibration %s", self._name, cam, why)
        size = self._resolution()
        cams = {
            cam: self._camera(cam, c, size)
            for cam, c in sorted(calibration.items())
            if cam not in refused
        }
        return CameraMap(self._name, cams, refused)

    def _camera(self, cam: str, c: Mapping[str, Any], size: tuple[int, int]) -> Camera:
        height, width = size
        return Camera(
            id=cam,
            K=np.asarray(c["K"], dtype=np.float64),
            D=np.asarray(c["D"], dtype=np.float64).reshape(-1),
            c2w=np.asarray(c["RT"], dtype=np.float64),
            width=width,
            height=height,
        )

    @cached_property
    def _calibration(self) -> dict[str, dict[str, np.ndarray]]:
        """Every camera's calibration as the source holds it, read once (:attr:`cameras` and
        :attr:`calibration_problems` both need it)."""
        return self.source.calibration()

    @cached_property
    def calibration_problems(self) -> dict[str, str]:
        """``{camera id: why}`` for calibrated cameras left out of :attr:`cameras`: a K, D or
        RT holding NaN or infinite values (stored as is in the files; unusable for geometry).
        Exports and ``check`` name them in a note."""
        out = {}
        for cam, c in sorted(self._calibration.items()):
            why = calibration_problem(c)
            if why is not None:
                out[cam] = why
        return out

    @cached_property
    def calibration_conflicts(self) -> list[CalibrationConflict]:
        """Calibration copies that disagree with the one read (extracted folders).

        Each has ``file``, ``cameras`` and ``what``; ``str()`` is one line (``"calibration/
        cameras.json: camera(s) 25: RT differs from the copy read"``). [] when every copy
        agrees, and always for SMC files (one copy).
        """
        return list(self.source.calibration_conflicts())

    def camera(self, camera: int | str) -> Camera:
        """One calibrated camera; InvalidIdError (a KeyError) naming the calibrated ones.

        From SMC files only that camera's calibration is read (an export of one camera need
        not read all 60); anything unusual (not calibrated, NaN values, no calibration, a
        folder with several copies to compare) takes :attr:`cameras` and its messages."""
        if "cameras" not in self.__dict__:
            cam = camera_key(camera)
            c = self.source.calibration_one(cam)
            if c is not None and calibration_problem(c) is None:
                return self._camera(cam, c, self._resolution())
        return self.cameras[camera]

    def _resolution(self) -> tuple[int, int]:
        """(height, width) of the colour images: recorded, else read from one image's header."""
        res = self.source.resolution()
        if res is not None:
            return res
        for kind in ("color", "mask"):
            for cam in self.source.cameras(kind):
                frames = self.source.frames(kind, cam)
                if frames:
                    size = declared_size(self.source.blob(kind, cam, frames[0]) or b"")
                    if size is not None:
                        return size[1], size[0]
        return 0, 0

    @cached_property
    def _pixel_budget(self) -> int:
        """Pixels an image or mask may declare: the recorded (or first image's) width x
        height with a little slack; the default budget when unknown (formats.image)."""
        height, width = self._resolution()
        return pixel_budget(width, height)

    # ------------------------------------------------------------------ images and masks
    def image_bytes(self, camera: int | str, frame: int) -> bytes:
        """The stored (JPEG) bytes of one colour image, undecoded."""
        return self._blob("color", camera, frame)

    def image_path(self, camera: int | str, frame: int) -> Path | None:
        """The file holding one colour image (folder backend); None for SMC files."""
        self._check_frame("color", camera, frame)
        return self.source.path("color", camera_key(camera), int(frame))

    def mask_path(self, camera: int | str, frame: int) -> Path | None:
        """The file holding one mask (folder backend); None for SMC files."""
        self._check_frame("mask", camera, frame)
        return self.source.path("mask", camera_key(camera), int(frame))

    def mask_bytes(self, camera: int | str, frame: int) -> bytes:
        """The stored (PNG) bytes of one mask, undecoded."""
        return self._blob("mask", camera, frame)

    def image(self, camera: int | str, frame: int, scale: int = 1) -> np.ndarray:
        """One colour image, RGB uint8 (H, W, 3); ``scale`` 2/4/8 decodes at 1/scale size.

        Reduced sizes are decoded in the JPEG's DCT domain (OpenCV ``IMREAD_REDUCED_COLOR_k``),
        several times faster than a full decode; ``cameras[id].scaled(scale)`` has the matching
        intrinsics. Height and width are ``ceil(H / scale)``, ``ceil(W / scale)``.
        """
        import cv2

        k = _scale(scale)
        data = self._blob("color", camera, frame)
        where = f"{self._name}: image camera {camera_key(camera)} frame {frame}"
        img, done = decode(data, scale=k, max_pixels=self._pixel_budget, what=where)
        img = area_reduce(img, k // done, exact=False)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def mask(self, camera: int | str, frame: int, scale: int = 1) -> np.ndarray:
        """One mask, uint8 (H, W); a 3-channel mask is reduced with a max over channels.

        With ``scale`` > 1 it is area-averaged to the size of ``image(..., scale)`` (soft edges).
        """
        k = _scale(scale)
        data = self._blob("mask", camera, frame)
        where = f"{self._name}: mask camera {camera_key(camera)} frame {frame}"
        mask = decode_image(data, grayscale=True, what=where, max_pixels=self._pixel_budget)
        return area_reduce(mask, k, exact=False)

    def _blob(self, kind: str, camera: int | str, frame: int) -> bytes:
        cam = self._check_frame(kind, camera, frame)
        data = self.source.blob(kind, cam, int(frame))
        if data is None:  # listed a moment ago: the folder changed under us
            raise InvalidIdError(f"{self._name}: {kind} camera {cam} frame {frame} disappeared")
        return data

    def _check_frame(self, kind: str, camera: int | str, frame: int) -> str:
        cam = camera_key(camera)
        what = "image" if kind == "color" else kind
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise InvalidIdError(f"frame must be an integer, got {frame!r}")
        self._need_modality(blob_modality(kind), f"{what}s")
        frames = self.source.frames(kind, cam)
        if not frames:
            have = ", ".join(self.source.cameras(kind)) or "none"
            raise InvalidIdError(f"{self._name}: no {what}s for camera {cam} (cameras: {have})")
        if int(frame) not in frames:
            raise InvalidIdError(
                f"{self._name}: no {what} for camera {cam} frame {frame} (frames {_span(frames)})"
            )
        return cam

    # ------------------------------------------------------------------ keypoints, FLAME
    @cached_property
    def keypoints2d_camera_ids(self) -> list[str]:
        """Cameras with 2D keypoints, sorted."""
        return self.source.keypoints2d_cameras()

    def keypoints2d(self, camera: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``(frame_ids (M,), points (M, 106, 2))`` pixel landmarks of one camera.

        Only frames with data; the 73 points of :meth:`keypoints3d` are rows ``33:`` (2D index
        ``33 + i`` is 3D index ``i``); rows ``:33`` are the face contour.
        """
        cam = camera_key(camera)
        self._need_modality("keypoints2d", "2D keypoints")
        got = self.source.keypoints2d(cam)
        if got is None:
            have = ", ".join(self.keypoints2d_camera_ids) or "none"
            raise InvalidIdError(f"{self._name}: no 2D keypoints for camera {cam} (have {have})")
        return got

    def keypoints3d(self) -> tuple[np.ndarray, np.ndarray]:
        """``(frame_ids (M,), points (M, 73, 3))`` world landmarks (metres)."""
        return self._need(self.source.keypoints3d(), "3D keypoints")

    def flame(self, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """``{"frame_ids": (M,), name: (M, ...)}``: every FLAME dataset stacked over frames.

        ``fields`` limits the read to some datasets (``verts`` and ``albedos`` are large): a list
        of names, or one name. A name not stored raises InvalidIdError naming the stored ones.
        """
        if isinstance(fields, str):
            fields = (fields,)
        wanted = None if fields is None else tuple(fields)
        if wanted is not None and not all(isinstance(f, str) for f in wanted):
            raise UsageError(f"flame(fields=...) takes field names (str), got {fields!r}")
        return self._need(self.source.flame(fields=wanted), "FLAME parameters")

    @cached_property
    def uv_frame_ids(self) -> list[int]:
        """Frames with a UV texture, ascending."""
        return self.source.uv_frames()

    def uv_bytes(self, frame: int) -> bytes:
        """The stored bytes of one UV texture."""
        self._need_modality("uv", "UV textures")
        data = self.source.uv_bytes(int(frame))
        if data is None:
            raise InvalidIdError(
                f"{self._name}: no UV texture for frame {frame} (frames {_span(self.uv_frame_ids)})"
            )
        return data

    def uv(self, frame: int) -> np.ndarray:
        """One UV texture, RGB uint8 (H, W, 3)."""
        import cv2

        where = f"{self._name}: UV texture frame {frame}"
        bgr = decode_image(self.uv_bytes(frame), what=where, max_pixels=DEFAULT_MAX_PIXELS)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def scan(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices (V, 3), faces (F, 3) int64)`` of the static scan mesh (world, metres)."""
        return self._need(self.source.scan(), "scan mesh")

    # ------------------------------------------------------------------ audio and time
    def audio(self, rate: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
        """``(samples, sample_rate)``: by default the stored array (e.g. (n, 2) float32) and its
        rate in Hz; ``rate=16000`` resamples (band-limited, libsoxr; float32) and
        ``mono=True`` averages the channels, as speech models read it: ``audio(16000, True)``.
        """
        samples, stored = self._need(self.source.audio(), "audio")
        if mono:
            from ..formats.audio import mono as to_mono

            samples = to_mono(samples)
        if rate is not None and rate != stored:
            from ..formats.audio import resample

            _check_rate(rate)
            samples = resample(samples, stored, rate)
        return samples, (stored if rate is None else rate)

    @cached_property
    def clock(self) -> Clock:
        """How the frames sit in time (:class:`~renderme360.formats.timeline.Clock`): the
        frames tile the audio (``fps = num_frames / (samples / sample_rate)``), first frame at
        sample 0; without audio, ``num_frames / 30`` seconds."""
        from ..formats.timeline import Clock

        frames = self.source.num_frames()
        if not frames:
            image_frames = [f for c in self.image_camera_ids for f in self.image_frame_ids(c)]
            frames = max(image_frames) + 1 if image_frames else 0
        if not frames:
            raise NotFoundError(f"{self._name}: frame count unknown; cannot place frames in time")
        got = self.source.audio() if "audio" in self.modalities else None
        if got is None:
            return Clock.of(frames)
        return Clock.of(frames, len(got[0]), int(got[1]))

    @property
    def fps(self) -> float:
        """Video frame rate implied by the audio: ``num_frames / (samples / sample_rate)``.

        Assumes the capture's frames span the stored audio exactly, first frame at sample 0.
        """
        self._need_modality("audio", "audio")
        return float(self.clock.fps)

    def frame_times(self) -> np.ndarray:
        """(num_frames,) float64 start time in seconds of every frame (see :attr:`clock`)."""
        clock = self.clock
        return np.array([float(clock.frame_time(f)) for f in range(clock.num_frames)])

    def audio_span(self, frame: int, rate: int | None = None) -> tuple[int, int]:
        """``(start, stop)`` sample range of one frame at ``rate`` (default: the stored rate)
        in ``audio(rate)``: consecutive frames tile the audio exactly (see :attr:`fps`)."""
        from ..formats.timeline import span

        self._need_modality("audio", "audio")
        clock = self.clock
        frame = int(frame)
        if not 0 <= frame < clock.num_frames:
            raise InvalidIdError(f"{self._name}: frame {frame} outside 0..{clock.num_frames - 1}")
        if rate is None:
            rate = int(self._need(self.source.audio(), "audio")[1])
        _check_rate(rate)
        first, count = span(clock.frame_time(frame), clock.frame_time(frame + 1), rate)
        return first, first + count

    def video_frames(self, camera: int | str, fps: int = 25) -> np.ndarray:
        """Source frame index of each frame of a constant-rate video of ``camera`` at ``fps``:
        frame ``j`` (at ``t = j / fps``) shows the frame covering ``t``; ``round(duration *
        fps)`` frames; a frame without an image shows the last earlier one. The mapping the
        ``export talkinghead`` and ``export clips`` videos are made with."""
        from ..formats.timeline import rounded, source_frames

        _check_rate(fps)
        available = self.image_frame_ids(camera)
        if not available:
            have = ", ".join(self.image_camera_ids) or "none"
            raise InvalidIdError(f"{self._name}: no images for camera {camera} (cameras: {have})")
        clock = self.clock
        return source_frames(clock, fps, 0, rounded(clock.duration * fps), available=available)

    # ------------------------------------------------------------------ training
    def read(self, modality: str) -> Any:
        """Everything of one modality (see :data:`READERS`): blobs as stored bytes by
        (camera, frame), arrays as the methods of that modality return them."""
        key = spec(modality).loader
        if key is None:
            raise UsageError(f"the loader does not read {modality}")
        return READERS[key](self)

    def dataset(
        self,
        cameras: Iterable[int | str] | None = None,
        frames: Iterable[int] | None = None,
        scale: int = 1,
        masks: bool | None = None,
    ) -> FrameDataset:
        """Map-style dataset of (camera, frame) images (a :class:`~.dataset.FrameDataset`)."""
        return FrameDataset(self, cameras=cameras, frames=frames, scale=scale, masks=masks)

    # ------------------------------------------------------------------ helpers
    @property
    def _name(self) -> str:
        return f"{self.actor}_{self.performance}"

    def _need_modality(self, modality: str, what: str) -> None:
        """NotFoundError naming what the performance holds, unless it holds ``modality``."""
        if not self.has(modality):
            self._need(None, what)

    def _need(self, value: T | None, what: str) -> T:
        """``value``; NotFoundError naming what the performance holds when it is None."""
        if value is None:
            have = ", ".join(self.modalities) or "nothing"
            raise NotFoundError(f"{self._name}: no {what} (this performance holds: {have})")
        return value


def _blobs_of(kind: str) -> Callable[[Performance], dict[tuple[str, int], bytes]]:
    """Every stored blob of one kind, by (camera, frame)."""

    def read(p: Performance) -> dict[tuple[str, int], bytes]:
        return {
            (c, f): p._blob(kind, c, f)
            for c in p.source.cameras(kind)
            for f in p.source.frames(kind, c)
        }

    return read


#: How the loader reads each modality whole, keyed by ``ModalitySpec.loader`` (the modality's
#: name): what :meth:`Performance.read` returns, the same from both backends.
READERS: dict[str, Callable[[Performance], Any]] = {
    "calibration": lambda p: {c: (cam.K, cam.D, cam.c2w) for c, cam in p.cameras.items()},
    "images": _blobs_of("color"),
    "masks": _blobs_of("mask"),
    "audio": lambda p: p.audio(),
    "keypoints2d": lambda p: {c: p.keypoints2d(c) for c in p.keypoints2d_camera_ids},
    "keypoints3d": lambda p: p.keypoints3d(),
    "flame": lambda p: p.flame(),
    "uv": lambda p: {f: p.uv_bytes(f) for f in p.uv_frame_ids},
    "scan": lambda p: p.scan(),
}


class CameraMap(Mapping[str, Camera]):
    """Read-only ``{camera id: Camera}``; ``[25]`` and ``["25"]`` alike, unknown ids named."""

    def __init__(
        self, name: str, cameras: dict[str, Camera], refused: Mapping[str, str] | None = None
    ) -> None:
        self._name, self._cameras, self._refused = name, cameras, dict(refused or {})

    def __getitem__(self, camera: int | str) -> Camera:
        cam = camera_key(camera)
        try:
            return self._cameras[cam]
        except KeyError:
            if cam in self._refused:
                raise InvalidIdError(
                    f"{self._name}: camera {cam} is left out: its calibration {self._refused[cam]}"
                ) from None
            have = ", ".join(self._cameras) or "none"
            raise InvalidIdError(
                f"{self._name}: no calibration for camera {cam} (calibrated: {have})"
            ) from None

    def __contains__(self, camera: object) -> bool:
        return camera_key(camera) in self._cameras if _is_id(camera) else False

    def __iter__(self) -> Iterator[str]:
        return iter(self._cameras)

    def __len__(self) -> int:
        return len(self._cameras)

    def __repr__(self) -> str:
        return f"<cameras of {self._name}: {', '.join(self._cameras) or 'none'}>"


def _is_id(camera: object) -> bool:
    try:
        camera_key(camera)
    except InvalidIdError:
        return False
    return True


def _id_arg(value: object, what: str) -> str | None:
    """A subject/performance argument as a string: ints are accepted for subjects (26 -> 0026)."""
    if value is None or isinstance(value, str):
        return value
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if what == "subject" and isinstance(value, int) and is_int and 0 <= value <= 9999:
        return f"{value:04d}"
    example = "'0026' or 26" if what == "subject" else "'e0'"
    raise UsageError(f"{what} must be a string like {example}, got {value!r}")


def _scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


def _check_rate(rate: object) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 0 < rate <= 10**6:
        raise UsageError(f"a rate must be a positive integer (Hz or frames/s), got {rate!r}")


def _span(frames: Sequence[int]) -> str:
    if not frames:
        return "none"
    return f"{frames[0]}..{frames[-1]}, {len(frames)} stored"

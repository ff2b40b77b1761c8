"""``export nerfstudio`` and ``export colmap``: training-ready views of one performance.

Both read through :func:`renderme360.load` (an extracted folder or SMC files), select cameras
and frames, and write into one destination folder: the model/JSON files, links to (or reduced
copies of) the images, ``README.txt`` with the conventions and ``export.json`` (what was written,
used to skip unchanged work and remove stale files on a re-run). Nothing is written outside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import (
    EmptySelectionError,
    InvalidIdError,
    NotRegularFileError,
    Renderme360Error,
    UsageError,
)
from ..formats.image import area_reduce, decode, image_channels, pixel_budget
from ..naming import validate_actor, validate_performance
from ..output.layout import LOCK
from ..output.lock import FolderLock
from ..safeopen import is_regular, read_regular_text
from ..selection import FrameRange, parse_cameras, parse_frames, resolve_cameras
from . import colmap_model as cm
from .conventions import (
    CONVENTIONS_TEXT,
    DOWNSCALES,
    PIXEL_CENTER,
    intrinsics,
    project_opencv,
    rigid_c2w,
    rotmat_to_quat,
    w2c_from_c2w,
)
from .files import ExportDir
from .nerfstudio import camera_fields, dumps, frame_entry, frame_times, transforms
from .reduce import ReduceTask, run_tasks

log = logging.getLogger(__name__)

RECORD = "export.json"


class Progress:
    """Progress of the image work; the CLI subclasses it to draw a bar. Default: silent."""

    def start(self, total: int, what: str) -> None:
        """``total`` images of ``what`` are about to be reduced."""

    def advance(self, n: int) -> None:
        """``n`` more are done."""

    def finish(self) -> None:
        """The image work is over."""


@dataclass
class ExportSummary:
    """What an export wrote (the CLI prints it; ``--json`` prints it whole)."""

    format: str
    dest: str
    source: str
    actor: str
    performance: str
    cameras: list[str]
    frames: list[int]
    downscale: int
    images: int = 0
    masks: int = 0
    linked: int = 0
    copied: int = 0
    stored: int = 0
    reduced: int = 0
    reused: int = 0
    converted: int = 0  # masks that were not single-channel, written as 1-channel PNG copies
    points3d: int = 0
    observations: int = 0
    missing: list[str] = field(default_factory=list)
    removed_stale: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # format-specific (e.g. flame_error)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def note_lines(self) -> list[str]:
        """Things the user should know (cameras chosen by a rule, pairs left out, no points)."""
        out = list(self.notes)
        if self.missing:
            out.append(
                f"{len(self.missing)} camera/frame pairs have no image and are left out "
                f"(first: {self.missing[0]})"
            )
        return out

    def result_lines(self) -> list[str]:
        """Two lines saying what was written and where."""
        how = [f"{getattr(self, k)} {k}" for k in ("linked", "copied", "stored", "reduced",
               "reused", "converted") if getattr(self, k)]  # fmt: skip
        if not how:
            how.append("referenced where they lie")
        pts = f", {self.points3d} points3D" if self.format == "colmap" else ""
        main = "sparse/0" if self.format == "colmap" else "transforms.json"
        return [
            f"{self.format}: {len(self.cameras)} cameras x {len(self.frames)} frames, "
            f"{self.images} images, {self.masks} masks ({', '.join(how)}){pts}, "
            f"{self.seconds:.2f} s",
            f"wrote {self.dest}/{main} (conventions: {self.dest}/README.txt)",
        ]


# ---------------------------------------------------------------------------- selection
def select_cameras(
    perf: Any, cameras: str | None, command: str = "nerfstudio"
) -> tuple[list[str], str]:
    """Cameras with images and calibration, as asked (ids, ``ring:N``, ``front:N``, or all),
    and a note saying how. An incomplete extracted folder is refused (IncompleteError, exit
    6) unless loaded with ``allow_incomplete=True``; then the note says it."""
    perf.require_complete()
    chosen, note = _select_cameras(perf, cameras, command)
    if not perf.complete:
        note += f"; {perf.source.root} is an incomplete extraction (--allow-incomplete)"
    return chosen, note


def _select_cameras(perf: Any, cameras: str | None, command: str) -> tuple[list[str], str]:
    hint = _smc_hint(perf, command)  # before any listing: the loader then does not warn as well
    refused = perf.calibration_problems  # NaN/Inf in K, D or RT: left out, named in a note
    available = [c for c in perf.image_camera_ids if c not in refused]
    calibrated = perf.cameras
    spec = parse_cameras(cameras)
    chosen, note = resolve_cameras(spec, available, {c: cam.c2w for c, cam in calibrated.items()})
    asked = None if spec is None or spec.ids is None else set(spec.ids)
    unusable = [c for c in refused if c in perf.image_camera_ids and (asked is None or c in asked)]
    left_out = [f"camera {c} left out: its calibration {refused[c]}" for c in unusable]
    if chosen is None:
        chosen = [c for c in available if c in calibrated]
        if not chosen:
            why = "; ".join(left_out) or hint
            raise UsageError(
                f"{_name(perf)}: no camera has both images and calibration"
                + (f"; {why}" if why else "")
            )
        return chosen, "; ".join([note, *left_out])
    chosen = [c for c in chosen if c not in unusable]
    if not chosen:
        raise EmptySelectionError(f"{_name(perf)}: {'; '.join(left_out)}")
    note = "; ".join([note, *left_out])
    no_images = [c for c in chosen if c not in available]
    if no_images:  # as extract: left out with a note; exit code 6 when nothing is left
        what = f"no images for camera {', '.join(no_images)} (cameras with images: "
        if len(no_images) == len(chosen):
            raise EmptySelectionError(
                f"{_name(perf)}: {what}{_ids(available) or 'none'})" + (f"; {hint}" if hint else "")
            )
        chosen = [c for c in chosen if c in available]
        note = f"{note}; {what}{_ids(available)}): left out"
    no_calib = [c for c in chosen if c not in calibrated]
    if no_calib:
        raise InvalidIdError(
            f"{_name(perf)}: no calibration for camera {', '.join(no_calib)}"
            + (f"; {hint}" if hint else "")
        )
    return chosen, note


def _smc_hint(perf: Any, command: str) -> str:
    """For one SMC file: where images and calibration live, and the command to read both
    (``command``: ``"nerfstudio"`` or ``"colmap --frame N"``)."""
    fmt, _, tail = command.partition(" ")
    text = perf.single_file_hint(f"renderme360 export {fmt}")
    return f"{text} {tail}" if text and tail else text


def _ids(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 12 else f"{', '.join(ids[:12])}, ... ({len(ids)})"


def _name(perf: Any) -> str:
    return f"{perf.actor}_{perf.performance}"


def frames_token(rng: FrameRange | None, chosen: list[int] | None = None) -> str:
    """Default folder-name part for a frame selection: ``all``, ``000012``, ``000000-000300``.

    A range reaching past the take (``0:99`` of 3 frames) is named by the frames ``chosen``."""
    if rng is None:
        return "all"
    nominal = rng.nominal()
    if chosen and nominal is not None and len(chosen) < nominal:
        if len(chosen) == 1:
            return f"{chosen[0]:06d}"
        rng = FrameRange(rng.start, min(rng.stop or 0, chosen[-1] + 1), rng.step)
    if rng.stop == rng.start + 1:
        return f"{rng.start:06d}"
    stop = "end" if rng.stop is None else f"{rng.stop:06d}"
    return f"{rng.start:06d}-{stop}" + (f"-s{rng.step}" if rng.step != 1 else "")


def cameras_token(cameras: str | None, exported: list[str] | None = None) -> str:
    """Default folder-name part for a camera selection: ``""`` (all), ``_ring4``, ``_front2``,
    ``_cam22+25+30-35`` (a long list: ``_cam{count}-{hash}``), so that exports of different
    camera selections do not share a folder (and prune each other). An id list is named by the
    cameras ``exported`` (ids left out for lack of images are not in the name)."""
    spec = parse_cameras(cameras)
    if spec is None:
        return ""
    if spec.rule:
        return f"_{spec.rule}{spec.count}"
    ids = sorted(int(c) for c in (exported if exported is not None else spec.ids or ()))
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    text = "+".join(f"{r[0]:02d}" + (f"-{r[-1]:02d}" if len(r) > 1 else "") for r in runs)
    if len(text) > 40:
        text = f"{len(ids)}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return f"_cam{text}"


def default_dest(perf: Any, fmt: str, token: str, downscale: int) -> Path:
    """``PERF/exports/{fmt}_{token}[_down{k}]`` for an extracted folder; for SMC files
    ``./renderme360_exports/{actor}_{perf}/{fmt}_{token}[_down{k}]`` (the dataset root is often
    read-only and holds no image files to point at)."""
    name = f"{fmt}_{token}" + (f"_down{downscale}" if downscale > 1 else "")
    if _is_folder(perf):
        return Path(perf.source.root) / "exports" / name
    actor = validate_actor(perf.actor, "performance")  # ids become a path: grammar checked
    performance = validate_performance(perf.performance, "performance")
    return Path("renderme360_exports") / f"{actor}_{performance}" / name


def _dest(dest: str | os.PathLike[str] | None) -> Path | None:
    """The export folder asked for; None for the default. An empty name is refused (it would
    otherwise mean the current folder or, silently, the default)."""
    if dest is None:
        return None
    if not str(dest).strip():
        raise UsageError("the export folder (-o/--output) is an empty name")
    return Path(dest)


def _is_folder(perf: Any) -> bool:
    """An extracted folder (files to point at), as opposed to SMC files."""
    return isinstance(getattr(perf.source, "root", None), Path) and not hasattr(
        perf.source, "files"
    )


def _check_downscale(k: int) -> None:
    if k not in DOWNSCALES:
        raise UsageError(f"--downscale must be one of {', '.join(map(str, DOWNSCALES))}, got {k}")


# ---------------------------------------------------------------------------- image placement
@dataclass
class _Placer:
    """Puts images/masks into the export: link, stored bytes, or a reduced copy (queued)."""

    perf: Any
    out: ExportDir
    k: int
    previous: dict[str, Any]
    summary: ExportSummary
    record: dict[str, Any] = field(default_factory=dict)
    tasks: list[tuple[ReduceTask, str, str, int, str]] = field(default_factory=list)
    soft_masks: bool = False
    refs: list[str] = field(default_factory=list)  # every path the model names, as it names it
    _smc: str | None = None
    _dirs: dict[str, str] = field(default_factory=dict)

    def place(self, kind: str, cam: str, frame: int, rel_noext: str, colmap: bool) -> str:
        """Return the path (relative to the export) under which the image/mask will be found.

        ``kind`` is ``color`` or ``mask``. At downscale 1 an extracted file is referenced
        where it lies (nerfstudio) or hard-linked (COLMAP); SMC bytes are written as stored;
        a mask that is not single-channel gets a 1-channel PNG copy (nerfstudio refuses it).
        """
        src = self._source_path(kind, cam, frame)
        if src is not None and not is_regular(src):  # a planted symlink/FIFO: never exported
            raise NotRegularFileError(f"refusing to export {src}: not a regular file")
        rel = self._as_is(kind, cam, frame, rel_noext, colmap, src) if self.k == 1 else None
        if rel is None:
            rel = self._queue(kind, cam, frame, rel_noext, src)
        self.refs.append(rel)
        return rel

    def _as_is(
        self, kind: str, cam: str, frame: int, rel_noext: str, colmap: bool, src: Path | None
    ) -> str | None:
        """Place the file unchanged (reference, link or stored bytes); None for a mask that is
        not single-channel (decoded and copied instead)."""
        mask = kind == "mask"
        if src is not None:
            if mask and not _one_channel(src):
                return None
            if not colmap:
                return self._relpath(src)
            rel = rel_noext + (src.suffix.lower() if not mask else ".png")
            _path, linked = self.out.link_or_copy(src, rel)
            self._count(linked)
            self.record[rel] = {"from": str(src)}
            return rel
        data = self._bytes(kind, cam, frame)
        if mask and not _one_channel(data):
            return None
        rel = rel_noext + _ext(data, mask)
        self.out.write_bytes(rel, data)
        self.summary.stored += 1
        self.record[rel] = {"from": f"{kind}/{cam}/{frame}"}
        return rel

    def _queue(self, kind: str, cam: str, frame: int, rel_noext: str, src: Path | None) -> str:
        """A reduced (or, at downscale 1, a 1-channel mask) copy: reused when an earlier run
        made it from the same source the same way, else queued for the workers."""
        mask = kind == "mask"
        rel = rel_noext + (".png" if mask else ".jpg")  # reduced copies: JPEG q95, PNG masks
        stamp = _stamp(src) if src is not None else self._smc_stamp(kind, cam, frame)
        entry: dict[str, Any] = {"from": stamp, "k": self.k}
        if mask and self.k > 1:
            entry["mask"] = "soft" if self.soft_masks else "binary"
        dst = self.out.path(rel)
        prev = self.previous.get(rel)
        if isinstance(prev, dict) and _same_output(prev, entry, dst):
            self.record[rel] = prev
            self.summary.reused += 1
            return rel
        self.record[rel] = entry  # size and mtime of the output added once it is written
        cam_obj = self.perf.cameras[cam]
        source = str(src) if src is not None else None
        staged = str(self.out.stage(rel))  # renamed into place when the whole export is written
        task = ReduceTask(staged, self.k, mask, cam_obj.width, cam_obj.height, src=source,
                          ext=dst.suffix, soft=self.soft_masks)  # fmt: skip
        self.tasks.append((task, kind, cam, frame, rel))
        return rel

    def _source_path(self, kind: str, cam: str, frame: int) -> Path | None:
        """The extracted file (None for SMC files). Camera and frame were checked by the
        caller against the listings, so the source is asked directly (no re-check per call)."""
        source = getattr(self.perf, "source", None)
        if source is not None and hasattr(source, "path"):
            return source.path(kind, cam, frame)
        getp = self.perf.image_path if kind == "color" else self.perf.mask_path
        return getp(cam, frame)

    def _relpath(self, src: Path) -> str:
        """``src`` relative to the export folder (one ``os.path.relpath`` per source folder)."""
        parent, _, name = str(src).rpartition(os.sep)
        rel = self._dirs.get(parent)
        if rel is None:
            rel = _relpath(Path(parent), self.out.root)
            self._dirs[parent] = rel
        return f"{rel}/{name}"

    def _bytes(self, kind: str, cam: str, frame: int) -> bytes:
        if kind == "color":
            return self.perf.image_bytes(cam, frame)
        return self.perf.mask_bytes(cam, frame)

    def _materialise(self) -> Iterator[ReduceTask]:
        """Tasks in order; SMC bytes are read only as a task is handed to the workers."""
        for task, kind, cam, frame, _rel in self.tasks:
            if task.src is None:
                task = replace(task, data=self._bytes(kind, cam, frame))
            yield task

    def _smc_stamp(self, kind: str, cam: str, frame: int) -> str:
        if self._smc is None:
            files = getattr(self.perf.source, "files", {}) or {}
            self._smc = ";".join(_stamp(Path(p)) for _, p in sorted(files.items()))
        return f"{kind}/{cam}/{frame}@{self._smc}"

    def _count(self, linked: bool) -> None:
        if linked:
            self.summary.linked += 1
        else:
            self.summary.copied += 1

    def run(self, progress: Progress, workers: int | None) -> None:
        if not self.tasks:
            return
        progress.start(len(self.tasks), f"downscale x{self.k}" if self.k > 1 else "1-channel masks")
        try:
            run_tasks(self._materialise(), len(self.tasks), workers, progress.advance)
        finally:
            progress.finish()
        for task, *_, rel in self.tasks:  # a rename keeps size and mtime
            st = os.stat(task.dst)
            self.record[rel].update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        if self.k > 1:
            self.summary.reduced += len(self.tasks)
        else:
            self.summary.converted += len(self.tasks)


def _same_output(prev: dict[str, Any], entry: dict[str, Any], dst: Path) -> bool:
    """A reduced copy from an earlier run is reused only when it was made from the same source
    with the same factor and the file is still the one that run wrote (size and mtime): an
    interrupted run that replaced it, or a hand edit, makes it be written again."""
    if any(prev.get(k) != v for k, v in entry.items()):
        return False
    try:
        st = os.stat(dst, follow_symlinks=False)
    except OSError:
        return False
    return prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns


def _relpath(path: Path, start: Path) -> str:
    """``path`` relative to ``start``, computed on the resolved folders: a lexical relative path
    is wrong when either lies under a symlinked folder (``~/scratch -> /lustre/...``), since the
    ``..`` of the result is resolved from the real folder."""
    return Path(os.path.relpath(os.path.realpath(path), os.path.realpath(start))).as_posix()


def _one_channel(src: Path | bytes) -> bool:
    """Whether an image (a file, or encoded bytes) is single-channel, from its header only."""
    return image_channels(src) == 1


def _check_references(out: ExportDir, refs: list[str], what: str) -> None:
    """Every file the model names opens, from the export folder, as a regular file (a staged
    one under its temporary name): otherwise the export fails and DEST stays as it was."""
    bad: list[str] = []
    for rel in refs:
        path = out.root / rel
        path = out.staged_name(path) or path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            bad.append(f"{rel}: {exc.strerror}")
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                bad.append(f"{rel}: not a regular file")
        finally:
            os.close(fd)
    if bad:
        raise Renderme360Error(
            f"{len(bad)} of {len(refs)} files {what} names do not open from {out.root} "
            f"(first: {bad[0]}); nothing was written"
        )


def _stamp(path: Path) -> str:
    st = os.stat(path)
    return f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"


def _ext(data: bytes, mask: bool) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    raise Renderme360Error("stored image is neither JPEG nor PNG")


# ---------------------------------------------------------------------------- bookkeeping
@contextmanager
def _staged(dest: Path, wait: bool = False) -> Iterator[tuple[ExportDir, dict[str, Any]]]:
    """The export folder, locked, and its previous record; on any failure what this run wrote
    (staged files, new folders) is removed, so the folder is as before the run or complete.

    Another export into the same folder holds its lock: exit 4 naming the folder (or, with
    ``wait``, wait for it). Leftovers of an interrupted run are removed only under the lock, so
    a running export's staged files are never taken for leftovers."""
    out = ExportDir(dest)

    def busy(holder: str) -> str:
        return (
            f"{out.root}: another renderme360 process (pid {holder}) is writing into this "
            "folder; wait for it or use --wait"
        )

    ok = False
    try:
        with FolderLock(out.root / LOCK, busy, wait) as lock:
            try:
                previous = _open_dest(out)
                yield out, previous
                ok = True
            finally:
                if not ok:
                    out.abort()
                lock.remove()  # held until now: nothing of this run stays behind
    finally:
        if not ok:
            out.abort()  # the folders this run made, now that the lock file is gone


def _open_dest(out: ExportDir) -> dict[str, Any]:
    """Remove leftovers of an interrupted run (under the lock) and read the previous record."""
    out.remove_leftovers()
    previous: dict[str, Any] = {}
    rec = out.root / RECORD
    if rec.is_file() and not rec.is_symlink():
        try:
            doc = json.loads(read_regular_text(rec))
            previous = doc.get("files", {}) if isinstance(doc, dict) else {}
        except (OSError, ValueError, NotRegularFileError):
            previous = {}
    return previous if isinstance(previous, dict) else {}


def _finish(
    out: ExportDir,
    previous: dict[str, Any],
    files: dict[str, Any],
    summary: ExportSummary,
    readme: str,
    t0: float,
    refs: tuple[str, list[str]],
) -> ExportSummary:
    """Check every referenced file, write README.txt, rename everything into place, remove
    what the previous run wrote and this one did not, write the record last."""
    _check_references(out, refs[1], refs[0])
    out.write_bytes("README.txt", readme.encode())
    files["README.txt"] = {}
    out.commit()  # everything is written: into place, then stale files go, the record last
    for rel in sorted(set(previous) - set(files)):
        if out.remove(rel):
            summary.removed_stale += 1
    summary.seconds = round(time.perf_counter() - t0, 3)
    doc = {
        "tool": f"renderme360 {__version__}",
        "format": summary.format,
        "summary": {k: v for k, v in summary.to_dict().items() if k != "seconds"},
        "files": files,
    }
    files[RECORD] = {}
    out.write_bytes(RECORD, json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    out.commit()
    return summary


def _readme(summary: ExportSummary, body: str) -> str:
    head = (
        f"renderme360 {summary.format} export of {summary.actor}_{summary.performance}\n"
        f"source: {summary.source}\n"
        f"cameras: {', '.join(summary.cameras)}\n"
        f"frames: {_frames_text(summary.frames)}\n"
        f"downscale: {summary.downscale}\n\n"
    )
    return head + body + "\n" + CONVENTIONS_TEXT


def _frames_text(frames: list[int]) -> str:
    if len(frames) <= 10:
        return ", ".join(map(str, frames))
    return f"{frames[0]}..{frames[-1]} ({len(frames)} frames)"


# ---------------------------------------------------------------------------- nerfstudio
def export_nerfstudio(
    perf: Any,
    dest: str | os.PathLike[str] | None = None,
    frames: str | None = None,
    cameras: str | None = None,
    downscale: int = 1,
    masks: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    wait: bool = False,
    soft_masks: bool = False,
) -> ExportSummary:
    """Write ``transforms.json`` (nerfstudio / instant-ngp) for the chosen cameras and frames.

    At downscale 1 ``file_path`` points at the extracted images where they lie (relative to
    the export); from SMC files, and at downscale k, images are written under ``images[_k]/``.
    """
    t0 = time.perf_counter()
    _check_downscale(downscale)
    progress = progress or Progress()
    rng = parse_frames(frames)
    cams, note = select_cameras(perf, cameras)
    _check_poses(perf, cams)
    notes = [note] if note != "all cameras" else []
    chosen, pairs, missing = _frame_pairs(perf, cams, rng, masks, notes)
    if len(chosen) > 1:
        notes.append(
            f"{len(chosen)} frames in one transforms.json: ns-train nerfacto/splatfacto ignore "
            "time and fit them as one static scene; export one frame (--frames N) for them, or "
            "train a dynamic-scene method (README.txt)"
        )
    token = frames_token(rng, chosen) + cameras_token(cameras, cams)
    dest_path = _dest(dest) or default_dest(perf, "nerfstudio", token, downscale)
    with _staged(dest_path, wait) as (out, previous):
        summary = ExportSummary(
            "nerfstudio", str(out.root), str(perf.source), perf.actor, perf.performance, cams,
            chosen, downscale, missing=missing, notes=notes,
        )  # fmt: skip
        placer = _Placer(perf, out, downscale, previous, summary, soft_masks=soft_masks)
        summary.notes.extend(pose_notes(perf, cams, chosen))
        suffix = f"_{downscale}" if downscale > 1 else ""
        times = frame_times(chosen)
        fields = {c: camera_fields(_intrinsics(perf.cameras[c], downscale), perf.cameras[c].c2w)
                  for c in cams}  # fmt: skip
        entries = []
        several = len(chosen) > 1
        for f, c in pairs:
            stem = f"cam_{c}/frame_{f:06d}"
            img = placer.place("color", c, f, f"images{suffix}/{stem}", colmap=False)
            msk = (
                placer.place("mask", c, f, f"masks{suffix}/{stem}", colmap=False) if masks else None
            )
            entries.append(
                frame_entry(
                    img,
                    fields[c],
                    mask_path=msk,
                    camera_id=int(c) if several else None,
                    frame_index=f if several else None,
                    time=times[f] if several else None,
                )
            )
        summary.images = len(pairs)
        summary.masks = len(pairs) if masks else 0
        placer.run(progress, workers)
        meta = {
            "actor": perf.actor,
            "performance": perf.performance,
            "downscale": downscale,
            "principal_point": "image corner origin: cx = cx_opencv + 0.5",
            "units": "metres",
        }
        doc = transforms(entries, {"renderme360": meta})
        out.write_bytes("transforms.json", dumps(doc).encode())
        placer.record["transforms.json"] = {}
        body = _nerfstudio_readme(several, downscale, _is_folder(perf), masks, soft_masks)
        refs = ("transforms.json", placer.refs)
        return _finish(out, previous, placer.record, summary, _readme(summary, body), t0, refs)


def _frame_pairs(
    perf: Any, cams: list[str], rng: FrameRange | None, masks: bool, notes: list[str]
) -> tuple[list[int], list[tuple[int, str]], list[str]]:
    """Chosen frames, the (frame, camera) pairs with an image, and the pairs without one; a
    range naming more frames than the take holds adds a note.

    No frame with an image in the range, or (with ``masks``) an image without its mask, is an
    error naming what is there: nerfstudio needs ``mask_path`` on every frame or on none."""
    per_cam = {c: set(perf.image_frame_ids(c)) for c in cams}
    every = sorted(set().union(*per_cam.values()))
    chosen = rng.filter(every) if rng else every
    if not chosen:
        raise EmptySelectionError(
            f"{_name(perf)}: no images in frames {rng} for cameras {_ids(cams)} "
            f"(frames with images: {_frames_text(every) or 'none'})"
        )
    nominal = rng.nominal() if rng else None
    if nominal is not None and len(chosen) < nominal:
        notes.append(
            f"frames {rng} select {len(chosen)} of the {nominal} frames named "
            f"({_frames_text(chosen)}): {_name(perf)} has images in frames {_frames_text(every)}"
        )
    pairs = [(f, c) for f in chosen for c in cams if f in per_cam[c]]
    missing = [f"camera {c} frame {f}" for f in chosen for c in cams if f not in per_cam[c]]
    if masks:
        mask_frames = {c: set(perf.mask_frame_ids(c)) for c in cams}
        lacking = [(f, c) for f, c in pairs if f not in mask_frames[c]]
        if lacking:
            f, c = lacking[0]
            raise InvalidIdError(
                f"{_name(perf)}: --masks: {len(lacking)} of {len(pairs)} images have no mask "
                f"(first: camera {c} frame {f}); choose cameras/frames with masks"
            )
    return chosen, pairs, missing


def _nerfstudio_readme(
    several: bool, downscale: int, folder: bool, masks: bool, soft: bool = False
) -> str:
    """What README.txt says about a nerfstudio export (before the shared conventions)."""
    suffix = f"_{downscale}" if downscale > 1 else ""
    lines = [
        "transforms.json: nerfstudio / instant-ngp format, camera_model OPENCV; per frame",
        "fl_x fl_y cx cy w h k1 k2 p1 p2 k3 and transform_matrix (camera-to-world, OpenGL axes).",
    ]
    if several:
        lines.append("Several frames: each entry has time (0..1 by frame index), camera_id and")
        lines.append("frame_index, as dynamic-scene codebases read them.")
    if downscale == 1 and folder:
        lines.append("file_path: the extracted images where they lie (relative to this folder).")
    elif downscale == 1:
        lines.append("images/: the images as stored in the SMC files (byte-identical).")
    else:
        lines.append(f"images{suffix}/: the images reduced {downscale}x; intrinsics match them.")
    if masks:
        lines.append(f"mask_path: masks{suffix}/ (or the extracted masks), 0 = background.")
        lines += _mask_lines(downscale, soft)
    if several:
        lines += [
            "Time: nerfstudio's nerfstudio-data reads no time, so ns-train nerfacto (or",
            "splatfacto) fits all these frames as ONE static scene: whatever moves blurs. For a",
            "static method export one frame per folder (--frames N) and train that; for the time",
            "series use a dynamic-scene method that reads each frame's time (D-NeRF-style",
            "loaders, e.g. 4DGaussians or K-Planes).",
        ]
    else:
        lines.append(
            "Train: ns-train nerfacto --data THIS_FOLDER nerfstudio-data --downscale-factor 1"
        )
    return "\n".join(lines) + "\n"


def _mask_lines(downscale: int, soft: bool) -> list[str]:
    """README.txt on what the exported masks hold."""
    if downscale == 1:
        return [
            "Masks are single-channel (nerfstudio reads no other): a mask stored with more",
            "channels is written as a 1-channel PNG copy (max over its colour channels).",
        ]
    if soft:
        return [
            f"Reduced masks are soft (--soft-masks): the area average (0..255) of each {downscale}x"
            f"{downscale} block; nerfstudio takes every non-zero pixel for foreground.",
        ]
    return [
        f"Reduced masks are binary: 255 where at least half of a {downscale}x{downscale} block",
        "is foreground (area average >= 128), else 0; --soft-masks keeps the average.",
    ]


def _check_poses(perf: Any, cams: list[str]) -> None:
    """Every chosen camera's pose is a rigid 4x4 matrix; the error names the camera."""
    for c in cams:
        try:
            rigid_c2w(perf.cameras[c].c2w)
        except Renderme360Error as exc:
            raise Renderme360Error(f"{_name(perf)}: camera {c}: {exc}") from None


def _intrinsics(cam: Any, k: int) -> Any:
    try:
        return intrinsics(cam.K, cam.D, cam.width, cam.height, k)
    except Renderme360Error as exc:
        raise Renderme360Error(f"camera {cam.id}: {exc}") from None


# ---------------------------------------------------------------------------- COLMAP
def export_colmap(
    perf: Any,
    frame: int,
    dest: str | os.PathLike[str] | None = None,
    cameras: str | None = None,
    downscale: int = 1,
    masks: bool = False,
    text: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    wait: bool = False,
    soft_masks: bool = False,
) -> ExportSummary:
    """Write a COLMAP sparse model of one frame: ``sparse/0/{cameras,images,points3D}.bin``,
    ``images/cam_XX.jpg`` (hard links, copies or reduced copies), ``masks/`` with ``masks``.

    ``points3D`` holds the frame's 3D keypoints; their observations are the 2D keypoints of the
    cameras that have them (2D index ``33 + i`` is 3D index ``i``), at dataset pixel + 0.5.
    """
    t0 = time.perf_counter()
    _check_downscale(downscale)
    progress = progress or Progress()
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
        raise UsageError(f"--frame must be a frame index >= 0, got {frame!r}")
    frame = int(frame)
    cams, note = select_cameras(perf, cameras, f"colmap --frame {frame}")
    _check_poses(perf, cams)
    explicit = cameras is not None and parse_cameras(cameras) is not None
    with_frame = [c for c in cams if frame in set(perf.image_frame_ids(c))]
    if explicit and len(with_frame) < len(cams):
        lacking = [c for c in cams if c not in with_frame]
        raise EmptySelectionError(
            f"{_name(perf)}: no image for camera {', '.join(lacking)} frame {frame} "
            f"(cameras with an image in frame {frame}: {_ids(with_frame) or 'none'})"
        )
    if not with_frame:
        every = sorted(set().union(*(set(perf.image_frame_ids(c)) for c in cams)))
        raise EmptySelectionError(
            f"{_name(perf)}: no image for frame {frame} (frames with images: "
            f"{_frames_text(every) or 'none'})"
        )
    missing = [f"camera {c} frame {frame}" for c in cams if c not in with_frame]
    cams = with_frame
    if masks:
        lacking = [c for c in cams if frame not in set(perf.mask_frame_ids(c))]
        if lacking:
            raise InvalidIdError(
                f"{_name(perf)}: --masks: no mask for camera {', '.join(lacking)} frame {frame}"
            )
    token = f"{frame:06d}" + cameras_token(cameras, cams)
    dest_path = _dest(dest) or default_dest(perf, "colmap", token, downscale)
    with _staged(dest_path, wait) as (out, previous):
        summary = ExportSummary(
            "colmap", str(out.root), str(perf.source), perf.actor, perf.performance, cams, [frame],
            downscale, missing=missing, notes=[note] if note != "all cameras" else [],
        )  # fmt: skip
        placer = _Placer(perf, out, downscale, previous, summary, soft_masks=soft_masks)
        summary.notes.extend(pose_notes(perf, cams, [frame]))
        cameras_out, images_out = [], []
        names: dict[str, str] = {}
        for i, c in enumerate(cams, start=1):
            cam = perf.cameras[c]
            intr = _intrinsics(cam, downscale)
            cameras_out.append(cm.camera_from_intrinsics(i, intr))
            rel = placer.place("color", c, frame, f"images/cam_{c}", colmap=True)
            names[c] = rel.split("/", 1)[1]
            if masks:  # COLMAP's mask convention: masks/{image name}.png
                placer.place("mask", c, frame, f"masks/{names[c]}", colmap=True)
            w2c = w2c_from_c2w(cam.c2w)
            images_out.append(cm.Image(i, rotmat_to_quat(w2c[:3, :3]), w2c[:3, 3], i, names[c]))
        summary.images = len(cams)
        summary.masks = len(cams) if masks else 0
        points = _keypoint_points(perf, frame, cams, images_out, downscale, summary)
        placer.run(progress, workers)
        for name, data in cm.model_files(cameras_out, images_out, points, text).items():
            out.write_bytes(f"sparse/0/{name}", data)
            placer.record[f"sparse/0/{name}"] = {}
        body = _colmap_readme(text, masks, downscale, soft_masks)
        refs = ("the model", placer.refs)
        return _finish(out, previous, placer.record, summary, _readme(summary, body), t0, refs)


def _colmap_readme(text: bool, masks: bool, downscale: int = 1, soft: bool = False) -> str:
    """What README.txt says about a COLMAP export (before the shared conventions)."""
    return (
        "sparse/0/: COLMAP model (cameras, images, points3D .bin" + (" and .txt" if text else "")
        + "), one camera and one image per rig camera;\n"
        "image names are images/cam_XX.*, XX the dataset camera id"
        + ("; masks/cam_XX.*.png (COLMAP's mask naming)" if masks else "") + ".\n"
        + ("".join(f"{line}\n" for line in _mask_lines(downscale, soft)) if masks else "")
        + "points3D: the frame's 3D facial keypoints, observed at the 2D keypoints (+0.5 px).\n"
        "3D Gaussian Splatting: python train.py -s THIS_FOLDER (its loader needs PINHOLE cameras:\n"
        "with distortion, undistort first: colmap image_undistorter --image_path images\n"
        "--input_path sparse/0 --output_path undistorted, then train on undistorted/).\n"
    )  # fmt: skip


def pose_notes(perf: Any, cams: list[str], frames: list[int]) -> list[str]:
    """A note per camera whose pose looks inverted: most 3D keypoints of the first exported
    frame that has them lie behind it (z <= 0). Nothing without 3D keypoints."""
    try:
        f3, k3 = perf.keypoints3d()
    except Renderme360Error:
        return []
    rows = {int(f): i for i, f in enumerate(np.asarray(f3))}
    frame = next((f for f in frames if f in rows), None)
    if frame is None:
        return []
    pts = np.asarray(k3[rows[frame]], dtype=np.float64).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    notes = []
    for c in cams:
        w2c = w2c_from_c2w(perf.cameras[c].c2w)
        behind = int(((pts @ w2c[:3, :3].T + w2c[:3, 3])[:, 2] <= 0).sum())
        if len(pts) and behind > len(pts) // 2:
            notes.append(
                f"camera {c}: {behind} of {len(pts)} 3D keypoints of frame {frame} lie behind "
                "it; its pose looks inverted (exported as stored; see renderme360 check)"
            )
    return notes


def _keypoint_points(
    perf: Any,
    frame: int,
    cams: list[str],
    images: list[cm.Image],
    k: int,
    summary: ExportSummary,
) -> list[cm.Point3D]:
    """3D keypoints of ``frame`` with tracks in the images whose cameras have 2D keypoints."""
    try:
        f3, k3 = perf.keypoints3d()
    except Renderme360Error:
        summary.notes.append("no 3D keypoints: points3D is empty")
        return []
    hit = np.flatnonzero(np.asarray(f3) == frame)
    if not hit.size:
        summary.notes.append(f"no 3D keypoints for frame {frame}: points3D is empty")
        return []
    pts3 = np.asarray(k3[hit[0]], dtype=np.float64)
    tracks: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(pts3))}
    errors: dict[int, list[float]] = {i: [] for i in range(len(pts3))}
    have2d = set(perf.keypoints2d_camera_ids)
    colours: dict[int, list[np.ndarray]] = {i: [] for i in range(len(pts3))}
    for im, c in zip(images, cams, strict=True):
        if c not in have2d:
            continue
        f2, k2 = perf.keypoints2d(c)
        hit2 = np.flatnonzero(np.asarray(f2) == frame)
        if not hit2.size:
            continue
        kp = np.asarray(k2[hit2[0]], dtype=np.float64)
        offset = _keypoint_offset(len(kp), len(pts3))
        if offset is None:
            summary.notes.append(
                f"camera {c}: {len(kp)} 2D keypoints do not match {len(pts3)} 3D ones; no track"
            )
            continue
        ok = np.all(np.isfinite(kp), axis=1)
        xys = (kp[ok] + PIXEL_CENTER) / k
        index = np.cumsum(ok) - 1  # 2D keypoint -> position among the written ones
        ids = [cm.INVALID_POINT3D] * len(xys)
        cam = perf.cameras[c]
        intr = intrinsics(cam.K, cam.D, cam.width, cam.height, k)
        w2c = w2c_from_c2w(cam.c2w)
        proj = project_opencv(pts3, w2c, intr.opencv_K(), intr.dist) + PIXEL_CENTER
        for i in range(len(pts3)):
            j = offset + i
            if j >= len(kp) or not ok[j] or not np.all(np.isfinite(pts3[i])):
                continue
            pos = int(index[j])
            ids[pos] = i + 1
            tracks[i].append((im.image_id, pos))
            errors[i].append(float(np.linalg.norm(proj[i] - xys[pos])))
        im.xys, im.point3d_ids = xys, ids
        _sample_colours(perf, c, frame, kp, offset, len(pts3), colours)
    points = []
    for i, xyz in enumerate(pts3):
        if not np.all(np.isfinite(xyz)):
            continue
        err = float(np.mean(errors[i])) if errors[i] else -1.0
        rgb = tuple(int(v) for v in np.median(colours[i], axis=0)) if colours[i] else (128,) * 3
        points.append(cm.Point3D(i + 1, xyz, rgb, err, tracks[i]))  # type: ignore[arg-type]
    summary.points3d = len(points)
    summary.observations = sum(len(p.track) for p in points)
    if points and not summary.observations:
        summary.notes.append("no camera has 2D keypoints for this frame: points have no track")
    return points


def _keypoint_offset(n2d: int, n3d: int) -> int | None:
    """Row of the 2D keypoints that 3D keypoint 0 corresponds to: the dataset's 73 3D points are
    its 106 2D points minus the 33 face-contour points (2D ``33 + i`` = 3D ``i``); equal counts
    map one to one."""
    if (n2d, n3d) == (106, 73):
        return 33
    if n2d == n3d:
        return 0
    return None


def _sample_colours(
    perf: Any,
    cam: str,
    frame: int,
    kp: np.ndarray,
    offset: int,
    n3d: int,
    colours: dict[int, list[np.ndarray]],
) -> None:
    """Colour of each observed point in this camera, from a 1/8-size DCT-domain decode (a few
    milliseconds per image): the initial colour splatting codebases give each point."""
    try:
        data = perf.image_bytes(cam, frame)
        c = perf.cameras[cam]
        img, done = decode(data, scale=8, max_pixels=pixel_budget(c.width, c.height))
    except Renderme360Error:
        return
    img = area_reduce(img, 8 // done, exact=False)  # a PNG is decoded whole
    h, w = img.shape[:2]
    for i in range(n3d):
        j = offset + i
        if j >= len(kp) or not np.all(np.isfinite(kp[j])):
            continue
        x, y = ((kp[j] + PIXEL_CENTER) / 8).astype(int)
        if 0 <= x < w and 0 <= y < h:
            colours[i].append(img[y, x, ::-1].astype(np.float64))  # BGR -> RGB

"""From inventories and a selection to the list of files to write, with their sizes: the
per-modality planners and :class:`Plan` (scopes in :mod:`.scope`, selection checks in
:mod:`.checks`, lazy blob tasks and unit packing in :mod:`.blobtasks`).

The plan is the single authority on what gets written: dry-run, storage estimates, the free-space
check, resume and parallel execution all read it. Tasks carry everything a worker needs (source
file identity, blob offsets), so executing them needs no further planning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import UsageError
from ..formats.audio import mp3_problem, mp3_size_estimate
from ..modalities import MODALITIES, spec
from ..output.layout import (
    FIXED_PATHS,
    PREFERRED_SOURCE,
    blob_path,
    calibration_camera_path,
    keypoints2d_path,
    parent_folder,
    performance_dir,
    source_prefix,
)
from ..selection import Selection
from ..tasks import Options, SourceId, Task, Unit
from ..textsafe import encode_text, finite_json
from .blobtasks import BlobTasks, blob_ext, blob_units, task_units
from .checks import check_selection_matches, resolve_selection_cameras
from .discover import Performance
from .inventory import FileInventory, info_json, info_text
from .scope import Scope, describe_union, scope_of, union_scopes

#: Writers whose output depends on the selection (which cameras or frames go into one file). Their
#: records carry a digest of that content, so a wider selection rewrites them.
SELECTION_DEPENDENT_WRITERS = frozenset(
    {"text", "calibration_all", "calibration_json", "keypoints2d", "keypoints3d", "flame"}
)


def content_tag(task: Task) -> str:
    """Short digest of what a selection-dependent file holds (its cameras, frames or text)."""
    what: tuple[Any, ...] = (task.camera, task.cameras, task.frames, task.text)
    if task.fields is not None:  # FLAME: which fields every selected frame holds
        what += (task.fields,)
    return hashlib.sha256(repr(what).encode()).hexdigest()[:16]


@dataclass
class Plan:
    """Everything one performance's extraction will write."""

    actor: str
    performance: str
    out_dir: Path
    layout: str
    selection: Selection
    options: Options
    sources: dict[str, SourceId]
    units: list[Unit]
    inventories: dict[str, FileInventory]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cameras: list[str] | None = None
    scopes: list[Scope] = field(default_factory=list)  # what the folder holds once done

    @property
    def tasks(self) -> list[Task]:
        """Every task as a list (small plans and tests; large plans use :meth:`iter_tasks`)."""
        return list(self.iter_tasks())

    def iter_tasks(self) -> Iterator[Task]:
        """Every task, built one unit at a time."""
        for u in self.units:
            yield from u.tasks

    @property
    def total_bytes(self) -> int:
        return sum(u.nbytes for u in self.units)

    @property
    def total_files(self) -> int:
        return sum(u.count for u in self.units)

    def bytes_by(self, what: str) -> dict[str, int]:
        """Planned bytes per ``modality`` or per ``role`` (blob streams counted whole)."""
        out: dict[str, int] = {}
        for u in self.units:
            if isinstance(u.tasks, BlobTasks):
                k = getattr(u.tasks, what)
                out[k] = out.get(k, 0) + u.tasks.nbytes
                continue
            for t in u.tasks:
                k = getattr(t, what)
                out[k] = out.get(k, 0) + t.nbytes
        return out

    def files_by_modality(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for u in self.units:
            if isinstance(u.tasks, BlobTasks):
                out[u.tasks.modality] = out.get(u.tasks.modality, 0) + len(u.tasks)
                continue
            for t in u.tasks:
                out[t.modality] = out.get(t.modality, 0) + 1
        return out

    def folders(self) -> list[str]:
        """Folders the plan writes into, sorted (one path per blob stream is looked at)."""
        out: set[str] = set()
        for u in self.units:
            first = [next(iter(u.tasks))] if isinstance(u.tasks, BlobTasks) else u.tasks
            out.update(parent_folder(t.key) for t in first)
        return sorted(out)

    def variants(self) -> dict[tuple[str, str], str]:
        """(role, key) -> variant of the tasks that are not blob streams (a few hundred):
        their variant may carry a digest of the selection; a blob's is its modality's."""
        return {
            (t.role, t.key): t.variant
            for u in self.units
            if isinstance(u.tasks, list)
            for t in u.tasks
        }

    @property
    def fingerprint(self) -> str:
        """Identity of what this plan asks for; equal fingerprints mean the same output."""
        return request_fingerprint(self.selection, self.layout, self.options, self.sources)


def request_fingerprint(
    selection: Selection, layout: str, options: Options, sources: Mapping[str, SourceId]
) -> str:
    """Hash of everything that decides the output; computable without planning."""
    doc = {
        "version": __version__,
        "selection": selection.describe(),
        "layout": layout,
        "options": [options.image_mode, options.jpeg_quality, options.checksum],
        "sources": {
            r: [s.path, s.size, s.mtime_ns, *([s.etag] if s.etag else [])]
            for r, s in sorted(sources.items())
        },
    }
    text = json.dumps(doc, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plan_performance(
    perf: Performance,
    inventories: Mapping[str, FileInventory],
    out_root: str | Path,
    selection: Selection | None = None,
    layout: str = "separate",
    options: Options | None = None,
    previous: Sequence[Scope] = (),
    scopes: Sequence[Scope] | None = None,
) -> Plan:
    """Build the write plan of one performance from the inventories of its files.

    ``previous`` are the scopes already extracted into the folder: the plan covers their union
    with ``selection`` (widening adds files and rewrites aggregates; narrowing changes nothing).
    ``scopes`` replaces both: the plan of exactly what a folder records (used by verify).

    Raises
    ------
    UsageError
        ``layout`` is unknown, or a camera rule cannot be resolved.
    EmptySelectionError
        The selection's frames or cameras match nothing this performance holds.
    """
    selection = selection or Selection()
    options = options or Options()
    if layout not in ("separate", "combined"):
        raise UsageError(f"unknown layout {layout!r}: use separate or combined")
    readable = {r: inv for r, inv in inventories.items() if inv.ok}
    plan = Plan(
        actor=perf.actor,
        performance=perf.performance,
        out_dir=Path(out_root) / performance_dir(perf.actor, perf.performance),
        layout=layout,
        selection=selection,
        options=options,
        sources={r: inv.source for r, inv in inventories.items()},
        units=[],
        inventories=dict(inventories),
    )
    for role, inv in inventories.items():
        if not inv.ok:
            plan.warnings.append(f"{role} file unreadable: {inv.error}")
        elif (inv.actor_id, inv.performance) != (perf.actor, perf.performance):
            plan.warnings.append(
                f"{inv.source.path}: attributes say {inv.actor_id}_{inv.performance}, "
                f"the file name says {perf.key}"
            )
    cameras, note = resolve_selection_cameras(selection, readable)
    plan.cameras = cameras
    plan.notes.append(note)
    if scopes is not None:
        plan.scopes = list(scopes)
    else:
        plan.notes.extend(check_selection_matches(perf.key, selection, cameras, readable.values()))
        plan.scopes = union_scopes(previous, scope_of(selection, cameras))
    wanted = [m for m in MODALITIES if any(m in s.modalities for s in plan.scopes)]
    owners = _modality_owners(readable, wanted, layout, plan.warnings)
    for role, inv in readable.items():
        mods = [m for m in wanted if role in owners.get(m, ())]
        _plan_file(plan, role, inv, mods)
    return plan


def _modality_owners(
    inventories: Mapping[str, FileInventory],
    modalities: Sequence[str],
    layout: str,
    warnings: list[str],
) -> dict[str, tuple[str, ...]]:
    """Which files' copies of each modality are extracted (all of them unless combined)."""
    owners: dict[str, tuple[str, ...]] = {}
    for m in modalities:
        holders = [r for r, inv in inventories.items() if m in inv.modalities()]
        if layout == "combined" and len(holders) > 1:
            preferred = PREFERRED_SOURCE[m]
            winner = preferred if preferred in holders else holders[0]
            _compare_copies(m, inventories, holders, winner, warnings)
            holders = [winner]
        owners[m] = tuple(holders)
    return owners


def _compare_copies(
    modality: str,
    inventories: Mapping[str, FileInventory],
    holders: Sequence[str],
    winner: str,
    warnings: list[str],
) -> None:
    """Warn when two files hold different copies of a modality (compared by inventory)."""

    def signature(inv: FileInventory) -> Any:
        if modality == "metadata":
            return (inv.actor_id, inv.performance, inv.capture_date, inv.actor_info)
        kind = spec(modality).blob_kind
        if kind:
            return inv.blobs.signature(kind)
        summary = finite_json(inv.summary().get(modality))
        return json.dumps(summary, sort_keys=True, default=str, allow_nan=False)

    ref = signature(inventories[winner])
    for role in holders:
        if role != winner and signature(inventories[role]) != ref:
            warnings.append(
                f"{modality}: the {role} and {winner} files hold different copies; "
                f"the {winner} copy was extracted"
            )


@dataclass
class _FilePlan:
    """Planning state of one source file: its inventory, prefix, and the union of the plan's
    scopes as camera/frame filters for the modality being planned."""

    plan: Plan
    role: str
    inv: FileInventory
    prefix: str
    modality: str = ""  # the modality being planned
    single: list[Task] = field(default_factory=list)  # one unit each, after the streams

    def cams(self, items: Sequence[str]) -> list[str]:
        """The cameras of ``items`` that some scope selects for this modality."""
        m = self.modality
        return [c for c in items if any(s.includes(m, cam=c) for s in self.plan.scopes)]

    def pick(self, items: Sequence[int], cam: str | None = None) -> list[int]:
        """The frames of ``items`` (of camera ``cam``) that some scope selects."""
        m = self.modality
        return [f for f in items if any(s.includes(m, cam, f) for s in self.plan.scopes)]

    def add(
        self, key: str, modality: str, writer: str, nbytes: int, exact: bool, **fields: Any
    ) -> None:
        """Plan one file written by ``writer`` (its own unit); a file whose content depends on
        the selection carries a digest of it in its variant (see SELECTION_DEPENDENT_WRITERS)."""
        variant = self.plan.options.variant(modality)
        task = Task(
            self.prefix + key, modality, writer, self.role, nbytes, exact, variant, **fields
        )
        if writer in SELECTION_DEPENDENT_WRITERS:
            task = dataclasses.replace(task, variant=f"{variant}:{content_tag(task)}")
        self.single.append(task)

    def stream(self, tasks: list[Task]) -> None:
        """Plan a stream of blobs (chunked into units that share one open source file)."""
        self.plan.units.extend(task_units(self.role, self.inv.source, tasks))

    def blob(self, key: str, modality: str, kind: str, cam: str | None, frame: int | None) -> Task:
        loc = self.inv.blobs[(kind, cam or "", -1 if frame is None else frame)]
        opts = self.plan.options
        return Task(
            self.prefix + key,
            modality,
            "blob",
            self.role,
            loc.nbytes,
            opts.image_mode == "copy",
            opts.variant(modality),
            camera=cam,
            frame=frame,
            blob_kind=kind,
            offset=loc.offset,
        )


def _plan_file(plan: Plan, role: str, inv: FileInventory, modalities: Sequence[str]) -> None:
    """Plan one source file's tasks for the union of ``plan.scopes``."""
    f = _FilePlan(plan, role, inv, source_prefix(role, plan.layout))
    for m in modalities:
        f.modality = m
        PLANNERS[m](f)
    for t in f.single:
        plan.units.append(Unit(role, inv.source, [t]))


def _plan_metadata(f: _FilePlan) -> None:
    for writer_key, text in (
        ("metadata_json", info_json(f.inv, describe_union(f.plan.scopes))),
        ("metadata_txt", info_text(f.inv)),
    ):
        f.add(FIXED_PATHS[writer_key], "metadata", "text", len(encode_text(text)), True, text=text)


def _plan_calibration(f: _FilePlan) -> None:
    chosen = tuple(f.cams(f.inv.calibration))
    if not chosen:
        return
    m = "calibration"
    n = len(chosen)
    f.add(
        FIXED_PATHS["calibration_all"], m, "calibration_all", 600 + 250 * n, False, cameras=chosen
    )
    f.add(
        FIXED_PATHS["calibration_json"], m, "calibration_json", 150 + 900 * n, False, cameras=chosen
    )
    for c in chosen:
        f.add(calibration_camera_path(c), m, "calibration_cam", 800, False, camera=c)


def _plan_blobs(f: _FilePlan) -> None:
    """Any blob modality: its inventory field (named after it) lists cameras (``{camera:
    frames}`` or ``[camera]``) or frames; frames run as lazy streams, one file per camera alone."""
    m = f.modality
    s = spec(m)
    kind = s.blob_kind
    assert kind is not None
    if not s.per_camera:
        _add_blob_units(f, m, kind, None)
        return
    held = getattr(f.inv, m)
    if s.per_frame:
        for c in f.cams(sorted(held)):
            _add_blob_units(f, m, kind, c)
        return
    opts = f.plan.options
    tasks = []
    for c in f.cams(held):
        ext = blob_ext(f.inv, kind, c, opts, m)
        tasks.append(f.blob(blob_path(m, c, None, ext), m, kind, c, None))
    f.stream(tasks)


def _plan_audio(f: _FilePlan) -> None:
    audio = f.inv.audio
    if audio is None:
        return
    shape = audio["shape"]
    samples = shape[0] * (shape[1] if len(shape) > 1 else 1)
    width = max(int(np.dtype(audio["dtype"]).itemsize), 2)
    f.add(FIXED_PATHS["audio_wav"], "audio", "audio_wav", 80 + samples * width, False)
    problem = mp3_problem(shape, audio["sample_rate"])
    if problem:  # the WAV and npz still hold every sample
        f.plan.warnings.append(f"{f.inv.source.path}: audio.mp3 not written: {problem}")
    else:
        mp3_bytes = mp3_size_estimate(audio["seconds"], audio["sample_rate"])
        f.add(FIXED_PATHS["audio_mp3"], "audio", "audio_mp3", mp3_bytes, False)
    f.add(FIXED_PATHS["audio_npz"], "audio", "audio_npz", 400 + audio["nbytes"], False)


def _plan_keypoints2d(f: _FilePlan) -> None:
    for c in f.cams(sorted(f.inv.keypoints2d)):
        fr = tuple(f.pick(f.inv.keypoints2d[c], c))
        if fr:
            nbytes = 600 + len(fr) * (106 * 2 * 8 + 8)
            f.add(
                keypoints2d_path(c),
                "keypoints2d",
                "keypoints2d",
                nbytes,
                False,
                camera=c,
                frames=fr,
            )


def _plan_keypoints3d(f: _FilePlan) -> None:
    fr = tuple(f.pick(f.inv.keypoints3d))
    if fr:
        nbytes = 600 + len(fr) * (73 * 3 * 8 + 8)
        f.add(FIXED_PATHS["keypoints3d"], "keypoints3d", "keypoints3d", nbytes, False, frames=fr)


def _plan_flame(f: _FilePlan) -> None:
    fr = tuple(f.pick(f.inv.flame))
    if fr:
        names = _flame_names(f.inv, fr, f.plan.warnings)
        per_frame = sum(
            int(np.prod(shape)) * np.dtype(dtype).itemsize
            for name, (shape, dtype) in f.inv.flame_fields.items()
            if name in names
        )
        nbytes = 2000 + len(fr) * (per_frame + 8)
        f.add(FIXED_PATHS["flame"], "flame", "flame", nbytes, False, frames=fr, fields=names)


#: Member names flame/all_frames.npz uses itself; a FLAME field of that name is not written.
RESERVED_FLAME_NAMES = ("frame_ids",)


def _flame_names(inv: FileInventory, frames: Sequence[int], warnings: list[str]) -> tuple[str, ...]:
    """FLAME fields held by every selected frame; the others are named in a warning (a
    field some frames lack, a reserved name) instead of being silently dropped."""
    names = []
    chosen = set(frames)
    for name in sorted(inv.flame_fields):
        lacking = [f for f in inv.flame_missing.get(name, []) if f in chosen]
        if name in RESERVED_FLAME_NAMES:
            warnings.append(
                f"{inv.source.path}: FLAME field {name!r} not written: the name is reserved "
                "for the frame index of flame/all_frames.npz"
            )
        elif lacking:
            shown = ", ".join(map(str, lacking[:5])) + (", ..." if len(lacking) > 5 else "")
            warnings.append(
                f"{inv.source.path}: FLAME field {name!r} is missing from {len(lacking)} of "
                f"{len(frames)} frames ({shown}); not written to flame/all_frames.npz"
            )
        else:
            names.append(name)
    return tuple(names)


def _plan_scan(f: _FilePlan) -> None:
    s = f.inv.scan
    if s is not None:
        vbytes = np.dtype(s["vertex_dtype"]).itemsize * 3
        nbytes = 300 + s["vertices"] * vbytes + s["faces"] * 13
        f.add(FIXED_PATHS["scan"], "scan", "scan_ply", nbytes, True)


#: One planning function per modality, keyed by :data:`~renderme360.modalities.SPECS` name (a
#: blob modality needs only :func:`_plan_blobs`); tests/test_modalities.py checks it covers them.
PLANNERS: dict[str, Callable[[_FilePlan], None]] = {
    "metadata": _plan_metadata,
    "calibration": _plan_calibration,
    "images": _plan_blobs,
    "masks": _plan_blobs,
    "audio": _plan_audio,
    "keypoints2d": _plan_keypoints2d,
    "keypoints3d": _plan_keypoints3d,
    "flame": _plan_flame,
    "uv": _plan_blobs,
    "scan": _plan_scan,
    "scan_masks": _plan_blobs,
}


def _add_blob_units(f: _FilePlan, modality: str, kind: str, cam: str | None) -> None:
    """Units of one blob stream (the frames the scopes select), chunked by :func:`blob_units`,
    as :class:`BlobTasks` that build their tasks only when run."""
    stream = f.inv.blobs.stream(kind, cam or "")
    if stream is None or not len(stream):
        return
    opts = f.plan.options
    picked = f.pick(stream.frames, cam)
    n = len(stream)
    if len(picked) == n:
        positions: range | array[int] = range(n)
    else:
        positions = array("q", (i for i in map(stream.position, picked) if i is not None))
    ext = blob_ext(f.inv, kind, cam or "", opts, modality)
    whole = BlobTasks(
        modality,
        f.prefix,
        kind,
        cam,
        ext,
        f.role,
        opts.variant(modality),
        opts.image_mode == "copy",
        stream,
        positions,
    )
    f.plan.units.extend(blob_units(whole, f.inv.source))


__all__ = ["PLANNERS", "Plan", "plan_performance", "request_fingerprint"]

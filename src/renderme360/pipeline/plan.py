"""From inventories and a selection to the list of files to write, with their sizes.

The plan is the single authority on what gets written: dry-run, storage estimates, the free-space
check, resume and parallel execution all read it. Tasks carry everything a worker needs (source
file identity, blob offsets), so executing them needs no further planning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import SMCFormatError, UsageError
from ..formats.audio import mp3_problem
from ..output.layout import (
    FIXED_PATHS,
    PREFERRED_SOURCE,
    calibration_camera_path,
    image_path,
    keypoints2d_path,
    performance_dir,
    scan_mask_path,
    source_prefix,
    uv_path,
)
from ..selection import Selection, resolve_cameras
from ..tasks import Options, SourceId, Task, Unit
from .discover import Performance
from .inventory import FileInventory, info_json, info_text

UNIT_MAX_TASKS = 64
UNIT_MAX_BYTES = 96 << 20
BLOB_MODALITY = {"images": "color", "masks": "mask"}


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

    @property
    def tasks(self) -> list[Task]:
        return [t for u in self.units for t in u.tasks]

    @property
    def total_bytes(self) -> int:
        return sum(u.nbytes for u in self.units)

    @property
    def total_files(self) -> int:
        return sum(len(u.tasks) for u in self.units)

    def bytes_by(self, what: str) -> dict[str, int]:
        """Planned bytes per ``modality`` or per ``role``."""
        out: dict[str, int] = {}
        for t in self.tasks:
            k = getattr(t, what)
            out[k] = out.get(k, 0) + t.nbytes
        return out

    def files_by_modality(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.modality] = out.get(t.modality, 0) + 1
        return out

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
        "sources": {r: [s.path, s.size, s.mtime_ns] for r, s in sorted(sources.items())},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def plan_performance(
    perf: Performance,
    inventories: Mapping[str, FileInventory],
    out_root: str | Path,
    selection: Selection | None = None,
    layout: str = "separate",
    options: Options | None = None,
) -> Plan:
    """Build the write plan of one performance from the inventories of its files.

    Raises
    ------
    UsageError
        ``layout`` is unknown, or a camera rule cannot be resolved.
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
    cameras, note = _resolve_cameras(selection, readable)
    plan.cameras = cameras
    plan.notes.append(note)
    owners = _modality_owners(readable, selection.modalities, layout, plan.warnings)
    for role, inv in readable.items():
        mods = [m for m in selection.modalities if role in owners.get(m, ())]
        _plan_file(plan, role, inv, mods, cameras)
    return plan


def _resolve_cameras(
    selection: Selection, inventories: Mapping[str, FileInventory]
) -> tuple[list[str] | None, str]:
    spec = selection.cameras
    if spec is None or spec.ids is not None:
        return resolve_cameras(spec, [], None)
    available = sorted(
        {c for inv in inventories.values() for c in inv.images}
        or {c for inv in inventories.values() for c in inv.masks}
    )
    for inv in inventories.values():
        if inv.calibration:  # the first calibrated file decides, as the inventory recorded it
            if inv.calibration_error is not None:
                raise SMCFormatError(inv.calibration_error)
            return resolve_cameras(spec, available, inv.camera_rt)
    return resolve_cameras(spec, available, None)


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
        kind = BLOB_MODALITY.get(modality) or {"uv": "uv", "scan_masks": "scan_mask"}.get(modality)
        if kind:
            return sorted((k, v.nbytes) for k, v in inv.blobs.items() if k[0] == kind)
        return json.dumps(inv.summary().get(modality), sort_keys=True, default=str)

    ref = signature(inventories[winner])
    for role in holders:
        if role != winner and signature(inventories[role]) != ref:
            warnings.append(
                f"{modality}: the {role} and {winner} files hold different copies; "
                f"the {winner} copy was extracted"
            )


def _plan_file(
    plan: Plan,
    role: str,
    inv: FileInventory,
    modalities: Sequence[str],
    cameras: list[str] | None,
) -> None:
    prefix = source_prefix(role, plan.layout)
    frames = plan.selection.frames
    opts = plan.options

    def cams(items: Sequence[str]) -> list[str]:
        return [c for c in items if cameras is None or c in cameras]

    def pick(items: Sequence[int]) -> list[int]:
        return list(items) if frames is None else frames.filter(items)

    single: list[Task] = []

    def add(key: str, modality: str, writer: str, nbytes: int, exact: bool, *args: Any) -> None:
        single.append(
            Task(prefix + key, modality, writer, role, nbytes, exact, opts.variant(modality), args)
        )

    for m in modalities:
        if m == "metadata":
            for fmt, rel in (
                ("json", FIXED_PATHS["metadata_json"]),
                ("txt", FIXED_PATHS["metadata_txt"]),
            ):
                text = info_json(inv, plan.selection) if fmt == "json" else info_text(inv)
                data = text.encode("utf-8")
                add(rel, m, "text", len(data), True, text)
        elif m == "calibration":
            chosen = cams(inv.calibration)
            if not chosen:
                continue
            add(
                FIXED_PATHS["calibration_all"],
                m,
                "calibration_all",
                600 + 250 * len(chosen),
                False,
                tuple(chosen),
            )
            add(
                FIXED_PATHS["calibration_json"],
                m,
                "calibration_json",
                150 + 900 * len(chosen),
                False,
                tuple(chosen),
            )
            for c in chosen:
                add(calibration_camera_path(c), m, "calibration_cam", 800, False, c)
        elif m in ("images", "masks"):
            kind = BLOB_MODALITY[m]
            streams = inv.images if m == "images" else inv.masks
            for c in cams(sorted(streams)):
                ext = _ext(inv, kind, c, opts, m)
                tasks = [
                    _blob_task(plan, prefix + image_path(m, c, f, ext), m, role, inv, (kind, c, f))
                    for f in pick(streams[c])
                ]
                _add_units(plan, role, inv, tasks)
        elif m == "uv":
            ext = _ext(inv, "uv", "", opts, m)
            tasks = [
                _blob_task(plan, prefix + uv_path(f, ext), m, role, inv, ("uv", "", f))
                for f in pick(inv.uv)
            ]
            _add_units(plan, role, inv, tasks)
        elif m == "scan_masks":
            tasks = [
                _blob_task(
                    plan,
                    prefix + scan_mask_path(c, inv.extensions.get(("scan_mask", c), "bin")),
                    m,
                    role,
                    inv,
                    ("scan_mask", c, -1),
                )
                for c in cams(inv.scan_masks)
            ]
            _add_units(plan, role, inv, tasks)
        elif m == "audio" and inv.audio is not None:
            n = inv.audio["nbytes"]
            shape = inv.audio["shape"]
            samples = shape[0] * (shape[1] if len(shape) > 1 else 1)
            width = max(int(np.dtype(inv.audio["dtype"]).itemsize), 2)
            add(FIXED_PATHS["audio_wav"], m, "audio_wav", 80 + samples * width, False)
            problem = mp3_problem(shape, inv.audio["sample_rate"])
            if problem:  # the WAV and npz still hold every sample
                plan.warnings.append(f"{inv.source.path}: audio.mp3 not written: {problem}")
            else:
                add(
                    FIXED_PATHS["audio_mp3"],
                    m,
                    "audio_mp3",
                    2000 + int(inv.audio["seconds"] * 24_000),
                    False,
                )
            add(FIXED_PATHS["audio_npz"], m, "audio_npz", 400 + n, False)
        elif m == "keypoints2d":
            for c in cams(sorted(inv.keypoints2d)):
                fr = pick(inv.keypoints2d[c])
                if fr:
                    add(
                        keypoints2d_path(c),
                        m,
                        "keypoints2d",
                        600 + len(fr) * (106 * 2 * 8 + 8),
                        False,
                        c,
                        tuple(fr),
                    )
        elif m == "keypoints3d":
            fr = pick(inv.keypoints3d)
            if fr:
                add(
                    FIXED_PATHS["keypoints3d"],
                    m,
                    "keypoints3d",
                    600 + len(fr) * (73 * 3 * 8 + 8),
                    False,
                    tuple(fr),
                )
        elif m == "flame":
            fr = pick(inv.flame)
            if fr:
                per_frame = sum(
                    int(np.prod(shape)) * np.dtype(dtype).itemsize
                    for shape, dtype in inv.flame_fields.values()
                )
                add(
                    FIXED_PATHS["flame"],
                    m,
                    "flame",
                    2000 + len(fr) * (per_frame + 8),
                    False,
                    tuple(fr),
                )
        elif m == "scan" and inv.scan is not None:
            s = inv.scan
            vbytes = np.dtype(s["vertex_dtype"]).itemsize * 3
            add(
                FIXED_PATHS["scan"],
                m,
                "scan_ply",
                300 + s["vertices"] * vbytes + s["faces"] * 13,
                True,
            )
    for t in single:
        plan.units.append(Unit(role, inv.source, [t]))


def _ext(inv: FileInventory, kind: str, cam: str, opts: Options, modality: str) -> str:
    if opts.image_mode == "reencode" and modality in ("images", "uv"):
        return "jpg"
    if opts.image_mode == "reencode" and modality == "masks":
        return "png"
    return inv.extensions.get((kind, cam), "bin")


def _blob_task(
    plan: Plan, key: str, modality: str, role: str, inv: FileInventory, blob: tuple[str, str, int]
) -> Task:
    loc = inv.blobs[blob]
    exact = plan.options.image_mode == "copy"
    return Task(
        key,
        modality,
        "blob",
        role,
        loc.nbytes,
        exact,
        plan.options.variant(modality),
        (blob[0], blob[1], blob[2], loc.offset, loc.nbytes),
    )


def _add_units(plan: Plan, role: str, inv: FileInventory, tasks: list[Task]) -> None:
    """Chunk a stream's tasks into units of bounded count and bytes."""
    chunk: list[Task] = []
    size = 0
    for t in tasks:
        if chunk and (len(chunk) >= UNIT_MAX_TASKS or size + t.nbytes > UNIT_MAX_BYTES):
            plan.units.append(Unit(role, inv.source, chunk))
            chunk, size = [], 0
        chunk.append(t)
        size += t.nbytes
    if chunk:
        plan.units.append(Unit(role, inv.source, chunk))


__all__ = ["Plan", "plan_performance", "request_fingerprint"]

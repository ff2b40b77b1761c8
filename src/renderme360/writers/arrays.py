"""Numeric outputs: calibration, 2D/3D keypoints and FLAME as dense ``.npz`` (+ cameras.json).

Every frame that has data is written, with its id in ``frame_ids``; nothing is sampled or invented.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..camera import calibration_problem
from ..errors import SMCFormatError
from ..formats.npz import NpzWriter
from ..output.outdir import Written

if TYPE_CHECKING:
    from ..tasks import Task
    from . import WriteContext

CONVENTION = "RT maps camera to world; OpenCV axes; metres"


def _calibration(ctx: WriteContext, cams: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    return {c: ctx.reader.calibration_of(c) for c in cams}


def _write_npz(ctx: WriteContext, key: str, arrays: dict[str, np.ndarray]) -> Written:
    with ctx.out.open_atomic(key, ctx.options.checksum) as f, NpzWriter(f) as z:
        for name, arr in arrays.items():
            z.add(name, arr)
    return f.written(key)


def write_calibration_all(ctx: WriteContext, task: Task) -> Written:
    """``all_cameras.npz``: camera_ids (str), K (N,3,3), D (N,5), RT (N,4,4) camera-to-world."""
    cams = task.cameras
    cal = _calibration(ctx, cams)
    return _write_npz(
        ctx,
        task.key,
        {
            "camera_ids": np.array(list(cams), dtype="<U2"),
            "K": np.stack([cal[c]["K"] for c in cams]),
            "D": np.stack([cal[c]["D"] for c in cams]),
            "RT": np.stack([cal[c]["RT"] for c in cams]),
            "convention": np.array(CONVENTION),
        },
    )


def write_calibration_cam(ctx: WriteContext, task: Task) -> Written:
    """``cam_XX.npz``: K, D, RT of one camera."""
    cam = task.camera
    assert cam is not None, f"{task.key}: a per-camera task without its camera"
    cal = _calibration(ctx, [cam])[cam]
    return _write_npz(ctx, task.key, {**cal, "convention": np.array(CONVENTION)})


def write_calibration_json(ctx: WriteContext, task: Task) -> Written:
    """``cameras.json`` with the convention spelled out; a camera whose K, D or RT holds NaN
    or Inf is named under ``left_out`` instead (the npz files keep its values byte-exact)."""
    cams = task.cameras
    cal = _calibration(ctx, cams)
    problems = {c: calibration_problem(cal[c]) for c in cams}
    doc: dict[str, object] = {
        "convention": CONVENTION,
        "cameras": {
            c: {k: cal[c][k].tolist() for k in ("K", "D", "RT")} for c in cams if not problems[c]
        },
    }
    left_out = {c: f"calibration {why}; stored as is in the .npz files" for c, why in
                problems.items() if why}  # fmt: skip
    if left_out:  # strict JSON has no NaN/Infinity: such a camera is named, not written
        doc["left_out"] = left_out
    return ctx.out.write_text(task.key, json.dumps(doc, indent=1, allow_nan=False) + "\n")


def _stack_frames(
    ctx: WriteContext,
    key: str,
    frames: Sequence[int],
    read: Callable[[int], np.ndarray | None],
    name: str,
) -> Written:
    """Stream per-frame arrays of equal shape into ``frame_ids`` + one stacked array."""
    first = read(frames[0])
    if first is None:  # listed when planned, empty or gone now
        raise SMCFormatError(f"{ctx.source}: {name} frame {frames[0]} has no data")
    shape, dtype = first.shape, first.dtype

    def parts() -> Iterator[np.ndarray]:
        for f in frames:
            arr = first if f == frames[0] else read(f)
            if arr is None or arr.shape != shape:
                got = None if arr is None else arr.shape
                raise SMCFormatError(
                    f"{ctx.source}: {name} frame {f} has shape {got}, others {shape}"
                )
            yield arr

    with ctx.out.open_atomic(key, ctx.options.checksum) as f, NpzWriter(f) as z:
        z.add("frame_ids", np.asarray(frames, dtype=np.int64))
        z.add_stacked("keypoints", (len(frames), *shape), dtype, parts())
    return f.written(key)


def write_keypoints2d(ctx: WriteContext, task: Task) -> Written:
    """``keypoints2d/cam_XX.npz``: frame_ids (M,), keypoints (M, 106, 2)."""
    cam, frames = task.camera, task.frames
    assert cam is not None, f"{task.key}: a per-camera task without its camera"
    return _stack_frames(
        ctx, task.key, frames, lambda fr: ctx.reader.read_keypoints2d(cam, fr), f"Keypoints2d/{cam}"
    )


def write_keypoints3d(ctx: WriteContext, task: Task) -> Written:
    """``keypoints3d/all_frames.npz``: frame_ids (M,), keypoints (M, 73, 3)."""
    frames = task.frames
    return _stack_frames(ctx, task.key, frames, ctx.reader.read_keypoints3d, "Keypoints3d")


def write_flame(ctx: WriteContext, task: Task) -> Written:
    """``flame/all_frames.npz``: frame_ids and one stacked array per FLAME dataset found."""
    frames, names = task.frames, task.fields
    r = ctx.reader
    fields = {k: v for k, v in r.flame_fields(frames[0]).items() if names is None or k in names}
    if "frame_ids" in fields:  # the npz's own member: a second one would shadow it
        raise SMCFormatError(
            f"{ctx.source}: FLAME field 'frame_ids' collides with the frame index of "
            f"{task.key}; refusing to write it"
        )
    if names is not None and set(names) - set(fields):
        lacking = ", ".join(sorted(set(names) - set(fields)))
        raise SMCFormatError(f"{ctx.source}: FLAME/{frames[0]} lacks {lacking} (planned)")
    with ctx.out.open_atomic(task.key, ctx.options.checksum) as f, NpzWriter(f) as z:
        z.add("frame_ids", np.asarray(frames, dtype=np.int64))
        for name, (shape, dtype) in sorted(fields.items()):

            def parts(name: str = name, shape: tuple[int, ...] = shape) -> Iterator[np.ndarray]:
                for fr in frames:
                    arr = r.read_flame_field(fr, name)
                    if arr.shape != shape:
                        raise SMCFormatError(
                            f"{ctx.source}: FLAME/{fr}/{name} has shape {arr.shape}, "
                            f"frame {frames[0]} has {shape}"
                        )
                    yield arr

            z.add_stacked(name, (len(frames), *shape), np.dtype(dtype), parts())
    return f.written(task.key)

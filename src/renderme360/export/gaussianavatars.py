"""``export gaussianavatars``: FLAME-rigged avatar training data in VHAP's "NeRF dataset" layout.

GaussianAvatars (``scene/dataset_readers.py``) reads a folder as a dynamic scene when
``canonical_flame_param.npz`` lies at its root, then ``transforms_{train,val,test}.json``: per
frame ``file_path``, ``transform_matrix`` (camera-to-world, OpenGL axes), ``camera_angle_x``,
``w``/``h``, ``timestep_index``, ``camera_index``/``camera_id`` and ``flame_param_path``. It
ignores ``cx``/``cy``/``fl_y`` (FovY is derived from FovX and the image size) and models no
distortion, and it never reads ``fg_mask_path``: images are written undistorted to a centred,
square-pixel pinhole (:mod:`.undistort`) and composited on the background. Everything VHAP's
exporter writes per frame is written too (``images/{t:05d}_{c:02d}.png``, ``fg_masks/``,
``flame_param/{t:05d}.npz``, its keys and splits).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EmptySelectionError, NotFoundError, Renderme360Error, UsageError
from ..formats.npz import NpzWriter
from ..naming import performance_kind
from ..selection import parse_frames
from .conventions import DOWNSCALES, c2w_to_nerfstudio
from .files import ExportDir
from .readme import readme_text
from .record import SourceStamps, finish, same_output, staged
from .reduce import run_tasks
from .select import (
    asked_dest,
    cameras_token,
    default_dest,
    frame_pairs,
    frames_token,
    perf_name,
    pose_notes,
    select_cameras,
)
from .summary import ExportSummary, Progress
from .undistort import BACKGROUNDS, Pinhole, UndistortTask, pinholes, reduced_K, run_undistort

if TYPE_CHECKING:
    from ..loader.performance import Performance

#: VHAP's split: the first ceil(70 %) of the timesteps train (and validate), the rest test.
TRAIN_RATIO = 0.7
#: VHAP validates on camera index 8 when there is one (NeRSemble's frontal camera), else the last.
VHAP_VAL_INDEX = 8
#: FLAME sizes GaussianAvatars/VHAP read (shape and expression zero-padded to these).
N_SHAPE, N_EXPR, N_VERTS = 300, 100, 5023
#: The RenderMe360 FLAME fields read, and the pose fields in FLAME's joint order.
_POSES = ("global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose")
_FIELDS = (*_POSES, "trans", "shape", "exp")


@dataclass(frozen=True)
class Flame:
    """The FLAME fits of the exported frames, by dataset frame index (float64)."""

    rows: dict[int, int]  # frame -> row
    poses: np.ndarray  # (M, 5, 3) global, neck, jaw, left eye, right eye
    trans: np.ndarray  # (M, 3)
    shape: np.ndarray  # (M, S <= 300)
    exp: np.ndarray  # (M, E <= 100)
    verts: np.ndarray | None  # (M, V, 3) world, metres (only with --flame-model)

    def params(self, frame: int) -> dict[str, np.ndarray]:
        """GaussianAvatars' per-frame ``flame_param`` npz (float32, shapes as VHAP writes)."""
        i = self.rows[frame]
        p = self.poses[i]
        out = {
            "translation": self.trans[i][None],
            "rotation": p[0][None],
            "neck_pose": p[1][None],
            "jaw_pose": p[2][None],
            "eyes_pose": np.concatenate([p[3], p[4]])[None],
            "shape": _pad(self.shape[self.rows[min(self.rows)]], N_SHAPE),
            "expr": _pad(self.exp[i], N_EXPR)[None],
            "static_offset": np.zeros((1, N_VERTS, 3)),
        }
        return {k: v.astype(np.float32) for k, v in out.items()}

    def canonical(self) -> dict[str, np.ndarray]:
        """``canonical_flame_param.npz``: zeros but ``jaw_pose`` [[0.3, 0, 0]], plus shape."""
        first = self.params(min(self.rows))
        out = {k: np.zeros_like(v) for k, v in first.items()}
        out["jaw_pose"] = np.array([[0.3, 0.0, 0.0]], dtype=np.float32)
        out["shape"] = first["shape"]
        return out


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[: len(values)] = values
    return out


def read_flame(perf: Performance, frames: Sequence[int], verts: bool) -> Flame:
    """The FLAME fits of ``frames`` (a frame without a fit is left out), checked."""
    fields = (*_FIELDS, "verts") if verts else _FIELDS
    got = perf.flame(fields=fields)
    ids = [int(f) for f in np.asarray(got["frame_ids"])]
    rows = {f: i for i, f in enumerate(ids) if f in set(frames)}
    m = len(ids)

    def arr(name: str, width: int | None, most: int | None = None) -> np.ndarray:
        a = np.asarray(got[name], dtype=np.float64).reshape(m, -1)
        n = a.shape[1]
        if (width is not None and n != width) or (most is not None and not 0 < n <= most):
            want = width if width is not None else f"1..{most}"
            raise Renderme360Error(
                f"{perf_name(perf)}: FLAME {name} has {n} values a frame, not {want}"
            )
        if not np.all(np.isfinite(a)):
            raise Renderme360Error(f"{perf_name(perf)}: FLAME {name} holds non-finite values")
        return a

    poses = np.stack([arr(p, 3) for p in _POSES], axis=1)
    v = None
    if verts:
        v = arr("verts", N_VERTS * 3).reshape(m, N_VERTS, 3)
    return Flame(rows, poses, arr("trans", 3), arr("shape", None, N_SHAPE),
                 arr("exp", None, N_EXPR), v)  # fmt: skip


def flame_errors(
    model_path: str | os.PathLike[str], flame: Flame
) -> dict[int, tuple[float, float]]:
    """Per frame (median, max) distance in mm between the stored ``verts`` and the user's FLAME
    model posed with the stored parameters (numpy LBS, translation after skinning)."""
    from ..formats.flame import load_flame_model, pose

    model = load_flame_model(model_path)
    if model.v_template.shape[0] != N_VERTS:
        raise UsageError(f"FLAME model {model_path}: {model.v_template.shape[0]} vertices, "
                         f"the fits have {N_VERTS}")  # fmt: skip
    assert flame.verts is not None
    out = {}
    for frame, i in sorted(flame.rows.items()):
        posed = pose(model, flame.shape[i], flame.exp[i], flame.poses[i], flame.trans[i])
        d = np.linalg.norm(posed - flame.verts[i], axis=1) * 1000.0
        out[frame] = (float(np.median(d)), float(d.max()))
    return out


def takes_with_flame(perf: Performance) -> list[str]:
    """Performances of the same actor beside this one that hold FLAME fits (best effort)."""
    from ..output.extracted import ExtractedFolder, looks_extracted
    from ..output.layout import parse_performance_dir

    found: set[str] = set()
    root = perf.folder
    if root is not None:
        parent = root.parent
        for d in sorted(parent.iterdir())[:500]:
            ids = parse_performance_dir(d.name)
            if ids and ids[0] == perf.actor and ids[1] != perf.performance and looks_extracted(d):
                try:
                    if ExtractedFolder(d).holds("flame"):
                        found.add(ids[1])
                except Renderme360Error:
                    continue
        return sorted(found)
    from ..pipeline.discover import group_performances
    from ..smc.reader import ExtractionReader

    files = perf.smc_files
    local = [f for f in files.values() if isinstance(f, Path)]  # a URL's siblings: not listed
    paths = {p for f in local for p in sorted(f.parent.glob(f"{perf.actor}_*.smc"))}
    groups, _ = group_performances(sorted(paths)[:200])
    for g in groups:
        for path in g.files.values():
            try:
                with ExtractionReader(path) as r:
                    if r.list_flame_frames():
                        found.add(g.performance)
            except (Renderme360Error, OSError):
                continue
    return sorted(found - {perf.performance})


def _refuse_without_flame(perf: Performance) -> None:
    if "flame" in perf.modalities:
        return
    others = takes_with_flame(perf)
    kind = performance_kind(perf.performance)
    have = (
        f"takes of {perf.actor} with FLAME: {', '.join(others)}"
        if others
        else "RenderMe360 ships FLAME fits with the expression takes (e0..e11)"
    )
    raise NotFoundError(f"{perf_name(perf)}: no FLAME fits in this {kind} take; {have}")


def vhap_splits(
    timesteps: int, n_cams: int, val_index: int | None
) -> dict[str, tuple[list[int], list[int]]]:
    """``{split: (timestep indices, camera indices)}`` by VHAP's ``split_json``: train = the
    first ``int(np.ceil(T * 0.7))`` timesteps (VHAP's float product, kept) with every camera
    but the validation one; val = those timesteps with it; test = the rest, every camera. One
    camera: no validation camera (val empty)."""
    nt = int(np.ceil(timesteps * TRAIN_RATIO))
    ts = list(range(timesteps))
    cams = list(range(n_cams))
    if n_cams == 1:
        return {"train": (ts[:nt], cams), "val": (ts[:nt], []), "test": (ts[nt:], cams)}
    if val_index is None:
        val_index = VHAP_VAL_INDEX if VHAP_VAL_INDEX in cams else cams[-1]
    train = [c for c in cams if c != val_index]
    return {"train": (ts[:nt], train), "val": (ts[:nt], [val_index]), "test": (ts[nt:], cams)}


def _check_args(downscale: int, size: int | None, background: str, flame_model: Any,
                max_flame_error: float | None) -> None:  # fmt: skip
    if downscale not in DOWNSCALES:
        raise UsageError(f"--downscale must be one of {', '.join(map(str, DOWNSCALES))}")
    if size is not None and downscale != 1:
        raise UsageError(
            "--size and --downscale exclude each other (--size picks the decode scale)"
        )
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
        raise UsageError(f"--size must be a width of at least 16 pixels, got {size!r}")
    if background not in BACKGROUNDS:
        raise UsageError(
            f"--background must be one of {', '.join(BACKGROUNDS)}, got {background!r}"
        )
    if max_flame_error is not None:
        if flame_model is None:
            raise UsageError("--max-flame-error needs --flame-model (the model to compare with)")
        if not (isinstance(max_flame_error, (int, float)) and math.isfinite(max_flame_error)
                and max_flame_error >= 0):  # fmt: skip
            raise UsageError(
                f"--max-flame-error must be a number of mm >= 0, got {max_flame_error!r}"
            )


def _val_index(cams: list[str], val_camera: str | int | None) -> int | None:
    if val_camera is None:
        return None
    key = f"{int(val_camera):02d}" if str(val_camera).isdigit() else str(val_camera)
    if key not in cams:
        raise UsageError(
            f"--val-camera {val_camera}: not among the exported cameras ({', '.join(cams)})"
        )
    if len(cams) == 1:
        raise UsageError("--val-camera needs at least two exported cameras")
    return cams.index(key)


def _flame_report(path: Any, flame: Flame, limit: float | None, summary: ExportSummary) -> None:
    errors = flame_errors(path, flame)
    medians = [m for m, _ in errors.values()]
    worst = max(errors, key=lambda f: errors[f][1])
    report = {
        "model": str(path),
        "frames": len(errors),
        "median_mm": round(float(np.median(medians)), 4),
        "max_mm": round(errors[worst][1], 4),
        "worst_frame": worst,
    }
    summary.details["flame_error"] = report
    summary.notes.append(
        f"FLAME model {path}: vertex error against the stored verts over {len(errors)} frames: "
        f"median {report['median_mm']:.3f} mm, max {report['max_mm']:.3f} mm (frame {worst})"
    )
    if limit is not None:
        over = sorted(f for f, (_, mx) in errors.items() if mx > limit)
        if over:
            raise Renderme360Error(
                f"{_name_of(summary)}: {len(over)} of {len(errors)} frames exceed "
                f"--max-flame-error {limit:g} mm (first: frame {over[0]}, max "
                f"{errors[over[0]][1]:.3f} mm): this FLAME model does not match the fits"
            )


def _name_of(summary: ExportSummary) -> str:
    return f"{summary.actor}_{summary.performance}"


def export_gaussianavatars(
    perf: Performance,
    dest: str | os.PathLike[str] | None = None,
    frames: str | None = None,
    cameras: str | None = None,
    downscale: int = 1,
    size: int | None = None,
    background: str = "white",
    val_camera: str | int | None = None,
    flame_model: str | os.PathLike[str] | None = None,
    max_flame_error: float | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    masks: bool = True,
    wait: bool = False,
) -> ExportSummary:
    """Write a GaussianAvatars / VHAP dataset of the chosen cameras and frames (see module doc);
    masks are always used and written (``masks`` is accepted as the other exports take it).
    DEST is locked as for every export (``wait``: wait for another export into it)."""
    t0 = time.perf_counter()
    _check_args(downscale, size, background, flame_model, max_flame_error)
    progress = progress or Progress()
    _refuse_without_flame(perf)
    rng = parse_frames(frames)
    cams, note = select_cameras(perf, cameras, "gaussianavatars")
    notes = [note] if note != "all cameras" else []
    val_index = _val_index(cams, val_camera)
    chosen, pairs, missing = frame_pairs(perf, cams, rng, True, notes)
    flame = read_flame(perf, chosen, verts=flame_model is not None)
    lacking = [f for f in chosen if f not in flame.rows]
    if len(lacking) == len(chosen):
        raise EmptySelectionError(
            f"{perf_name(perf)}: no FLAME fit for frames {chosen[0]}..{chosen[-1]}"
        )
    if lacking:
        notes.append(
            f"{len(lacking)} frames have no FLAME fit and are left out (first: {lacking[0]})"
        )
    chosen = [f for f in chosen if f in flame.rows]
    pairs = [(f, c) for f, c in pairs if f in flame.rows]
    token = frames_token(rng, chosen) + cameras_token(cameras) + f"_{background}"
    token += f"_w{size}" if size else ""
    dest_path = asked_dest(dest) or default_dest(perf, "gaussianavatars", token, downscale)
    targets, k = pinholes({c: perf.cameras[c] for c in cams}, downscale, size)
    summary = ExportSummary("gaussianavatars", str(dest_path), str(perf.source), perf.actor,
                            perf.performance, cams, chosen, k, missing=missing,
                            notes=notes)  # fmt: skip
    if flame_model is not None:
        _flame_report(flame_model, flame, max_flame_error, summary)  # before anything is written
    summary.notes.extend(pose_notes(perf, cams, chosen))
    if len(cams) > 1:
        vi = val_index if val_index is not None else vhap_splits(1, len(cams), None)["val"][1][0]
        rule = "--val-camera" if val_index is not None else "VHAP's rule: index 8, else the last"
        summary.notes.append(f"validation camera: {cams[vi]} (camera_index {vi}; {rule})")
    with staged(dest_path, wait) as (out, previous):
        summary.dest = str(out.root)
        writer = _Writer(perf, out, previous, summary, k, BACKGROUNDS[background])
        doc = writer.frames(chosen, pairs, cams, targets, flame)
        writer.run(progress, workers)
        for name, split in _split_docs(doc, len(chosen), len(cams), val_index).items():
            data = json.dumps(split, indent=4, allow_nan=False).encode()
            writer.put(f"transforms_{name}.json", data)
        writer.put("transforms.json", json.dumps(doc, indent=4, allow_nan=False).encode())
        writer.put("canonical_flame_param.npz", _npz(flame.canonical()))
        readme = readme_text(summary, _readme_body(summary, targets, background, size))
        keys = ("file_path", "fg_mask_path", "flame_param_path")
        refs = sorted({e[k] for e in doc["frames"] for k in keys} | {"canonical_flame_param.npz"})
        return finish(out, previous, writer.record, summary, readme, t0, ("transforms.json", refs))


def _split_docs(doc: dict[str, Any], timesteps: int, n_cams: int,
                val_index: int | None) -> dict[str, dict[str, Any]]:  # fmt: skip
    shared = {
        k: v for k, v in doc.items() if k not in ("frames", "timestep_indices", "camera_indices")
    }
    out = {}
    for name, (ts, cs) in vhap_splits(timesteps, n_cams, val_index).items():
        tset, cset = set(ts), set(cs)
        frames = [
            f for f in doc["frames"] if f["timestep_index"] in tset and f["camera_index"] in cset
        ]
        out[name] = {**shared, "frames": frames, "timestep_indices": ts, "camera_indices": cs}
    return out


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with NpzWriter(buf) as w:
        for name, a in arrays.items():
            w.add(name, a)
    return buf.getvalue()


class _Writer:
    """Entries, FLAME files and the image tasks of one export (reused when unchanged)."""

    def __init__(self, perf: Performance, out: ExportDir, previous: dict[str, Any],
                 summary: ExportSummary, k: int, background: int) -> None:  # fmt: skip
        self.perf, self.out, self.previous, self.summary = perf, out, previous, summary
        self.k, self.background = k, background
        self.record: dict[str, Any] = {}
        self.tasks: list[tuple[UndistortTask, str, int, str, str]] = []
        self._stamps = SourceStamps(perf)

    def put(self, rel: str, data: bytes) -> None:
        self.out.write_bytes(rel, data)
        self.record[rel] = {}

    def frames(self, chosen: list[int], pairs: list[tuple[int, str]], cams: list[str],
               targets: dict[str, Pinhole], flame: Flame) -> dict[str, Any]:  # fmt: skip
        """The ``transforms.json`` document; FLAME npz written, image tasks queued."""
        t_of = {f: t for t, f in enumerate(chosen)}
        c_of = {c: i for i, c in enumerate(cams)}
        entries = []
        for f, c in pairs:
            t, ci, p = t_of[f], c_of[c], targets[c]
            stem = f"{t:05d}_{ci:02d}.png"
            entry = {
                "timestep_index": t, "timestep_index_original": f, "timestep_id": f"frame_{f:06d}",
                "camera_index": ci, "camera_id": c,
                "cx": p.width / 2.0, "cy": p.height / 2.0, "fl_x": p.f, "fl_y": p.f,
                "h": p.height, "w": p.width,
                "camera_angle_x": p.angle_x, "camera_angle_y": p.angle_y,
                "transform_matrix": c2w_to_nerfstudio(self.perf.cameras[c].c2w).tolist(),
                "file_path": f"images/{stem}", "fg_mask_path": f"fg_masks/{stem}",
                "flame_param_path": f"flame_param/{t:05d}.npz",
            }  # fmt: skip
            entries.append(entry)
            self._queue(f, c, p, entry["file_path"], entry["fg_mask_path"])
        for f in chosen:
            self.put(f"flame_param/{t_of[f]:05d}.npz", _npz(flame.params(f)))
        last = entries[-1]
        shared = ("cx", "cy", "fl_x", "fl_y", "h", "w", "camera_angle_x", "camera_angle_y")
        self.summary.images = self.summary.masks = len(entries)
        return {"frames": entries, **{k: last[k] for k in shared},
                "timestep_indices": list(range(len(chosen))),
                "camera_indices": list(range(len(cams)))}  # fmt: skip

    def _queue(self, frame: int, cam: str, p: Pinhole, img_rel: str, mask_rel: str) -> None:
        src = {kind: self.perf.source.path(kind, cam, frame) for kind in ("color", "mask")}
        stamp = ";".join(self._stamps(kind, cam, frame, s) for kind, s in src.items())
        entry = {"from": stamp, "k": self.k, "pinhole": [p.f, p.width, p.height],
                 "background": self.background}  # fmt: skip
        rels = (img_rel, mask_rel)
        prev = [self.previous.get(r) for r in rels]
        if all(isinstance(x, dict) and same_output(x, entry, self.out.path(r))
               for x, r in zip(prev, rels, strict=True)):  # fmt: skip
            for r, x in zip(rels, prev, strict=True):
                self.record[r] = x
            self.summary.reused += 1
            return
        for r in rels:
            self.record[r] = dict(entry)
        cam_obj = self.perf.cameras[cam]
        task = UndistortTask(
            str(self.out.stage(img_rel)), str(self.out.stage(mask_rel)), self.k,
            cam_obj.width, cam_obj.height,
            tuple(float(x) for x in reduced_K(cam_obj, self.k).ravel()),
            tuple(float(x) for x in np.asarray(cam_obj.D, dtype=np.float64).ravel()[:5]),
            p, self.background,
            image_src=None if src["color"] is None else str(src["color"]),
            mask_src=None if src["mask"] is None else str(src["mask"]),
        )  # fmt: skip
        self.tasks.append((task, cam, frame, img_rel, mask_rel))

    def _materialise(self) -> Iterator[UndistortTask]:
        """Camera by camera (one remap map per camera in a worker); SMC bytes read lazily."""
        for task, cam, frame, *_ in sorted(self.tasks, key=lambda t: (t[1], t[2])):
            if task.image_src is None:
                task = replace(task, image_data=self.perf.image_bytes(cam, frame))
            if task.mask_src is None:
                task = replace(task, mask_data=self.perf.mask_bytes(cam, frame))
            yield task

    def run(self, progress: Progress, workers: int | None) -> None:
        if not self.tasks:
            return
        progress.start(len(self.tasks), f"undistort x{self.k}")
        try:
            run_tasks(self._materialise(), len(self.tasks), workers, progress.advance,
                      fn=run_undistort)  # fmt: skip
        finally:
            progress.finish()
        for task, *_, img_rel, mask_rel in self.tasks:
            for dst, rel in ((task.image_dst, img_rel), (task.mask_dst, mask_rel)):
                st = os.stat(dst)
                self.record[rel].update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        self.summary.reduced += len(self.tasks)


def _readme_body(summary: ExportSummary, targets: dict[str, Pinhole], background: str,
                 size: int | None) -> str:  # fmt: skip
    p = next(iter(targets.values()))
    w, h = p.width, p.height
    scale = f"decoded at 1/{summary.downscale} (JPEG DCT)" if summary.downscale > 1 else "full size"
    return README_TEXT.format(
        w=w, h=h, cx=(w - 1) / 2, cy=(h - 1) / 2, bg=background, scale=scale,
        size=f", then resampled to {size} px wide" if size else "",
        white=" --white_background" if background == "white" else "",
    )  # fmt: skip


README_TEXT = """\
GaussianAvatars / VHAP "NeRF dataset" layout (VHAP's export_as_nerf_dataset.py):
  images/{{t:05d}}_{{c:02d}}.png    undistorted, composited on {bg}; t = timestep_index,
                                  c = camera_index
  fg_masks/{{t:05d}}_{{c:02d}}.png  the mask undistorted the same way (255 = foreground)
  flame_param/{{t:05d}}.npz        FLAME parameters of timestep t
  canonical_flame_param.npz      zeros but jaw_pose [[0.3, 0, 0]], plus shape, static_offset
  transforms.json, transforms_{{train,val,test}}.json   per frame: timestep_index,
    timestep_index_original (the dataset frame), timestep_id, camera_index, camera_id (the
    dataset camera), cx, cy, fl_x, fl_y, h, w, camera_angle_x/y, transform_matrix,
    file_path, fg_mask_path, flame_param_path; top level: the last frame's intrinsics,
    timestep_indices, camera_indices.
Train: python train.py -s THIS_FOLDER -m OUTPUT --eval --bind_to_mesh{white}
  (GaussianAvatars; its --white_background must match the background of the images).

Cameras. GaussianAvatars ignores cx, cy and fl_y and models no distortion: every image was
resampled ({scale}{size}) to a pinhole with square pixels (fl_x = fl_y) and the principal
point exactly at the centre: OpenCV pixel-centre coordinates ({cx}, {cy}) for {w}x{h},
i.e. cx = w / 2, cy = h / 2 with the image corner at (0, 0) (the numbers written), where
the 3DGS rasterizer's ndc2Pix puts NDC 0. The camera's optical axis and pose are
unchanged (transform_matrix = the stored camera-to-world with OpenGL axes, metres, world up
-y); the image is the largest centred crop whose pixels all lie inside the source image
(no fill), one size for every camera, each camera keeping its own focal length
(camera_angle_x per frame).

Splits (VHAP's split_json): train = the first int(ceil(T * 0.7)) timesteps, every camera
but the validation camera; val = those timesteps, the validation camera; test = the
remaining timesteps, every camera. Validation camera: --val-camera, else VHAP's rule
(camera_index 8 when there is one, else the last camera).

FLAME (RenderMe360 fit -> GaussianAvatars flame_param, float32):
  rotation (1, 3)        = global_pose
  neck_pose (1, 3)       = neck_pose
  jaw_pose (1, 3)        = jaw_pose
  eyes_pose (1, 6)       = left_eye_pose ++ right_eye_pose
  translation (1, 3)     = trans (added after skinning, as RenderMe360's verts)
  shape (300,)           = shape (100 stored) zero-padded; the first exported frame's
  expr (1, 100)          = exp (50 stored) zero-padded
  static_offset (1, 5023, 3) = zeros (GaussianAvatars pads it to its teeth vertices)
Open question: RenderMe360 does not publish which FLAME version (2017, 2020, 2023) its fits
use; GaussianAvatars uses FLAME 2023 by default (flame_model/flame.py, FLAME_MODEL_PATH) and
FLAME 2020 is one line away there. Run the export with --flame-model PATH (your own FLAME
.pkl; never shipped) to re-pose every frame with that model and compare with the stored
verts (median/max mm, in export.json): the version with ~0 mm error is the one to train with.
"""

"""Write SMC files directly with h5py, independent of the package's own generator.

Tests use this so the reader and the extractor are not only checked against ``synth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np


def jpeg(h: int = 24, w: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def png(h: int = 24, w: int = 32, seed: int = 0, channels: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    img = (rng.random(shape) > 0.5).astype(np.uint8) * 255
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def calib(i: int) -> dict[str, np.ndarray]:
    k = np.array([[100.0 + i, 0, 16], [0, 100.0 + i, 12], [0, 0, 1]])
    rt = np.eye(4)
    rt[:3, 3] = [i * 0.1, 0.0, -1.0]
    return {"K": k, "D": np.full(5, 0.01 * i), "RT": rt}


def blob(group: h5py.Group, name: str, data: bytes, **kw: Any) -> None:
    group.create_dataset(name, data=np.frombuffer(data, dtype=np.uint8), **kw)


def build_smc(
    path: str | Path,
    *,
    actor: Any = "0026",
    performance: Any = "e0",
    attrs: dict[str, Any] | None = None,
    camera_attrs: dict[str, Any] | None = None,
    color: dict[str, dict[int, bytes]] | None = None,
    mask: dict[str, dict[int, bytes]] | None = None,
    calibration: dict[str, dict[str, np.ndarray]] | None = None,
    audio: tuple[np.ndarray, int] | None = None,
    kp2d: dict[str, dict[int, np.ndarray]] | None = None,
    kp3d: dict[int, np.ndarray] | None = None,
    flame: dict[int, dict[str, np.ndarray]] | None = None,
    uv: dict[int, bytes] | None = None,
    scan: tuple[np.ndarray, np.ndarray] | None = None,
    scanmask: dict[str, bytes] | None = None,
    chunked: bool = False,
) -> Path:
    """Write an SMC file with exactly the parts given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {"chunks": True, "compression": "gzip"} if chunked else {}
    with h5py.File(path, "w") as f:
        base = {
            "actor_id": actor,
            "performance_part": performance,
            "capture_date": "20230101",
            "age": 25,
            "color": "yellow",
            "gender": "female",
            "height": 170.0,
            "weight": 60.0,
        }
        for k, v in {**base, **(attrs or {})}.items():
            if v is not None:
                f.attrs[k] = v
        if color or mask or audio or camera_attrs:
            cam = f.create_group("Camera")
            ca = {"num_device": 60, "num_frame": 3, "resolution": np.array([24, 32])}
            for k, v in {**ca, **(camera_attrs or {})}.items():
                cam.attrs[k] = v
            for kind, streams in (("color", color or {}), ("mask", mask or {})):
                for c, frames in streams.items():
                    g = cam.require_group(c).require_group(kind)
                    for fr, data in frames.items():
                        blob(g, str(fr), data, **kw)
            if audio is not None:
                g = cam.require_group("00").create_group("audio")
                g.create_dataset("audio", data=audio[0])
                g.create_dataset("sample_rate", data=audio[1])
        if calibration:
            for c, d in calibration.items():
                g = f.require_group("Calibration").create_group(c)
                for k, v in d.items():
                    g.create_dataset(k, data=v)
        if kp2d is not None:
            g = f.create_group("Keypoints2d")
            g.attrs["num_frame"] = 3
            for c, frames in kp2d.items():
                cg = g.create_group(c)
                for fr, arr in frames.items():
                    cg.create_dataset(str(fr), data=arr)
        if kp3d is not None:
            g = f.create_group("Keypoints3d")
            g.attrs["num_frame"] = 3
            for fr, arr in kp3d.items():
                g.create_dataset(str(fr), data=arr)
        if flame is not None:
            g = f.create_group("FLAME")
            g.attrs["num_frame"] = 3
            for fr, fields in flame.items():
                fg = g.create_group(str(fr))
                for k, v in fields.items():
                    fg.create_dataset(k, data=v)
        if uv is not None:
            g = f.create_group("UV_texture")
            for fr, data in uv.items():
                blob(g, str(fr), data, **kw)
        if scan is not None:
            g = f.create_group("Scan")
            g.create_dataset("vertex", data=scan[0])
            g.create_dataset("vertex_indices", data=scan[1])
        if scanmask is not None:
            g = f.create_group("ScanMask")
            for c, data in scanmask.items():
                blob(g, c, data, **kw)
    return path


def flame_frame(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "global_pose": rng.random(3),
        "neck_pose": rng.random(3),
        "jaw_pose": rng.random(3),
        "left_eye_pose": rng.random(3),
        "right_eye_pose": rng.random(3),
        "trans": rng.random(3),
        "shape": rng.random(100),
        "exp": rng.random(50),
        "verts": rng.random((5023, 3)).astype(np.float32),
        "albedos": rng.random((3, 8, 8)).astype(np.float32),
    }


def full_pair(
    root: Path, actor: str = "0026", perf: str = "e0", chunked: bool = False
) -> dict[str, Any]:
    """A release-21 style anno/raw pair with every modality, and the values written."""
    color = {
        "25": {0: jpeg(seed=1), 1: jpeg(seed=2), 2: jpeg(seed=3)},
        "30": {0: jpeg(seed=4), 2: jpeg(seed=5)},
    }
    mask = {
        "25": {0: png(seed=1), 1: png(seed=2, channels=3), 2: png(seed=3)},
        "30": {0: png(seed=4)},
    }
    cal = {f"{i:02d}": calib(i) for i in (25, 30, 40)}
    rng = np.random.default_rng(7)
    kp2d = {
        "25": {0: rng.random((106, 2)), 1: np.zeros((0, 2)), 2: rng.random((106, 2))},
        "30": {2: rng.random((106, 2))},
        "40": {0: rng.random((106, 2))},
    }
    kp3d = {0: rng.random((73, 3)), 2: rng.random((73, 3)), 1: np.zeros((0,))}
    flame = {0: flame_frame(0), 1: flame_frame(1), 2: flame_frame(2)}
    uv = {0: jpeg(16, 16, seed=9), 1: jpeg(16, 16, seed=10)}
    verts = rng.random((50, 3))
    faces = rng.integers(0, 50, (80, 3)).astype(np.int32)
    scanmask = {"25": png(seed=11), "30": png(seed=12)}
    audio = ((rng.random((4800, 2)) * 2 - 1).astype(np.float32), 48000)
    anno = build_smc(
        root / "anno" / actor / f"{actor}_{perf}_anno.smc",
        actor=actor.encode(),
        performance=perf,
        mask=mask,
        calibration=cal,
        kp2d=kp2d,
        kp3d=kp3d,
        flame=flame,
        uv=uv,
        scan=(verts, faces),
        scanmask=scanmask,
        chunked=chunked,
    )
    raw = build_smc(
        root / "raw" / actor / f"{actor}_{perf}_raw.smc",
        actor=actor,
        performance=perf,
        color=color,
        audio=audio,
        chunked=chunked,
    )
    return dict(
        anno=anno,
        raw=raw,
        color=color,
        mask=mask,
        cal=cal,
        kp2d=kp2d,
        kp3d=kp3d,
        flame=flame,
        uv=uv,
        verts=verts,
        faces=faces,
        scanmask=scanmask,
        audio=audio,
    )

"""What the user asked for: modalities, cameras and frames, parsed and resolved.

Camera selections can be explicit (``0,25,30-35``) or computed from calibration: ``ring:N``
(N cameras evenly spread in azimuth around the head) and ``front:N`` (the N closest to the
frontal view). Frames are ``START:STOP[:STEP]`` over frame indices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .camera import WORLD_UP, RigFrame
from .errors import UsageError
from .modalities import ALIASES, MODALITIES
from .naming import MAX_FRAME


@dataclass(frozen=True)
class FrameRange:
    """Frame indices ``start <= f < stop`` with ``(f - start) % step == 0``."""

    start: int = 0
    stop: int | None = None
    step: int = 1

    def __contains__(self, frame: object) -> bool:
        if not isinstance(frame, int):
            return False
        if frame < self.start or (self.stop is not None and frame >= self.stop):
            return False
        return (frame - self.start) % self.step == 0

    def filter(self, frames: Iterable[int]) -> list[int]:
        """The frames of ``frames`` inside the range, in their order."""
        return [f for f in frames if f in self]

    def covers(self, other: FrameRange) -> bool:
        """Whether every frame of ``other`` is in this range (for any number of frames)."""
        if other.stop is None:
            return (
                self.stop is None
                and other.start >= self.start
                and other.step % self.step == 0
                and (other.start - self.start) % self.step == 0
            )
        return all(f in self for f in range(other.start, other.stop, other.step))

    def nominal(self) -> int | None:
        """How many frames the range names (None when open-ended)."""
        return None if self.stop is None else len(range(self.start, self.stop, self.step))

    def __str__(self) -> str:
        stop = "" if self.stop is None else str(self.stop)
        return f"{self.start}:{stop}" + (f":{self.step}" if self.step != 1 else "")


@dataclass(frozen=True)
class CameraSpec:
    """Either explicit ids or a rule (``ring``/``front`` with a count) resolved per performance."""

    ids: frozenset[str] | None = None
    rule: str | None = None
    count: int = 0

    def __str__(self) -> str:
        if self.rule:
            return f"{self.rule}:{self.count}"
        return ",".join(sorted(self.ids or ()))


@dataclass(frozen=True)
class Selection:
    """Modalities, cameras (None = all) and frames (None = all) to extract."""

    modalities: tuple[str, ...] = MODALITIES
    cameras: CameraSpec | None = None
    frames: FrameRange | None = None

    @property
    def needs_camera_poses(self) -> bool:
        """Whether cameras are chosen by a rule (``ring:``/``front:``) from the calibration."""
        return self.cameras is not None and self.cameras.ids is None

    def describe(self) -> dict[str, str]:
        """Plain description for manifests and reports."""
        return {
            "modalities": ",".join(self.modalities),
            "cameras": str(self.cameras) if self.cameras else "all",
            "frames": str(self.frames) if self.frames else "all",
        }


def parse_modalities(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"images,masks"`` -> ("images", "masks") in canonical order; None or "all" -> all."""
    if value is None:
        return MODALITIES
    items = [value] if isinstance(value, str) else list(value)
    names = [p.strip().lower() for item in items for p in str(item).split(",") if p.strip()]
    if not names or names == ["all"]:
        return MODALITIES
    chosen = set()
    for name in names:
        name = ALIASES.get(name, name)
        if name not in MODALITIES:
            raise UsageError(f"unknown modality {name!r}; choose from {', '.join(MODALITIES)}")
        chosen.add(name)
    return tuple(m for m in MODALITIES if m in chosen)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²`` and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def parse_cameras(value: str | Sequence[str] | int | None) -> CameraSpec | None:
    """``"0,25,30-35"``, ``"ring:8"``, ``"front:4"`` or None/"all"."""
    if value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    text = text.strip().lower()
    if text in ("", "all"):
        return None
    if ":" in text:
        rule, _, count = text.partition(":")
        if rule not in ("ring", "front") or not _digits(count) or int(count) < 1:
            raise UsageError(f"invalid camera rule {value!r}: use ring:N or front:N (N >= 1)")
        return CameraSpec(rule=rule, count=int(count))
    ids: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not _digits(lo) or (sep and not _digits(hi)):
            raise UsageError(f"invalid camera selection {part!r}: use ids like 0,25,30-35")
        a, b = int(lo), int(hi) if sep else int(lo)
        if a > b or b > 99:
            raise UsageError(f"invalid camera range {part!r}: ids are 0..99, low to high")
        ids.update(f"{i:02d}" for i in range(a, b + 1))
    return CameraSpec(ids=frozenset(ids))


def parse_frames(value: str | None) -> FrameRange | None:
    """``"START:STOP[:STEP]"``, ``"START:"``, ``":STOP"`` or a single frame ``"N"``."""
    if value is None or str(value).strip() in ("", "all", ":"):
        return None
    text = str(value).strip()
    parts = text.split(":")
    try:
        if len(parts) == 1:
            n = int(parts[0])
            rng = FrameRange(n, n + 1, 1)
        elif len(parts) in (2, 3):
            start = int(parts[0]) if parts[0] else 0
            stop = int(parts[1]) if parts[1] else None
            step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
            rng = FrameRange(start, stop, step)
        else:
            raise ValueError(text)
    except ValueError:
        raise UsageError(f"invalid frame range {text[:60]!r}: use START:STOP[:STEP]") from None
    if max(rng.start, (rng.stop or 1) - 1, rng.step) > MAX_FRAME:
        raise UsageError(f"invalid frame range {text[:60]!r}: frame numbers are 0..{MAX_FRAME}")
    if rng.start < 0 or rng.step < 1 or (rng.stop is not None and rng.stop <= rng.start):
        raise UsageError(f"invalid frame range {value!r}: need 0 <= START < STOP and STEP >= 1")
    return rng


def resolve_cameras(
    spec: CameraSpec | None,
    available: Sequence[str],
    rts: Mapping[str, np.ndarray] | None,
) -> tuple[list[str] | None, str]:
    """Camera ids to extract (None = all) and a sentence saying how they were chosen.

    ``rts`` maps each calibrated camera to its camera-to-world RT (for ``ring:``/``front:``).
    """
    if spec is None:
        return None, "all cameras"
    if spec.ids is not None:
        return sorted(spec.ids), f"cameras {','.join(sorted(spec.ids))} as asked"
    cams = [c for c in available if rts and c in rts]
    if not rts or not cams:
        raise UsageError(
            f"--cameras {spec}: needs calibration of the cameras with images; none found"
        )
    geo = _rig_geometry(rts)  # the whole rig: angles as check prints

    def angles(c: str) -> str:
        az, el = math.degrees(geo.azimuth[c]), math.degrees(geo.elevation[c])
        return f"{c} (az {az:+.0f}°, el {el:+.0f}°)"

    legend = "az: azimuth around the rig centre from the frontal view, el: elevation above it"
    if spec.rule == "front":
        order = sorted(cams, key=lambda c: (geo.angle_to_front(c), c))
        chosen = sorted(order[: spec.count])
        why = (
            f"front:{spec.count}: the {len(chosen)} cameras nearest the frontal view "
            "(smallest angle to it, azimuth and elevation together)"
        )
    else:
        tier, tier_note = geo.eye_level_tier(cams, spec.count)
        chosen = geo.ring(tier, spec.count)
        why = (
            f"ring:{spec.count}: {len(chosen)} cameras spread evenly in azimuth around the "
            f"head, {tier_note}"
        )
    detail = ", ".join(angles(c) for c in chosen)
    return chosen, f"{why}: {detail} ({legend})"


#: Cameras whose elevations differ by less than this belong to one height tier of the rig.
TIER_GAP_DEGREES = 8.0


@dataclass
class _Rig:
    centre: np.ndarray
    up: np.ndarray
    front: np.ndarray
    azimuth: dict[str, float]
    elevation: dict[str, float]
    direction: dict[str, np.ndarray]

    def angle_to_front(self, cam: str) -> float:
        return float(np.arccos(np.clip(self.direction[cam] @ self.front, -1.0, 1.0)))

    def tiers(self, cams: Sequence[str]) -> list[list[str]]:
        """Cameras grouped by height (elevation), lowest first."""
        order = sorted(cams, key=lambda c: (self.elevation[c], c))
        groups: list[list[str]] = []
        for c in order:
            if (
                groups
                and math.degrees(self.elevation[c] - self.elevation[groups[-1][-1]])
                < TIER_GAP_DEGREES
            ):
                groups[-1].append(c)
            else:
                groups.append([c])
        return groups

    def eye_level_tier(self, cams: Sequence[str], count: int) -> tuple[list[str], str]:
        """The height tier nearest eye level when it has ``count`` cameras (a ring at one
        height), else every camera; with a phrase saying which."""
        groups = self.tiers(cams)
        if len(groups) == 1:
            return list(cams), "all at one height"

        def mean_el(g: list[str]) -> float:
            return float(np.mean([self.elevation[c] for c in g]))

        best = min(groups, key=lambda g: abs(mean_el(g)))
        if len(best) >= count:
            level = math.degrees(mean_el(best))
            return sorted(best), (
                f"from the height tier nearest eye level (elevation {level:+.0f}°, "
                f"{len(best)} cameras; {len(groups)} tiers, {len(cams)} cameras in all)"
            )
        return list(cams), (
            f"mixing heights: the tier nearest eye level has {len(best)} cameras, fewer than "
            f"{count}"
        )

    def ring(self, cams: Sequence[str], count: int) -> list[str]:
        """Greedy: for each of ``count`` evenly spaced azimuths, the nearest unused camera
        (ties broken towards eye level)."""
        chosen: list[str] = []
        for k in range(min(count, len(cams))):
            target = 2 * math.pi * k / count
            best = min(
                (c for c in cams if c not in chosen),
                key=lambda c: (
                    round(abs(_wrap(self.azimuth[c] - target)), 3),
                    abs(self.elevation[c]),
                    c,
                ),
            )
            chosen.append(best)
        return sorted(chosen)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _rig_geometry(rts: Mapping[str, np.ndarray]) -> _Rig:
    """Rig centre, front and every camera's angles, as :class:`~.camera.RigFrame` defines them
    (the same numbers ``check`` prints), in radians."""
    frame = RigFrame.of(rts)
    azimuth, elevation, direction = {}, {}, {}
    for c, rt in rts.items():
        centre = np.asarray(rt, float)[:3, 3]
        az, el = frame.angles(centre)
        azimuth[c], elevation[c] = math.radians(az), math.radians(el)
        v = centre - frame.centre
        direction[c] = v / (np.linalg.norm(v) or 1.0)
    return _Rig(frame.centre, WORLD_UP, frame.front, azimuth, elevation, direction)

"""What a performance folder holds: the scopes (modalities, cameras, frames) extracted into it
and their union, as recorded in manifest.json, the journal and the completion marker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..output.layout import MODALITIES
from ..selection import FrameRange, Selection, parse_frames


@dataclass(frozen=True)
class Scope:
    """One selection as it applied to a performance: modalities, camera ids (resolved from
    ``ring:N``/``front:N``; None = all) and frames (None = all). A performance folder holds the
    union of the scopes extracted into it."""

    modalities: tuple[str, ...]
    cameras: frozenset[str] | None = None
    frames: FrameRange | None = None
    camera_rule: str = "all"

    def includes(self, modality: str, cam: str | None = None, frame: int | None = None) -> bool:
        """Whether this scope selects ``modality`` (of camera ``cam``, at frame ``frame``)."""
        return (
            modality in self.modalities
            and (cam is None or self.cameras is None or cam in self.cameras)
            and (frame is None or self.frames is None or frame in self.frames)
        )

    def covers(self, other: Scope) -> bool:
        """Whether everything ``other`` selects is selected by this scope too."""
        return (
            set(other.modalities) <= set(self.modalities)
            and (
                self.cameras is None
                or (other.cameras is not None and other.cameras <= self.cameras)
            )
            and (
                self.frames is None
                or (other.frames is not None and self.frames.covers(other.frames))
            )
        )

    def record(self) -> dict[str, Any]:
        """The scope as stored in manifest.json, the journal and the completion marker."""
        return {
            "modalities": ",".join(self.modalities),
            "cameras": self.camera_rule,
            "frames": str(self.frames) if self.frames else "all",
            "camera_ids": None if self.cameras is None else sorted(self.cameras),
        }

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> Scope | None:
        """A recorded scope, or None when the record is malformed (it is then ignored)."""
        try:
            mods = tuple(m for m in MODALITIES if m in str(doc["modalities"]).split(","))
            ids = doc.get("camera_ids")
            cams = None if ids is None else frozenset(f"{int(c):02d}" for c in ids)
            frames = parse_frames(None if doc.get("frames") == "all" else doc.get("frames"))
            return cls(mods, cams, frames, str(doc.get("cameras", "all")))
        except (KeyError, TypeError, ValueError, UsageError):
            return None


def scope_of(selection: Selection, cameras: Sequence[str] | None) -> Scope:
    """The scope of a selection whose camera rule resolved to ``cameras``."""
    return Scope(
        tuple(selection.modalities),
        None if cameras is None else frozenset(cameras),
        selection.frames,
        str(selection.cameras) if selection.cameras else "all",
    )


def union_scopes(previous: Sequence[Scope], new: Scope) -> list[Scope]:
    """Scopes a folder holds after extracting ``new`` into it: previous ones plus the new one,
    minus any covered by another (so a sample followed by everything is just everything)."""
    scopes: list[Scope] = []
    for s in [*previous, new]:
        if any(kept.covers(s) for kept in scopes):
            continue
        scopes = [kept for kept in scopes if not s.covers(kept)] + [s]
    return scopes


def describe_union(scopes: Sequence[Scope]) -> dict[str, str]:
    """One description of what the scopes select, field by field (``a | b`` for several)."""
    records = [s.record() for s in scopes]
    return {k: " | ".join(r[k] for r in records) for k in ("modalities", "cameras", "frames")}


__all__ = ["Scope", "describe_union", "scope_of", "union_scopes"]

"""What an export reports: :class:`ExportSummary` (printed by the CLI, whole with ``--json``)
and :class:`Progress`, the hook the CLI draws a bar of the image work with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
        """JSON-ready form (the ``--json`` document; the record's ``summary``)."""
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
        counts = {
            "linked": self.linked,
            "copied": self.copied,
            "stored": self.stored,
            "reduced": self.reduced,
            "reused": self.reused,
            "converted": self.converted,
        }
        how = [f"{n} {k}" for k, n in counts.items() if n]
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

"""Exports for training: nerfstudio ``transforms.json``, COLMAP models, GaussianAvatars/VHAP data.

``export_nerfstudio(perf, ...)`` and ``export_colmap(perf, frame, ...)`` take a performance from
:func:`renderme360.load`; the conventions they write are in :mod:`.conventions`. The names below
are imported on first use: a video export (``.talkinghead``, ``.clips``) does not load the
GaussianAvatars code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gaussianavatars import export_gaussianavatars
    from .run import ExportSummary, Progress, export_colmap, export_nerfstudio

__all__ = [
    "ExportSummary",
    "Progress",
    "export_colmap",
    "export_gaussianavatars",
    "export_nerfstudio",
]


def __getattr__(name: str) -> Any:
    """``export_gaussianavatars`` from :mod:`.gaussianavatars`, the rest from :mod:`.run`."""
    if name == "export_gaussianavatars":
        from .gaussianavatars import export_gaussianavatars

        return export_gaussianavatars
    if name in __all__:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'renderme360.export' has no attribute {name!r}")

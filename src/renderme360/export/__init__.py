"""Exports for training: nerfstudio ``transforms.json``, COLMAP models, GaussianAvatars/VHAP data.

``export_nerfstudio(perf, ...)`` and ``export_colmap(perf, frame, ...)`` take a performance from
:func:`renderme360.load`; the conventions they write are in :mod:`.conventions`. The names below
are imported on first use: a video export (``.talkinghead``, ``.clips``) does not load the
GaussianAvatars code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .colmap import export_colmap
    from .gaussianavatars import export_gaussianavatars
    from .nerfstudio import export_nerfstudio
    from .summary import ExportSummary, Progress

__all__ = [
    "ExportSummary",
    "Progress",
    "export_colmap",
    "export_gaussianavatars",
    "export_nerfstudio",
]


#: Where each public name lives (imported on first use).
_HOMES = {
    "ExportSummary": ".summary",
    "Progress": ".summary",
    "export_colmap": ".colmap",
    "export_gaussianavatars": ".gaussianavatars",
    "export_nerfstudio": ".nerfstudio",
}


def __getattr__(name: str) -> Any:
    """A public name, from its module (loaded on first use)."""
    if name in _HOMES:
        return vars(import_module(_HOMES[name], __name__))[name]
    raise AttributeError(f"module 'renderme360.export' has no attribute {name!r}")

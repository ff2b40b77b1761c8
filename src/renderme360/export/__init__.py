"""Exports for training: nerfstudio ``transforms.json``, COLMAP models, GaussianAvatars/VHAP data.

``export_nerfstudio(perf, ...)`` and ``export_colmap(perf, frame, ...)`` take a performance from
:func:`renderme360.load`; the conventions they write are in :mod:`.conventions`.
"""

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

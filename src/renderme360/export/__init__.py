"""Exports for training: nerfstudio ``transforms.json``, COLMAP models, GaussianAvatars/VHAP data.

``export_nerfstudio(perf, ...)`` and ``export_colmap(perf, frame, ...)`` take a performance from
:func:`renderme360.load`; the conventions they write are in :mod:`.conventions`.
"""

from .gaussianavatars import export_gaussianavatars
from .run import ExportSummary, Progress, export_colmap, export_nerfstudio

__all__ = [
    "ExportSummary",
    "Progress",
    "export_colmap",
    "export_gaussianavatars",
    "export_nerfstudio",
]

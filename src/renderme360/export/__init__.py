"""Exports for training: nerfstudio/instant-ngp ``transforms.json`` and COLMAP sparse models.

``export_nerfstudio(perf, ...)`` and ``export_colmap(perf, frame, ...)`` take a performance from
:func:`renderme360.load`; the conventions they write are in :mod:`.conventions`.
"""

from .run import ExportSummary, Progress, export_colmap, export_nerfstudio

__all__ = ["ExportSummary", "Progress", "export_colmap", "export_nerfstudio"]

"""Load what was extracted (or the SMC files themselves) for training, and prove its geometry.

``load`` opens one performance over either backend (:mod:`renderme360.output.extracted` for an
extracted folder, :mod:`.smc_source` for SMC files); :mod:`.performance` answers every question
once, :mod:`.dataset` serves (camera, frame) items to training loops, :mod:`.check` reprojects
3D keypoints to prove the calibration conventions.
"""

from __future__ import annotations

from .dataset import FrameDataset
from .many import load_many
from .performance import MODALITIES, SCALES, Performance, Source, load

__all__ = ["MODALITIES", "SCALES", "FrameDataset", "Performance", "Source", "load", "load_many"]

"""Every HDF5 path and constant of the SMC format: the only place that spells them.

See ``SMC_FORMAT.md`` of the dataset for what each group holds in each release.
"""

from __future__ import annotations

from ..errors import InvalidIdError
from ..modalities import BY_BLOB_KIND
from ..naming import FRONTAL_CAMERAS

#: Root attributes every SMC file carries.
REQUIRED_ROOT_ATTRS = ("actor_id", "performance_part")
#: Root attributes describing the actor (the published reader's ``actor_info``).
ACTOR_INFO_KEYS = ("age", "color", "gender", "height", "weight")

#: Top-level groups.
CAMERA = "Camera"
CALIBRATION = "Calibration"
FLAME = "FLAME"
UV_TEXTURE = "UV_texture"
SCAN = "Scan"
SCAN_MASK = "ScanMask"
KEYPOINTS2D = "Keypoints2d"
KEYPOINTS3D = "Keypoints3d"
#: The speech audio group (``audio`` and ``sample_rate`` datasets) of speech parts.
AUDIO_GROUP = "Camera/00/audio"

#: Calibration datasets of one camera and their shapes; RT is camera-to-world, OpenCV axes.
CALIBRATION_SHAPES = {"K": (3, 3), "D": (5,), "RT": (4, 4)}

#: Image-like blobs an SMC stores as encoded bytes.
BLOB_KINDS = tuple(BY_BLOB_KIND)  # color, mask, uv, scan_mask (from the modality table)
#: Cameras that may carry 2-D keypoints: the frontal ones.
KEYPOINT2D_CAMERAS = FRONTAL_CAMERAS

# Upper bounds that keep a hostile file from making us allocate absurd memory.
MAX_BLOB_BYTES = 1 << 30  # one encoded image
MAX_ARRAY_BYTES = 1 << 30  # one numeric dataset (a scan mesh is ~3 MB, FLAME albedo ~0.8 MB)
MAX_FRAMES = 10_000_000
MAX_RESOLUTION = 100_000
MAX_DEVICES = 1000
# An unfiltered dataset larger than this must have its declared bytes stored in the file: HDF5
# would otherwise hand back fill values for storage that was never written (a few-KB file can
# declare gigabytes), which is never real SMC data.
SPARSE_OK_BYTES = 1 << 20
# A filtered (compressed) dataset may expand to at most this many times its stored bytes once it
# is larger than SPARSE_OK_BYTES: a 1 MB gzip "image" must not become 1 GiB in memory and output.
MAX_EXPANSION = 64


def blob_path(kind: str, cam: str | None, frame: str | None) -> tuple[str, str]:
    """HDF5 path of one encoded blob and how to name it in a message.

    ``cam`` and ``frame`` are already normalised keys (``"25"``, ``"17"``).
    """
    if kind in ("color", "mask"):
        return f"{CAMERA}/{cam}/{kind}/{frame}", f"{kind} image for camera {cam} frame {frame}"
    if kind == "uv":
        return f"{UV_TEXTURE}/{frame}", f"UV texture for frame {frame}"
    if kind == "scan_mask":
        return f"{SCAN_MASK}/{cam}", f"scan mask for camera {cam}"
    raise InvalidIdError(f"unknown blob kind {kind!r}: expected one of {BLOB_KINDS}")

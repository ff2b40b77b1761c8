"""renderme360: extract RenderMe360 SMC files into ordinary, byte-exact files.

The package imports lightly (no OpenCV, matplotlib or dask until they are needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .camera import Camera
    from .errors import Renderme360Error
    from .loader import Performance, load
    from .smc.compat import SMCReader

__all__ = ["Camera", "Performance", "Renderme360Error", "SMCReader", "__version__", "load"]


def __getattr__(name: str) -> Any:
    """Load ``SMCReader``, ``load`` and the rest on first use (keeps ``--help`` fast)."""
    if name in ("load", "Performance"):
        from . import loader

        return getattr(loader, name)
    if name == "Camera":
        from .camera import Camera

        return Camera
    if name == "SMCReader":
        from .smc.compat import SMCReader

        return SMCReader
    if name == "Renderme360Error":
        from .errors import Renderme360Error

        return Renderme360Error
    raise AttributeError(f"module 'renderme360' has no attribute {name!r}")

"""renderme360: extract RenderMe360 SMC files into ordinary, byte-exact files.

The package imports lightly (no OpenCV, matplotlib or dask until they are needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .errors import Renderme360Error
    from .smc.compat import SMCReader

__all__ = ["Renderme360Error", "SMCReader", "__version__"]


def __getattr__(name: str) -> Any:
    """Load ``SMCReader`` and the error base class on first use (keeps ``--help`` fast)."""
    if name == "SMCReader":
        from .smc.compat import SMCReader

        return SMCReader
    if name == "Renderme360Error":
        from .errors import Renderme360Error

        return Renderme360Error
    raise AttributeError(f"module 'renderme360' has no attribute {name!r}")

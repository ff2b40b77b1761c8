"""Everything that knows the inside of an SMC (HDF5) file.

``schema`` names every HDF5 path, ``h5safe`` checks untrusted objects, ``reader`` is the
extraction API and ``compat`` the published ``SMCReader`` API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compat import SMCReader
    from .reader import BlobLocation, ExtractionReader

__all__ = ["BlobLocation", "ExtractionReader", "SMCReader"]


def __getattr__(name: str) -> Any:
    """Load the readers on first use (h5py is imported only then)."""
    if name == "SMCReader":
        from .compat import SMCReader

        return SMCReader
    if name in ("ExtractionReader", "BlobLocation"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

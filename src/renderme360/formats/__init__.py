"""Pure file-format code (image sniff/decode, WAV/MP3, PLY, npz): no HDF5, no planning."""

from typing import Protocol


class BinarySink(Protocol):
    """What the streaming writers here (WAV, PLY, npz) need of their output: an open binary
    file, a ``BytesIO``, or the output folder's hashing file (``output/outdir``)."""

    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...

"""Streaming ``.npz`` writer: stacked arrays are written frame by frame, never whole in memory.

The archive is a plain uncompressed zip of ``.npy`` members, exactly what ``numpy.load`` reads
(and no pickled objects).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from typing import BinaryIO

import numpy as np


class NpzWriter:
    """Write ``.npy`` members into a zip stream; use as a context manager."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._zip = zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED)

    def add(self, name: str, array: np.ndarray) -> None:
        """Add one array (object arrays are refused: they would need pickle)."""
        arr = np.asanyarray(array)
        self.add_stacked(name, arr.shape, arr.dtype, [np.ascontiguousarray(arr)])

    def add_stacked(
        self, name: str, shape: Sequence[int], dtype: np.dtype, parts: Iterable[np.ndarray]
    ) -> None:
        """Add an array of ``shape`` whose C-order bytes are the concatenation of ``parts``."""
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"{name}: object arrays are not written (they need pickle)")
        expected = int(np.prod(shape)) * dtype.itemsize
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": tuple(int(s) for s in shape),
        }
        with self._zip.open(f"{name}.npy", mode="w", force_zip64=True) as member:
            np.lib.format.write_array_header_2_0(member, header)
            written = 0
            for part in parts:
                data = np.ascontiguousarray(part, dtype=dtype)
                member.write(data.tobytes() if data.ndim == 0 else memoryview(data).cast("B"))
                written += data.nbytes
            if written != expected:
                raise ValueError(f"{name}: wrote {written} bytes for shape {tuple(shape)}")

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""``.npz`` files: a streaming writer (stacked arrays written frame by frame, never whole in
memory) and the one bounded reader every npz read of an output folder goes through.

The archive is a plain uncompressed zip of ``.npy`` members, exactly what ``numpy.load`` reads
(and no pickled objects). The reader loads only the members asked for, each after its ``.npy``
header's shape x dtype was checked against the zip's declared size and a budget.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from typing import BinaryIO

import numpy as np

from ..errors import BudgetError, SMCFormatError
from . import BinarySink

#: A member may always expand to this many bytes ...
NPZ_MIN_BUDGET = 64 << 20
#: ... and beyond it to this many times its compressed size (members the tool writes are
#: stored, ratio 1; zeros deflate ~1000:1, the shape of a decompression bomb).
NPZ_MAX_RATIO = 32


class NpzWriter:
    """Write ``.npy`` members into a zip stream; use as a context manager."""

    def __init__(self, fileobj: BinarySink) -> None:
        # typeshed asks the file for close() too; ZipFile never closes a file object it was given
        zf = zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED)  # type: ignore[call-overload]
        self._zip = zf

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
                member.write(data.tobytes() if data.ndim == 0 else data.data.cast("B"))
                written += data.nbytes
            if written != expected:
                raise ValueError(f"{name}: wrote {written} bytes for shape {tuple(shape)}")

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def npz_members(fileobj: BinaryIO, what: str) -> list[str]:
    """Names of the arrays of an npz (its ``.npy`` members without the suffix), in file order."""
    with _open_zip(fileobj, what) as zf:
        return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]


def read_npz(
    fileobj: BinaryIO,
    names: Sequence[str] | None,
    what: str,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays ``names`` (every one when None) of an npz, each read only after its header
    passed :func:`check_member`; a missing name, a pickle, a member that declares more than
    it holds or more than the budget is refused with one line naming ``what`` and the member.
    ``max_bytes``: a fixed per-member budget instead of the default rule."""
    with _open_zip(fileobj, what) as zf:
        present = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        wanted = list(present) if names is None else list(dict.fromkeys(names))
        missing = [n for n in wanted if n not in present]
        if missing:
            raise SMCFormatError(f"{what}: no array(s) {', '.join(sorted(missing))}")
        out = {}
        for name in wanted:
            info = zf.getinfo(present[name])
            check_member(zf, info, what, max_bytes)
            try:
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise SMCFormatError(f"{what}: member {name}: unreadable ({exc})") from None
        return out


def check_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, max_bytes: int | None = None
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one ``.npy`` member from its header, refused (BudgetError or
    SMCFormatError, one line) unless: no objects, header + shape x itemsize equals the zip's
    declared uncompressed size, and that size is within the budget (``max_bytes``, else
    :data:`NPZ_MIN_BUDGET` or :data:`NPZ_MAX_RATIO` x its compressed size)."""
    name = f"{what}: member {info.filename[:-4]}"
    try:
        with zf.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy version {version}")
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = reader(member)
            header_len = member.tell()
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        raise SMCFormatError(f"{name}: unreadable .npy header ({exc})") from None
    if dtype.hasobject:
        raise SMCFormatError(f"{name}: holds Python objects (pickle); not read")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    budget = (
        max_bytes
        if max_bytes is not None
        else max(NPZ_MIN_BUDGET, NPZ_MAX_RATIO * info.compress_size)
    )
    if nbytes > budget or info.file_size > budget:
        raise BudgetError(
            f"{name}: declares {tuple(int(n) for n in shape)} {dtype} ({nbytes:,} bytes; zip "
            f"{info.compress_size:,} bytes compressed), above the budget of {budget:,}; not read"
        )
    if header_len + nbytes != info.file_size:
        raise SMCFormatError(
            f"{name}: header declares {nbytes:,} bytes of data but the zip holds "
            f"{info.file_size - header_len:,}; not read"
        )
    return tuple(int(n) for n in shape), dtype


def _open_zip(fileobj: BinaryIO, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fileobj)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SMCFormatError(f"{what}: unreadable npz ({exc})") from None

"""Dataset facts read straight from HDF5 object headers: the survey's fast path.

Opening a dataset through HDF5 and asking for its type, shape, storage and offset costs about
50 us, and a real performance holds 300,000 blobs and tens of thousands of per-frame arrays. An
object header is a few hundred bytes in a documented format (HDF5 File Format Specification,
"Version 1 Object Header" and its Dataspace, Datatype and Data Layout messages), so
:class:`HeaderProbe` reads it with one ``pread`` and accepts only the plain forms: a simple
dataspace, storage inside the file (no external file list, no virtual layout), no shared or
continued messages, no message it does not know. Anything else gives None and the caller takes
HDF5's own checked path, which also explains what is wrong. Callers compare samples of every
group with HDF5's answer (reader.blob_stream, reader._nonempty_frames).

Samples cannot vouch for the members between them, so every header is held to what HDF5 checks
when it opens a dataset: message versions (dataspace 1-2, datatype 1-3, fill value 1-2, layout
3), maximum dimensions not below the dimensions, a fill value inside its message, and the header
and the data inside HDF5's end of allocation (the superblock's "End of File Address"), not only
inside the file: bytes appended past it are not the file's to HDF5. A header HDF5 would refuse
is never located here; HDF5's checked path then refuses it with its own message.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import schema
from .h5safe import BlobLocation
from .source import ByteSource

_DATASPACE, _DATATYPE, _LAYOUT, _FILTERS = 0x0001, 0x0003, 0x0008, 0x000B
_OLD_FILL, _FILL, _OLD_MTIME, _MTIME = 0x0004, 0x0005, 0x000E, 0x0012
#: Harmless messages HDF5 decodes when it opens a dataset: they are checked as it checks them.
_DECODED = frozenset({_OLD_FILL, _FILL, _OLD_MTIME, _MTIME})
_NEEDED = frozenset({_DATASPACE, _DATATYPE, _LAYOUT})
#: Messages that do not change where a dataset's bytes are or how many it declares: NIL
#: (padding), fill value (old and new), attribute, comment, modification time (old and new),
#: attribute info.
_HARMLESS = frozenset({0x0000, 0x0004, 0x0005, 0x000C, 0x000D, 0x000E, 0x0012, 0x0015})
#: Message flags accepted: "constant" and "do not share" (a shared message lives elsewhere).
_FLAGS_OK = 0x01 | 0x04
_COMPACT, _CONTIGUOUS, _CHUNKED = 0, 1, 2  # layout classes; 3 (virtual) is never plain
_UNDEFINED = 0xFFFF_FFFF_FFFF_FFFF
_FIRST_READ = 512  # a blob's header is 272 bytes as h5py writes it
_MAX_HEADER = 64 << 10
_MAX_RANK = 32  # HDF5's own limit
_DATATYPE_VERSIONS = (1, 2, 3)  # HDF5 also reads 4 and 5 (newer float and complex types)
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Superblock version -> (where sizes of offsets and lengths are, where the base address is);
#: the free-space (0/1) or extension (2/3) address and the end-of-file address follow it.
_SUPERBLOCKS = {0: (13, 24), 1: (13, 28), 2: (9, 12), 3: (9, 12)}

_PREFIX = struct.Struct("<BBHII")  # version, reserved, messages, reference count, header size
_MESSAGE = struct.Struct("<HHB3x")  # type, data size, flags
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_TWO_U64 = struct.Struct("<QQ")
_UINT8 = struct.Struct("<IHH")  # size, bit offset, precision

#: Where each message starts in a header and how long it is: type -> (start, size).
Messages = dict[int, tuple[int, int]]


class HeaderProbe:
    """Facts about plain datasets of one open file, from their object header addresses.

    ``base`` is the file's base address (its user block size) and ``file_size`` its size in
    bytes. Headers and data must lie before :attr:`end`, HDF5's end of allocation as the
    superblock at ``base`` records it (never past the file's size); a superblock this probe
    does not know makes ``end`` 0 and every answer None. Only files with 8-byte addresses and
    lengths (every file h5py writes) take this path; :meth:`usable` says whether a file does.
    """

    def __init__(self, source: int | ByteSource, base: int, file_size: int) -> None:
        # the file's bytes by range (an OS descriptor is wrapped: local pread)
        self.source = ByteSource.of_fd(source) if isinstance(source, int) else source
        self.base = base
        self.file_size = file_size
        self.end = min(file_size, allocation_end(self.source, base) or 0)
        self._template: _Template | None = None  # of the last blob header parsed in full

    @staticmethod
    def usable(sizes: tuple[int, int]) -> bool:
        """Whether a file with these (address, length) sizes can be read by this probe."""
        return tuple(sizes) == (8, 8)

    def location(self, header_address: object) -> BlobLocation | None:
        """Where the bytes of a blob lie: a one-dimensional uint8 dataset stored contiguous,
        whole and unfiltered inside the file; None for anything else."""
        head = self._header(header_address)
        if head is None:
            return None
        template = self._template
        if template is not None and template.matches(head):
            (n,) = _U64.unpack_from(head, template.dims)
            if template.most is not None and _U64.unpack_from(head, template.most)[0] < n:
                return None  # HDF5: "dataspace dim 0 size ... is greater than maxdim size"
            address, stored = _TWO_U64.unpack_from(head, template.layout)
            return self._blob(n, address, stored)
        found = self._messages(head, filters_ok=False)
        if found is None:
            return None
        dims = _dims(head, *found[_DATASPACE])
        if dims is None or len(dims) != 1 or not _is_uint8(head, *found[_DATATYPE]):
            return None
        at, size = found[_LAYOUT]
        if size < 18 or head[at] != 3 or head[at + 1] != _CONTIGUOUS:
            return None
        address, stored = _TWO_U64.unpack_from(head, at + 2)
        loc = self._blob(dims[0], address, stored)
        if loc is not None:
            self._template = _Template.of(head, found, at + 2)
        return loc

    def locations(self, addresses: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        """Offsets and sizes (int64 arrays) of the blobs whose headers are at ``addresses``, as
        :meth:`location` gives them, -1 as the offset where it gives None. Headers equal to the
        template outside its varying fields are checked together (numpy); others one by one."""
        n = len(addresses)
        offsets, sizes = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        if n and self._template is None:
            self.location(addresses[0])  # a plain first header makes the template
        template = self._template
        ok = np.zeros(n, bool)
        if n and template is not None:
            ok, off, size = self._match(template, addresses)
            offsets[ok], sizes[ok] = off[ok], size[ok]
        for i in np.flatnonzero(~ok).tolist():
            loc = self.location(addresses[i])
            if loc is not None and loc.offset is not None:  # a header's blob: offset always set
                offsets[i], sizes[i] = loc.offset, loc.nbytes
        return offsets, sizes

    def _match(
        self, t: _Template, addresses: Sequence[object]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which headers equal the template outside its varying fields and hold a whole blob
        inside the allocated file, with the blobs' offsets and sizes (one read per header).
        The varying fields get every check :meth:`location` makes of them, vectorised."""
        blank = bytes(t.size)  # never matches: no version 0 header is plain
        limit = self.end - self.base  # HDF5's end of allocation, as a relative address
        inside = [a if isinstance(a, int) and 0 <= a <= limit - t.size else None for a in addresses]
        wanted = [(self.base + a, t.size) for a in inside if a is not None]
        try:
            got = iter(self.source.read_many(wanted))
        except OSError:
            got = iter([blank] * len(wanted))
        heads = [blank if a is None else next(got) for a in inside]
        heads = [h if len(h) == t.size else blank for h in heads]
        rows = np.frombuffer(b"".join(heads), np.uint8).reshape(len(addresses), t.size)
        ok = np.ones(len(addresses), bool)
        for a, b, seg in t.segments:
            ok &= (rows[:, a:b] == np.frombuffer(seg, np.uint8)).all(axis=1)
        n = rows[:, t.dims : t.dims + 8].copy().view("<u8")[:, 0]
        address = rows[:, t.layout : t.layout + 8].copy().view("<u8")[:, 0]
        stored = rows[:, t.layout + 8 : t.layout + 16].copy().view("<u8")[:, 0]
        ok &= (n > 0) & (n <= schema.MAX_BLOB_BYTES) & (stored == n)
        if t.most is not None:  # HDF5: "dataspace dim 0 size ... is greater than maxdim size"
            ok &= rows[:, t.most : t.most + 8].copy().view("<u8")[:, 0] >= n
        top = np.uint64(max(limit, 0))
        ok &= address < top  # the undefined address too; no overflow below
        ok &= address + n <= top
        offset = address + np.uint64(self.base)
        return ok, offset.astype(np.int64), n.astype(np.int64)

    def _blob(self, n: int, address: int, stored: int) -> BlobLocation | None:
        """The location of ``n`` bytes stored at ``address``, if whole and allocated."""
        if not 0 < n <= schema.MAX_BLOB_BYTES or address == _UNDEFINED or stored != n:
            return None
        offset = self.base + address
        return None if offset + n > self.end else BlobLocation(n, offset)

    def declared_bytes(self, header_address: object) -> int | None:
        """Bytes a dataset with a simple dataspace declares (type size times its shape), its
        storage inside the file (compact, contiguous or chunked, filtered or not); None for
        anything else."""
        head = self._header(header_address)
        found = None if head is None else self._messages(head, filters_ok=True)
        if head is None or found is None:
            return None
        dims = _dims(head, *found[_DATASPACE])
        at, size = found[_DATATYPE]
        if dims is None or size < 8 or head[at] >> 4 not in _DATATYPE_VERSIONS:
            return None
        (n,) = _U32.unpack_from(head, at + 4)
        for d in dims:
            n *= d
        at, size = found[_LAYOUT]
        if size < 2 or head[at] != 3 or head[at + 1] > _CHUNKED:
            return None
        if head[at + 1] == _CONTIGUOUS and not self._allocated(head, at, size, n):
            return None
        return n

    def _allocated(self, head: bytes, at: int, size: int, n: int) -> bool:
        """Whether the storage of a version 3 contiguous layout message, of a dataset that
        declares ``n`` bytes, is unallocated or lies inside HDF5's end of allocation (HDF5
        refuses to open it otherwise)."""
        if size < 18:
            return False
        address, stored = _TWO_U64.unpack_from(head, at + 2)
        return address == _UNDEFINED or self.base + address + max(stored, n) <= self.end

    def _header(self, header_address: object) -> bytes | None:
        """The bytes of the version 1 object header at ``header_address`` (and possibly some
        after it); None when there is none or it does not lie inside HDF5's end of
        allocation."""
        if not isinstance(header_address, int) or not 0 <= header_address < self.end - self.base:
            return None
        start = self.base + header_address
        try:
            head = self.source.read_at(start, _FIRST_READ)
            if len(head) < _PREFIX.size:
                return None
            version, reserved, _count, _refs, size = _PREFIX.unpack_from(head)
            if version != 1 or reserved or size > _MAX_HEADER:
                return None
            if 16 + size > len(head):  # the 12-byte prefix is padded to 16 in version 1
                head = self.source.read_at(start, 16 + size)
        except OSError:
            return None
        if len(head) < 16 + size or start + 16 + size > self.end:
            return None
        return head

    def _messages(self, head: bytes, filters_ok: bool) -> Messages | None:
        """Where the dataspace, datatype and layout messages of a header are; None when it
        holds a message outside the plain form."""
        _version, _reserved, count, _refs, size = _PREFIX.unpack_from(head)
        end = 16 + size
        found: Messages = {}
        seen = 0
        pos = 16
        while pos + 8 <= end:
            kind, length, flags = _MESSAGE.unpack_from(head, pos)
            seen += 1
            if pos + 8 + length > end or length % 8 or flags & ~_FLAGS_OK:  # v1: 8-aligned
                return None
            if kind in _NEEDED:
                if kind in found:
                    return None
                found[kind] = (pos + 8, length)
            elif kind in _DECODED and not _decodes(head, kind, pos + 8, length):
                return None  # HDF5 would refuse to open the dataset
            elif kind not in _HARMLESS and not (filters_ok and kind == _FILTERS):
                return None  # external files, continuation, links, ...
            pos += 8 + length
        if seen != count or pos != end or len(found) != 3:
            return None
        return found


@dataclass(frozen=True)
class _Template:
    """A blob header parsed in full, less the fields that differ from one blob to the next
    (shape, data address and size). A header equal to it outside those fields has the same
    messages, types and flags, so only the differing fields need checking: h5py writes every
    blob header of a file this way."""

    size: int  # header bytes, prefix included
    segments: tuple[tuple[int, int, bytes], ...]  # (start, stop, bytes) to compare
    dims: int  # where the one dimension is
    most: int | None  # where its maximum is, when the header has one
    layout: int  # where the data address and stored size are

    @classmethod
    def of(cls, head: bytes, found: Messages, layout: int) -> _Template | None:
        at, _size = found[_DATASPACE]
        dims = at + (8 if head[at] == 1 else 4)
        most = dims + 8 if head[at + 2] & 0x01 else None
        varying = sorted([(dims, dims + (16 if most else 8)), (layout, layout + 16)])
        size = 16 + _PREFIX.unpack_from(head)[4]
        if size > _FIRST_READ or varying[0][1] > varying[1][0]:
            return None
        cuts = [0, *(x for span in varying for x in span), size]
        pairs = zip(cuts[::2], cuts[1::2], strict=True)
        return cls(size, tuple((a, b, head[a:b]) for a, b in pairs), dims, most, layout)

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` equals this header outside the differing fields."""
        return len(head) >= self.size and all(head[a:b] == seg for a, b, seg in self.segments)


def allocation_end(source: int | ByteSource, base: int) -> int | None:
    """HDF5's end of allocation of a file as an offset in it: the superblock's "End of File
    Address" (versions 0 to 3, 8-byte addresses), read from the superblock at ``base``; None
    when there is none this reader knows or its base address is not ``base``. HDF5 reads
    nothing past it, whatever the file's size."""
    try:
        src = ByteSource.of_fd(source) if isinstance(source, int) else source
        head = src.read_at(base, 64)
    except OSError:
        return None
    if len(head) < 64 or head[:8] != _SIGNATURE or head[8] not in _SUPERBLOCKS:
        return None
    sizes, at = _SUPERBLOCKS[head[8]]
    stored_base, _, end = struct.unpack_from("<QQQ", head, at)
    if head[sizes : sizes + 2] != b"\x08\x08" or stored_base != base or end < base:
        return None
    return end  # an absolute address, as the base address is


def _dims(head: bytes, at: int, size: int) -> tuple[int, ...] | None:
    """Dimensions of a simple dataspace message (versions 1 and 2); None for a scalar or null
    dataspace, one with a permutation, or one whose maximum dimensions are below its
    dimensions (HDF5 refuses it)."""
    if size < 4 or head[at + 2] & ~0x01:  # flags: maximum dimensions present, nothing else
        return None
    rank = head[at + 1]
    if head[at] == 1:
        dims = at + 8
    elif head[at] == 2 and head[at + 3] == 1:  # version 2 names its kind: 1 is simple
        dims = at + 4
    else:
        return None
    count = 2 * rank if head[at + 2] & 0x01 else rank
    if not 0 < rank <= _MAX_RANK or dims + 8 * count > at + size:
        return None
    values = struct.unpack_from(f"<{count}Q", head, dims)
    shape, most = values[:rank], values[rank:]
    if most and any(m < n for n, m in zip(shape, most, strict=True)):  # unlimited is largest
        return None
    return shape


def _is_uint8(head: bytes, at: int, size: int) -> bool:
    """Whether a datatype message describes an unsigned 8-bit integer using all 8 bits."""
    if size < 12 or head[at] & 0x0F != 0 or head[at] >> 4 not in _DATATYPE_VERSIONS:
        return False  # class 0: fixed-point
    if head[at + 1] & 0x08 or head[at + 2] or head[at + 3]:  # signed, or bits HDF5 reserves
        return False
    return _UINT8.unpack_from(head, at + 4) == (1, 0, 8)


def _decodes(head: bytes, kind: int, at: int, size: int) -> bool:
    """Whether a fill value (old, or new of version 1 or 2) or modification time (old or new)
    message decodes as HDF5 decodes it when it opens a dataset: a known version, the fill
    value inside the message, a time of 14 digits."""
    if kind == _MTIME:
        return size >= 8 and head[at] == 1
    if kind == _OLD_MTIME:
        return size >= 14 and head[at : at + 14].isdigit()
    if kind == _OLD_FILL:
        return size >= 4 and 4 + _U32.unpack_from(head, at)[0] <= size
    if size < 4 or head[at] not in (1, 2):  # version 3 comes with version 2 headers
        return False
    if head[at] == 2 and not head[at + 3]:  # no fill value defined: no size either
        return True
    return size >= 8 and 8 + _U32.unpack_from(head, at + 4)[0] <= size

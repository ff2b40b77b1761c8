"""Checks and low-level probes of HDF5 objects from untrusted files: one place for them all.

Every size, dtype, name and storage check that stands between a downloaded file and memory or
the filesystem lives here, so hardening has one obvious home. Checks read headers only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from h5py import h5d, h5g, h5l, h5s, h5t

from ..errors import SMCFormatError, UnsafeNameError, one_line
from . import schema

if TYPE_CHECKING:
    from .source import Location

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob's bytes lie: ``offset`` in the file when stored contiguous and unfiltered."""

    nbytes: int
    offset: int | None  # None: chunked, filtered or external storage; read through HDF5


def open_readonly(path: Path) -> h5py.File:
    """Open an HDF5 file read-only so that it shares with every other opener in the process.

    First with HDF5's default file locking, as ``h5py.File(path)`` and the published reader do.
    HDF5 refuses to open one file twice in a process with different locking flags ("file locking
    flag values don't match"), so the other settings are then tried in turn; where no lock can be
    taken (a filesystem without locks, another process writing the file) the file is read without
    one. Any other failure is raised at once.
    """
    first: BaseException | None = None
    for locking in (None, False, True, "best-effort"):
        try:
            smc = h5py.File(path, "r", locking=locking)
        except (OSError, ValueError) as exc:
            if "lock" not in str(exc).lower():  # not HDF5, truncated, no permission: no retry
                raise
            if isinstance(exc, BlockingIOError) and first is None:
                log.warning(
                    "%s: another process holds a write lock on it; reading without a lock", path
                )
            first = first or exc
            continue
        if first is not None:
            log.debug("%s: opened with locking=%r after: %s", path, locking, one_line(first))
        return smc
    assert first is not None
    raise first


def open_failure(exc: BaseException) -> str:
    """Why HDF5 could not open a file, in words a user can act on."""
    text = one_line(exc)
    m = _TRUNCATED_RE.search(text)
    if m:
        have, want = int(m["eof"]), int(m["stored"])
        return (
            f"file is truncated: {have:,} of {want:,} bytes present; "
            "the download is probably incomplete"
        )
    if "file signature not found" in text:
        return "no HDF5 signature: not an HDF5 file, or its first bytes are damaged"
    return text


_TRUNCATED_RE = re.compile(r"truncated file: eof = (?P<eof>\d+).*stored_eof = (?P<stored>\d+)")


def to_str(value: Any) -> str:
    """Decode an attribute that may come back as str, bytes or a 0-d numpy value."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    # h5py hands undecodable bytes back as lone surrogates, which no UTF-8 writer accepts
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


def to_py(value: Any) -> Any:
    """Attribute -> plain, JSON-safe Python (str for text, int/float for scalars, lists).

    Whatever a hostile file stores (references, compound values, NaN) comes back as something
    ``json.dumps`` accepts without a ``default``: unknown objects and non-finite floats as text.
    """
    if isinstance(value, np.ndarray):
        if value.shape == ():
            return to_py(value[()])
        return [to_py(v) for v in value.tolist()]
    if isinstance(value, np.generic) and not isinstance(value, (np.bytes_, np.str_)):
        value = value.item()
    if isinstance(value, (bytes, np.bytes_, str)):
        return to_str(value)
    if isinstance(value, (list, tuple)):
        return [to_py(v) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    return str(value)


# ---------------------------------------------------------------------- inside-the-file guard
# HDF5 can make an object's bytes come from outside the file: an external link (another file),
# external storage (raw bytes of any file) or a virtual dataset (slices of other files). Every
# object is reached through get/child, which never follow an external link, and every dataset
# passes checked_dataset (or refuse_outside_storage when probed low-level), which refuses
# external and virtual storage before a byte is read. Soft links stay inside the file and work.

#: Soft links followed while resolving one path (a chain or loop of soft links ends here).
MAX_SOFT_HOPS = 16
_ANY_NAME_RE = re.compile(r".*", re.DOTALL)


def inside_path(path: Location, root: h5py.File, where: str) -> str | None:
    """``where`` rewritten to hard links only (soft links resolved inside the file), or None when
    it does not exist. An external or user-defined link on the way is refused before HDF5
    follows it (following would open the other file, which may even be a FIFO)."""
    parts = [p for p in where.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        group_id = _open_group(root.id, "/" + "/".join(done))
        bname = name.encode("utf-8", "surrogateescape")
        if group_id is None or not group_id.links.exists(bname):
            return None
        kind = group_id.links.get_info(bname).type
        if kind == h5l.TYPE_HARD:
            done.append(name)
            continue
        at = "/" + "/".join([*done, name])
        if kind != h5l.TYPE_SOFT:
            raise UnsafeNameError(f"{path}: {_link_refusal(kind)}: {at}")
        hops += 1
        if hops > MAX_SOFT_HOPS:
            raise SMCFormatError(f"{path}: soft links loop or chain too long at {at}")
        target = group_id.links.get_val(bname).decode("utf-8", "surrogateescape")
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p] + parts
    return "/" + "/".join(done)


def get(path: Location, root: h5py.File, where: str) -> Any:
    """The object at ``where`` (from the root), or None when absent; refuses external links,
    and names the object HDF5 refuses to open (a damaged object header)."""
    inside = inside_path(path, root, where)
    if inside is None:
        return None
    try:
        return root[inside]
    except (KeyError, OSError, RuntimeError) as exc:  # it exists: HDF5 cannot open it
        raise SMCFormatError(f"{path}: cannot open {inside}: {one_line(exc)}") from exc


def child(path: Location, group: Any, name: str) -> Any:
    """Member ``name`` of a group reached through :func:`get`, or None when absent (or when
    ``group`` is no group)."""
    if not isinstance(group, h5py.Group):
        return None
    return get(path, group.file, f"{group.name}/{name}")


def member_links(path: Location, group: Any, pattern: Any, what: str) -> dict[str, int]:
    """Member names of a group -> link type, each name checked against the documented grammar
    and each link against the inside-the-file rule (one low-level pass over the group)."""
    return {key: kind for key, (kind, _) in member_link_infos(path, group, pattern, what).items()}


def member_link_infos(
    path: Location, group: Any, pattern: Any, what: str
) -> dict[str, tuple[int, object]]:
    """As :func:`member_links`, with each link's HDF5 address beside its type (the object
    header's address for a hard link; what HDF5 reports otherwise, unused)."""
    if not isinstance(group, h5py.Group):
        raise SMCFormatError(f"{path}: {group.name} should be a group")
    links: dict[str, tuple[int, object]] = {}

    def visit(name: bytes, info: Any) -> None:
        links[name.decode("utf-8", "surrogateescape")] = (info.type, info.u)

    group.id.links.iterate(visit, info=True)
    for key, (kind, _) in links.items():
        if not pattern.fullmatch(key):
            raise UnsafeNameError(
                f"{path}: refusing {what} key {key!r} in {group.name}: not of the documented form"
            )
        if kind not in (h5l.TYPE_HARD, h5l.TYPE_SOFT):
            raise UnsafeNameError(f"{path}: {_link_refusal(kind)}: {group.name.rstrip('/')}/{key}")
    return links


def refuse_outside_storage(dsid: Any, prefix: str, where: str) -> None:
    """Refuse a dataset whose bytes would come from outside the file: external storage (raw
    bytes of another file) or a virtual layout (slices of other datasets); header only."""
    plist = dsid.get_create_plist()
    if plist.get_external_count():
        raise SMCFormatError(f"{prefix}external storage is not allowed: {where}")
    if plist.get_layout() == h5d.VIRTUAL:
        raise SMCFormatError(f"{prefix}virtual dataset is not allowed: {where}")


def check_member_storage(path: Location, group: Any, name: str, link: int) -> None:
    """Refuse a member whose bytes lie outside the file (low-level for a hard link)."""
    if link == h5l.TYPE_HARD:
        dsid = open_dataset(group.id, name)
        if dsid is not None:
            refuse_outside_storage(dsid, f"{path}: ", f"{group.name}/{name}")
        return
    obj = child(path, group, name)
    if isinstance(obj, h5py.Dataset):
        checked_dataset(path, obj)


def _link_refusal(kind: int) -> str:
    """What a link of this type is called in a refusal message."""
    if kind == h5l.TYPE_EXTERNAL:
        return "external link is not allowed"
    return "user-defined link is not allowed"


def _open_group(file_id: Any, where: str) -> Any:
    """Low-level id of the group at a hard-link-only path, or None when it is no group."""
    try:
        return h5g.open(file_id, where.encode("utf-8", "surrogateescape"))
    except (KeyError, ValueError, TypeError, OSError, RuntimeError):
        return None


def checked_keys(path: Location, group: Any, pattern: Any, what: str) -> list[str]:
    """Member names of a group, each checked against the documented grammar (and no member
    may be an external link)."""
    return list(member_links(path, group, pattern, what))


def safe_member_names(path: Location, group: h5py.Group) -> list[str]:
    names = list(member_links(path, group, _ANY_NAME_RE, "dataset"))
    for key in names:
        if not key.isidentifier():
            raise UnsafeNameError(f"{path}: refusing dataset name {key!r} in {group.name}")
    return names


def read_array(path: Location, group: Any, name: str, dset: Any = None) -> np.ndarray:
    """The checked array ``group/name`` (``dset``: that member, already looked up)."""
    dset = child(path, group, name) if dset is None else dset
    if not isinstance(dset, h5py.Dataset):
        raise SMCFormatError(f"{path}: {getattr(group, 'name', '?')}/{name} is missing")
    return np.asarray(checked_dataset(path, dset)[()])


def checked_stack(path: Location, dset: h5py.Dataset) -> None:
    """A per-frame array stacked on axis 0: sane size, and a sane frame count even when
    a row holds zero bytes (the frame list is built from the count)."""
    checked_dataset(path, dset)
    if dset.ndim >= 1 and dset.shape[0] > schema.MAX_FRAMES:
        raise SMCFormatError(f"{path}: {dset.name} declares {dset.shape[0]:,} frames")


def checked_dataset(
    path: Location, dset: Any, kinds: str = "biuf", limit: int = schema.MAX_ARRAY_BYTES
) -> h5py.Dataset:
    """``dset`` if its dtype kind is one of ``kinds`` and its declared size is sane.

    Checked from the header alone, before anything is read: a hostile or corrupt file can
    declare any shape, and reading it would allocate that much memory.
    """
    if not isinstance(dset, h5py.Dataset):
        raise SMCFormatError(f"{path}: {dset.name} should be a dataset")
    what = f"{path}: {dset.name}"
    if dset.dtype.kind not in kinds:
        kind = "non-numeric" if kinds == "biuf" else "unexpected"
        raise SMCFormatError(f"{what} has {kind} dtype {dset.dtype}")
    refuse_outside_storage(dset.id, f"{path}: ", dset.name)
    nbytes = declared_bytes(dset)
    if nbytes > limit:
        raise SMCFormatError(
            f"{what} declares shape {dset.shape} {dset.dtype} ({nbytes:,} bytes), too large "
            f"(limit {limit:,}); refusing to read it"
        )
    if nbytes > schema.SPARSE_OK_BYTES:
        stored = int(dset.id.get_storage_size())
        if not is_filtered(dset):
            if stored < nbytes:
                raise SMCFormatError(
                    f"{what} declares {nbytes:,} bytes but only {stored:,} are stored "
                    "(never written or truncated)"
                )
        elif nbytes > schema.MAX_EXPANSION * stored:
            raise SMCFormatError(
                f"{what} would expand from {stored:,} stored bytes to {nbytes:,} "
                f"(more than {schema.MAX_EXPANSION}x); refusing to read it"
            )
    return dset


def plain_blob_location(group_id: Any, name: str) -> BlobLocation | None:
    """Location of a contiguous, unfiltered, fully stored 1-D uint8 dataset; None for anything
    else (the caller then takes the checked path, which explains what is wrong)."""
    dsid = open_dataset(group_id, name)
    if dsid is None:
        return None
    dtype = dsid.get_type()
    if not (
        isinstance(dtype, h5t.TypeIntegerID)
        and dtype.get_size() == 1
        and dtype.get_sign() == h5t.SGN_NONE
    ):
        return None
    space = dsid.get_space()
    if space.get_simple_extent_type() != h5s.SIMPLE or space.get_simple_extent_ndims() != 1:
        return None
    (n,) = space.get_simple_extent_dims()
    plist = dsid.get_create_plist()
    if (
        not 0 < n <= schema.MAX_BLOB_BYTES
        or plist.get_layout() != h5d.CONTIGUOUS  # filters need chunks: none here
        or plist.get_external_count()
    ):
        return None
    offset = dsid.get_offset()
    if offset is None or dsid.get_storage_size() != n:
        return None
    return BlobLocation(int(n), int(offset))


def open_dataset(group_id: Any, name: str) -> Any:
    """The low-level id of dataset ``name`` in a group, or None when it is not one."""
    try:
        return h5d.open(group_id, name.encode())
    except (KeyError, ValueError, TypeError, OSError, RuntimeError):
        return None


def plain_nbytes(group_id: Any, name: str, prefix: str, where: str) -> int | None:
    """Declared bytes of a simple numeric dataset, read from its header alone (its storage
    checked to be inside the file); None for anything else (the caller then takes the checked
    high-level path)."""
    dsid = open_dataset(group_id, name)
    if dsid is None:
        return None
    refuse_outside_storage(dsid, prefix, where)
    space = dsid.get_space()
    if space.get_simple_extent_type() != h5s.SIMPLE:
        return None
    n = dsid.get_type().get_size()
    for s in space.get_simple_extent_dims():
        n *= int(s)
    return n


def declared_bytes(dset: h5py.Dataset) -> int:
    """Bytes a dataset declares (exact Python integers: no overflow on absurd shapes)."""
    shape = dset.shape
    if shape is None:  # null dataspace
        return 0
    n = dset.dtype.itemsize
    for s in shape:
        n *= int(s)
    return n


def is_filtered(dset: h5py.Dataset) -> bool:
    """Whether a dataset's storage goes through filters (compression): stored < declared is fine."""
    return dset.chunks is not None and dset.id.get_create_plist().get_nfilters() > 0


def contiguous_offset(dset: h5py.Dataset) -> int | None:
    """Byte offset of a contiguous, unfiltered, fully stored dataset; None otherwise."""
    if dset.chunks is not None or dset.size == 0:
        return None
    plist = dset.id.get_create_plist()
    if plist.get_nfilters() or plist.get_external_count():
        return None
    offset = dset.id.get_offset()
    if offset is None or dset.id.get_storage_size() != dset.size:
        return None
    return int(offset)


#: Ceiling of HDF5's metadata cache per open file. HDF5's default (32 MB of on-disk header
#: bytes, several times that in memory) fills up while every blob of a 300,000-image
#: performance is probed once and never read again. Measured on 60 cameras, probing peaks at
#: 76 MB for 30,000 blobs and 116 MB for 72,000 with the default, 47 MB and 53 MB for 30,000
#: and 120,000 with this cap, at no cost in speed (each header is visited once).
METADATA_CACHE_BYTES = 256 << 10


def bound_metadata_cache(f: h5py.File) -> None:
    """Cap the metadata cache of an open file at :data:`METADATA_CACHE_BYTES` (best effort)."""
    try:
        cfg = f.id.get_mdc_config()
        cfg.set_initial_size = True
        cfg.initial_size = min(cfg.initial_size, METADATA_CACHE_BYTES)
        cfg.min_size = min(cfg.min_size, cfg.initial_size)
        cfg.max_size = METADATA_CACHE_BYTES
        f.id.set_mdc_config(cfg)
    except (AttributeError, RuntimeError, ValueError, OSError):  # an HDF5 build without it
        pass

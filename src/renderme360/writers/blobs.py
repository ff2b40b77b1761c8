"""Encoded images (colour, masks, UV textures, scan masks): stored bytes copied as they are.

The fast path reads the bytes straight from the file at the offset HDF5 reports (one ``pread``,
no HDF5 call); chunked or filtered datasets fall back to reading through h5py. Without checksums
the copy happens kernel-side (``copy_file_range``). ``reencode`` decodes and re-encodes instead,
only when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Renderme360Error, SMCFormatError
from ..formats.image import decode_image, encode, image_extension
from ..modalities import reencoded, spec
from ..output.outdir import OVERLAP_HASH_BYTES, PendingDigest, Written

if TYPE_CHECKING:
    from ..tasks import Task
    from . import WriteContext


def _with_ext(key: str, ext: str) -> str:
    stem, dot, _old = key.rpartition(".")
    return f"{stem}.{ext}" if dot else f"{key}.{ext}"


def read_stored(ctx: WriteContext, task: Task) -> bytes:
    """The stored bytes of the blob a task names (fast path when an offset is known)."""
    if task.offset is not None:
        return ctx.pread(task.offset, task.nbytes, task)
    assert task.blob_kind is not None, f"{task.key}: a blob task without its blob kind"
    return ctx.reader.read_blob(task.blob_kind, task.camera, task.frame)


def write_blob(ctx: WriteContext, task: Task) -> Written | PendingDigest:
    """Write one encoded image under the extension its magic bytes say."""
    offset, nbytes = task.offset, task.nbytes
    if reencoded(task.modality, ctx.options.image_mode):
        return _reencode(ctx, task, read_stored(ctx, task), f"{ctx.source}: {task.describe_blob()}")
    if offset is not None and not ctx.options.checksum and not ctx.remote:
        head = ctx.pread(offset, min(16, nbytes), task)
        ext = _checked_ext(head, ctx, task)
        with ctx.out.open_atomic(_with_ext(task.key, ext), hash_output=False) as f:
            f.copy_range(ctx.fd, offset, nbytes)
        return f.written(_with_ext(task.key, ext))
    data = read_stored(ctx, task)
    key = _with_ext(task.key, _checked_ext(data, ctx, task))
    if ctx.options.checksum and len(data) >= OVERLAP_HASH_BYTES:
        return PendingDigest(ctx.out.write_bytes(key, data, hash_output=False), data)
    return ctx.out.write_bytes(key, data, ctx.options.checksum)


def _checked_ext(data: bytes, ctx: WriteContext, task: Task) -> str:
    ext = image_extension(data)
    if ext is None:
        raise SMCFormatError(
            f"{ctx.source}: {task.describe_blob()}: stored bytes are not an encoded image "
            "(unknown magic)"
        )
    return ext


def _reencode(ctx: WriteContext, task: Task, data: bytes, what: str) -> Written:
    s = spec(task.modality)
    ext = s.reencode or "jpg"
    img = decode_image(data, grayscale=s.grayscale, what=what)
    try:
        buf = encode(img, "." + ext, ctx.options.jpeg_quality)
    except Renderme360Error:
        raise SMCFormatError(f"{what}: could not re-encode") from None
    return ctx.out.write_bytes(_with_ext(task.key, ext), buf, ctx.options.checksum)

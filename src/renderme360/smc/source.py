"""Where an SMC file's bytes come from: a local file or any fsspec URL, read by byte range.

:class:`ByteSource` is the one way this package reads an SMC file's bytes outside HDF5's own
file driver: the header fast path (:mod:`.headers`), blob copies (:mod:`..writers`), and, for a
remote file, HDF5 itself through :class:`SourceFile` (``h5py.File`` on a Python file object).
A local file is read with ``os.pread``; a URL (``s3://``, ``gs://``, ``https://``, any protocol
whose fsspec package is installed) with ranged requests, retried with bounded backoff, through a
bounded block cache for HDF5's small metadata reads and coalesced, parallel, bounded read-ahead
for blob runs. Every source counts the requests and bytes it fetched.

fsspec is imported only when a URL is given: the base install stays light. A URL may carry
credentials (``user:pass@``, a signed query): :func:`redact` is how it is ever shown or written.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import NotFoundError, SMCFormatError, SMCNotFoundError, SMCOpenError, UsageError
from ..tasks import SourceId

log = logging.getLogger(__name__)

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]*@")
_QUERY_RE = re.compile(r"(://[^\s?#]*)\?[^\s#]*")

#: HDF5's own reads of a remote file go through a cache of blocks of this size ...
BLOCK = 2 << 10
#: ... holding at most this many bytes.
CACHE_BYTES = 32 << 20
#: Two ranges at most this far apart are fetched in one request (the gap is fetched too).
MAX_GAP = 16 << 10
#: A coalesced request is at most this long (longer runs are split, fetched in parallel).
MAX_SPAN = 8 << 20
#: Requests in flight at once, and bytes fetched ahead of the writer at most.
PARALLEL = 8
AHEAD_BYTES = 64 << 20
#: Attempts of one request (connection reset, 5xx, timeout) and the first backoff in seconds.
ATTEMPTS = 5
BACKOFF = 0.2


def is_url(location: object) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a local path."""
    if isinstance(location, RemotePath):
        return True
    return isinstance(location, str) and bool(_URL_RE.match(location))


#: Where an SMC file is: a local path or a URL (what :func:`as_location` returns).
Location: TypeAlias = "Path | RemotePath"


def redact(text: str) -> str:
    """``text`` with every URL's credentials (``user:pass@``, query string) replaced by ``***``:
    the only form in which a URL is printed or written."""
    return _QUERY_RE.sub(r"\1?***", _USERINFO_RE.sub(r"\1***@", text))


def as_location(location: str | os.PathLike[str] | RemotePath) -> Location:
    """A local path (``os.PathLike``), or a :class:`RemotePath` for a URL; ``file://`` URLs
    become local paths (read natively)."""
    if isinstance(location, RemotePath):
        return location
    text = os.fspath(location) if isinstance(location, os.PathLike) else location
    if isinstance(text, str) and is_url(text):
        if text.lower().startswith("file://"):
            from urllib.parse import unquote, urlsplit

            return Path(unquote(urlsplit(text).path))
        return RemotePath(text)
    return Path(text)


class RemotePath:
    """A file or folder URL with the few path manners discovery and messages need; ``str()``
    is the redacted form, ``.url`` the one to open."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def _path(self) -> str:
        return self.url.split("?", 1)[0].split("#", 1)[0]

    @property
    def name(self) -> str:
        """Last path segment."""
        return self._path().rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        """``.smc`` of ``.../x.smc``."""
        name = self.name
        return name[name.rfind(".") :] if "." in name.lstrip(".") else ""

    @property
    def parts(self) -> tuple[str, ...]:
        """The path's segments (depth, for sorting)."""
        return tuple(p for p in self._path().split("/") if p)

    def absolute(self) -> RemotePath:
        """Itself: a URL is absolute."""
        return self

    def is_file(self) -> bool:
        """Whether the URL names a file (one request)."""
        try:
            return stat_source(self).size >= 0
        except OSError:
            return False

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __lt__(self, other: RemotePath) -> bool:
        return self.url < other.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemotePath, (self.url,))


@dataclass(frozen=True)
class Stamp:
    """What identifies one version of a file: size, modification time (ns, 0 when unknown) and
    the server's ETag ("" for a local file)."""

    size: int
    mtime_ns: int
    etag: str = ""


def _fs(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path inside it."""
    try:
        import fsspec
    except ImportError:
        raise UsageError(
            f"{redact(url)}: reading URLs needs fsspec: pip install 'renderme360[remote]'"
        ) from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise UsageError(
            f"{redact(url)}: {redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}"
        ) from None


def _fault(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


def _retried(what: str, call: Any, *args: Any) -> Any:
    """``call(*args)``, retried with exponential backoff on transient faults (connection reset,
    timeout, 5xx); a missing file or a refused permission is not retried."""
    for attempt in range(ATTEMPTS):
        try:
            return call(*args)
        except (FileNotFoundError, PermissionError, SMCFormatError):
            raise
        except Exception as exc:
            if attempt == ATTEMPTS - 1:
                raise SMCOpenError(
                    f"{what}: read failed after {ATTEMPTS} attempts: {_fault(exc)}"
                ) from None
            log.info("%s: %s; retrying", what, _fault(exc))
            time.sleep(min(BACKOFF * 2**attempt, 3.0))
    raise AssertionError("unreachable")


def _stamp_of(info: dict[str, Any]) -> Stamp:
    size = info.get("size")
    if not isinstance(size, int) or size < 0:
        raise SMCOpenError("the server does not say the file's size")
    etag = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or "").strip('"')
    mtime = info.get("LastModified") or info.get("mtime") or info.get("updated") or 0
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    try:
        mtime_ns = int(float(mtime) * 1e9)
    except (TypeError, ValueError):
        mtime_ns = 0
    return Stamp(size, mtime_ns, etag[:200])


def stat_source(location: Any) -> Stamp:
    """The :class:`Stamp` of a local file or URL, asked afresh (no cached listing); OSError
    (SMCNotFoundError when missing) when it cannot be read."""
    location = as_location(location)
    if not isinstance(location, RemotePath):
        st = os.stat(location)
        return Stamp(st.st_size, st.st_mtime_ns)
    fs, path = _fs(location.url)
    fs.invalidate_cache(path)
    try:
        info = _retried(str(location), fs.info, path)
    except FileNotFoundError:
        raise SMCNotFoundError(f"{location}: no such file") from None
    if info.get("type") == "directory":
        raise SMCOpenError(f"{location}: not a regular file")
    try:
        return _stamp_of(info)
    except SMCOpenError as exc:
        raise SMCOpenError(f"{location}: {exc}") from None


def list_files(root: RemotePath, suffix: str) -> list[RemotePath]:
    """Every file under a URL (or the URL itself when it names a file) ending in ``suffix``."""
    fs, path = _fs(root.url)
    try:
        info = _retried(str(root), fs.info, path)
    except FileNotFoundError:
        raise NotFoundError(f"{root}: no such file or folder") from None
    except SMCOpenError as exc:
        raise NotFoundError(str(exc)) from None
    if info.get("type") != "directory" and not root.url.endswith("/"):
        return [root] if root.name.endswith(suffix) else []
    found = _retried(str(root), fs.find, path)
    urls = [f if is_url(f) else fs.unstrip_protocol(f) for f in found]
    return sorted(RemotePath(u) for u in urls if u.split("?", 1)[0].endswith(suffix))


class FetchStats:
    """Requests made and bytes fetched (thread-safe counters)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, requests: int, nbytes: int) -> None:
        """Count requests and bytes."""
        with self._lock:
            self.requests += requests
            self.bytes += nbytes

    def as_dict(self) -> dict[str, int]:
        """``{"requests": ..., "bytes": ...}``."""
        return {"requests": self.requests, "bytes": self.bytes}


class ByteSource:
    """Bytes of one SMC file by range: ``os.pread`` on a local file, ranged requests on a URL.

    Use :meth:`open` (or :meth:`of_fd` for a descriptor someone else owns); ``stats`` counts what
    was fetched. ``expected`` (a :class:`Stamp`) makes :meth:`check` refuse a file that changed.
    """

    def __init__(self, location: Any, fd: int | None = None, owns_fd: bool = False) -> None:
        self.location = location
        self.stats = FetchStats()
        self._fd, self._owns_fd = fd, owns_fd
        self._remote = fd is None
        self._fs: Any = None
        self._path = ""
        self._pool: ThreadPoolExecutor | None = None
        self.stamp = Stamp(0, 0)
        if fd is not None:
            self.stamp = Stamp(os.fstat(fd).st_size, 0)

    @classmethod
    def open(cls, location: Any, stamp: Stamp | None = None) -> ByteSource:
        """Open a local path or URL for reading (SMCNotFoundError / SMCOpenError). ``stamp``: the
        version of a URL the caller has just confirmed (no request to ask it again)."""
        location = as_location(location)
        if not isinstance(location, RemotePath):
            try:
                fd = os.open(location, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise SMCNotFoundError(f"{location}: no such file") from None
            except OSError as exc:
                raise SMCOpenError(f"{location}: cannot open ({exc.strerror or exc})") from None
            src = cls(location, fd, owns_fd=True)
            st = os.fstat(fd)
            src.stamp = Stamp(st.st_size, st.st_mtime_ns)
            return src
        src = cls(location)
        src._fs, src._path = _fs(location.url)
        src.stamp = stamp if stamp is not None else stat_source(location)
        return src

    @classmethod
    def of_fd(cls, fd: int) -> ByteSource:
        """A source over an open descriptor that the caller keeps and closes."""
        return cls(f"<fd {fd}>", fd)

    @property
    def remote(self) -> bool:
        """Whether bytes come over the network (no descriptor)."""
        return self._remote

    @property
    def size(self) -> int:
        """File size in bytes when opened."""
        return self.stamp.size

    @property
    def fd(self) -> int:
        """The local descriptor (``copy_file_range``); only for a local source."""
        if self._fd is None:
            raise ValueError("a remote source has no descriptor")
        return self._fd

    def __str__(self) -> str:
        return str(self.location)

    # ------------------------------------------------------------------ reads
    def read_at(self, offset: int, nbytes: int) -> bytes:
        """Up to ``nbytes`` at ``offset`` (fewer only at the end of the file), one request."""
        if nbytes <= 0 or (offset >= self.stamp.size and self.remote):
            return b""
        if not self._remote:
            data = os.pread(self.fd, nbytes, offset)
        else:
            end = min(offset + nbytes, self.stamp.size)
            data = _retried(
                str(self), partial(self._fs.cat_file, self._path, start=offset, end=end)
            )
            if len(data) != end - offset:
                raise SMCFormatError(
                    f"{self}: asked for {end - offset:,} bytes at {offset:,}, got {len(data):,}: "
                    "the file changed or the server ignores ranges"
                )
        self.stats.add(1, len(data))
        return data

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of every ``(offset, nbytes)`` range, in order: neighbours are fetched in one
        request, requests in parallel (a local file reads each range)."""
        return list(self.iter_ranges(ranges))

    def iter_ranges(self, ranges: Iterable[tuple[int, int]]) -> Iterator[bytes]:
        """Like :meth:`read_many`, lazily: at most :data:`AHEAD_BYTES` fetched ahead of the
        consumer, :data:`PARALLEL` requests in flight."""
        if not self.remote:
            for offset, nbytes in ranges:
                yield self.read_at(offset, nbytes)
            return
        pending: deque[tuple[Future[bytes], int, list[tuple[int, int]]]] = deque()
        ahead = 0
        spans = _coalesce(ranges)
        pool = self._thread_pool()
        for span in spans:
            while pending and (len(pending) >= PARALLEL * 2 or ahead >= AHEAD_BYTES):
                ahead -= yield from self._drain(pending.popleft())
            start, end, members = span
            pending.append((pool.submit(self.read_at, start, end - start), start, members))
            ahead += end - start
        while pending:
            yield from self._drain(pending.popleft())

    @staticmethod
    def _drain(
        item: tuple[Future[bytes], int, list[tuple[int, int]]],
    ) -> Generator[bytes, None, int]:
        """Yield the members of one fetched span; return the span's size (to lower ``ahead``)."""
        fut, start, members = item
        data = fut.result()
        for offset, nbytes in members:
            yield data[offset - start : offset - start + nbytes]
        return len(data)

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="renderme360-fetch")
        return self._pool

    def read_cached(self, offset: int, nbytes: int) -> bytes:
        """``nbytes`` at ``offset`` through the block cache (HDF5's small reads); missing
        neighbouring blocks are fetched in one request. The cache is shared by every source of
        the process, keyed by file version: the units of one file, each opening it anew, fetch
        its metadata once."""
        end = min(offset + nbytes, self.stamp.size)
        if end <= offset:
            return b""
        first, last = offset // BLOCK, (end - 1) // BLOCK
        key = (getattr(self.location, "url", str(self.location)), self.stamp)
        have = _BLOCKS.get(key, range(first, last + 1))
        missing = [b for b, v in have.items() if v is None]
        i = 0
        while i < len(missing):
            j = i
            while j + 1 < len(missing) and missing[j + 1] == missing[j] + 1:
                j += 1
            data = self.read_at(missing[i] * BLOCK, (missing[j] - missing[i] + 1) * BLOCK)
            for b in range(missing[i], missing[j] + 1):
                have[b] = data[(b - missing[i]) * BLOCK : (b - missing[i] + 1) * BLOCK]
            i = j + 1
        _BLOCKS.put(key, {b: have[b] for b in missing})
        joined = b"".join(have[b] or b"" for b in range(first, last + 1))
        return joined[offset - first * BLOCK : end - first * BLOCK]

    def file(self) -> SourceFile:
        """A read-only, seekable Python file object over this source (for ``h5py.File``)."""
        return SourceFile(self)

    def check(self, expected: Stamp | None = None, when: str = "during extraction") -> None:
        """SMCFormatError naming the file when it is not (any more) the version ``expected``
        (default: the one opened): size, modification time or ETag differ."""
        expected = expected or self.stamp
        try:
            now = stat_source(self.location) if self.remote else self._local_stamp()
        except OSError as exc:
            raise SMCFormatError(f"{self}: cannot read any more ({exc})") from None
        if not same_version(now, expected):
            raise SMCFormatError(f"{self}: the file changed {when} (size, time or ETag)")

    def _local_stamp(self) -> Stamp:
        st = os.stat(self.location)
        return Stamp(st.st_size, st.st_mtime_ns)

    def close(self) -> None:
        """Release the descriptor (if owned), the fetch threads and the cache."""
        if self._fd is not None and self._owns_fd:
            fd, self._fd = self._fd, None
            os.close(fd)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BlockCache:
    """Blocks of remote files (:data:`BLOCK` bytes each, :data:`CACHE_BYTES` in all, least
    recently used dropped first), keyed by (URL, :class:`Stamp`) and block number."""

    def __init__(self) -> None:
        self._blocks: OrderedDict[tuple[Any, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, blocks: range) -> dict[int, bytes | None]:
        with self._lock:
            got = {b: self._blocks.get((key, b)) for b in blocks}
            for b, v in got.items():
                if v is not None:
                    self._blocks.move_to_end((key, b))
        return got

    def put(self, key: Any, blocks: dict[int, bytes | None]) -> None:
        with self._lock:
            for b, v in blocks.items():
                if v is not None:
                    self._blocks[(key, b)] = v
            while len(self._blocks) * BLOCK > CACHE_BYTES:
                self._blocks.popitem(last=False)


_BLOCKS = _BlockCache()


def same_version(now: Stamp, expected: Stamp) -> bool:
    """Whether two stamps are of one version (what either side does not know is not compared)."""
    if now.size != expected.size:
        return False
    if now.etag and expected.etag and now.etag != expected.etag:
        return False
    return not (now.mtime_ns and expected.mtime_ns and now.mtime_ns != expected.mtime_ns)


Span = tuple[int, int, list[tuple[int, int]]]


def _coalesce(ranges: Iterable[tuple[int, int]]) -> Iterator[Span]:
    """Ranges in the order given, grouped into requests ``(start, end, members)``: a range joins
    the current request when it starts at most :data:`MAX_GAP` after it ends and the request stays
    under :data:`MAX_SPAN`."""
    start = end = -1
    members: list[tuple[int, int]] = []
    for offset, nbytes in ranges:
        if members and end <= offset <= end + MAX_GAP and offset + nbytes - start <= MAX_SPAN:
            members.append((offset, nbytes))
            end = max(end, offset + nbytes)
            continue
        if members:
            yield start, end, members
        start, end, members = offset, offset + nbytes, [(offset, nbytes)]
    if members:
        yield start, end, members


class SourceFile(io.RawIOBase):
    """A read-only, seekable file object over a :class:`ByteSource` (reads through its block
    cache): what ``h5py.File`` opens a remote SMC file on."""

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self.source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.source.size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with _collector_paused():  # HDF5 calls in here holding h5py's lock: see below
            data = self.source.read_cached(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


_PAUSED = 0
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cycle collection while HDF5 waits for a remote read. HDF5 reads a remote file through
    :meth:`SourceFile.readinto` holding h5py's lock, and the bytes come from fsspec's event-loop
    thread: a collection on that thread that frees an h5py object waits for that lock, so both
    threads would wait for each other forever. Objects are still freed by reference count; the
    collection runs when the read is done."""
    global _PAUSED
    with _PAUSE_LOCK:
        if _PAUSED == 0:
            was_enabled = gc.isenabled()
            gc.disable()
            _PAUSED = -1 if not was_enabled else 1
        elif _PAUSED > 0:
            _PAUSED += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            if _PAUSED > 1:
                _PAUSED -= 1
            elif _PAUSED == 1:
                _PAUSED = 0
                gc.enable()
            else:  # the collector was off before: leave it off
                _PAUSED = 0


def source_id(location: Any) -> SourceId:
    """The :class:`~renderme360.tasks.SourceId` of a local path or URL (OSError when it cannot
    be read): a local file as ``SourceId.of`` gives it, a URL redacted for display."""
    location = as_location(location)
    if not isinstance(location, RemotePath):
        return SourceId.of(location)
    stamp = stat_source(location)
    return SourceId(str(location), stamp.size, stamp.mtime_ns, url=location.url, etag=stamp.etag)


def stamp_of(source: SourceId) -> Stamp:
    """The :class:`Stamp` a source had when it was planned."""
    return Stamp(source.size, source.mtime_ns, source.etag)

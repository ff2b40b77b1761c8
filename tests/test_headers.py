"""The survey's object-header fast path (smc.headers) against HDF5's own answers.

Every dataset here is written with h5py directly. For each, the header reading either gives
exactly what HDF5 reports (offset and size of a blob, declared bytes of an array) or None (the
caller then asks HDF5); it is also checked that the plain forms really take the fast path.
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import run
from smcfactory import blob, build_smc, jpeg, png

from renderme360.cli import main
from renderme360.errors import Renderme360Error
from renderme360.smc import h5safe, headers
from renderme360.smc.h5safe import BlobLocation
from renderme360.smc.headers import HeaderProbe
from renderme360.smc.reader import ExtractionReader

PAYLOAD = jpeg(seed=3)


def _probe(f: h5py.File, fd: int) -> HeaderProbe:
    plist = f.id.get_create_plist()
    assert HeaderProbe.usable(plist.get_sizes())
    return HeaderProbe(fd, plist.get_userblock(), os.fstat(fd).st_size)


def _address(group: h5py.Group, name: str) -> object:
    return h5safe.member_link_infos(Path("x"), group, h5safe._ANY_NAME_RE, "x")[name][1]


def _answers(path: Path, name: str) -> tuple[Any, Any, Any, Any]:
    """(header location, HDF5 location, header declared bytes, HDF5 declared bytes)."""
    with h5py.File(path, "r") as f:
        fd = os.open(path, os.O_RDONLY)
        try:
            probe, addr = _probe(f, fd), _address(f["g"], name)
            gid = f["g"].id
            try:
                slow_n = h5safe.plain_nbytes(gid, name, "", name)
            except Exception as exc:  # external storage is refused by HDF5's path
                slow_n = exc
            return (
                probe.location(addr),
                h5safe.plain_blob_location(gid, name),
                probe.declared_bytes(addr),
                slow_n,
            )
        finally:
            os.close(fd)


def _write(tmp_path: Path, make: Any, **file_kw: Any) -> Path:
    path = tmp_path / "t.h5"
    with h5py.File(path, "w", **file_kw) as f:
        make(f.create_group("g"))
    return path


U8 = np.frombuffer(PAYLOAD, np.uint8)


def _compact(g: h5py.Group, name: str, data: np.ndarray) -> None:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    g.create_dataset(name, data=data, dcpl=dcpl)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda g: blob(g, "b", PAYLOAD), id="plain"),
        pytest.param(lambda g: g.create_dataset("b", data=U8, track_times=True), id="mtime"),
        pytest.param(lambda g: g.create_dataset("b", data=U8, fillvalue=7), id="fillvalue"),
        pytest.param(
            lambda g: (blob(g, "b", PAYLOAD), g["b"].attrs.update({"note": "x" * 40})),
            id="attributes",
        ),
    ],
)
def test_plain_blob_takes_the_fast_path_with_hdf5s_answer(tmp_path: Path, make: Any) -> None:
    path = _write(tmp_path, make)
    fast, slow, fast_n, slow_n = _answers(path, "b")
    assert fast is not None and fast == slow
    assert fast.nbytes == len(PAYLOAD)
    assert path.read_bytes()[fast.offset : fast.offset + fast.nbytes] == PAYLOAD
    assert fast_n == slow_n == len(PAYLOAD)


def test_user_block_shifts_every_address(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda g: blob(g, "b", PAYLOAD), userblock_size=1024)
    fast, slow, _, _ = _answers(path, "b")
    assert fast == slow and fast.offset > 1024
    assert path.read_bytes()[fast.offset : fast.offset + fast.nbytes] == PAYLOAD


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda g: blob(g, "b", PAYLOAD, chunks=(64,)), id="chunked"),
        pytest.param(lambda g: blob(g, "b", PAYLOAD, compression="gzip"), id="gzip"),
        pytest.param(lambda g: _compact(g, "b", U8[:40]), id="compact"),
        pytest.param(lambda g: g.create_dataset("b", data=U8.view(np.int8)), id="int8"),
        pytest.param(lambda g: g.create_dataset("b", data=U8.astype(np.uint16)), id="uint16"),
        pytest.param(lambda g: g.create_dataset("b", data=U8[:300].reshape(10, 30)), id="2d"),
        pytest.param(lambda g: g.create_dataset("b", shape=(0,), dtype=np.uint8), id="empty"),
        pytest.param(lambda g: g.create_dataset("b", shape=(50,), dtype=np.uint8), id="unwritten"),
        pytest.param(lambda g: g.create_dataset("b", data=np.uint8(5)), id="scalar"),
        pytest.param(
            lambda g: g.create_dataset("b", data=np.frombuffer(PAYLOAD, "S1")), id="strings"
        ),
    ],
)
def test_other_forms_are_left_to_hdf5(tmp_path: Path, make: Any) -> None:
    path = _write(tmp_path, make)
    fast, _, fast_n, slow_n = _answers(path, "b")
    assert fast is None
    assert fast_n is None or fast_n == slow_n


def test_newer_object_headers_are_left_to_hdf5(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda g: blob(g, "b", PAYLOAD), libver="latest")
    fast, slow, fast_n, slow_n = _answers(path, "b")
    assert fast is None and fast_n is None
    assert slow is not None and slow_n == len(PAYLOAD)  # HDF5's path still answers


def test_external_storage_is_never_located(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(PAYLOAD)
    path = _write(
        tmp_path,
        lambda g: g.create_dataset(
            "b", shape=(len(PAYLOAD),), dtype=np.uint8, external=[(str(outside), 0, len(PAYLOAD))]
        ),
    )
    fast, slow, fast_n, slow_n = _answers(path, "b")
    assert fast is None and slow is None and fast_n is None
    assert isinstance(slow_n, Exception) and "external storage" in str(slow_n)


@pytest.mark.parametrize(
    "data,kw",
    [
        (np.zeros((106, 2), np.float32), {}),
        (np.zeros((3, 106, 3), np.float64), {}),
        (np.zeros((0, 2), np.float32), {}),
        (np.arange(1000, dtype=np.int64).reshape(10, 100), {"chunks": (5, 50)}),
        (np.arange(1000, dtype=np.int32), {"compression": "gzip"}),
        (np.arange(6, dtype=np.int16), {"compact": True}),
    ],
)
def test_declared_bytes_equal_hdf5s(tmp_path: Path, data: np.ndarray, kw: dict) -> None:
    def make(g: h5py.Group) -> None:
        if kw.pop("compact", False):
            _compact(g, "a", data)
        else:
            g.create_dataset("a", data=data, **kw)

    path = _write(tmp_path, make)
    _, _, fast_n, slow_n = _answers(path, "a")
    assert fast_n == slow_n == data.nbytes


def _header_span(path: Path, name: str = "b") -> tuple[int, int]:
    with h5py.File(path, "r") as f:
        addr = _address(f["g"], name)
    head = path.read_bytes()[addr : addr + 16]
    return addr, 16 + int.from_bytes(head[8:12], "little")


def test_damaged_headers_never_point_outside_the_file(tmp_path: Path) -> None:
    """Random byte changes in a blob's header: the answer is None or a span inside the file
    that HDF5, reading the same header, agrees with."""
    path = _write(tmp_path, lambda g: blob(g, "b", PAYLOAD))
    original = path.read_bytes()
    start, length = _header_span(path)
    rng = random.Random(7)
    located = 0
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.choice((1, 2, 4))):
            data[start + rng.randrange(length)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        fd = os.open(path, os.O_RDONLY)
        try:
            probe = HeaderProbe(fd, 0, len(data))
            loc = probe.location(start)
            n = probe.declared_bytes(start)
        finally:
            os.close(fd)
        assert n is None or n >= 0
        if loc is None:
            continue
        located += 1
        assert loc.nbytes > 0 and loc.offset + loc.nbytes <= len(data)
        try:
            with h5py.File(path, "r") as f:
                hdf5 = h5safe.plain_blob_location(f["g"].id, "b")
        except (OSError, KeyError, RuntimeError):
            continue  # HDF5 cannot open the file at all: the extraction refuses it anyway
        assert hdf5 is None or hdf5 == loc
    assert located > 100  # most single changes hit bytes that do not matter (padding)


def _stream_file(tmp_path: Path, frames: int = 40) -> Path:
    path = tmp_path / "0026_e0_raw.smc"
    color = {"00": {i: jpeg(seed=i) for i in range(frames)}}
    mask = {"00": {i: png(seed=i) for i in range(frames)}}
    build_smc(path, color=color, mask=mask)
    return path


def test_a_stream_is_located_from_headers_with_three_hdf5_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stream_file(tmp_path)
    calls = []
    real = h5safe.plain_blob_location
    monkeypatch.setattr(h5safe, "plain_blob_location", lambda g, k: calls.append(k) or real(g, k))
    with ExtractionReader(path) as r:
        got = r.blob_locations("00", "color")
        data = path.read_bytes()
        assert [data[v.offset : v.offset + v.nbytes] for v in got.values()] == [
            jpeg(seed=i) for i in range(40)
        ]
    assert len(calls) == 3  # first, middle and last member, in link order


def test_a_disagreeing_sample_sends_the_whole_stream_to_hdf5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stream_file(tmp_path)
    with ExtractionReader(path) as r:
        expected = r.blob_locations("00", "mask")
    real = HeaderProbe.locations

    def off_by_one(self: HeaderProbe, addresses: Any) -> Any:
        offsets, sizes = real(self, addresses)
        return offsets + 1, sizes

    monkeypatch.setattr(HeaderProbe, "locations", off_by_one)
    with ExtractionReader(path) as r:
        assert r.blob_locations("00", "mask") == expected


def test_keypoint_frames_from_headers_equal_hdf5s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "0026_e0_anno.smc"
    kp = {i: np.full((106, 3), i, np.float32) for i in range(12)}
    kp[5] = np.zeros((0, 3), np.float32)  # stored but empty: not listed
    build_smc(path, kp2d={"22": kp}, kp3d=kp)
    calls = []
    real = h5safe.plain_nbytes
    monkeypatch.setattr(h5safe, "plain_nbytes", lambda *a: calls.append(a[1]) or real(*a))
    with ExtractionReader(path) as r:
        fast = (r.list_keypoints2d_frames("22"), r.list_keypoints3d_frames())
    assert 3 <= len(calls) <= 6  # HDF5 opened for the samples only (first, middle, last)
    monkeypatch.setattr(HeaderProbe, "usable", staticmethod(lambda sizes: False))
    with ExtractionReader(path) as r:
        slow = (r.list_keypoints2d_frames("22"), r.list_keypoints3d_frames())
    expected = [i for i in range(12) if i != 5]
    assert fast == slow
    assert fast[0] == expected


def _as_locations(offsets: np.ndarray, sizes: np.ndarray) -> list[BlobLocation | None]:
    pairs = zip(offsets.tolist(), sizes.tolist(), strict=True)
    return [None if o < 0 else BlobLocation(n, o) for o, n in pairs]


def test_the_template_shortcut_answers_as_the_full_parse(tmp_path: Path) -> None:
    """After one blob header is parsed in full, equal-looking headers take a shortcut: every
    single-byte change of a second header gets the same answer with and without it."""
    other = jpeg(seed=9)[:1000]
    path = _write(tmp_path, lambda g: (blob(g, "a", PAYLOAD), blob(g, "b", other)))
    with h5py.File(path, "r") as f:
        first, second = _address(f["g"], "a"), _address(f["g"], "b")
    original = path.read_bytes()
    _, length = _header_span(path)
    shortcut_taken = 0
    for i in range(length):
        for value in {0, 0xFF, original[second + i] ^ 0x01}:
            data = bytearray(original)
            data[second + i] = value
            path.write_bytes(bytes(data))
            fd = os.open(path, os.O_RDONLY)
            try:
                warm = HeaderProbe(fd, 0, len(data))
                assert warm.location(first).nbytes == len(PAYLOAD)
                template = warm._template
                with_template = warm.location(second)
                shortcut_taken += template is not None and template.matches(data[second:])
                assert with_template == HeaderProbe(fd, 0, len(data)).location(second)
                offsets, sizes = warm.locations([second, first, "x", -5, len(data) + 9])
                expected = [warm.location(a) for a in (second, first)]
                got = _as_locations(offsets, sizes)
                assert got == [*expected, None, None, None]
                cold = HeaderProbe(fd, 0, len(data))  # its template comes from the damaged one
                assert _as_locations(*cold.locations([second, first])) == expected
            finally:
                os.close(fd)
    assert shortcut_taken >= 3 * 32  # every change in the shape, address and size fields


# ------------------------------------------------- every blob, not only the sampled ones
# A stream's members are sorted by frame and HDF5 checks the first, middle and last (frames 0,
# 4 and 8 of 9): frame 1 is never sampled. It is written last, so its bytes end the file.
FRAMES = [0, 2, 3, 4, 5, 6, 7, 8, 1]
UNSAMPLED = "1"


def _stream_root(tmp_path: Path, **file_kw: Any) -> Path:
    """data/raw/0026/0026_e0_raw.smc with one colour stream of 9 frames, written with h5py."""
    path = tmp_path / "data" / "raw" / "0026" / "0026_e0_raw.smc"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w", **file_kw) as f:
        for k, v in {
            "actor_id": "0026",
            "performance_part": "e0",
            "capture_date": "20230101",
        }.items():
            f.attrs[k] = v
        for k, v in {"age": 25, "color": "yellow", "gender": "female"}.items():
            f.attrs[k] = v
        f.attrs["height"], f.attrs["weight"] = 170.0, 60.0
        cams = f.create_group("Camera")
        cams.attrs.update({"num_device": 60, "num_frame": 9, "resolution": np.array([24, 32])})
        g = cams.create_group("00").create_group("color")
        for i in FRAMES:
            blob(g, str(i), jpeg(seed=i))
    return path


def _stream_addresses(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        g = f["Camera/00/color"]
        return {k: _address(g, k) for k in g}


def _message_data(data: bytes | bytearray, addr: int, kind: int) -> int:
    """Where the data of the first message of ``kind`` in a version 1 object header starts
    (walked here by the spec, independently of smc.headers)."""
    assert data[addr] == 1
    pos, end = addr + 16, addr + 16 + int.from_bytes(data[addr + 8 : addr + 12], "little")
    while pos < end:
        t, n = struct.unpack_from("<HH", data, pos)
        if t == kind:
            return pos + 8
        pos += 8 + n
    raise AssertionError(f"no message {kind:#x}")


def _datatype_version_0(data: bytearray, addr: int) -> None:
    data[_message_data(data, addr, 0x0003)] &= 0x0F  # class 0 kept, version 1 -> 0


def _max_dims_below_size(data: bytearray, addr: int) -> None:
    at = _message_data(data, addr, 0x0001) + 8 + 8  # version 1: 8 bytes, then dims, max dims
    struct.pack_into("<Q", data, at, struct.unpack_from("<Q", data, at)[0] - 1)


def _data_appended_past_eoa(data: bytearray, addr: int) -> None:
    """Bytes appended after the file's end of allocation, pointed at by the layout."""
    evil = jpeg(seed=99)
    at = _message_data(data, addr, 0x0001) + 8
    struct.pack_into("<QQ", data, at, len(evil), len(evil))  # dims and max dims
    struct.pack_into("<QQ", data, _message_data(data, addr, 0x0008) + 2, len(data), len(evil))
    data += evil


def _superblock_eoa_cut(data: bytearray, addr: int) -> None:
    """The superblock's end of allocation one byte short: the last blob (frame 1) straddles it."""
    assert data[8] == 0
    struct.pack_into("<Q", data, 40, len(data) - 1)


ATTACKS = {
    "datatype-version-0": _datatype_version_0,
    "max-dims-below-size": _max_dims_below_size,
    "layout-past-eoa": _data_appended_past_eoa,
    "superblock-eoa-cut": _superblock_eoa_cut,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_header_hdf5_refuses_is_never_located(tmp_path: Path, attack: str) -> None:
    """A non-sampled blob whose header HDF5 refuses: no span from the header (per header and
    vectorised), HDF5's checked path refuses it in one line naming it, extract fails the
    performance (exit 6) and writes none of its bytes; verify never says OK."""
    path = _stream_root(tmp_path)
    addrs = _stream_addresses(path)
    data = bytearray(path.read_bytes())
    with ExtractionReader(path) as r:  # the plain file: every blob from its header
        before = r.blob_locations("00", "color")
    end = before[int(UNSAMPLED)].offset + before[int(UNSAMPLED)].nbytes
    assert end == len(data) and sorted(before) == list(range(9))
    ATTACKS[attack](data, addrs[UNSAMPLED])
    path.write_bytes(bytes(data))

    with h5py.File(path, "r") as f, pytest.raises((KeyError, OSError)):
        f["Camera/00/color"][UNSAMPLED][()]  # HDF5 refuses it

    order = sorted(addrs, key=int)
    fd = os.open(path, os.O_RDONLY)
    try:
        cold = HeaderProbe(fd, 0, len(data))
        assert cold.location(addrs[UNSAMPLED]) is None  # per-header path
        warm = HeaderProbe(fd, 0, len(data))
        offsets, sizes = warm.locations([addrs[k] for k in order])  # template: frame 0
        vectorised = warm._template is not None and warm._template.matches(
            bytes(data[addrs[UNSAMPLED] :])
        )
        assert vectorised == (attack != "datatype-version-0")  # only a varying field changed
        got = _as_locations(offsets, sizes)
        assert got[order.index(UNSAMPLED)] is None
        assert [g for k, g in zip(order, got, strict=True) if k != UNSAMPLED] == [
            before[int(k)] for k in order if k != UNSAMPLED
        ]
    finally:
        os.close(fd)

    with ExtractionReader(path) as r, pytest.raises(Renderme360Error) as exc:
        r.blob_locations("00", "color")  # HDF5's checked path refuses it, in one line
    assert "\n" not in str(exc.value)
    assert f"cannot open /Camera/00/color/{UNSAMPLED}: " in str(exc.value)

    out = tmp_path / "out"
    assert run(tmp_path / "data", "-o", out, "-q", "--workers", "1", "--no-preview") == 6
    rows = (out / "MANIFEST.csv").read_text().splitlines()  # the performance failed, named
    assert len(rows) == 2 and ",failed," in rows[1]
    assert f"cannot open /Camera/00/color/{UNSAMPLED}: Unable to" in rows[1]
    perf = out / "0026_e0"
    assert not list(out.rglob("*.jpg"))  # nothing of the refused stream, least of all frame 1
    assert not (perf / ".extraction_complete").exists()
    assert main(["verify", str(perf)]) != 0  # nothing there to call OK


def test_superblock_end_of_allocation_versions(tmp_path: Path) -> None:
    """The end of allocation is read from superblocks of version 0 (with and without a user
    block) and 2 (h5py writes it for paged file space) as h5py wrote them, and from version 1
    and 3 layouts written here by the spec; unknown ones give no header answers at all."""
    for name, kw, base in [
        ("v0.h5", {}, 0),
        ("v0u.h5", {"userblock_size": 1024}, 1024),
        ("v2.h5", {"fs_strategy": "page"}, 0),
    ]:
        path = _write(tmp_path, lambda g: blob(g, "b", PAYLOAD), **kw).rename(tmp_path / name)
        data = path.read_bytes()
        assert data[base + 8] == (2 if "fs_strategy" in kw else 0)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert headers.allocation_end(fd, base) == len(data)
            assert HeaderProbe(fd, base, len(data)).end == len(data)
            assert headers.allocation_end(fd, base + 512) is None  # no superblock there
            lost = HeaderProbe(fd, base + 8, len(data))  # not where the superblock is
            assert lost.end == 0 and lost.location(0) is None
        finally:
            os.close(fd)
    for version, sizes, at in [(1, 13, 28), (3, 9, 12), (4, 9, 12)]:
        sb = bytearray(b"\x89HDF\r\n\x1a\n" + bytes(56))
        sb[8], sb[sizes : sizes + 2] = version, b"\x08\x08"
        struct.pack_into("<QQQ", sb, at, 0, 2**64 - 1, 4242)  # base, next address, EOF
        fake = tmp_path / f"sb{version}.bin"
        fake.write_bytes(bytes(sb))
        fd = os.open(fake, os.O_RDONLY)
        try:
            assert headers.allocation_end(fd, 0) == (None if version == 4 else 4242)
        finally:
            os.close(fd)


def test_data_past_a_version_2_superblocks_eoa_is_not_located(tmp_path: Path) -> None:
    path = _stream_root(tmp_path, fs_strategy="page")
    addrs = _stream_addresses(path)
    data = bytearray(path.read_bytes())
    assert data[8] == 2
    _data_appended_past_eoa(data, addrs[UNSAMPLED])
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as f, pytest.raises((KeyError, OSError)):
        f["Camera/00/color"][UNSAMPLED][()]
    fd = os.open(path, os.O_RDONLY)
    try:
        probe = HeaderProbe(fd, 0, len(data))
        offsets, _ = probe.locations([addrs[k] for k in sorted(addrs, key=int)])
        assert (offsets[1] == -1) and (offsets[[0, *range(2, 9)]] > 0).all()
        assert HeaderProbe(fd, 0, len(data)).location(addrs[UNSAMPLED]) is None
    finally:
        os.close(fd)


def _hdf5_reading(path: Path, key: str) -> tuple[Any, Any]:
    """(plain_blob_location, the bytes HDF5 reads) of a member of the colour stream; an
    exception in place of what HDF5 refuses."""
    try:
        with h5py.File(path, "r") as f:
            g = f["Camera/00/color"]
            loc = h5safe.plain_blob_location(g.id, key)
            try:
                return loc, g[key][()].tobytes()
            except (KeyError, OSError, RuntimeError, ValueError) as exc:
                return loc, exc
    except (KeyError, OSError, RuntimeError) as exc:
        return exc, exc


@pytest.mark.parametrize(
    "rewrite",
    [{}, {"fillvalue": 7}, {"track_times": True}],
    ids=["default", "fillvalue", "mtime"],
)
def test_single_byte_changes_of_an_unsampled_header_agree_with_hdf5(
    tmp_path: Path, rewrite: dict[str, Any]
) -> None:
    """Every byte of a non-sampled blob header set to 0, 0xFF, and flipped in its lowest and
    fifth bit: the per-header path, the template shortcut and the vectorised path give None or
    exactly the span HDF5 gives, and HDF5 reads those bytes. Frame 1 is also rewritten with
    a fill value or a modification time message (both decoded by HDF5 when it opens it)."""
    path = _stream_root(tmp_path)
    if rewrite:
        with h5py.File(path, "a") as f:
            g = f["Camera/00/color"]
            payload = g[UNSAMPLED][()]
            del g[UNSAMPLED]
            g.create_dataset(UNSAMPLED, data=payload, **rewrite)
    addrs = _stream_addresses(path)
    order = sorted(addrs, key=int)
    original = path.read_bytes()
    at = addrs[UNSAMPLED]
    length = 16 + int.from_bytes(original[at + 8 : at + 12], "little")
    located = 0
    for i in range(length):
        old = original[at + i]
        for value in sorted({0, 0xFF, old ^ 0x01, old ^ 0x10} - {old}):
            data = bytearray(original)
            data[at + i] = value
            path.write_bytes(bytes(data))
            fd = os.open(path, os.O_RDONLY)
            try:
                cold = HeaderProbe(fd, 0, len(data)).location(at)
                warm = HeaderProbe(fd, 0, len(data))
                assert warm.location(addrs["0"]) is not None
                shortcut = warm.location(at)
                vectorised = _as_locations(*warm.locations([addrs[k] for k in order]))
            finally:
                os.close(fd)
            answers = {cold, shortcut, vectorised[order.index(UNSAMPLED)]}
            if answers == {None}:
                continue
            loc, stored = _hdf5_reading(path, UNSAMPLED)
            assert len(answers) == 1 and loc in answers, (i, value, answers, loc, stored)
            assert (
                isinstance(stored, bytes) and data[loc.offset : loc.offset + loc.nbytes] == stored
            )
            located += 1
    assert located > 2 * length  # most changes hit bytes that do not matter (padding)

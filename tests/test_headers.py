"""The survey's object-header fast path (smc.headers) against HDF5's own answers.

Every dataset here is written with h5py directly. For each, the header reading either gives
exactly what HDF5 reports (offset and size of a blob, declared bytes of an array) or None (the
caller then asks HDF5); it is also checked that the plain forms really take the fast path.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from smcfactory import blob, build_smc, jpeg, png

from renderme360.smc import h5safe
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

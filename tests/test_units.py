"""Pipeline steps called directly (no CLI, no SMC file): plan, resume, layout parsing, read-back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from renderme360.errors import SMCFormatError, UsageError
from renderme360.output import layout
from renderme360.output.layout import OutputPath, parse_path, split_source
from renderme360.output.read import (
    Record,
    choose_sources,
    frames_by_camera,
    manifest_paths,
    parse_record_line,
    read_manifest,
    read_marker,
)
from renderme360.pipeline.blobtasks import UNIT_MAX_TASKS
from renderme360.pipeline.discover import Performance
from renderme360.pipeline.inventory import FileInventory
from renderme360.pipeline.plan import PLANNERS, plan_performance
from renderme360.pipeline.record import (
    ResumeState,
    consolidate_journal,
    record_line,
    recorded_form,
    recorded_scopes,
    scan_previous,
)
from renderme360.pipeline.resume import is_current, left_to_do
from renderme360.selection import Selection, parse_cameras, parse_frames
from renderme360.smc.h5safe import BlobLocation
from renderme360.tasks import SourceId

MISSING = "/nonexistent/0026_e0_anno.smc"  # planning must never open the source


def rt_at(azimuth_deg: float) -> np.ndarray:
    """Camera-to-world RT of a camera 1 m from the origin looking at it (OpenCV axes, y down)."""
    a = np.radians(azimuth_deg)
    centre = np.array([np.sin(a), 0.0, -np.cos(a)])
    z = -centre / np.linalg.norm(centre)
    y = np.array([0.0, 1.0, 0.0])
    x = np.cross(y, z)
    rt = np.eye(4)
    rt[:3, 0], rt[:3, 1], rt[:3, 2], rt[:3, 3] = x, y, z, centre
    return rt


def inventory(role: str = "anno", cams: int = 4, frames: int = 3) -> FileInventory:
    """A hand-built inventory: ``cams`` cameras of colour images, calibration, keypoints, audio."""
    inv = FileInventory(role=role, source=SourceId(MISSING, 1000, 7))
    inv.actor_id, inv.performance = "0026", "e0"
    ids = [f"{18 + i:02d}" for i in range(cams)]
    for i, c in enumerate(ids):
        inv.images[c] = list(range(frames))
        inv.extensions[("color", c)] = "jpg"
        for f in range(frames):
            inv.blobs[("color", c, f)] = BlobLocation(100 + f, 4096 * (i * frames + f))
    inv.calibration = list(ids)
    inv.camera_rt = {c: rt_at(360 * i / cams) for i, c in enumerate(ids)}
    inv.keypoints2d = {ids[0]: [0, 2]}
    inv.audio = {"shape": [48000, 2], "dtype": "float32", "sample_rate": 48000, "seconds": 1.0}
    inv.audio["nbytes"] = 48000 * 2 * 4
    return inv


def plan(inv: FileInventory, **kw):
    perf = Performance("0026", "e0", files={inv.role: Path(inv.source.path)})
    return plan_performance(perf, {inv.role: inv}, "/out", **kw)


# ---------------------------------------------------------------------------- plan
def test_every_modality_has_a_planner():
    assert set(PLANNERS) == set(layout.MODALITIES)


def test_plan_blob_tasks_are_typed_and_sized_from_the_inventory():
    p = plan(inventory(), selection=Selection(("images",)))
    tasks = p.tasks
    assert [t.key for t in tasks[:3]] == [
        "from_anno/images/cam_18/frame_000000.jpg",
        "from_anno/images/cam_18/frame_000001.jpg",
        "from_anno/images/cam_18/frame_000002.jpg",
    ]
    t = tasks[1]
    assert (t.writer, t.blob_kind, t.camera, t.frame) == ("blob", "color", "18", 1)
    assert (t.offset, t.nbytes, t.exact, t.variant) == (4096, 101, True, "copy")
    assert p.total_files == 12 and p.total_bytes == 4 * (100 + 101 + 102)
    assert p.out_dir == Path("/out/0026_e0")


def test_plan_frames_and_combined_layout():
    sel = Selection(("images", "keypoints2d"), frames=parse_frames("1:3"))
    p = plan(inventory(), selection=sel, layout="combined")
    keys = [t.key for t in p.tasks]
    assert "images/cam_18/frame_000000.jpg" not in keys
    assert "images/cam_21/frame_000002.jpg" in keys
    (kp,) = [t for t in p.tasks if t.modality == "keypoints2d"]
    assert (kp.key, kp.camera, kp.frames) == ("keypoints2d/cam_18.npz", "18", (2,))


def test_plan_single_files_and_warnings():
    p = plan(inventory(), selection=Selection(("metadata", "calibration", "audio")))
    by_key = {t.key: t for t in p.tasks}
    info = by_key["from_anno/metadata/info.json"]
    assert info.text is not None and info.nbytes == len(info.text.encode())
    assert json.loads(info.text)["actor_id"] == "0026"
    assert by_key["from_anno/calibration/all_cameras.npz"].cameras == ("18", "19", "20", "21")
    assert by_key["from_anno/calibration/cam_20.npz"].camera == "20"
    assert {"from_anno/audio/audio.wav", "from_anno/audio/audio.mp3"} <= set(by_key)
    assert by_key["from_anno/audio/audio_data.npz"].nbytes == 400 + 48000 * 8
    assert all(len(u.tasks) == 1 for u in p.units)


def test_plan_refuses_audio_mp3_cannot_hold():
    inv = inventory()
    inv.audio["sample_rate"] = 7000  # no MPEG layer III rate
    p = plan(inv, selection=Selection(("audio",)))
    assert "from_anno/audio/audio.mp3" not in {t.key for t in p.tasks}
    assert any("audio.mp3 not written" in w for w in p.warnings)


def test_plan_streams_are_chunked_into_bounded_units():
    inv = inventory(cams=1, frames=UNIT_MAX_TASKS + 5)
    p = plan(inv, selection=Selection(("images",)))
    assert [len(u.tasks) for u in p.units] == [UNIT_MAX_TASKS, 5]


def test_ring_and_front_use_the_inventory_not_the_file():
    inv = inventory(cams=8)  # azimuths 0, 45, ..., 315 degrees; the source file does not exist
    p = plan(inv, selection=Selection(("images",), cameras=parse_cameras("ring:4")))
    assert p.cameras == ["18", "20", "22", "24"]
    assert {t.camera for t in p.tasks} == {"18", "20", "22", "24"}
    p = plan(inv, selection=Selection(("images",), cameras=parse_cameras("front:1")))
    assert len(p.cameras) == 1


def test_unreadable_calibration_fails_only_a_camera_rule():
    inv = inventory()
    inv.camera_rt, inv.calibration_error = {}, "x.smc: Calibration/18/K has shape (2, 2)"
    with pytest.raises(SMCFormatError, match=r"Calibration/18/K"):
        plan(inv, selection=Selection(("images",), cameras=parse_cameras("front:2")))
    assert plan(inv, selection=Selection(("images",))).total_files == 12


def test_plan_rejects_unknown_layout():
    with pytest.raises(UsageError, match="unknown layout"):
        plan(inventory(), layout="flat")


# ---------------------------------------------------------------------------- resume
def record_of(t, source: SourceId, **change) -> Record:
    fields = dict(
        key=t.key,
        path=t.key,
        bytes=t.nbytes,
        sha256="",
        modality=t.modality,
        role=t.role,
        variant=t.variant,
        source_size=source.size,
        source_mtime_ns=source.mtime_ns,
    )
    return Record(**{**fields, **change})


def _recorded(root, records, sizes=None) -> None:
    """Put files of the records' sizes (or ``sizes``) in place and journal the records."""
    for r in records:
        path = root / r.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (sizes or {}).get(r.key, r.bytes))
    (root / layout.JOURNAL).write_text("".join(record_line(r) for r in records))


def test_resume_skips_current_records_only(tmp_path):
    inv = inventory(cams=1)
    p = plan(inv, selection=Selection(("images",)))
    t0, t1, t2 = p.tasks
    _recorded(
        tmp_path,
        [
            record_of(t0, inv.source),  # done and current
            record_of(t1, inv.source, variant="reencode:q95"),  # other options
            record_of(t2, inv.source, source_mtime_ns=8),  # source changed since
        ],
    )
    (unit,) = left_to_do(p, scan_previous(tmp_path, is_current(p)))
    assert [t.key for t in unit.tasks] == [t1.key, t2.key]
    assert left_to_do(p, ResumeState()) == p.units


def test_resume_needs_the_file_with_its_size(tmp_path):
    inv = inventory(cams=1)
    p = plan(inv, selection=Selection(("images",)))
    t0, t1, t2 = p.tasks
    records = [record_of(t, inv.source) for t in (t0, t1)]
    _recorded(tmp_path, records, sizes={t1.key: t1.nbytes - 1})
    state = scan_previous(tmp_path, is_current(p))
    assert state.is_done(t0.role, t0.key)
    assert not state.is_done(t1.role, t1.key) and not state.is_done(t2.role, t2.key)


def test_last_record_of_a_key_wins(tmp_path):
    """A key recorded twice (an interrupted run, then another) counts with its last record."""
    inv = inventory(cams=1)
    p = plan(inv, selection=Selection(("images",)))
    t0 = p.tasks[0]
    _recorded(tmp_path, [record_of(t0, inv.source), record_of(t0, inv.source, variant="x")])
    assert not scan_previous(tmp_path, is_current(p)).done
    _recorded(tmp_path, [record_of(t0, inv.source, variant="x"), record_of(t0, inv.source)])
    assert scan_previous(tmp_path, is_current(p)).is_done(t0.role, t0.key)


def test_resume_reads_record_lines_without_json_loads(tmp_path, monkeypatch):
    """Resume reads journal and file-list lines through the one decoder (decode_line): lines in
    the form the tool writes take its regular expression, not json.loads (the old resume
    decoded every line with json.loads, twice); other lines still decode through json."""
    inv = inventory(cams=2, frames=20)
    p = plan(inv, selection=Selection(("images",)))
    records = [record_of(t, inv.source) for t in p.tasks]
    _recorded(tmp_path, records[:20])
    (tmp_path / layout.FILE_LIST).write_text("".join(record_line(r) for r in records[20:]))
    with open(tmp_path / layout.JOURNAL, "a") as f:
        f.write('{"selections": [{"modalities": "images"}], "layout": "separate"}\n{"cut')
    for r in records[20:]:
        (tmp_path / r.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / r.path).write_bytes(b"x" * r.bytes)
    calls = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda s, *a, **k: calls.append(s) or real(s, *a, **k))
    state = consolidate_journal(tmp_path, is_current(p))
    assert len(state.done) == len(records) == 40
    assert all(line.startswith(('{"selections"', '{"cut')) for line in calls), calls[:3]
    assert len(calls) <= 6  # the two non-record lines, once per pass and for the notes
    kept = (tmp_path / layout.JOURNAL).read_text().splitlines()
    assert kept[0] == '{"selections": [{"modalities": "images"}], "layout": "separate"}'
    assert [parse_record_line(line) for line in kept[1:]] == records[20:] + records[:20]
    assert recorded_scopes(tmp_path) == [{"modalities": "images"}]
    assert recorded_form(tmp_path) == {"layout": "separate"}


# ---------------------------------------------------------------------------- layout
@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (
            "from_raw/" + layout.image_path("images", "25", 17, "jpg"),
            OutputPath("raw", "images", "25", 17, "jpg"),
        ),
        (layout.image_path("masks", "03", 0, "png"), OutputPath(None, "masks", "03", 0, "png")),
        ("from_anno/" + layout.uv_path(4, "jpg"), OutputPath("anno", "uv", None, 4, "jpg")),
        (layout.scan_mask_path("25", "png"), OutputPath(None, "scan_masks", "25", None, "png")),
        (layout.keypoints2d_path("18"), OutputPath(None, "keypoints2d", "18", None, "npz")),
        (layout.calibration_camera_path("07"), OutputPath(None, "calibration", "07", None, "npz")),
        ("from_smc/audio/audio.wav", OutputPath("smc", "audio", None, None, "wav")),
        ("flame/all_frames.npz", OutputPath(None, "flame", None, None, "npz")),
        ("scan/mesh.ply", OutputPath(None, "scan", None, None, "ply")),
    ],
)
def test_parse_path_inverts_the_path_functions(rel, expected):
    assert parse_path(rel) == expected


@pytest.mark.parametrize(
    "rel",
    [
        "visualization/masks_overlay.jpg",
        "size_summary.txt",
        "images/cam_25/frame_x.jpg",
        "images/cam_5/frame_000001.jpg",
        "from_elsewhere/images/cam_25/frame_000001.jpg",
        "images/cam_25/frame_000001.jpg/extra",
        "../images/cam_25/frame_000001.jpg",
    ],
)
def test_parse_path_refuses_what_extract_does_not_write(rel):
    assert parse_path(rel) is None


def test_every_fixed_path_parses_to_its_modality():
    for key, rel in layout.FIXED_PATHS.items():
        parsed = parse_path(rel)
        assert parsed is not None and key.startswith(parsed.modality), key
    assert split_source("from_anno/x/y") == ("anno", "x/y")
    assert split_source("images/x") == (None, "images/x")


# ---------------------------------------------------------------------------- read back
def test_choose_sources_prefers_the_given_folder():
    rels = [
        "from_anno/images/cam_00/frame_000001.jpg",
        "from_raw/images/cam_00/frame_000001.jpg",
        "from_raw/images/cam_01/frame_000001.jpg",
        "from_anno/masks/cam_00/frame_000001.png",
        "notes.txt",
    ]
    chosen = choose_sources(rels, lambda p: ("raw", "anno"))
    assert frames_by_camera(chosen, "images") == {
        "00": {1: "from_raw/images/cam_00/frame_000001.jpg"},
        "01": {1: "from_raw/images/cam_01/frame_000001.jpg"},
    }
    assert frames_by_camera(chosen, "masks") == {"00": {1: rels[3]}}
    only_anno = choose_sources(rels, lambda p: ("anno",), accept=lambda p: p.modality == "images")
    assert [rel for rel, _p in only_anno.values()] == [rels[0]]


def test_manifest_and_marker_read_back(tmp_path):
    assert read_manifest(tmp_path) is None and read_marker(tmp_path) is None
    (tmp_path / layout.MANIFEST).write_text("[1, 2]")  # JSON, but not an object
    (tmp_path / layout.COMPLETE_MARKER).write_text("{cut short")
    assert read_manifest(tmp_path) is None and read_marker(tmp_path) is None
    doc = {"files": [{"path": "images/cam_00/frame_000000.jpg"}, {"path": 3}, "junk"]}
    (tmp_path / layout.MANIFEST).write_text(json.dumps(doc))
    assert manifest_paths(tmp_path) == ["images/cam_00/frame_000000.jpg"]


# ---------------------------------------------------------------------------- discover
def test_duplicate_copies_are_reported_and_the_shortest_path_wins(caplog):
    from renderme360.pipeline.discover import group_performances

    near, far = Path("d/0026_e0_anno.smc"), Path("d/copy/0026_e0_anno.smc")
    with caplog.at_level("INFO", logger="renderme360.pipeline.discover"):
        (perf,), unknown = group_performances([far, near, Path("d/readme.smc")])
    assert perf.files == {"anno": near} and unknown == [Path("d/readme.smc")]
    assert f"{far}: ignored, {near} is used for 0026_e0" in caplog.text


def test_camera_poses_are_probed_only_when_asked(tmp_path):
    from renderme360.pipeline.inventory import probe
    from renderme360.synth import synthesize

    (path,) = [p for p in synthesize(tmp_path, performances=["e0"]) if "anno" in p.name]
    assert probe(path, "anno").camera_rt is None
    rts = probe(path, "anno", camera_poses=True).camera_rt
    assert rts is not None and len(rts) == 60 and all(rt.shape == (4, 4) for rt in rts.values())
    inv = inventory()
    inv.camera_rt = None  # probed without poses: a camera rule cannot be resolved
    with pytest.raises(UsageError, match="camera_poses=True"):
        plan(inv, selection=Selection(("images",), cameras=parse_cameras("ring:2")))


# ------------------------------------------------------------------ reading blobs by offset
def _source(tmp_path: Path, size: int = 3 << 20) -> tuple[Path, bytes]:
    data = np.random.default_rng(5).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return path, data


def test_pread_reads_ahead_for_adjacent_small_blobs_only(tmp_path, monkeypatch):
    from renderme360.output.outdir import OutputDir
    from renderme360.tasks import Options
    from renderme360.writers import ADJACENT, READ_AHEAD, WriteContext

    path, data = _source(tmp_path)
    calls: list[tuple[int, int]] = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: calls.append((at, n)) or real(fd, n, at))
    # a camera's frames: 3 KB blobs with a 600-byte header between them, in file order
    spans = [(i * 3600 + 600, 3000) for i in range(600)]
    with WriteContext(OutputDir(tmp_path / "out"), path, Options()) as ctx:
        got = [ctx.pread(at, n, "blob") for at, n in spans]
    assert got == [data[at : at + n] for at, n in spans]
    assert len(calls) <= 2 + 600 * 3600 // READ_AHEAD  # one read for dozens of blobs
    # far apart (real images) or out of order: one short read each, nothing read ahead
    calls.clear()
    spans = [(2_000_000, 5000), (100, 5000), (1_000_000, 5000), (2_900_000, 90_000)]
    with WriteContext(OutputDir(tmp_path / "out"), path, Options()) as ctx:
        got = [ctx.pread(at, n, "blob") for at, n in spans]
    assert got == [data[at : at + n] for at, n in spans]
    assert calls == [(at, n) for at, n in spans]
    assert ADJACENT < 1_000_000


def test_pread_past_the_end_is_a_truncated_file_even_from_the_read_ahead(tmp_path):
    from renderme360.output.outdir import OutputDir
    from renderme360.tasks import Options
    from renderme360.writers import WriteContext

    path, data = _source(tmp_path, 10_000)
    with WriteContext(OutputDir(tmp_path / "out"), path, Options()) as ctx:
        assert ctx.pread(0, 4000, "a") == data[:4000]
        assert ctx.pread(4100, 4000, "b") == data[4100:8100]  # from the read-ahead
        with pytest.raises(SMCFormatError, match="c: file is truncated"):
            ctx.pread(8200, 4000, "c")  # 1,800 bytes left
        assert ctx.pread(8200, 1800, "d") == data[8200:]


def test_blob_index_membership_of_a_key_of_another_form_is_false() -> None:
    """``in`` on the blob index answers False for a key that is not ``(kind, camera, frame)``
    (it unpacked any key and raised ValueError or TypeError)."""
    from renderme360.pipeline.inventory import BlobIndex

    index = BlobIndex()
    index[("color", "03", 0)] = BlobLocation(10, 4096)
    assert ("color", "03", 0) in index
    assert ("color", "03", 1) not in index and ("mask", "03", 0) not in index
    assert "abc" not in index and 5 not in index and ("color", "03") not in index


def test_keypoint_stack_whose_first_frame_has_no_data_is_a_format_error() -> None:
    """A keypoint file planned from a frame that reads back empty (changed since planning) is
    refused in one line naming the frame (the first frame's None was used as an array:
    AttributeError). Found by mypy once the reader callback was typed ``ndarray | None``."""
    from types import SimpleNamespace

    from renderme360.writers.arrays import _stack_frames

    ctx = SimpleNamespace(source="0026_e0_anno.smc")
    with pytest.raises(
        SMCFormatError, match=r"^0026_e0_anno.smc: Keypoints3d frame 4 has no data$"
    ):
        _stack_frames(ctx, "keypoints3d/all_frames.npz", [4, 5], lambda f: None, "Keypoints3d")


def test_image_channels_from_png_and_jpeg_headers_agree_with_pillow(tmp_path) -> None:
    """formats.image.image_channels reads PNG (IHDR colour type) and JPEG (frame header) channel
    counts itself (Pillow opened every mask of an export: 1.5 s of 4.9 s for 18,000 masks); the
    answer equals Pillow's for every colour type; other formats still go through Pillow. The
    export's check of a mask file opens it through safeopen: a FIFO or symlink is not
    single-channel (and does not block)."""
    import io
    import os

    from PIL import Image

    from renderme360.export.placer import _one_channel
    from renderme360.formats.image import declared_channels, image_channels

    def encoded(mode: str, fmt: str) -> bytes:
        img = Image.new(mode, (7, 5))
        buf = io.BytesIO()
        img.save(buf, fmt)
        return buf.getvalue()

    cases = [("L", "PNG"), ("LA", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("P", "PNG"),
             ("I;16", "PNG"), ("1", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"), ("CMYK", "JPEG"),
             ("RGB", "BMP"), ("RGBA", "TIFF")]  # fmt: skip
    for mode, fmt in cases:
        data = encoded(mode, fmt)
        with Image.open(io.BytesIO(data)) as img:
            want = 3 if img.mode == "P" else len(img.getbands())
        assert image_channels(data) == want, (mode, fmt)
        path = tmp_path / f"{mode.replace(';', '_')}.{fmt.lower()}"
        path.write_bytes(data)
        assert _one_channel(path) == (want == 1), (mode, fmt)
        if fmt in ("PNG", "JPEG"):
            assert declared_channels(data) == want, (mode, fmt)
        else:
            assert declared_channels(data) is None
    assert image_channels(b"\x89PNG\r\n\x1a\n" + b"\0" * 4) is None  # header cut short
    os.mkfifo(tmp_path / "fifo")
    assert _one_channel(tmp_path / "fifo") is False
    os.symlink(tmp_path / "L.png", tmp_path / "link.png")
    assert _one_channel(tmp_path / "L.png") is True and _one_channel(tmp_path / "link.png") is False

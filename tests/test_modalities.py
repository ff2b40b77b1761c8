"""The modality table (renderme360.modalities) and every consumer of it.

Two kinds of test:
- registry coverage: each consumer that dispatches per modality has an entry for every spec
  (plan, inventory, writers, layout, verify, loader backends, loader readers, synth); a spec
  missing from one fails here, naming the consumer and the modality;
- the walk: every spec is synthesised, planned, extracted alone, verified against its source,
  loaded from the folder and from the SMC files (values equal), re-encoded where its spec says,
  and previewed/exported where that applies.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import file_entries

from renderme360 import modalities, synth
from renderme360.cli import main
from renderme360.loader import load, smc_source
from renderme360.loader import performance as loader_perf
from renderme360.modalities import MODALITIES, SPECS, ModalitySpec, spec
from renderme360.output import extracted, layout
from renderme360.pipeline import inventory, plan
from renderme360.selection import parse_modalities
from renderme360.verify import COMPARERS, verify
from renderme360.writers import get_writer

NAMES = [s.name for s in SPECS]
SUBJECT = "0026"


# ---------------------------------------------------------------------------- the table itself
def test_table_is_consistent() -> None:
    assert tuple(NAMES) == MODALITIES and len(set(NAMES)) == len(NAMES) == 11
    assert layout.MODALITIES is MODALITIES  # re-exported, not spelled again
    aliases = [a for s in SPECS for a in s.aliases]
    assert len(set(aliases)) == len(aliases) and not set(aliases) & set(NAMES)
    for s in SPECS:
        assert s.verify in ("stored", "derived", "none"), s.name  # what verify.COMPARERS knows
        assert s.preferred in ("raw", "anno"), s.name
        assert s.reencode in (None, "jpg", "png"), s.name
        assert s.reencode is None or s.is_blob, s.name
        assert s.stored_ext == s.is_blob, s.name
        assert (s.verify == "stored") == s.is_blob, s.name
        for a in (s.name, *s.aliases):
            assert parse_modalities(a.upper()) == (s.name,)
    assert spec("masks").grayscale and spec("masks").reencode == "png"
    assert spec("images").reencode == spec("uv").reencode == "jpg"
    assert spec("scan_masks").reencode is None  # scan masks are always copied
    with pytest.raises(KeyError, match="unknown modality 'depth'"):
        spec("depth")


def test_modalities_module_is_light() -> None:
    """The table imports no numpy/h5py/cv2 (the CLI builds --help from it)."""
    code = (
        "import sys; import renderme360.modalities; "
        "print(sorted(m for m in ('numpy', 'h5py', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- registry coverage
def _registries(specs: tuple[ModalitySpec, ...] = SPECS) -> dict[str, tuple[object, list[str]]]:
    """consumer -> (its registry, the names it must hold for ``specs``)."""
    every = [s.name for s in specs]
    loaded = [s.name for s in specs if s.loader]
    return {
        "pipeline.plan.PLANNERS": (plan.PLANNERS, every),
        "pipeline.inventory.HOLDS": (inventory.HOLDS, every),
        "layout.FOLDERS": (layout.FOLDERS, every),
        "layout.PREFERRED_SOURCE": (layout.PREFERRED_SOURCE, every),
        "verify.COMPARERS": (COMPARERS, every),
        "synth.WRITERS": (synth.WRITERS, every),
        "output.extracted.HOLDS": (extracted.HOLDS, loaded),
        "loader.smc_source.HOLDS": (smc_source.HOLDS, loaded),
        "loader.performance.READERS": (
            loader_perf.READERS,
            [s.loader for s in specs if s.loader],
        ),
    }


def _missing(specs: tuple[ModalitySpec, ...] = SPECS) -> dict[str, list[str]]:
    """consumer -> the names of ``specs`` it has no entry for (only consumers missing some)."""
    out = {}
    for consumer, (registry, names) in _registries(specs).items():
        lacking = [n for n in names if n not in registry]  # type: ignore[operator]
        if lacking:
            out[consumer] = lacking
    return out


@pytest.mark.parametrize("consumer", sorted(_registries()))
def test_registry_covers_every_spec(consumer: str) -> None:
    registry, names = _registries()[consumer]
    assert _missing().get(consumer) is None, f"{consumer} has no entry for {_missing()[consumer]}"
    extra = [n for n in registry if n not in names]  # type: ignore[attr-defined]
    assert not extra, f"{consumer} has entries for unknown modalities {', '.join(extra)}"


def test_a_new_spec_is_missing_from_every_consumer() -> None:
    """The coverage check sees a spec added to the table alone: every consumer lacks it."""
    depth = dataclasses.replace(
        spec("masks"), name="depth", aliases=(), folder="depth", loader="depth"
    )
    missing = _missing((*SPECS, depth))
    assert missing == {consumer: ["depth"] for consumer in _registries()}


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.is_blob])
def test_blob_specs_have_paths_and_writer(name: str) -> None:
    """A blob modality's paths round-trip through layout.parse_path; the blob writer exists
    (array modalities have their own fixed paths and writers: the walk covers them)."""
    s = spec(name)
    assert get_writer("blob") is not None
    cam = "25" if s.per_camera else None
    frame = 7 if s.per_frame else None
    rel = layout.blob_path(name, cam, frame, "png")
    assert rel.startswith(s.folder + "/")
    parsed = layout.parse_path("from_anno/" + rel)
    assert parsed == layout.OutputPath("anno", name, cam, frame, "png")


# ---------------------------------------------------------------------------- the walk
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("walk") / "data"
    perfs = sorted({perf for _, perf in synth.WRITERS.values()})
    synth.synthesize(root, SUBJECT, perfs, release=21, cameras=2, frames=2)
    return root


def _equal(a: object, b: object) -> bool:
    """Deep equality of loader values: dicts, tuples, arrays (dtype and bytes), bytes."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def _extract(data: Path, out: Path, perf: str, mods: str, *extra: str) -> Path:
    args = ["extract", str(data), "-o", str(out), "--performance", perf, "--modalities", mods]
    assert main([*args, "--workers", "1", "-q", *extra]) == 0
    return out / f"{SUBJECT}_{perf}"


@pytest.mark.parametrize("name", NAMES)
def test_walk_every_spec(name: str, data: Path, tmp_path: Path) -> None:
    s = spec(name)
    perf = synth.WRITERS[name][1]
    # synth wrote it: the inventory of the performance's files holds it
    invs = {
        r: inventory.probe(data / r / SUBJECT / f"{SUBJECT}_{perf}_{r}.smc", r)
        for r in ("anno", "raw")
    }
    assert any(name in inv.modalities() for inv in invs.values())
    holders = {r for r, inv in invs.items() if name in inv.modalities()}
    if s.smc_file != "both":
        assert holders == {s.smc_file}
    # plan -> extract: only this modality, in its folder, parsed back to it
    folder = _extract(data, tmp_path / "out", perf, name)
    entries = [e for e in file_entries(folder) if layout.parse_path(e["path"]) is not None]
    assert entries, f"{name}: nothing extracted"
    for e in entries:
        parsed = layout.parse_path(e["path"])
        assert e["modality"] == parsed.modality == name, e["path"]
        assert e["path"].split("/")[1] == s.folder
        if s.is_blob:
            assert parsed.ext in ("jpg", "png")
    # verify --source: every file compared with the source the way its spec says
    report = verify(folder, data)
    assert report.ok, report.problems
    n = len(entries)
    counted = {
        "stored": report.checked_against_source,
        "derived": report.derived_against_source,
        "none": 0,
    }
    assert counted[s.verify] == (0 if s.verify == "none" else n)
    assert report.against_source == counted[s.verify]
    # the loader reads it the same from the folder and from the SMC files
    if s.loader is None:
        assert name not in load(folder).modalities
        return
    from_folder, from_smc = load(folder), load(data, SUBJECT, perf)
    assert name in from_folder.modalities and name in from_smc.modalities
    got, want = from_folder.read(name), from_smc.read(name)
    assert got is not None and _equal(got, want), name


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.reencode])
def test_walk_reencode(name: str, data: Path, tmp_path: Path) -> None:
    """--image-mode reencode writes the spec's extension (grayscale ones with one channel),
    recorded as not copied; the rest of the blob modalities stay byte-exact copies."""
    import cv2

    s = spec(name)
    folder = _extract(
        data, tmp_path / "out", synth.WRITERS[name][1], name, "--image-mode", "reencode"
    )
    entries = [e for e in file_entries(folder) if layout.parse_path(e["path"]) is not None]
    assert entries
    for e in entries:
        assert e["path"].endswith("." + s.reencode), e["path"]
        assert e["variant"].startswith("reencode:")
        img = cv2.imread(str(folder / e["path"]), cv2.IMREAD_UNCHANGED)
        assert (img.ndim == 2) == s.grayscale
    report = verify(folder, data)
    assert report.ok and report.checked_against_source == 0


def test_copied_blob_modalities_are_never_reencoded(data: Path, tmp_path: Path) -> None:
    names = [s.name for s in SPECS if s.is_blob and not s.reencode]
    assert names == ["scan_masks"]
    folder = _extract(data, tmp_path / "out", "e0", ",".join(names), "--image-mode", "reencode")
    entries = [e for e in file_entries(folder) if layout.parse_path(e["path"]) is not None]
    assert entries and all(e["variant"] == "copy" for e in entries)
    assert verify(folder, data).checked_against_source == len(entries)


def test_walk_preview_and_export(data: Path, tmp_path: Path) -> None:
    """The camera streams feed the preview and the exports (with calibration)."""
    streams = [m for m in MODALITIES if m in modalities.STREAMS]
    assert streams == ["images", "masks"]
    folder = _extract(data, tmp_path / "out", "h0", ",".join([*streams, "calibration"]))
    shown = sorted(p.name for p in (folder / layout.VISUALIZATION).iterdir())
    assert "masks_overlay.jpg" in shown and any(n.startswith("cameras_frame_") for n in shown)
    dest = tmp_path / "ns"
    assert main(["export", "nerfstudio", str(folder), "--masks", "-o", str(dest), "-q"]) == 0
    doc = json.loads((dest / "transforms.json").read_text())
    assert len(doc["frames"]) == 2 * 2  # 2 cameras x 2 frames
    assert all((dest / f["mask_path"]).is_file() for f in doc["frames"])

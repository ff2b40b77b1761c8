"""--config job files: jobs, overrides by flags, the shipped example, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from renderme360.cli import main
from renderme360.config import load_config
from renderme360.errors import UsageError
from renderme360.synth import synthesize

EXAMPLE = Path(__file__).parent.parent / "examples" / "avatar_research.yaml"


def test_shipped_example_loads():
    jobs = load_config(EXAMPLE)
    assert [j["performances"] for j in jobs] == ["s*", "e*"]
    assert jobs[0]["cameras"] == "ring:12" and "audio" in jobs[0]["modalities"]
    assert "flame" in jobs[1]["modalities"] and "subjects" not in jobs[0]


def test_example_job_runs_on_synthetic_data(tmp_path, capsys):
    synthesize(tmp_path / "data", performances=["e0", "s3_all"], cameras=20, frames=2)
    cfg = (
        EXAMPLE.read_text()
        .replace("/data/renderme360_avatar", "out")
        .replace("/data/renderme360", "data")
        .replace("workers: 8", "workers: 1")
    )
    (tmp_path / "job.yaml").write_text(cfg)
    assert main(["extract", "--config", str(tmp_path / "job.yaml"), "-q", "--no-preview"]) == 0
    speech = tmp_path / "out" / "0026_s3_all"
    cams = sorted(p.name for p in (speech / "from_raw/images").iterdir())
    assert len(cams) == 12  # ring:12 out of 20 image cameras
    assert (speech / "from_raw/audio/audio.wav").is_file()
    assert not (speech / "from_anno/flame").exists()
    expr = tmp_path / "out" / "0026_e0"
    assert (expr / "from_anno/flame/all_frames.npz").is_file()
    assert not (expr / "from_raw/images").exists()  # images not selected for expressions
    manifest = json.loads((speech / "manifest.json").read_text())
    assert manifest["selection"]["cameras"] == "ring:12"
    assert any("ring:12" in n for n in manifest["notes"])


def test_flags_override_config(tmp_path, capsys):
    synthesize(tmp_path / "data", performances=["e0"], cameras=4, frames=2)
    (tmp_path / "job.yaml").write_text("data_root: data\noutput: out\nmodalities: [images]\n")
    assert (
        main(
            [
                "extract",
                "--config",
                str(tmp_path / "job.yaml"),
                "--modalities",
                "masks",
                "--dry-run",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["performances"][0]["files_by_modality"]) == {"masks"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour: 3\n", "unknown key 'colour'"),
        ("workers: many\n", "workers has the wrong type"),
        ("- a\n- b\n", "expected a mapping"),
        ("jobs: 3\n", "jobs must be a list"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_configs(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path / "bad.yaml")


def test_an_empty_output_folder_is_refused(tmp_path, capsys, monkeypatch):
    """-o '' would be the current folder: refused with a one-line error, nothing written."""
    synthesize(tmp_path / "data", "0026", ["e0"], 21, 1, 1)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["extract", str(tmp_path / "data"), "-o", "", "-q"]) == UsageError.exit_code
    assert "empty output folder" in capsys.readouterr().err
    assert list(work.iterdir()) == []

"""Issue 20, assorted trust items: job-file ids, markup in untrusted text, deep folders, long
output paths for audio, huge --frames numbers, and a quiet interpreter shutdown."""

from __future__ import annotations

import json

import pytest

from renderme360.cli import main
from renderme360.config import load_config
from renderme360.errors import UsageError
from renderme360.synth import synthesize

# -- 1. job-file ids keep the digits typed ------------------------------------------------------


def test_job_file_ids_keep_the_digits_typed(tmp_path):
    """``subjects: [0026]`` is YAML 1.1 octal 22: read as the text typed, not "0022"."""
    job = tmp_path / "job.yaml"
    job.write_text(
        "data_root: d\nsubjects: [0026, 0100]\ncameras: [00, 022]\nperformances: 0010\n"
        "frames: 10:20\nworkers: 2\n"
    )
    (cfg,) = load_config(job)
    assert cfg["subjects"] == "0026,0100"
    assert cfg["cameras"] == "00,022"
    assert cfg["performances"] == "0010"
    assert cfg["frames"] == "10:20"  # not sexagesimal 620
    assert cfg["workers"] == 2 and type(cfg["workers"]) is int
    job.write_text("subjects: 0026\n")
    assert load_config(job)[0]["subjects"] == "0026"


@pytest.mark.parametrize("value", ["[1.5]", "[true]", "[null]", "[{a: 1}]"])
def test_a_non_id_in_a_job_file_names_the_quoting_fix(tmp_path, value):
    (tmp_path / "job.yaml").write_text(f"subjects: {value}\n")
    with pytest.raises(UsageError, match=r"not an id; quote ids, e\.g\. subjects: \['0026'\]"):
        load_config(tmp_path / "job.yaml")


def test_an_unquoted_subject_id_extracts_that_subject(tmp_path, capsys):
    synthesize(tmp_path / "data", "0026", ["e0"], cameras=2, frames=1)
    synthesize(tmp_path / "data", "0022", ["e0"], cameras=2, frames=1)
    (tmp_path / "job.yaml").write_text("data_root: data\noutput: out\nsubjects: [0026]\n")
    argv = ["extract", "--config", str(tmp_path / "job.yaml"), "--dry-run", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["performance"] for p in doc["performances"]] == ["0026_e0"]

"""``extract --staging DIR --staging-max SIZE``: whole remote files copied into DIR by ranged
requests, the next performance fetched while the current one extracts, each copy removed when
its performance ends; DIR never holds more than SIZE (sampled during the run); a file larger
than SIZE alone is refused by name."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import tree
from remote_servers import range_server

from renderme360.cli import main
from renderme360.synth import synthesize

pytest.importorskip("fsspec")


def extract(*args: object) -> int:
    return main(["extract", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("staging") / "data"
    synthesize(root, performances=("e0", "h0", "s1_all", "s2_all"), cameras=4, frames=3)
    return root


def folder_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed while we looked
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class Sampler(threading.Thread):
    """The size of a folder, sampled until stopped (the largest seen and how many samples)."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self.samples, self.nonzero = root, 0, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            size = folder_bytes(self.root)
            self.peak = max(self.peak, size)
            self.samples += 1
            self.nonzero += size > 0
            self.done.wait(0.002)


def test_staging_stays_under_its_limit_and_equals_a_direct_run(
    data: Path, tmp_path: Path, capsys
) -> None:
    sizes = {p.name: p.stat().st_size for p in data.rglob("*.smc")}
    per_perf: dict[str, int] = {}
    for name, size in sizes.items():
        key = name.rsplit("_", 1)[0]
        per_perf[key] = per_perf.get(key, 0) + size
    # room for the largest performance's files and little more: the next performance's copies
    # wait while it extracts
    limit = max(per_perf.values()) + 1000
    staging = tmp_path / "staging"
    staging.mkdir()
    with range_server(data) as srv:
        assert extract(srv.url + "/", "-o", tmp_path / "direct", "-q") == 0
        capsys.readouterr()
        srv.counters.reset()
        sampler = Sampler(staging)
        sampler.start()
        try:
            code = extract(
                srv.url + "/",
                "-o",
                tmp_path / "staged",
                "--staging",
                staging,
                "--staging-max",
                str(limit),
                "--json",
            )
        finally:
            sampler.done.set()
            sampler.join()
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert sampler.nonzero > 0, "no copy was ever seen in the staging folder"
    assert sampler.peak <= limit, (sampler.peak, limit)
    assert list(staging.iterdir()) == []  # every copy (and the run's folder) removed
    assert tree(tmp_path / "staged") == tree(tmp_path / "direct")
    # whole files were copied: the server sent each file once (plus HDF5 metadata reads of
    # the survey), and the counts are in the outcomes
    assert srv.counters.bytes >= sum(sizes.values())
    assert srv.counters.bytes <= 1.1 * sum(sizes.values())
    assert sum(p["fetched"]["bytes"] for p in doc["performances"]) == srv.counters.bytes


def test_a_file_larger_than_the_limit_is_refused_by_name(data: Path, tmp_path: Path, capsys):
    sizes = {p.name: p.stat().st_size for p in data.rglob("*.smc")}
    largest = max(sizes, key=sizes.__getitem__)
    with range_server(data) as srv:
        code = extract(
            srv.url + "/", "-o", tmp_path / "o", "--staging", tmp_path / "s",
            "--staging-max", str(sizes[largest] - 1),
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert largest in err and "--staging-max" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert not list((tmp_path / "s").glob("*")) if (tmp_path / "s").exists() else True


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--staging-max", "1G"), "--staging-max goes with --staging DIR"),
        (("--staging", "S"), "--staging DIR needs --staging-max"),
        (("--staging", "S", "--staging-max", "lots"), "give a size like"),
    ],
)
def test_staging_flags_are_checked(data: Path, tmp_path: Path, capsys, flags, message) -> None:
    flags = tuple(str(tmp_path / f) if f == "S" else f for f in flags)
    assert extract(data, "-o", tmp_path / "o", *flags) == 2
    assert message in capsys.readouterr().err


def test_parse_size() -> None:
    from renderme360.pipeline.staging import parse_size

    assert parse_size("500M") == 500 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5T") == 1_500_000_000_000
    assert parse_size("123") == 123


def test_local_sources_can_be_staged_too(data: Path, tmp_path: Path) -> None:
    assert extract(data, "-o", tmp_path / "direct", "-q", "--performance", "e0") == 0
    staged = tmp_path / "staged"
    code = extract(
        data, "-o", staged, "-q", "--performance", "e0",
        "--staging", tmp_path / "s", "--staging-max", "1G",
    )  # fmt: skip
    assert code == 0
    assert tree(staged) == tree(tmp_path / "direct")
    assert list((tmp_path / "s").iterdir()) == []


def test_copies_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    from renderme360.pipeline.staging import STAGING_PREFIX, remove_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f"{STAGING_PREFIX}{dead.pid}-abc"
    (stale / "sub").mkdir(parents=True)
    (stale / "0-0.smc.part").write_bytes(b"x" * 100)
    live = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "renderme360-staging-notapid"
    other.mkdir()
    assert remove_stale(tmp_path) == [stale]
    assert not stale.exists() and live.is_dir() and other.is_dir()

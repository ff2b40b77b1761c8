"""Serial, process-pool and dask executions write identical trees."""

from __future__ import annotations

import pytest
from conftest import tree

from renderme360.cli import main
from renderme360.synth import synthesize


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    synthesize(root, performances=["e0", "s1_all", "h1_2bk"], cameras=5, frames=6)
    return root


@pytest.fixture(scope="module")
def serial(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    assert main(["extract", str(data), "-o", str(out), "--workers", "1", "-q"]) == 0
    return tree(out)


def test_two_workers_identical_to_serial(data, serial, tmp_path):
    assert main(["extract", str(data), "-o", str(tmp_path), "--workers", "2", "-q"]) == 0
    got = tree(tmp_path)
    assert len(got) > 150 and got == serial


def test_dask_cluster_on_loopback_identical_to_serial(data, serial, tmp_path):
    distributed = pytest.importorskip("distributed", reason="the [cluster] extra is in [dev]")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        rc = main(
            [
                "extract",
                str(data),
                "-o",
                str(tmp_path),
                "--scheduler",
                cluster.scheduler_address,
                "-q",
            ]
        )
    assert rc == 0
    assert tree(tmp_path) == serial


def test_unreachable_scheduler_is_a_clear_error(data, tmp_path, capsys):
    pytest.importorskip("distributed")
    rc = main(["extract", str(data), "-o", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9", "-q"])
    assert rc == 2
    assert "cannot reach the dask scheduler" in capsys.readouterr().err


def test_large_batches_replan_just_in_time(data, serial, tmp_path, monkeypatch):
    """Above a task budget plans are dropped after the survey: same output, bounded memory."""
    import renderme360.pipeline.run as ex

    monkeypatch.setattr(ex, "KEEP_PLANNED_TASKS", 10)
    planned = []
    real = ex.plan_performance
    monkeypatch.setattr(ex, "plan_performance", lambda *a, **k: planned.append(1) or real(*a, **k))
    assert main(["extract", str(data), "-o", str(tmp_path), "--workers", "1", "-q"]) == 0
    assert len(planned) == 6  # 3 performances, each planned for the survey and again to run
    assert tree(tmp_path) == serial

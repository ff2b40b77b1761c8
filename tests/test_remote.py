"""Remote roots: explore, extract and load from an HTTP server with ranges and from a real S3
API (moto's server), both on loopback, equal to local runs file for file; what is fetched is
counted on the server side; 5xx retried, a file changed mid-run fails its performance,
credentials never shown."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import smcfactory as F
from conftest import tree
from remote_servers import S3_ENV, range_server, s3_server, upload_tree

from renderme360.cli import main
from renderme360.synth import synthesize

pytest.importorskip("fsspec")
pytest.importorskip("moto")


def run(*args: object) -> int:
    """``renderme360 ARGS...`` in-process; its exit code."""
    return main([str(a) for a in args])


#: Files that record where the source was (its path or URL and mtime): compared apart.
SOURCE_NAMING = (
    "metadata/info.json",
    "metadata/info.txt",
    "manifest.jsonl",
    "SHA256SUMS",
    "size_summary.txt",  # their sizes
)


def assert_same_output(remote: Path, local: Path) -> None:
    """Every output file byte-identical (sha256), except that the files recording the source's
    path and mtime are compared without those fields."""
    a, b = tree(remote), tree(local)
    assert a.keys() == b.keys()
    differ = sorted(k for k in a if a[k] != b[k])
    assert all(k.endswith(SOURCE_NAMING) for k in differ), differ
    for key in differ:
        if key.endswith("info.json"):
            docs = [json.loads((root / key).read_text()) for root in (remote, local)]
            for d in docs:
                d["source_file"].pop("path")
                d.get("source", {}).pop("path", None)
                d.get("source", {}).pop("mtime_ns", None)
            assert docs[0] == docs[1], key
        elif key.endswith("size_summary.txt"):
            texts = [(root / key).read_text().splitlines() for root in (remote, local)]
            keep = [[x for x in t if "metadata/" not in x and x[:1].isspace()] for t in texts]
            assert keep[0] == keep[1] and len(keep[0]) > 3
        elif key.endswith("info.txt"):
            texts = [(root / key).read_text().splitlines() for root in (remote, local)]
            assert [x for x in texts[0] if not x.startswith("source:")] == [
                x for x in texts[1] if not x.startswith("source:")
            ]
        elif key.endswith("manifest.jsonl"):
            rows = []
            for root in (remote, local):
                lines = [json.loads(x) for x in (root / key).read_text().splitlines()]
                naming = (*SOURCE_NAMING, "extraction_info.txt")  # timestamped, names the source
                lines = [x for x in lines if not x["path"].endswith(naming)]
                for x in lines:
                    x.pop("source_mtime_ns", None)
                rows.append(lines)
            assert rows[0] == rows[1]
            assert len(rows[0]) > 10


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote") / "data"
    synthesize(root, performances=("e0", "h0"), cameras=3, frames=2)
    return root


@pytest.fixture(scope="module")
def local_out(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert run("extract", data, "-o", out, "-q") == 0
    return out


@pytest.fixture
def http(data: Path):
    with range_server(data) as srv:
        yield srv


@pytest.fixture(scope="module")
def s3(data: Path):
    saved = {k: os.environ.get(k) for k in (*S3_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(S3_ENV)
    try:
        with s3_server() as (endpoint, counters):
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            upload_tree(data, endpoint, "lab", "renderme360")
            yield endpoint, counters
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import fsspec

        fsspec.filesystem("s3").clear_instance_cache()


def test_url_helpers_redact_and_map_file_urls(tmp_path: Path) -> None:
    from renderme360.smc.source import RemotePath, as_location, is_url, redact

    assert redact("https://bob:hunter2@h/x.smc?X-Amz-Signature=abc&t=1 end") == (
        "https://***@h/x.smc?*** end"
    )
    assert is_url("s3://b/p") and not is_url("/data/x.smc") and not is_url("C:/x")
    assert as_location(f"file://{tmp_path}/a b.smc") == tmp_path / "a b.smc"
    loc = as_location("https://u:p@h/d/0026_e0_anno.smc?sig=1")
    assert isinstance(loc, RemotePath) and loc.name == "0026_e0_anno.smc" and loc.suffix == ".smc"
    assert "p@" not in str(loc) and "sig=1" not in str(loc)


def test_http_extract_equals_local_and_counts_what_it_fetched(
    data: Path, local_out: Path, http, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert run("extract", http.url + "/", "-o", out, "--json") == 0
    doc = _json_out(capsys)
    assert_same_output(out, local_out)
    fetched = {p["performance"]: p["fetched"] for p in doc["performances"]}
    # every byte counted by the tool was sent by the server, and no more than one pass of the
    # files plus their metadata (HEAD requests carry no body)
    total = sum(f["bytes"] for f in fetched.values())
    assert total == http.counters.bytes
    assert sum(f["requests"] for f in fetched.values()) == http.counters.requests
    file_bytes = sum(p.stat().st_size for p in data.rglob("*.smc"))
    assert total <= 1.05 * file_bytes
    manifest = json.loads((out / "0026_e0" / "manifest.json").read_text())
    assert manifest["fetched"] == fetched["e0"]
    assert manifest["sources"]["anno"]["path"].startswith(http.url)


def test_http_explore_and_load_equal_local(data: Path, http, capsys) -> None:
    import renderme360

    assert run("explore", data, "--json") == 0
    local = _json_out(capsys)
    assert run("explore", http.url + "/", "--json") == 0
    remote = _json_out(capsys)

    def strip(doc: object) -> object:
        """Without what names the source (path, mtime, ETag) or depends on its length."""
        naming = {"path", "mtime_ns", "etag", "extract_bytes", "metadata"}
        if isinstance(doc, dict):
            return {k: strip(v) for k, v in doc.items() if k not in naming}
        return [strip(v) for v in doc] if isinstance(doc, list) else doc

    assert strip(remote["performances"]) == strip(local["performances"])
    assert len(remote["performances"]) == 2 and remote["root"] == http.url + "/"
    perf_local = renderme360.load(data, "0026", "e0")
    perf_remote = renderme360.load(http.url + "/", "0026", "e0")
    cam = perf_local.image_camera_ids[0]
    assert perf_remote.image_camera_ids == perf_local.image_camera_ids
    assert np.array_equal(perf_remote.image(cam, 0), perf_local.image(cam, 0))
    assert np.array_equal(perf_remote.cameras[cam].K, perf_local.cameras[cam].K)
    assert perf_remote.frame_ids == perf_local.frame_ids


def test_s3_extract_and_verify_source_equal_local(s3, local_out: Path, tmp_path: Path, capsys):
    _endpoint, counters = s3
    out = tmp_path / "out"
    counters.reset()
    assert run("extract", "s3://lab/renderme360", "-o", out, "-q", "--json") == 0
    doc = _json_out(capsys)
    assert_same_output(out, local_out)
    assert sum(p["fetched"]["bytes"] for p in doc["performances"]) == counters.bytes
    assert run("explore", "s3://lab/renderme360/anno/0026/0026_e0_anno.smc", "--json") == 0
    (one,) = _json_out(capsys)["performances"]
    assert (one["actor"], one["performance"]) == ("0026", "e0")


def test_5xx_is_retried_and_a_changed_file_fails_its_performance(
    data: Path, local_out: Path, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "served"
    shutil.copytree(data, root)
    with range_server(root) as srv:
        srv.fail_next = {"raw/0026/0026_e0_raw.smc": 2}  # two 503s in a row, then fine
        srv.change_after = ("anno/0026/0026_h0_anno.smc", 25)
        code = run("extract", srv.url + "/", "-o", tmp_path / "out", "--json")
    doc = _json_out(capsys)
    err = capsys.readouterr().err
    assert srv.fail_next["raw/0026/0026_e0_raw.smc"] == 0  # the 503s were answered
    status = {p["performance"]: p for p in doc["performances"]}
    assert status["e0"]["status"] == "done"
    assert_same_output(tmp_path / "out" / "0026_e0", local_out / "0026_e0")
    assert status["h0"]["status"] == "failed" and code != 0
    assert "0026_h0_anno.smc: changed" in status["h0"]["error"]
    assert "Traceback" not in err


def test_credentials_never_printed_or_written(data: Path, tmp_path: Path, capsys) -> None:
    with range_server(data) as srv:
        url = srv.url.replace("http://", "http://bob:hunter2@") + "/?token=s3cr3t"
        run("extract", url, "-o", tmp_path / "out", "--json")
        run("explore", srv.url + "/missing/?token=s3cr3t")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    text += "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*.*"))
    assert "hunter2" not in text and "s3cr3t" not in text


@pytest.fixture(scope="module")
def rig60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One performance of 60 cameras x 21 frames, blobs of ~160 KB (real ones are larger)."""
    root = tmp_path_factory.mktemp("rig60")
    cams = [f"{i:02d}" for i in range(60)]
    color = {c: {fr: F.jpeg(360, 360, seed=i) for fr in range(21)} for i, c in enumerate(cams)}
    F.build_smc(
        root / "0026_e0.smc",
        color=color,
        calibration={c: F.calib(i) for i, c in enumerate(cams)},
        camera_attrs={"num_frame": 21},
    )
    return root


def test_sample_of_a_remote_60_camera_performance_fetches_under_2_percent(
    rig60: Path, tmp_path: Path, capsys
) -> None:
    size = (rig60 / "0026_e0.smc").stat().st_size
    with range_server(rig60) as srv:
        assert run("extract", srv.url + "/", "--sample", "-o", tmp_path / "out", "-q") == 0
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*.jpg"))
    assert written > 0
    assert srv.counters.bytes < 0.02 * size, (srv.counters.bytes, size)


def test_dask_workers_read_the_url_themselves(data: Path, local_out: Path, tmp_path: Path):
    """No shared file system: the workers (other processes) fetch from the server."""
    distributed = pytest.importorskip("distributed", reason="the [cluster] extra is in [dev]")
    with (
        range_server(data) as srv,
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
    ):
        out = tmp_path / "out"
        rc = run(
            "extract", srv.url + "/", "-o", out, "--scheduler", cluster.scheduler_address, "-q"
        )
    assert rc == 0
    assert_same_output(out, local_out)


def test_base_import_and_local_runs_do_not_import_fsspec(data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from renderme360.cli import main; "
        f"rc = main(['extract', {str(data)!r}, '-o', {str(tmp_path / 'o')!r}, '-q']); "
        "assert rc == 0 and 'fsspec' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)


def test_verify_source_check_and_export_from_a_url(
    s3, data: Path, local_out: Path, tmp_path: Path, capsys
) -> None:
    """verify --source URL compares with the remote files (a changed local copy is caught);
    check and an export read a URL root as they read a local one."""
    root = "s3://lab/renderme360"
    assert run("verify", local_out / "0026_e0", "--source", root, "--json") == 0
    (report,) = _json_out(capsys)
    assert report["checked_against_source"] > 0 and report["derived_against_source"] > 0
    bad = tmp_path / "bad"
    shutil.copytree(local_out / "0026_e0", bad / "0026_e0")
    npz = sorted((bad / "0026_e0").rglob("flame/*.npz"))[0]
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    first = next(iter(arrays))
    arrays[first] = arrays[first] + 1  # a stale aggregate with a matching manifest entry
    np.savez(npz, **arrays)
    import hashlib

    rel = npz.relative_to(bad / "0026_e0").as_posix()
    lines = (bad / "0026_e0" / "manifest.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        entry = json.loads(line)
        if entry["path"] == rel:
            entry["bytes"], entry["sha256"] = (
                npz.stat().st_size,
                hashlib.sha256(npz.read_bytes()).hexdigest(),
            )
            lines[i] = json.dumps(entry)
    (bad / "0026_e0" / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    assert run("verify", bad / "0026_e0", "--source", root) != 0
    assert f"{rel}: differs from what s3://lab/renderme360" in capsys.readouterr().out

    assert run("check", root, "--subject", "0026", "--performance", "e0", "--json") == 0
    remote_check = _json_out(capsys)
    assert run("check", data, "--subject", "0026", "--performance", "e0", "--json") == 0
    local_check = _json_out(capsys)
    assert remote_check["cameras"] == local_check["cameras"]

    exports = {}
    for name, src in (("remote", root), ("local", data)):
        out = tmp_path / f"ns_{name}"
        args = ("export", "nerfstudio", src, "--subject", "0026", "--performance", "e0")
        assert run(*args, "-o", out, "-q") == 0
        exports[name] = out
    assert tree(exports["remote"]).keys() == tree(exports["local"]).keys()
    for rel in tree(exports["local"]):
        if rel.startswith("images/"):
            assert (exports["remote"] / rel).read_bytes() == (exports["local"] / rel).read_bytes()
    remote_doc = json.loads((exports["remote"] / "transforms.json").read_text())
    local_doc = json.loads((exports["local"] / "transforms.json").read_text())
    assert remote_doc["frames"] == local_doc["frames"]


def test_s3_5xx_is_retried(s3, local_out: Path, tmp_path: Path, capsys) -> None:
    """moto's server answers real HTTP 503 SlowDown to the first GETs of one object
    (injected in the WSGI layer in front of moto, server side): the extraction goes on.
    (s3fs/botocore retry a 503 themselves, ByteSource's bounded retry is the outer layer: the
    HTTP test shows that one, fsspec's HTTP client does not retry.)"""
    _endpoint, counters = s3
    key = "/lab/renderme360/raw/0026/0026_e0_raw.smc"
    counters.fail_next[key] = 3
    out = tmp_path / "out"
    code = run("extract", "s3://lab/renderme360", "--performance", "e0", "-o", out, "--json")
    doc = _json_out(capsys)
    assert counters.fail_next[key] == 0 and counters.failed >= 3
    assert code == 0 and doc["performances"][0]["status"] == "done"
    assert_same_output(out / "0026_e0", local_out / "0026_e0")


def test_a_reader_collected_on_another_thread_while_h5py_is_busy_does_not_deadlock(data: Path):
    """The hang seen in the 5xx test: HDF5 (holding h5py's lock) reads a remote file through
    fsspec's event-loop thread, and the garbage collector runs on that thread and collects an
    ExtractionReader: closing its h5py file there waits for the lock forever. Now its handles
    are left for the next reader to close."""
    import threading

    from h5py._objects import phil

    from renderme360.smc import reader as reader_mod

    box = [reader_mod.ExtractionReader(next(data.rglob("*_anno.smc")))]
    smc = box[0].smc
    finished = threading.Event()

    def collect() -> None:
        box.pop().__del__()  # what the collector does on that thread
        finished.set()

    with phil:  # the main thread is inside h5py
        t = threading.Thread(target=collect, daemon=True)
        t.start()
        assert finished.wait(60), "the collector's thread is stuck closing the h5py file"
    t.join()
    assert smc.id.valid  # left open, not closed under another thread's lock
    reader_mod.ExtractionReader(next(data.rglob("*_raw.smc"))).close()
    assert not smc.id.valid and not reader_mod._ORPHANS


def test_no_cycle_collection_while_hdf5_waits_for_a_remote_read() -> None:
    """HDF5 reads a remote file through SourceFile.readinto holding h5py's lock while the bytes
    come from fsspec's thread; a cycle collection there that frees an h5py object would wait
    for that lock forever. The collector is off during the read (nested reads from several
    threads included) and back as it was afterwards."""
    import gc
    import threading

    from renderme360.smc.source import SourceFile

    seen: list[bool] = []
    inner = threading.Event()

    class Source:
        def read_cached(self, pos: int, n: int) -> bytes:
            seen.append(gc.isenabled())
            if not inner.is_set():  # a second reader on another thread, inside the first
                inner.set()
                t = threading.Thread(target=SourceFile(self).readinto, args=(bytearray(2),))
                t.start()
                t.join()
                seen.append(gc.isenabled())  # the other read ended: still off for this one
            return b"\0" * n

    assert gc.isenabled()
    SourceFile(Source()).readinto(bytearray(4))
    assert seen == [False, False, False] and gc.isenabled()
    gc.disable()
    try:
        SourceFile(Source()).readinto(bytearray(4))
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()


def test_one_head_request_per_unit_of_a_remote_file(
    data: Path, tmp_path: Path, monkeypatch
) -> None:
    """A unit of a remote file is checked against the planned version once, after it ran; the
    check before it is skipped when this process confirmed that version at the end of its
    previous unit, and opening the file for the unit asks nothing more (it was 3 HEAD requests a
    unit: 223 for 74 units, now 78). The first unit of a file is still checked
    before, and a file changed mid-run still fails (test above)."""
    import renderme360.pipeline.execute as execute

    units: dict[str, int] = {}
    real = execute.run_unit

    def counting(unit, out_dir, options):
        name = unit.source.path.rsplit("/", 1)[-1]
        units[name] = units.get(name, 0) + 1
        return real(unit, out_dir, options)

    monkeypatch.setattr(execute, "run_unit", counting)
    monkeypatch.setattr(execute, "_CONFIRMED", {}, raising=False)
    with range_server(data) as srv:
        assert run("extract", srv.url + "/", "-o", tmp_path / "out", "--workers", "1", "-q") == 0
        heads = {k.rsplit("/", 1)[-1]: v for k, v in srv.counters.heads.items()}
    assert units and max(units.values()) > 1  # several units of one file: the case at hand
    for name, n in units.items():
        checks = heads.get(name, 0)
        # n after-checks + 1 before-check + what the survey and opening ask (<= 3)
        assert n + 1 <= checks <= n + 4, (name, n, checks, heads)


def test_a_lone_remote_anno_file_gets_the_single_file_hint(data: Path, http) -> None:
    """A URL naming one anno file (no images in it): the loader's one-line hint names the pair,
    as for a local file (it built a ``Path`` of the URL and failed with a TypeError; found by
    mypy once ``SMCSource.files`` was typed as local paths or URLs)."""
    import renderme360

    anno = next(data.rglob("0026_e0_anno.smc")).relative_to(data).as_posix()
    perf = renderme360.load(f"{http.url}/{anno}")
    hint = perf.single_file_hint("renderme360 check")
    assert hint.startswith("0026_e0_anno.smc alone holds no images: images live in the raw file")
    assert "renderme360 check DATA_ROOT --subject 0026 --performance e0" in hint
    assert perf.image_camera_ids == []


def test_video_exports_read_a_url_like_a_local_root(tmp_path: Path) -> None:
    """`export talkinghead` / `export clips` of a URL root (subject/performance chosen there)
    write what they write from the local files: same audio bytes, same camera, same decoded
    frames (the root was taken as a local path: "http:/host: no such file or folder")."""
    av = pytest.importorskip("av")
    root = tmp_path / "speech"
    synthesize(root, performances=("s1_all",), cameras=3, frames=12)
    pick = ["--subject", "0026", "--performance", "s1_all"]
    with range_server(root) as srv:
        assert run("export", "talkinghead", srv.url + "/", *pick, "--camera", "25",
                   "-o", tmp_path / "th_url", "-q") == 0  # fmt: skip
        assert run("export", "clips", srv.url + "/", *pick, "--cameras", "25",
                   "--clip-seconds", "0.2", "-o", tmp_path / "cl_url", "-q") == 0  # fmt: skip
    assert run("export", "talkinghead", root, *pick, "--camera", "25",
               "-o", tmp_path / "th_local", "-q") == 0  # fmt: skip
    assert run("export", "clips", root, *pick, "--cameras", "25",
               "--clip-seconds", "0.2", "-o", tmp_path / "cl_local", "-q") == 0  # fmt: skip

    def frames(mp4: Path) -> list[np.ndarray]:
        with av.open(str(mp4)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    url, local = tmp_path / "th_url" / "0026_s1_all", tmp_path / "th_local" / "0026_s1_all"
    for name in ("aud.wav", "camera.json", "segments.csv"):
        assert (url / name).read_bytes() == (local / name).read_bytes(), name
    got, want = frames(url / "0026_s1_all.mp4"), frames(local / "0026_s1_all.mp4")
    assert len(got) == len(want) == 10 and all(
        np.array_equal(a, b) for a, b in zip(got, want, strict=True)
    )
    wavs = sorted(
        p.relative_to(tmp_path / "cl_local") for p in (tmp_path / "cl_local").rglob("*.wav")
    )
    assert len(wavs) == 2
    for rel in wavs:
        assert (tmp_path / "cl_url" / rel).read_bytes() == (
            tmp_path / "cl_local" / rel
        ).read_bytes()

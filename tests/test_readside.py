"""The read side (loader, verify, export, a re-run of extract) against hostile extracted folders.

Every attack is built with os calls and hand-written bytes, not with the project's writers:
symlinks planted in the folder or replacing a listed file, FIFOs where files are read, a JPEG
and a PNG whose headers declare huge images, npz members declaring 10^12 float64 or deflating
from kilobytes to hundreds of megabytes. Each refusal is one line naming the file; a FIFO never
hangs (those run in a subprocess with a timeout); nothing is written outside DEST.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import renderme360 as rm
from renderme360.cli import main
from renderme360.errors import BudgetError, NotRegularFileError, Renderme360Error
from renderme360.synth import synthesize

CAM = "22"
HANG = 60  # seconds: far above any of these runs; a blocked open never returns at all


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, extracted performance folder) of one small synthetic performance."""
    root = tmp_path_factory.mktemp("readside")
    data, out = root / "data", root / "out"
    synthesize(data, performances=["e0"], cameras=3, frames=2)
    assert main(["extract", str(data), "-o", str(out), "--layout", "combined", "-q"]) == 0
    return data, out


@pytest.fixture
def folder(source, tmp_path) -> Path:
    """A fresh copy of the extracted performance folder, and ``outside/`` beside it."""
    _, out = source
    dst = tmp_path / "out"
    shutil.copytree(out, dst, symlinks=True)
    (tmp_path / "outside").mkdir()
    perf = dst / "0026_e0"
    cam = sorted(p.name for p in (perf / "images").iterdir())[0]
    assert cam == f"cam_{CAM}", cam
    return perf


def _secret(folder: Path) -> Path:
    """A JPEG outside the folder (the file a planted symlink points to)."""
    img = np.full((96, 120, 3), 7, np.uint8)
    path = folder.parent.parent / "outside" / "secret.jpg"
    path.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    return path


def _frame(folder: Path, frame: int, kind: str = "images", ext: str = "jpg") -> Path:
    return folder / kind / f"cam_{CAM}" / f"frame_{frame:06d}.{ext}"


def _outside_untouched(folder: Path) -> None:
    assert sorted(p.name for p in (folder.parent.parent / "outside").iterdir()) == ["secret.jpg"]


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; a hang (a blocked FIFO open) fails the test."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=HANG,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("hung on a FIFO (no answer within the timeout)")


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    argv = [str(a) for a in args]
    return _run_python(f"import sys; from renderme360.cli import main; sys.exit(main({argv!r}))")


# ---------------------------------------------------------------------------- hostile bytes
def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real 8 x 8 JPEG whose frame header is patched to declare ``width x height``."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A PNG declaring ``width x height`` 16-bit RGBA whose rows are deflated zeros (~1 MB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    z = zlib.compressobj(9)
    row = bytes(1 + width * 8)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------- item 8: symlinks
def test_load_lists_only_manifest_files_and_refuses_a_symlinked_one(folder: Path) -> None:
    secret = _secret(folder)
    os.symlink(secret, _frame(folder, 9))  # planted: not in the manifest
    perf = rm.load(folder)
    assert perf.image_frame_ids(CAM) == [0, 1]
    _frame(folder, 0).unlink()
    os.symlink(secret, _frame(folder, 0))  # a listed file replaced by a link to elsewhere
    perf = rm.load(folder)
    with pytest.raises(NotRegularFileError, match=r"refusing to read .*frame_000000\.jpg"):
        perf.image(CAM, 0)
    with pytest.raises(NotRegularFileError):
        perf.image_bytes(CAM, 0)


@pytest.mark.parametrize("downscale", [1, 2])
def test_export_colmap_never_links_or_copies_a_symlinked_source(
    folder: Path, tmp_path: Path, capsys, downscale: int
) -> None:
    secret = _secret(folder)
    os.symlink(secret, _frame(folder, 9))
    _frame(folder, 0).unlink()
    os.symlink(secret, _frame(folder, 0))
    dest = tmp_path / "dest"
    args = [
        "export",
        "colmap",
        str(folder),
        "--frame",
        "0",
        "-o",
        str(dest),
        "--downscale",
        str(downscale),
    ]
    code = main([*args, "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "frame_000000.jpg" in err and "regular file" in err
    secret_bytes, inode = secret.read_bytes(), os.stat(secret).st_ino
    for p in dest.rglob("*") if dest.exists() else []:
        assert not p.is_symlink(), p
        if p.is_file():
            assert os.stat(p).st_ino != inode and p.read_bytes() != secret_bytes, p
    _outside_untouched(folder)


def test_verify_names_unlisted_files_and_symlinks(folder: Path, capsys) -> None:
    secret = _secret(folder)
    os.symlink(secret, _frame(folder, 9))
    shutil.copyfile(_frame(folder, 1), _frame(folder, 7))  # an extra regular file
    os.symlink(folder / "images", folder / "more_images")  # a symlinked folder
    code = main(["verify", str(folder)])
    out = capsys.readouterr().out
    assert code == 5
    assert "images/cam_22/frame_000009.jpg: a symlink" in out
    assert "images/cam_22/frame_000007.jpg: in the folder but not in the manifest" in out
    assert "more_images: a symlink" in out


def test_verify_of_an_untouched_folder_reports_no_extra(folder: Path, capsys) -> None:
    assert main(["verify", str(folder)]) == 0, capsys.readouterr().out


# ---------------------------------------------------------------------------- item 9: FIFOs
def test_fifo_at_a_listed_image_is_refused_by_load_without_hanging(folder: Path) -> None:
    _frame(folder, 0).unlink()
    os.mkfifo(_frame(folder, 0))
    res = _run_python(
        f"""
        import renderme360 as rm
        from renderme360.errors import NotRegularFileError
        try:
            rm.load({str(folder)!r}).image({CAM!r}, 0)
        except NotRegularFileError as exc:
            print("refused:", exc)
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("refused: refusing to read") and "a FIFO" in res.stdout


def test_fifo_at_a_listed_file_is_a_verify_problem_without_hanging(folder: Path) -> None:
    _frame(folder, 0).unlink()
    os.mkfifo(_frame(folder, 0))
    res = _cli("verify", folder)
    assert res.returncode == 5, res.stderr
    assert "frame_000000.jpg: wrong size or not a regular file" in res.stdout


def test_fifo_is_refused_by_export_downscale_without_hanging(folder: Path, tmp_path: Path) -> None:
    _frame(folder, 0).unlink()
    os.mkfifo(_frame(folder, 0))
    dest = tmp_path / "dest"
    res = _cli("export", "colmap", folder, "--frame", "0", "-o", dest, "--downscale", "2", "-q")
    assert res.returncode == 1, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "frame_000000.jpg" in res.stderr
    assert not list(dest.rglob("*.jpg")) if dest.exists() else True


@pytest.mark.parametrize("name", [".extraction_complete", "manifest.json", "../MANIFEST.csv"])
def test_rerun_of_extract_with_a_fifo_does_not_hang(source, folder: Path, name: str) -> None:
    data, _ = source
    target = folder / name
    target.unlink()
    os.mkfifo(target)
    res = _cli("extract", data, "-o", folder.parent, "--layout", "combined", "-q")
    if name == "../MANIFEST.csv":  # the batch record cannot be appended to: said in one line
        assert res.returncode != 0 and "MANIFEST.csv" in res.stderr and "regular" in res.stderr
    else:  # the FIFO is not the marker or manifest: replaced by the re-run's own files
        assert res.returncode == 0, res.stderr
        assert target.is_file() and not target.is_symlink()


# ---------------------------------------------------------------------------- item 10: pixels
def test_jpeg_declaring_60000_squared_is_refused_by_load(folder: Path) -> None:
    bomb = _jpeg_declaring(60000, 60000)
    assert len(bomb) < 1000
    _frame(folder, 0).write_bytes(bomb)
    perf = rm.load(folder)
    for scale in (1, 2, 8):
        with pytest.raises(BudgetError) as exc:
            perf.image(CAM, 0, scale=scale)
        msg = str(exc.value)
        assert "camera 22 frame 0: declares 60000 x 60000 pixels, above the budget" in msg
        assert "\n" not in msg
    assert perf.image(CAM, 1).shape == (96, 120, 3)  # the others still load


def test_png_mask_bomb_is_refused_by_load(folder: Path) -> None:
    bomb = _png_bomb()
    assert len(bomb) < 2 << 20
    _frame(folder, 0, "masks", "png").write_bytes(bomb)
    with pytest.raises(BudgetError, match="mask camera 22 frame 0: declares 12000 x 12000"):
        rm.load(folder).mask(CAM, 0, scale=2)


@pytest.mark.parametrize("what", ["jpeg", "png"])
def test_export_downscale_refuses_a_pixel_bomb(folder: Path, tmp_path: Path, capsys, what) -> None:
    if what == "jpeg":
        victim, bomb, size = _frame(folder, 0), _jpeg_declaring(60000, 60000), "60000 x 60000"
    else:
        victim, bomb, size = _frame(folder, 0, "masks", "png"), _png_bomb(), "12000 x 12000"
    victim.write_bytes(bomb)
    dest = tmp_path / "dest"
    args = [
        "export",
        "colmap",
        str(folder),
        "--frame",
        "0",
        "-o",
        str(dest),
        "--downscale",
        "2",
        "--masks",
    ]
    code = main([*args, "-q", "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and victim.name in err and f"declares {size}" in err
    assert "cv2.error" not in err
    assert not dest.exists() or not [p for p in dest.rglob("*") if p.is_file()]
    _outside_untouched_if_any(folder)


def _outside_untouched_if_any(folder: Path) -> None:
    assert list((folder.parent.parent / "outside").iterdir()) == []


def test_declared_size_is_width_then_height() -> None:
    from renderme360.formats.image import declared_size

    img = np.zeros((37, 53), np.uint8)
    for ext in (".jpg", ".png", ".bmp"):
        assert declared_size(cv2.imencode(ext, img)[1].tobytes()) == (53, 37), ext
    assert declared_size(_jpeg_declaring(60000, 1000)) == (60000, 1000)
    assert declared_size(b"\xff\xd8garbage") is None and declared_size(b"") is None


# ---------------------------------------------------------------------------- item 11: npz
def _keypoint_file(folder: Path) -> Path:
    return folder / "keypoints2d" / f"cam_{CAM}.npz"


def test_npz_member_declaring_10_to_the_12_float64_is_refused(folder: Path) -> None:
    path = _keypoint_file(folder)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("frame_ids.npy", _npy(np.arange(2)))
        zf.writestr("keypoints.npy", _npy_header((10**12,)))
    with pytest.raises(BudgetError) as exc:
        rm.load(folder).keypoints2d(CAM)
    msg = str(exc.value)
    assert str(path) in msg and "member keypoints: declares (1000000000000,) float64" in msg


def test_npz_member_whose_header_disagrees_with_the_zip_is_refused(folder: Path) -> None:
    path = _keypoint_file(folder)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("frame_ids.npy", _npy(np.arange(2)))
        zf.writestr("keypoints.npy", _npy_header((2, 106, 2)) + bytes(16))
    with pytest.raises(Renderme360Error, match="member keypoints: header declares 3,392 bytes"):
        rm.load(folder).keypoints2d(CAM)


def test_compressed_npz_bomb_is_refused(folder: Path) -> None:
    path = _keypoint_file(folder)
    frames = 400_000  # 400,000 x 106 x 2 float64: 678 MB of zeros, ~0.7 MB deflated
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("frame_ids.npy", _npy(np.arange(2)))
        with zf.open("keypoints.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((frames, 106, 2)))
            block = bytes(106 * 2 * 8 * 1000)
            for _ in range(frames // 1000):
                member.write(block)
    assert path.stat().st_size < 4 << 20
    with pytest.raises(BudgetError, match=r"member keypoints: declares .* above the budget"):
        rm.load(folder).keypoints2d(CAM)


def test_only_the_members_asked_for_are_read(folder: Path) -> None:
    """A large extra member of a keypoint file is never decompressed (tracemalloc sees numpy)."""
    import tracemalloc

    path = _keypoint_file(folder)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
        zf.writestr("extra.npy", _npy(np.zeros(40 << 20, np.uint8)))  # 40 MB, stored
    perf = rm.load(folder)
    tracemalloc.start()
    try:
        frames, points = perf.keypoints2d(CAM)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert points.shape[1:] == (106, 2) and len(frames) == len(points)
    assert peak < 8 << 20, peak

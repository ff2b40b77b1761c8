"""The argument parser of every subcommand (argparse only: importing this stays light)."""

from __future__ import annotations

import argparse
from typing import Any

from .._version import __version__
from ..config import positive_int

PROG = "renderme360"
EPILOG_EXTRACT = """\
examples:
  renderme360 extract DATA --subject 0026 --performance e0 -o OUT
  renderme360 extract DATA --subject 0026 -o OUT                 # every performance of 0026
  renderme360 extract DATA -o OUT --performance 's*' --modalities audio,images --cameras ring:8
  renderme360 extract DATA -o OUT --sample                        # a few cameras and frames first
  renderme360 extract --config examples/avatar_research.yaml

Output layout: OUT/{actor}_{perf}/from_anno|from_raw|from_smc/{images,masks,...}; see README.
Re-running the same command resumes an interrupted extraction and skips finished ones."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand; ``args.command`` names the one chosen."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Extract RenderMe360 SMC files into ordinary, byte-exact files "
        "(images, masks, calibration, keypoints, FLAME, UV, scans, audio).",
        epilog="Start with: renderme360 demo   (makes synthetic data and extracts it)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    _add_explore(sub)
    _add_extract(sub)
    _add_verify(sub)
    _add_check(sub)
    _add_synth(sub)
    _add_export(sub)
    _add_demo(sub)
    return p


def common(sp: argparse.ArgumentParser) -> None:
    """Options every subcommand has."""
    sp.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sp.add_argument("-q", "--quiet", action="store_true", help="only errors and the result")


def _add_explore(sub: Any) -> None:
    ex = sub.add_parser(
        "explore",
        help="inventory of SMC files (writes nothing)",
        description="Probe SMC files and show what each one really holds, and what "
        "a full extraction would write. Writes nothing.",
    )
    ex.add_argument("path", help="dataset root, subject folder, or one .smc file")
    ex.add_argument("--subject", help="only these subjects (comma list)")
    ex.add_argument("--performance", help="only these performances (comma list or globs)")
    ex.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common(ex)
    ex.set_defaults(command="explore")


def _add_extract(sub: Any) -> None:
    x = sub.add_parser(
        "extract",
        help="extract performances into folders",
        description="Extract the SMC files of one or many performances into the "
        "documented folder layout. Images, masks, UV textures and scan masks are "
        "the stored bytes, byte-identical.",
        epilog=EPILOG_EXTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    x.add_argument("root", nargs="?", help="dataset root (any release layout) or one .smc file")
    x.add_argument("-o", "--output", help="output root (default: ./renderme360_out)")
    x.add_argument("--subject", help="subject id(s), comma list (default: every subject found)")
    x.add_argument(
        "--performance", help="performance(s): comma list or globs like 's*' (default: all)"
    )
    x.add_argument(
        "--modalities",
        help="comma list of: metadata, calibration, images, masks, audio, "
        "keypoints2d, keypoints3d, flame, uv, scan, scan_masks (default: all)",
    )
    x.add_argument(
        "--cameras", help="ids like 0,25,30-35, or ring:N / front:N chosen from calibration"
    )
    x.add_argument("--frames", help="START:STOP[:STEP] frame indices, for every per-frame modality")
    x.add_argument(
        "--sample",
        action="store_true",
        help=f"start small: --cameras {'ring:4'} --frames {'0:30:10'} unless given",
    )
    lay = x.add_mutually_exclusive_group()
    lay.add_argument(
        "--layout",
        choices=("separate", "combined"),
        help="separate (default): from_anno/ from_raw/ folders; combined: one merged tree",
    )
    lay.add_argument(
        "--separate",
        dest="layout",
        action="store_const",
        const="separate",
        help="alias of --layout separate",
    )
    lay.add_argument(
        "--combine",
        "--combined",
        dest="layout",
        action="store_const",
        const="combined",
        help="alias of --layout combined",
    )
    _add_extract_output_options(x)


def _add_extract_output_options(x: argparse.ArgumentParser) -> None:
    x.add_argument(
        "--image-mode",
        choices=("copy", "reencode"),
        help="copy stored bytes (default) "
        "or decode and re-encode (lossy, slow; only if you need it)",
    )
    x.add_argument("--jpeg-quality", type=int, default=95, help="with --image-mode reencode (95)")
    x.add_argument(
        "--no-checksum",
        action="store_true",
        help="skip sha256 in the manifest (enables kernel-side copies)",
    )
    x.add_argument(
        "--no-preview",
        dest="preview",
        action="store_false",
        default=None,
        help="do not write visualization/ previews",
    )
    x.add_argument(
        "--workers",
        type=positive_int,
        help="worker processes (default: CPU cores; 1 when under 256 MB is left to write)",
    )
    x.add_argument("--scheduler", help="dask.distributed scheduler address (needs [cluster] extra)")
    x.add_argument("--config", help="YAML job file; flags given here override it")
    x.add_argument(
        "--dry-run", action="store_true", help="print the plan and its size; write nothing"
    )
    x.add_argument("-y", "--yes", action="store_true", help="do not ask before large extractions")
    x.add_argument(
        "--force", action="store_true", help="extract even if free space looks too small"
    )
    x.add_argument(
        "--sync",
        action="store_true",
        help="flush written data to disk before marking each performance complete "
        "(network filesystems, power-loss safety; slower)",
    )
    x.add_argument(
        "--wait",
        action="store_true",
        help="wait for another process extracting the same performance",
    )
    x.add_argument(
        "--delete-source",
        action="store_true",
        help="delete each local SMC file once every performance reading it is complete with a "
        "full selection and verified against it (else kept, saying why)",
    )
    x.add_argument("--staging", metavar="DIR", help="copy whole source files into DIR first")
    x.add_argument("--staging-max", metavar="SIZE", help="most DIR may hold (500M, 20G, 1.5T)")
    x.add_argument("--json", action="store_true", help="print the result as JSON")
    common(x)
    x.set_defaults(command="extract")


def _add_verify(sub: Any) -> None:
    v = sub.add_parser(
        "verify",
        help="re-check extracted files against manifest (and source)",
        description="Check every file of manifest.json (size, sha256) and, with --source, that "
        "copies and derived arrays equal what the SMC files hold for the recorded selections.",
    )
    v.add_argument("folders", nargs="+", help="OUT/{actor}_{perf} folder(s) or an output root")
    v.add_argument("--source", help="dataset root holding the SMC files")
    v.add_argument("--json", action="store_true", help="print JSON")
    common(v)
    v.set_defaults(command="verify")


def _add_check(sub: Any) -> None:
    c = sub.add_parser(
        "check",
        help="prove the geometry: reproject 3D keypoints into every annotated camera",
        description="Project the 3D keypoints through each calibrated camera with 2D keypoints "
        "(RT camera-to-world, OpenCV axes, distortion; 2D index 33+i is 3D index i); report "
        "median and max pixel error per camera and overall, where each camera stands and looks, "
        "and what is wrong. Exit 5 when the overall or one camera's median exceeds --max-error, a "
        "pose looks inverted, the head is outside an image or calibration copies disagree.",
    )
    c.add_argument("path", help="extracted folder OUT/{actor}_{perf}, dataset root or .smc file")
    c.add_argument("--subject", help="subject under a dataset or output root (e.g. 0026)")
    c.add_argument("--performance", help="performance under a dataset or output root (e.g. e0)")
    c.add_argument("--max-error", type=float, default=2.0, metavar="PX", help="default: 2 px")
    c.add_argument("--all", action="store_true", help="a row for every calibrated camera")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--allow-incomplete", action="store_true", help="read an unfinished extraction")
    common(c)
    c.set_defaults(command="check")


def _add_synth(sub: Any) -> None:
    s = sub.add_parser(
        "synth",
        help="write synthetic SMC files (for tests and demos)",
        description="Generate faithful synthetic RenderMe360 SMC files (see README).",
    )
    s.add_argument("out", help="output folder (a dataset root to extract from)")
    s.add_argument("--subject", default="0026", help="subject id (default: 0026)")
    s.add_argument("--performances", default="e0,s1_all,h0,h1_2bk", help="comma list (e*, s*, h*)")
    s.add_argument("--release", type=int, choices=(21, 500), default=21, help="file layout")
    s.add_argument("--cameras", type=positive_int, default=4, help="cameras with images (1..60)")
    s.add_argument("--frames", type=positive_int, default=3, help="frames per camera (default: 3)")
    s.add_argument("--resolution", choices=("small", "full"), default="small", help="image size")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    common(s)
    s.set_defaults(command="synth")


def _add_export(sub: Any) -> None:
    from .export import register

    register(sub, common)


def _add_demo(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="synthesise two small subjects and extract them",
        description="Make synthetic SMC files for two subjects (0026, 0041) and extract them.",
    )
    d.add_argument(
        "out", nargs="?", default="renderme360-demo", help="folder (default: ./renderme360-demo)"
    )
    d.add_argument("--workers", type=positive_int, help="worker processes (default: 1)")
    common(d)
    d.set_defaults(command="demo")

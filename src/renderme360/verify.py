"""Re-check an extracted performance against its manifest and, optionally, its SMC source.

Every listed file must exist as a regular file with its recorded size and sha256; with a source,
copied images/masks/UV/scan masks must equal the stored bytes, and files derived from the source
(calibration, keypoints, FLAME, audio, scan mesh) must equal what the source gives for the
selections the folder records: a stale aggregate (say FLAME of a sampled frame only, in a folder
that records every frame) is caught.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CorruptOutputError, NotFoundError, NotRegularFileError, Renderme360Error
from .modalities import SPECS, spec
from .output.layout import (
    CHECKSUMS,
    COMPLETE_MARKER,
    FILE_LIST,
    JOURNAL,
    LOCK,
    MANIFEST,
    parse_path,
)
from .output.outdir import TMP_DIR
from .output.read import bounded_lines, iter_file_entries, read_manifest
from .safeopen import open_regular, open_regular_fd

#: Derived files not compared by content with the source: metadata records the source's path
#: (which may differ between machines); everything else derived is.
NOT_REGENERATED = frozenset({"text"})


@dataclass
class VerifyReport:
    """What verify checked and what it found wrong (one message per bad file)."""

    folder: str
    checked: int = 0
    checked_against_source: int = 0  # copied files compared with the stored bytes
    derived_against_source: int = 0  # arrays, calibration, audio, mesh re-derived and compared
    problems: list[str] = field(default_factory=list)
    complete: bool = False

    @property
    def against_source(self) -> int:
        """Files compared with the source, copied and derived."""
        return self.checked_against_source + self.derived_against_source

    @property
    def ok(self) -> bool:
        return not self.problems and self.complete


def verify(
    folder: str | os.PathLike[str],
    source_root: str | os.PathLike[str] | None = None,
    on_file: Callable[[int], None] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Check every file of ``manifest.json``; compare with the SMC files under ``source_root``
    (a folder or URL), or with exactly the files ``sources`` gives by role (``--delete-source``
    verifies against the very files it may delete)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise NotFoundError(f"{folder}: no readable manifest.json (not an extraction folder?)")
    report = VerifyReport(str(folder), complete=(folder / COMPLETE_MARKER).is_file())
    if not report.complete:
        report.problems.append(f"{COMPLETE_MARKER} missing: the extraction did not finish")
    bad: set[str] = set()  # listed files already reported: each bad file counts once
    listed: set[str] = set()  # every listed path: the folder's other files are named
    malformed = _check_listed_files(folder, manifest, report, on_file, bad, listed)
    if not malformed:
        _unlisted_files(folder, listed, report)
    if (
        source_root is not None or sources is not None
    ) and not malformed:  # only a well-formed manifest is followed
        if not all(isinstance(manifest.get(k), str) for k in ("actor", "performance")):
            report.problems.append(f"{MANIFEST}: malformed: 'actor'/'performance' missing")
        else:
            root = sources if sources is not None else source_root
            _against_source(folder, manifest, root, report, bad)
            _derived_against_source(folder, manifest, root, report, bad)
    return report


def _listed_entries(folder: Path, manifest: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, entry) of every listed file, as written: the ``files`` of an earlier
    manifest.json, or the lines of manifest.jsonl read one at a time (a line that is not JSON
    is given as None, to be reported)."""
    files = manifest.get("files")
    if files is not None:
        yield from ((f"{MANIFEST}: files[{i}]", item) for i, item in enumerate(files))
        return
    try:
        raw = open_regular(folder / FILE_LIST)
    except (OSError, NotRegularFileError):
        return
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(bounded_lines(f, folder / FILE_LIST), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            yield f"{FILE_LIST}: line {n}", entry


def _check_listed_files(
    folder: Path,
    manifest: dict[str, Any],
    report: VerifyReport,
    on_file: Callable[[int], None] | None = None,
    bad: set[str] | None = None,
    listed: set[str] | None = None,
) -> bool:
    """Size and sha256 of every listed file, the list read as a stream; a list shorter or
    longer than the manifest's count is a problem. Return whether an entry was malformed;
    the paths of bad files are added to ``bad``."""
    malformed = False
    files = manifest.get("files")
    if files is not None and not isinstance(files, list):
        report.problems.append(f"{MANIFEST}: malformed: 'files' is not a list")
        return True
    if files is None and not (folder / FILE_LIST).is_file():
        report.problems.append(f"{FILE_LIST} missing: the file list of this folder is gone")
    root = str(folder)
    parents: dict[str, str | None] = {}  # folder of a listed path -> why it is outside, or None
    for where, item in _listed_entries(folder, manifest):
        why = _malformed(item) or _outside(folder, item["path"], parents)
        if why:
            report.problems.append(f"{where} {why}")
            malformed = True
            continue
        rel, size, digest = item["path"], item["bytes"], item.get("sha256") or ""
        report.checked += 1
        if listed is not None:
            listed.add(rel)
        problem = _check_file(os.path.join(root, rel), size, digest)
        if problem:
            report.problems.append(f"{rel}: {problem}")
            if bad is not None:
                bad.add(rel)
        if on_file:
            on_file(1)
    declared = manifest.get("total_files")
    if isinstance(declared, int) and declared != report.checked and not malformed:
        report.problems.append(
            f"the file list has {report.checked:,} entries but {MANIFEST} counts {declared:,} "
            "files: the list was cut short or edited"
        )
    return malformed


def _plain_relative(rel: object) -> bool:
    """Whether a listed path is a relative path that stays inside the folder (no ``..``,
    no empty or ``.`` component, no NUL): checked with string operations, once per file."""
    if not isinstance(rel, str) or "\0" in rel:
        return False
    wrapped = f"/{rel}/"  # every component between slashes, the first and last included
    return not ("//" in wrapped or "/./" in wrapped or "/../" in wrapped)


def _check_file(path: str, size: int, digest: str) -> str | None:
    """What is wrong with one listed file (None: regular file, right size and sha256).

    One open (safeopen): the size comes from ``fstat`` of the descriptor that is then hashed;
    a symlink (never a file we wrote) or a FIFO, device or folder is refused without blocking.
    """
    try:
        fd, st = open_regular_fd(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, NotRegularFileError):
        return "wrong size or not a regular file (a symlink, FIFO or device is never read)"
    try:
        if st.st_size != size:
            return "wrong size or not a regular file"
        if not digest:
            return None
        h = hashlib.sha256()
        left = size  # the size is known: no extra read to find the end
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                return "wrong size or not a regular file"
            h.update(chunk)
            left -= len(chunk)
        if h.hexdigest() != digest:
            return "content differs from manifest (sha256)"
        return None
    finally:
        os.close(fd)


#: Files of a performance folder the manifest does not list: its own bookkeeping.
_BOOKKEEPING = frozenset({MANIFEST, FILE_LIST, CHECKSUMS, COMPLETE_MARKER, JOURNAL, LOCK})


def _unlisted_files(folder: Path, listed: set[str], report: VerifyReport) -> None:
    """Report what the folder holds that the manifest does not list (a planted frame, a FIFO)
    and every symlink anywhere in it (none is ever written): one walk, no link followed."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(folder, rel_dir) if rel_dir else folder))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                report.problems.append(f"{rel}: a symlink (never written by extract; not read)")
            elif entry.is_dir(follow_symlinks=False):
                if rel != TMP_DIR:  # staging of a run: its leftovers are removed by the next
                    stack.append(rel)
            elif rel not in listed and rel not in _BOOKKEEPING:
                report.problems.append(f"{rel}: in the folder but not in the manifest")


def is_performance_folder(path: Path) -> bool:
    """Whether ``path`` is (or was being made into) an extracted performance folder."""
    return path.is_dir() and any(
        (path / name).exists() for name in (MANIFEST, JOURNAL, COMPLETE_MARKER)
    )


def performance_folders(paths: list[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """Expand verify's arguments: performance folders as given, an output root into every
    performance folder in it; other entries (``MANIFEST.csv``) are skipped and named.

    Raises NotFoundError for a path that does not exist or holds no performance folder.
    """
    folders: list[Path] = []
    skipped: list[str] = []
    for p in map(Path, paths):
        if is_performance_folder(p):
            folders.append(p)
        elif p.is_dir():
            inside = sorted(d for d in p.iterdir() if is_performance_folder(d))
            if not inside:
                raise NotFoundError(
                    f"{p}: no readable manifest.json (not an extraction folder?) and no "
                    "performance folders in it"
                )
            folders.extend(inside)
        elif p.exists():
            skipped.append(f"{p}: not a performance folder, skipped")
        else:
            raise NotFoundError(f"{p}: does not exist")
    if not folders:
        raise NotFoundError("nothing to verify: " + "; ".join(skipped))
    return folders, skipped


#: (kind, how a problem message of that kind reads), first match wins; see problem_kind.
_PROBLEM_KINDS = (
    ("missing from the manifest", "missing from the manifest although"),
    ("missing", ": missing"),
    ("wrong size or not a regular file", ": wrong size or not a regular file"),
    ("content differs from the manifest", ": content differs from manifest"),
    ("differs from the SMC source", ": differs from "),
    ("not in the SMC source", ": not in the source"),
    ("not in the SMC source", ": cannot re-derive from the source"),
    ("malformed or outside entry", " is malformed"),
    ("malformed or outside entry", " outside the performance folder"),
)


def problem_kind(problem: str) -> str:
    """The kind of one problem message (``missing``, ``content differs from the manifest``,
    ...; ``other`` for folder-wide ones), to count millions of problems in a few lines."""
    for kind, marker in _PROBLEM_KINDS:
        if problem.endswith(marker) if kind == "missing" else marker in problem:
            return kind
    return "other"


#: Problems of one folder named one by one in the table; the rest are counted by kind.
PROBLEMS_SHOWN = 20


def summarise_problems(
    problems: list[str], mark: str = "", shown: int = PROBLEMS_SHOWN
) -> list[str]:
    """Lines for a table: the first ``shown`` problems after ``mark``, then (when there are
    more) every problem counted by kind: millions of bad files in a few lines."""
    lines = [mark + p for p in problems[:shown]]
    if len(problems) > shown:
        counts = Counter(map(problem_kind, problems)).most_common()
        lines.append(f"  ... and {len(problems) - shown:,} more (--json lists every one); by kind:")
        lines += [f"  {n:>12,}  {kind}" for kind, n in counts]
    return lines


def verify_total(reports: Sequence[VerifyReport]) -> str:
    """One line about several performances: how many are OK, problems in all, files checked."""
    bad = [r for r in reports if not r.ok]
    return (
        f"{len(reports)} performances: {len(reports) - len(bad)} OK, {len(bad)} with problems "
        f"({sum(len(r.problems) for r in bad)} in all); "
        f"{sum(r.checked for r in reports):,} files checked"
    )


def verify_many(
    paths: list[str | os.PathLike[str]],
    source_root: str | os.PathLike[str] | None = None,
) -> tuple[list[VerifyReport], list[str]]:
    """Verify every performance folder the paths name (see :func:`performance_folders`);
    a folder without a manifest is reported as unfinished, not raised."""
    folders, skipped = performance_folders(paths)
    reports = []
    for folder in folders:
        try:
            reports.append(verify(folder, source_root))
        except (NotFoundError, CorruptOutputError) as exc:
            reports.append(VerifyReport(str(folder), problems=[str(exc)]))
    return reports, skipped


def _source_files(root: Any, manifest: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The performance (and its files by role) that a manifest names, under ``root`` (a folder
    or URL; a mapping of role to file is taken as the performance's files)."""
    from .pipeline.discover import Performance, discover

    actor, perf = manifest["actor"], manifest["performance"]
    if isinstance(root, Mapping):
        return Performance(actor, perf, dict(root)), dict(root)
    found = [p for p in discover(root, actor, perf) if p.performance == perf]
    return (found[0], found[0].files) if found else (None, {})


def _derived_against_source(
    folder: Path,
    manifest: dict[str, Any],
    root: Any,
    report: VerifyReport,
    bad: Container[str] = frozenset(),
) -> None:
    """Re-derive every file computed from the source (npz, json, PLY, audio) for the selections
    the folder records, and compare: catches aggregates that cover less than the record says.
    Files in ``bad`` (already reported missing or altered) are not reported again."""
    from .output.confined import scratch_folder
    from .pipeline.execute import run_unit
    from .pipeline.inventory import probe
    from .pipeline.plan import plan_performance
    from .pipeline.run import previous_scopes
    from .tasks import Options, Unit

    perf, files = _source_files(root, manifest)
    scopes = previous_scopes(folder)
    if perf is None or not scopes:
        why = "no source files found" if perf is None else f"{MANIFEST} records no selection"
        report.problems.append(f"{why}: derived files not compared with the source")
        return
    opts = manifest.get("options") or {}
    options = Options(opts.get("image_mode", "copy"), int(opts.get("jpeg_quality", 95)), True)
    inventories = {role: probe(p, role) for role, p in files.items()}
    layout = manifest.get("layout", "separate")
    plan = plan_performance(perf, inventories, folder.parent, None, layout, options, scopes=scopes)
    listed = {item.get("path") for item in iter_file_entries(folder)}
    with scratch_folder("renderme360-verify-") as tmp:
        for unit in plan.units:
            for t in unit.tasks:
                if t.key not in listed:
                    report.problems.append(
                        f"{t.key}: missing from the manifest although its recorded selection "
                        "includes it"
                    )
            tasks = [
                t
                for t in unit.tasks
                if t.key in listed
                and t.key not in bad
                and COMPARERS.get(t.modality) == "derived"
                and t.writer not in NOT_REGENERATED
            ]
            if not tasks:
                continue
            result = run_unit(Unit(unit.role, unit.source, tasks), tmp, options)
            for rec in result.done:
                key = rec.key
                report.derived_against_source += 1
                if _sha256_regular(folder / key) != rec.sha256:
                    report.problems.append(
                        f"{key}: differs from what {files[unit.role]} holds for the recorded "
                        "selection (stale or altered)"
                    )
            for key, msg in result.failed:
                report.problems.append(f"{key}: cannot re-derive from the source ({msg})")


def _malformed(item: Any) -> str | None:
    """Why a manifest entry cannot be checked, or None when it is well formed."""
    if not isinstance(item, dict):
        return f"is malformed: an entry of type {type(item).__name__}, not an object"
    path, size, digest = item.get("path"), item.get("bytes"), item.get("sha256", "")
    if not isinstance(path, str):
        return "is malformed: 'path' missing or not a string"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"({path!r}) is malformed: 'bytes' missing or not a non-negative integer"
    if not isinstance(digest, str):
        return f"({path!r}) is malformed: 'sha256' is not a string"
    return None


def _outside(folder: Path, rel: str, parents: dict[str, str | None]) -> str | None:
    """Why a listed path is not a file inside the performance folder, or None when it is
    (no absolute path, no ``..``, no symlinked folder on the way out). Each folder is resolved
    once (``parents`` caches it): a performance has ~120 folders and 300,000 files."""
    if not _plain_relative(rel):
        return f"({rel!r}) points outside the performance folder: refused"
    parent = os.path.dirname(rel)
    if parent not in parents:
        root = os.path.realpath(folder)
        real = os.path.realpath(os.path.join(root, parent))
        outside = os.path.commonpath([root, real]) != root
        parents[parent] = "resolves outside the performance folder: refused" if outside else None
    why = parents[parent]
    return None if why is None else f"({rel!r}) {why}"


def _against_source(
    folder: Path,
    manifest: dict[str, Any],
    root: Any,
    report: VerifyReport,
    bad: Container[str] = frozenset(),
) -> None:
    """Compare every copied image, mask, UV texture and scan mask with the stored bytes;
    files in ``bad`` (already reported missing or altered) are not reported again."""
    from .smc.reader import ExtractionReader

    _, files = _source_files(root, manifest)
    readers: dict[str, ExtractionReader] = {}
    try:
        for item in iter_file_entries(folder):
            role = item.get("role")
            if role not in files or item.get("variant") != "copy" or item["path"] in bad:
                continue
            if role not in readers:
                readers[role] = ExtractionReader(files[role])
            blob = _blob_of(item)
            if blob is None:
                continue
            try:
                stored = readers[role].read_blob(*blob)
            except Renderme360Error as exc:
                report.problems.append(f"{item['path']}: not in the source ({exc})")
                continue
            report.checked_against_source += 1
            if hashlib.sha256(stored).hexdigest() != _sha256_regular(folder / item["path"]):
                report.problems.append(
                    f"{item['path']}: differs from the stored bytes in {files[role]}"
                )
    finally:
        for r in readers.values():
            r.close()


def _sha256_regular(path: Path) -> str | None:
    """sha256 of a regular file of the folder, None when absent or not a regular file."""
    try:
        with open_regular(path) as f:
            h = hashlib.sha256()
            while chunk := f.read(1 << 20):
                h.update(chunk)
            return h.hexdigest()
    except (OSError, NotRegularFileError):
        return None


def _blob_of(item: dict[str, Any]) -> tuple[str, str | None, int | None] | None:
    """(kind, camera, frame) of a copied image file, from its path."""
    parsed = parse_path(item["path"])
    mod = item.get("modality")
    if parsed is None or parsed.modality != mod or COMPARERS.get(mod) != "stored":
        return None
    kind = spec(mod).blob_kind
    return None if kind is None else (kind, parsed.camera, parsed.frame)


#: How ``verify --source`` compares each modality's files with the source, by modality name:
#: ``stored`` by :func:`_against_source` (a copied blob's bytes), ``derived`` by
#: :func:`_derived_against_source` (re-run its writer), ``none`` (documents of the run).
COMPARERS: dict[str, str] = {s.name: s.verify for s in SPECS}


# ---------------------------------------------------------------------------- --delete-source
@dataclass
class _SourceFile:
    """One local SMC file that ``--delete-source`` may delete: who reads it, what it was."""

    path: str
    identity: tuple[int, int, int, int]  # st_dev, st_ino, size, mtime_ns when the batch began
    readers: set[tuple[str, str]]  # (output root, performance key) of every run reading it
    verified: set[tuple[str, str]] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # every path it was found under (hard links)
    why_kept: str = ""
    deleted: bool = False


def _identity(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class DeleteAfterVerify:
    """``extract --delete-source``: a local SMC file is deleted only once every performance of
    the batch that reads it (the same file by device and inode, whatever its path) has ended
    complete with a full selection (every modality, camera and frame; images copied; sha256
    recorded) and :func:`verify` of its folder against that very file passed. Anything else
    keeps the file and says why. The delete is the last step, after the completion marker
    and the verify: an interrupted or killed run never deletes an unverified file.

    Built from every job of a run (``(request, performances)`` pairs) before any is extracted;
    :meth:`after` is the ``after`` hook of ``pipeline.run.extract_batch``."""

    def __init__(self, jobs: Iterable[tuple[Any, Iterable[Any]]]) -> None:
        from .errors import UsageError
        from .smc.source import is_url

        self.files: dict[tuple[int, int], _SourceFile] = {}
        self.ended: dict[tuple[str, str], dict[str, Any]] = {}  # performances that ended
        self.by_path: dict[str, _SourceFile] = {}
        for req, perfs in jobs:
            for perf in perfs:
                for path in perf.files.values():
                    if is_url(path):
                        raise UsageError(
                            f"--delete-source deletes local files only; {path} is remote"
                        )
                    try:
                        ident = _identity(str(path))
                    except OSError as exc:  # its performance fails to plan; nothing to delete
                        ident = (-1, len(self.files), 0, 0)
                        gone = _SourceFile(os.path.abspath(path), ident, set())
                        gone.why_kept = f"cannot read it ({exc.strerror or exc})"
                        self.files[ident[:2]] = gone
                    f = self.files.setdefault(
                        ident[:2], _SourceFile(os.path.abspath(path), ident, set())
                    )
                    f.readers.add((str(req.out_root), perf.key))
                    f.names.add(os.path.abspath(path))
                    self.by_path[os.path.abspath(path)] = f

    def after(self, req: Any, s: Any, outcome: Any) -> None:
        """A performance ended: verify it, then delete each of its files whose readers all
        verified; the fate of each file goes to the outcome and to manifest.json (of every
        performance reading a file deleted now)."""
        me = (str(req.out_root), s.perf.key)
        self.ended[me] = dict(s.perf.files)
        mine = [self._file(p) for p in s.perf.files.values()]
        why = _why_not_eligible(req, s, outcome)
        if why is None:
            why = self._verify(Path(req.out_root) / s.perf.key, s.perf.files, mine)
        touched = {me}
        for f in mine:
            if why is not None:
                f.why_kept = f.why_kept or why
            else:
                f.verified.add(me)
                if self._maybe_delete(f):
                    touched |= f.readers
        outcome.source_files = [self._fate(f, me) for f in mine]
        for root, key in sorted(touched):
            files = self.ended.get((root, key), {})
            fates = [self._fate(self._file(p), (root, key)) for p in files.values()]
            _record_fates(Path(root) / key, files, fates)

    def lines(self) -> list[str]:
        """One line per source file: deleted, or kept and why."""
        return [self._fate(f) for f in self.files.values()]

    def _file(self, path: Any) -> _SourceFile:
        return self.by_path[os.path.abspath(path)]  # every file was registered at the start

    def _verify(
        self, folder: Path, files: Mapping[str, Any], mine: list[_SourceFile]
    ) -> str | None:
        """Why the folder does not prove the files (None: verified against these very files)."""
        for f in mine:
            changed = _unchanged(f)
            if changed is not None:
                return changed
        if not (folder / COMPLETE_MARKER).is_file():
            return f"{folder.name} has no completion marker"
        try:
            report = verify(folder, sources={r: Path(p) for r, p in files.items()})
        except (Renderme360Error, OSError) as exc:
            return f"verify of {folder.name} could not run: {exc}"
        if not report.ok:
            more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            return f"verify of {folder.name} failed: {report.problems[0]}{more}"
        return None

    def _maybe_delete(self, f: _SourceFile) -> bool:
        """Delete ``f`` if every reader verified it and it is still that file; whether it was."""
        if f.deleted or f.why_kept or f.verified != f.readers:
            return False
        why = _unchanged(f)  # the file verified is the file deleted
        if why is not None:
            f.why_kept = why
            return False
        for name in sorted(f.names, key=lambda n: n != f.path):  # its other names after it
            try:
                if _identity(name)[:2] == f.identity[:2]:
                    os.unlink(name)
            except OSError as exc:
                if name == f.path:
                    f.why_kept = f"cannot delete it ({exc.strerror or exc})"
                    return False
        f.deleted = True
        return True

    def _fate(self, f: _SourceFile, me: tuple[str, str] | None = None) -> str:
        from .textsafe import printable

        name = printable(f.path)
        if f.deleted:
            return f"deleted {name} (verified: {', '.join(sorted(k for _, k in f.verified))})"
        if f.why_kept:
            return f"kept {name}: {printable(f.why_kept)}"
        waiting = sorted(k for r, k in f.readers - f.verified if (r, k) != me)
        return f"kept {name}: {', '.join(waiting) or 'it'} did not end verified"


def _why_not_eligible(req: Any, s: Any, outcome: Any) -> str | None:
    """Why a performance's outcome cannot let its sources go, before any verify (None: it may)."""
    from .selection import Selection

    key = s.perf.key
    if outcome.status not in ("done", "skipped"):
        return f"{key} {outcome.status}" + (f" ({outcome.error})" if outcome.error else "")
    sel = req.selection
    if (sel.modalities, sel.cameras, sel.frames) != (Selection().modalities, None, None):
        return f"{key} was extracted with a narrowed selection ({_narrowed(sel)})"
    if req.options.image_mode != "copy":
        return f"{key}: images were re-encoded, the stored bytes are not all kept"
    if not req.options.checksum:
        return f"{key}: --no-checksum, the extracted files have no sha256 to verify"
    return None


def _narrowed(sel: Any) -> str:
    doc = sel.describe()
    return ", ".join(f"{k} {v}" for k, v in doc.items() if v != "all" and k != "modalities") or (
        f"modalities {doc['modalities']}"
    )


def _unchanged(f: _SourceFile) -> str | None:
    """Why ``f`` is not the file the batch began with (None when it is)."""
    try:
        now = _identity(f.path)
    except OSError as exc:
        return f"cannot read it any more ({exc.strerror or exc})"
    return None if now == f.identity else "it changed during the run (size, time or inode)"


def _record_fates(folder: Path, files: Mapping[str, Any], fates: list[str]) -> None:
    """Add the source files' fates to manifest.json (atomically; the file lists are unchanged:
    manifest.json is not in them)."""
    from .output.outdir import OutputDir

    doc = read_manifest(folder)
    if doc is None or not (folder / COMPLETE_MARKER).is_file():
        return
    doc["source_files"] = {
        role: {"deleted": fate.startswith("deleted "), "note": fate}
        for role, fate in zip(files, fates, strict=True)
    }
    OutputDir(folder).write_text(MANIFEST, json.dumps(doc, indent=1, allow_nan=False) + "\n")

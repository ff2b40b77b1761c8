"""The package's shape, checked from its source: imports run one way, no cycles, small functions.

Imports are read with ``ast`` (imports inside functions count; ``if TYPE_CHECKING:`` ones do not),
so a violation fails here before it becomes a tangle. The layers, bottom to top:
errors -> naming / safeopen / formats / modalities -> tasks / output / camera -> selection /
config -> smc -> writers / preview -> pipeline -> verify / loader -> cli.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "renderme360"

#: Rank of each top-level part of the package: a module may import only lower ranks (or its own
#: part). Equal ranks of different parts may not import each other.
RANKS = {
    "_version": 0,
    "errors": 0,
    "textsafe": 0,
    "stops": 1,
    "naming": 1,
    "modalities": 1,  # the modality table: read by every layer above
    "safeopen": 1,
    "formats": 1,  # below output/: the folder reader decodes npz/images through formats/
    "tasks": 2,
    "output": 2,
    "camera": 2,
    "workers": 2,
    "selection": 3,
    "config": 3,
    "smc": 4,
    "synth": 4,
    "writers": 5,
    "preview": 5,
    "pipeline": 6,
    "verify": 7,
    "loader": 7,
    "export": 7,
    "cli": 8,
    "": 9,  # the package root (lazy re-exports)
    "__main__": 9,
}
#: Third-party modules a part must never import.
FORBIDDEN_THIRD_PARTY = {
    "formats": {"h5py"},
    "output": {"h5py", "cv2"},
    "tasks": {"h5py", "numpy", "cv2"},
    "camera": {"h5py", "cv2"},
    "naming": {"h5py", "numpy"},
    "modalities": {"h5py", "numpy", "cv2"},
    "errors": {"h5py", "numpy"},
    "safeopen": {"h5py", "numpy", "cv2"},
    "stops": {"h5py", "numpy", "cv2"},
    "workers": {"h5py", "numpy", "cv2"},
}
MAX_FUNCTION_LINES = 100
# 700 held the five extraction commands. `check` (~50 lines) and `export` (~110 lines) add their
# parsers, command functions and progress bar, with no logic: rows, verdicts and summaries come
# from loader.check and export; errors as JSON for every --json command add ~10. Keep each new
# command that lean. 1000 since the trust round and the new exports: gaussianavatars, talkinghead
# and clips add their flags (parsers only), remote sources their --staging/--delete-source flags.
MAX_CLI_LINES = 1000


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, int]]:
    """Every import statement with its line, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[tuple[ast.stmt, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(internal modules, third-party top-level names) that ``name`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    internal: set[str] = set()
    external: set[str] = set()
    for node, _line in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                if target.split(".")[0] == "renderme360":
                    internal.add(target)
                else:
                    external.add(target.split(".")[0])
            continue
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base_parts = name.split(".")
            drop = node.level - 1 if is_pkg else node.level
            base_parts = base_parts[: len(base_parts) - drop] if drop else base_parts
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
            if base.split(".")[0] != "renderme360":
                external.add(base.split(".")[0])
                continue
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            internal.add(sub if sub in known else base)
    internal.discard(name)
    return internal, external


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known)[0] & known for name, path in mods.items()}


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(g):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_every_part_has_a_rank():
    assert {part(m) for m in modules()} <= set(RANKS)


def test_no_import_cycle():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()) or [])


def test_cycle_detector_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_run_one_way():
    bad = []
    for mod, targets in graph().items():
        for target in targets:
            src, dst = part(mod), part(target)
            if src != dst and RANKS[dst] >= RANKS[src]:
                bad.append(f"{mod} imports {target} (upstream)")
    assert not bad, "\n".join(sorted(bad))


def test_low_layers_import_no_heavy_libraries():
    mods = modules()
    bad = []
    for name, path in mods.items():
        banned = FORBIDDEN_THIRD_PARTY.get(part(name), set())
        _internal, external = imports_of(name, path, set(mods))
        bad += [f"{name} imports {lib}" for lib in sorted(external & banned)]
    assert not bad, "\n".join(bad)


def test_import_parser_sees_function_level_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "renderme360"
    (pkg / "writers").mkdir(parents=True)
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..pipeline import plan\n"
        "def f():\n    from ..pipeline.run import x\n    import h5py\n"
    )
    (pkg / "writers" / "x.py").write_text(src)
    known = {"renderme360.pipeline.run", "renderme360.pipeline.plan", "renderme360.pipeline"}
    internal, external = imports_of("renderme360.writers.x", pkg / "writers" / "x.py", known)
    assert internal == {"renderme360.pipeline.run"}
    assert external == {"typing", "h5py"}


@pytest.mark.parametrize(
    ("importer", "target", "ok"),
    [
        ("renderme360.writers.blobs", "renderme360.pipeline.plan", False),
        ("renderme360.smc.reader", "renderme360.writers.audio", False),
        ("renderme360.smc.compat", "renderme360.pipeline.run", False),
        ("renderme360.formats.audio", "renderme360.smc.reader", False),
        ("renderme360.output.read", "renderme360.pipeline.record", False),
        ("renderme360.pipeline.plan", "renderme360.tasks", True),
        ("renderme360.cli", "renderme360.pipeline.run", True),
        ("renderme360.writers.blobs", "renderme360.smc.reader", True),
    ],
)
def test_rank_rule_examples(importer, target, ok):
    assert (RANKS[part(target)] < RANKS[part(importer)]) is ok


#: Modules that read output paths back: they must parse them through output/layout.
PATH_READERS = (
    "renderme360.verify",
    "renderme360.preview",
    "renderme360.pipeline",
    "renderme360.writers",
)
_PATH_LITERAL = re.compile(r"cam_(\d|\{)|frame_(\d|\{)|from_(anno|raw|smc)/")


def _code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]


def test_output_paths_are_spelled_and_parsed_only_by_the_layout():
    bad = []
    for name, path in modules().items():
        if not name.startswith(PATH_READERS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _code_strings(tree):
            if _PATH_LITERAL.search(text):
                bad.append(f"{name}:{line}: {text!r}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("split", "rsplit", "partition", "rpartition")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "/"
            ):
                bad.append(f"{name}:{node.lineno}: splits a path by hand")
            if isinstance(node, (ast.Import, ast.ImportFrom)) and name in (
                "renderme360.verify",
                "renderme360.preview",
            ):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if "re" in names:
                    bad.append(f"{name}:{node.lineno}: parses with regular expressions")
    assert not bad, "\n".join(bad)


def test_no_function_over_the_limit():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert not long, "\n".join(long)


def test_cli_stays_thin():
    lines = sum(len(p.read_text().splitlines()) for p in (PACKAGE / "cli").glob("*.py"))
    assert lines < MAX_CLI_LINES


def test_no_private_name_imported_from_another_module():
    """What another module uses is a public, documented name (the split of export/run.py)."""
    bad = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(f"{name}:{node.lineno}: imports {alias.name}")
    assert not bad, "\n".join(bad)


def test_exports_read_a_typed_performance_and_share_one_jpeg_quality():
    """No getattr/hasattr probing in export/ (perf is a Performance, checked by mypy), and the
    tool's JPEG quality is defined once (formats/image.py)."""
    probes = [
        f"{p.name}:{i}"
        for p in (PACKAGE / "export").glob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\b(getattr|hasattr)\(", line)
    ]
    assert not probes, probes
    defined = [
        name
        for name, p in modules().items()
        if re.search(r"^_?JPEG_QUALITY\b", p.read_text(), re.M)
    ]
    assert defined == ["renderme360.formats.image"], defined

"""Every Python example of README.md and docs/*.md runs as written.

Convention (stated in the README and atop each docs page with Python): examples run from the
folder where ``renderme360 demo`` was run, and read its output ``renderme360-demo/`` (the demo's
default folder). This test runs the demo once in a temporary folder, then each ```python block
there, in a fresh namespace. A block that must not run is fenced ```python no-run: kept few.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from renderme360.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)
MAX_NO_RUN = 2


def blocks() -> list[tuple[str, str, str]]:
    """(page:line, info string after ``python``, code) of every Python block."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", m.group(1).strip(), m.group(2)))
    return found


BLOCKS = blocks()


@pytest.fixture(scope="module")
def demo_cwd(tmp_path_factory):
    """A folder holding ``renderme360-demo/``, as after ``renderme360 demo``."""
    where = tmp_path_factory.mktemp("readme")
    assert main(["demo", str(where / "renderme360-demo"), "-q"]) == 0
    return where


def test_the_pages_have_python_examples_and_few_are_not_run():
    assert len(BLOCKS) >= 5, BLOCKS
    assert sum(info == "no-run" for _, info, _ in BLOCKS) <= MAX_NO_RUN
    assert {info for _, info, _ in BLOCKS} <= {"", "no-run"}  # no other marker slips through


@pytest.mark.parametrize(
    "where,code",
    [(w, c) for w, info, c in BLOCKS if info != "no-run"],
    ids=[b[0] for b in BLOCKS if b[1] != "no-run"],
)
def test_example_runs_as_written(where, code, demo_cwd, monkeypatch):
    monkeypatch.chdir(demo_cwd)
    exec(compile(code, where, "exec"), {"__name__": "__readme__"})


def test_the_readme_starts_with_what_a_newcomer_runs():
    """The first code block: install + demo, then the tests, as its first lines."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first.splitlines() if not line.startswith("#")]
    assert commands[0] == (
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/renderme360 demo"
    )
    assert commands[1].endswith(".venv/bin/python -m pytest")
    assert len(text.split("\n## ", 1)[0].splitlines()) <= 40  # the first screen
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link

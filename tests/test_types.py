"""The package's types are checked: mypy over src (settings in pyproject.toml ``[tool.mypy]``).

Runs in the README's one test command (and so in ``.ci/run``): a wrong annotation, a backend that
no longer satisfies the loader's ``Source`` protocol, or a stale ``# type: ignore`` fails here. The
cache is the default ``.mypy_cache`` of the checkout, so a second run only re-checks what changed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "renderme360"


def test_mypy_reports_no_errors() -> None:
    """``python -m mypy`` (files and strictness from pyproject.toml) exits 0 over src."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-color-output", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"


def test_every_type_ignore_names_its_error_code() -> None:
    """No blanket ``# type: ignore``: each one names the error it silences (mypy's
    ``ignore-without-code`` checks the same; this also covers files mypy was told to skip)."""
    blanket = re.compile(r"#\s*type:\s*ignore(?!\[)")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if blanket.search(line)
    ]
    assert found == []

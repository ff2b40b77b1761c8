"""The package's types are checked: mypy over src (settings in pyproject.toml ``[tool.mypy]``).

Runs in the README's one test command (and so in ``.ci/run``): a wrong annotation, a backend that
no longer satisfies the loader's ``Source`` protocol, or a stale ``# type: ignore`` fails here. The
cache is the default ``.mypy_cache`` of the checkout, so a second run only re-checks what changed.
"""

from __future__ import annotations

import os
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


def test_a_backend_that_breaks_the_source_protocol_is_reported(tmp_path: Path) -> None:
    """The check can fail: a backend whose ``blob`` answers ``str`` instead of ``bytes | None``
    is no ``Source``, and mypy (same settings) says so where it is handed to ``Performance``."""
    probe = tmp_path / "broken_backend.py"
    probe.write_text(
        "from renderme360.loader.performance import Performance\n"
        "from renderme360.output.extracted import ExtractedFolder\n"
        "\n"
        "\n"
        "class Broken(ExtractedFolder):\n"
        "    def blob(self, kind: str, cam: str, frame: int) -> str:  # type: ignore[override]\n"
        "        return ''\n"
        "\n"
        "\n"
        "def use(folder: Broken) -> Performance:\n"
        "    return Performance(folder)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-color-output", str(probe)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'Argument 1 to "Performance" has incompatible type "Broken"' in done.stdout
    assert "Found 1 error in 1 file" in done.stdout

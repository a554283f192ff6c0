"""The code base stays lint-clean, formatted and `mypy --strict` clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list files")
class TestQuality:
    def test_ruff_check(self) -> None:
        """`ruff check` reports nothing."""
        proc = _run("ruff", "check", ".")
        assert 0 == proc.returncode, proc.stdout + proc.stderr

    def test_ruff_format(self) -> None:
        """`ruff format --check` finds nothing to reformat."""
        proc = _run("ruff", "format", "--check", ".")
        assert 0 == proc.returncode, proc.stdout + proc.stderr

    def test_mypy_strict(self) -> None:
        """`mypy --strict` (configured in pyproject.toml) is clean on the package."""
        proc = _run("mypy")
        assert 0 == proc.returncode, proc.stdout + proc.stderr

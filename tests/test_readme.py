"""Every Python code block in README.md runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import run_python

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


class TestReadme:
    def test_has_quick_start_with_two_commands(self) -> None:
        """The Quick start section has exactly two shell commands."""
        text = README.read_text(encoding="utf-8")
        section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
        assert 2 == len(re.findall(r"```sh\n", section))

    @pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
    def test_block_runs(self, code: str, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """The block exits 0 in a fresh interpreter, offline, in an empty folder."""
        env = {**subprocess_env, "BELOG_DIR": str(tmp_path / "logs")}
        env["BELOG_PACKAGE_DIR"] = str(tmp_path / "packages")
        run_python(code, env, cwd=tmp_path, timeout=120)

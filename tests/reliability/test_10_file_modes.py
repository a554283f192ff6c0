"""Case 10: files 0600 and folders 0700 from the moment they exist.

A child runs a session with a stage, an LLM call record, a BELog record, a
forked child's shard, an output, copied content and its package, under umask
000 and 022, with ``chmod`` disabled (so nothing can be created wide and
narrowed afterwards). Every file and folder under the log and package
folders is then checked.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from .conftest import child_json, run_child


def _modes(top: Path) -> tuple[list[str], int, int]:
    wrong: list[str] = []
    files = dirs = 0
    for path in [top, *top.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            dirs += 1
            if 0o700 != mode:
                wrong.append(f"{oct(mode)} {path}")
        else:
            files += 1
            if 0o600 != mode:
                wrong.append(f"{oct(mode)} {path}")
    return wrong, files, dirs


class TestFileModes:
    """Log and package files are private to their owner."""

    @pytest.mark.parametrize("umask", ["000", "022"])
    def test_every_file_0600_every_folder_0700(
        self, umask: str, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Under the umask, with chmod disabled: files 0600, folders 0700."""
        result = child_json(run_child(subprocess_env, "file_modes", str(tmp_path), umask))
        wrong, files, dirs = _modes(tmp_path / "logs")
        wrong_pkg, pkg_files, pkg_dirs = _modes(tmp_path / "packages")
        figure("log files / folders checked", f"{files} / {dirs}")
        figure("package files / folders checked", f"{pkg_files} / {pkg_dirs}")
        figure("wrong modes (logs / package)", f"{len(wrong)} / {len(wrong_pkg)}")
        figure("chmod calls made by belog", len(result["chmod_calls"]))
        assert [] == wrong
        assert [] == wrong_pkg
        assert [] == result["chmod_calls"]
        assert files >= 5
        assert pkg_files >= 7

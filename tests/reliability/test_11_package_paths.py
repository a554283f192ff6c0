"""Case 11: hostile package titles and planted symlinks.

Sessions titled with path traversal, absolute paths, NUL and control
characters, Windows separators, look-alike Unicode, a 10,000-character
title and so on are packaged into a ``package_dir`` where links to an
outside folder were planted under every name the packages could take (this
minute's and the next). Pass: 0 writes outside ``package_dir`` — every
package's ``realpath`` is inside it, the outside folder stays empty, and no
other file appears anywhere under the test's folder.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

import structlog_belog as belog
from structlog_belog.core.config import Config
from structlog_belog.package.slug import package_name

HOSTILE_TITLES = (
    "../../outside/escape",
    "/etc/passwd",
    "..",
    ".",
    "a/../../b",
    "..\\..\\windows\\system32",
    "nul\x00byte",
    "new\nline\rreturn\ttab",
    "\u2025\uff0f\u2025\uff0fescape",  # look-alike dots and slash
    "~root/.ssh/authorized_keys",
    "$(touch pwned) `touch pwned2`",
    "-rf --no-preserve-root",
    "logs",
    "x" * 10_000,
    "\U0001f4a3\U0001f4a5",
    "CON",
    "./.",
)


def _tree(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


class TestHostilePackagePaths:
    """Packages land only in new folders directly inside package_dir."""

    def test_no_write_outside_package_dir(
        self, belog_config: Config, tmp_path: Path, figure: Any
    ) -> None:
        """17 hostile titles, planted links: 0 writes outside package_dir."""
        packages = belog_config.package_dir
        packages.mkdir(parents=True, exist_ok=True)
        outside = tmp_path / "outside"
        outside.mkdir()
        now = datetime.now()
        planted = 0
        for title in HOSTILE_TITLES:
            for when in (now, now + timedelta(minutes=1)):
                link = packages / package_name(title, when)
                if not link.is_symlink():
                    link.symlink_to(outside, target_is_directory=True)
                    planted += 1
        content = tmp_path / "content"
        content.mkdir()
        (content / "data.txt").write_text("data")
        (content / "escape").symlink_to(outside, target_is_directory=True)
        before = _tree(tmp_path)
        results = []
        for title in HOSTILE_TITLES:
            with belog.session(title) as run:
                structlog.get_logger("rel.paths").info("work", title=title)
                run.add_content(content, as_name="03_output")
            results.append(run.package_path)
        # The public re-packaging entry point with a hostile title of its own.
        results.append(belog.package(run.id, dest=packages, title="../../outside/again"))
        root = os.path.realpath(packages)
        inside = [
            p is not None
            and os.path.commonpath([root, os.path.realpath(p)]) == root
            and os.path.dirname(os.path.realpath(p)) == root
            for p in results
        ]
        new = _tree(tmp_path) - before
        stray = sorted(p for p in new if not p.startswith(("logs", "packages")))
        figure("hostile titles packaged", len(HOSTILE_TITLES) + 1)
        figure("links planted under package names", planted)
        figure("packages directly inside package_dir", f"{sum(inside)}/{len(results)}")
        figure(
            "files written outside package_dir (and log_dir)",
            len(stray) + len(list(outside.iterdir())),
        )
        assert all(inside)
        assert [] == list(outside.iterdir())
        assert [] == stray

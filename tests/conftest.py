"""Shared fixtures: a configured log folder per test, and a clean slate after it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import context as _context

REPO_ROOT = Path(belog.__file__).resolve().parents[1]

# tests/compat needs the real client libraries, which live in their own virtual
# environment: tests/audit/test_compat.py builds it and runs that folder there.
collect_ignore = [] if os.environ.get("BELOG_COMPAT_SUITE") == "1" else ["compat"]


@pytest.fixture(autouse=True)
def _clean_belog() -> Iterator[None]:
    """Undo any configure() a test did, and forget sessions it left open."""
    handlers = list(logging.getLogger().handlers)
    yield
    _config.reset()
    for run in _context.REGISTRY.open_sessions():
        _context.REGISTRY.remove(run)
    root = logging.getLogger()
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)


@pytest.fixture
def belog_config(tmp_path: Path) -> _config.Config:
    """configure() into tmp_path/logs (packages in tmp_path/packages), console off."""
    return belog.configure(
        log_dir=tmp_path / "logs",
        package_dir=tmp_path / "packages",
        console=False,
        handle_signals=False,
    )


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """An environment for child interpreters that imports this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELOG_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONUNBUFFERED", None)
    return env


def run_python(
    code: str, env: dict[str, str], *, cwd: Path | None = None, timeout: float = 60
) -> str:
    """Run *code* in a new interpreter, which must exit 0; return what it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr
    return proc.stdout


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """Every line of a JSONL file, parsed strictly."""
    import json

    with path.open("rb") as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def python() -> str:
    """The interpreter running the tests."""
    return sys.executable

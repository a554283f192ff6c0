"""Helpers for the reliability suite: child drivers, strict line reading, measured figures.

Every case records the figures it measures with the ``figure`` fixture; they
are printed in a "reliability figures" section at the end of the run (and
written as JSON to ``$BELOG_RELIABILITY_FIGURES`` when set), which is where
``docs/reliability.md`` takes its numbers from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """Record a measured figure under the running test's ID."""

    def record(name: str, value: Any) -> None:
        FIGURES.setdefault(request.node.nodeid, {})[name] = value

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures measured in this run; also write them as JSON if asked."""
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for nodeid, values in FIGURES.items():
        terminalreporter.write_line(nodeid)
        for name, value in values.items():
            terminalreporter.write_line(f"    {name}: {value}")
    target = os.environ.get("BELOG_RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")


def child_command(scenario: str, *args: str) -> list[str]:
    """The command line that runs *scenario* of `tests.reliability._child`."""
    return [sys.executable, "-m", "tests.reliability._child", scenario, *args]


def run_child(
    env: dict[str, str], scenario: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a child scenario to completion; its stdout is one JSON document."""
    return subprocess.run(
        child_command(scenario, *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def child_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON result a child printed last; fails the test with its stderr otherwise."""
    assert 0 == proc.returncode, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def strict_loads(line: bytes) -> Any:
    """Parse one JSON line strictly: orjson rejects NaN, Infinity and lone surrogates."""
    return orjson.loads(line)


def read_lines(path: Path) -> tuple[list[dict[str, Any]], bytes]:
    """Every complete line of *path*, parsed strictly, and the partial tail (if any)."""
    data = path.read_bytes()
    body, sep, tail = data.rpartition(b"\n")
    if not sep:
        body, tail = b"", data
    lines = body.split(b"\n") if body or sep else []
    return [strict_loads(line) for line in lines], tail


def session_records(session_dir: Path, stream: str = "processing") -> Iterator[dict[str, Any]]:
    """The records of every shard of *stream* in *session_dir*, file by file."""
    for path in sorted(session_dir.glob(f"{stream}*.jsonl")):
        records, tail = read_lines(path)
        assert b"" == tail, f"torn tail in {path}"
        yield from records


def global_file(log_dir: Path) -> Path:
    """The one global ``<app_name>.jsonl`` file of *log_dir*."""
    (path,) = log_dir.glob("*.jsonl")
    return path

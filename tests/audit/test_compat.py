"""The compatibility suite (tests/compat), run in its own virtual environment.

instructor, langchain-openai, litellm and openai-agents pin versions that
would hold the main suite's ``openai`` SDK back (instructor's ``jiter`` bound
caps it at 3.3), so they are not installed beside it. This module builds — or
reuses, while the ``compat`` extra and the interpreter are unchanged — a
virtual environment under ``.cache/compat/venv`` in the checkout with
``pip install -e '.[compat]'``, runs ``tests/compat`` there once, and reports
each of those tests here as a test of its own: it passes, fails (with the
compat test's own report) or skips (with its reason) as the real one did.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "tests" / "compat"
CACHE = ROOT / ".cache" / "compat"
VENV = CACHE / "venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / "belog-compat.json"
#: Seconds for building the environment, and for running the suite in it.
INSTALL_TIMEOUT = 1200
RUN_TIMEOUT = 900


def _compat_tests() -> list[str]:
    """Every test function of tests/compat, as ``file::Class::function`` (parameters folded)."""
    found = []
    for path in sorted(COMPAT.glob("test_*.py")):
        name = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                found.append(f"{name}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                found.extend(
                    f"{name}::{node.name}::{item.name}"
                    for item in node.body
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test")
                )
    return found


def _wanted() -> dict[str, object]:
    """What the environment is built from: the interpreter and the package's requirements."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        "checkout": str(ROOT),  # the editable install points here: a moved checkout rebuilds
        "python": sys.version,
        "dependencies": project["dependencies"],
        "extras": project["optional-dependencies"],
    }


def _build() -> None:
    """(Re)build the compat environment unless its stamp says it is current."""
    wanted = _wanted()
    try:
        if json.loads(STAMP.read_text(encoding="utf-8")) == wanted and PYTHON.exists():
            return
    except (OSError, ValueError):
        pass
    shutil.rmtree(VENV, ignore_errors=True)
    steps = (
        [sys.executable, "-m", "venv", str(VENV)],
        [str(PYTHON), "-m", "pip", "install", "-q", "-e", f"{ROOT}[compat]"],
    )
    for command in steps:
        proc = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        assert 0 == proc.returncode, f"{command}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    STAMP.write_text(json.dumps(wanted), encoding="utf-8")


def _run(report: Path) -> subprocess.CompletedProcess[str]:
    """Run tests/compat in the compat environment, writing a JUnit XML *report*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BELOG_", "COV_CORE_"))}
    env.pop("PYTHONPATH", None)
    env["BELOG_COMPAT_SUITE"] = "1"
    return subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pytest",
            "tests/compat",
            "-q",
            "-p",
            "no:cacheprovider",
            # The main suite's options name coverage, which this environment lacks.
            "-o",
            "addopts=-ra --strict-markers --strict-config",
            # Third-party libraries warn (and leak sockets) on their own; what belog
            # adds is checked by each test against the unaudited run instead.
            "-o",
            "filterwarnings=default",
            "-p",
            "no:unraisableexception",
            "--timeout=180",
            f"--junitxml={report}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def _results(report: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Per ``file::Class::function``: (test name, outcome, message) of each run of it."""
    results: dict[str, list[tuple[str, str, str]]] = {}
    root = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
    for case in root.iter("testcase"):
        module, _, cls = case.get("classname", "").partition(".Test")
        path = module.replace(".", "/") + ".py"
        name = case.get("name", "")
        key = "::".join(p for p in (path, f"Test{cls}" if cls else "", name.split("[")[0]) if p)
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error"}.get(child.tag, "skipped")
                message = (child.get("message") or "") + "\n" + (child.text or "")
                break
        results.setdefault(key, []).append((name, outcome, message))
    return results


@pytest.fixture(scope="module")
def compat_results() -> Iterator[tuple[dict[str, list[tuple[str, str, str]]], str]]:
    """Build the environment (under a lock), run the suite once; its results and output."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build()
        report = CACHE / f"report-{os.getpid()}.xml"
        try:
            proc = _run(report)
            assert report.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
            yield _results(report), proc.stdout[-6000:]
        finally:
            report.unlink(missing_ok=True)


@pytest.mark.timeout(INSTALL_TIMEOUT + RUN_TIMEOUT + 60)
class TestCompatibility:
    @pytest.mark.parametrize("test", _compat_tests())
    def test_passes_in_its_environment(
        self, test: str, compat_results: tuple[dict[str, list[tuple[str, str, str]]], str]
    ) -> None:
        """The compat test (every parameter of it) passed with the real library."""
        results, output = compat_results
        runs = results.get(test)
        assert runs, f"{test} did not run in the compat environment:\n{output}"
        failed = [
            f"{name}: {outcome}\n{message}"
            for name, outcome, message in runs
            if outcome not in ("passed", "skipped")
        ]
        assert [] == failed, "\n\n".join(failed)
        skipped = [message for _, outcome, message in runs if outcome == "skipped"]
        if len(skipped) == len(runs):
            pytest.skip(skipped[0].strip().splitlines()[0])

    def test_keeps_the_newest_sdk_here(
        self, compat_results: tuple[dict[str, list[tuple[str, str, str]]], str]
    ) -> None:
        """The compat environment has its own SDK: the main suite's is not held back to it."""
        import openai

        assert compat_results[0], "the compat suite reported no test"
        proc = subprocess.run(
            [str(PYTHON), "-c", "import instructor, openai; print(openai.__version__)"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert 0 == proc.returncode, proc.stderr
        here = tuple(int(p) for p in openai.__version__.split(".")[:2])
        there = tuple(int(p) for p in proc.stdout.strip().split(".")[:2])
        assert here >= there

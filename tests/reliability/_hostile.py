"""Helpers for the hostile-file cases (14-19): measured child runs, session builders.

`measured` runs a command in a fresh wrapper interpreter that waits for it and
reports the child's own peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``),
its wall time, exit status and output, so each CLI command or API call is
measured alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import child_json

#: Characters no CLI output may carry from data (see `structlog_belog` sanitiser):
#: C0 but tab/newline, DEL, C1, bidi overrides and isolates.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

_WRAPPER = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    timeout = float(sys.argv[1])
    stdin = subprocess.DEVNULL
    t0 = time.monotonic()
    try:
        p = subprocess.run(sys.argv[2:], stdin=stdin, capture_output=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", exc.stdout or b"", exc.stderr or b""
    seconds = time.monotonic() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({
        "rc": rc, "seconds": seconds, "peak_rss_mib": rss,
        "stdout": out.decode("utf-8", "replace")[-20000:],
        "stderr": err.decode("utf-8", "replace")[-20000:],
    }))
    """
)


@dataclass(frozen=True)
class Measured:
    """What one measured child run did."""

    rc: int | str
    seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str


def measured(
    command: list[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 60
) -> Measured:
    """Run *command* under a wrapper; its peak RSS, time, status and output."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(timeout), *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr
    data = json.loads(proc.stdout)
    return Measured(**data)


def belog_cli(*args: str) -> list[str]:
    """The command line running ``belog`` from this checkout."""
    return [
        sys.executable,
        "-c",
        "import sys; from structlog_belog.cli import main; sys.exit(main())",
        *args,
    ]


def python_code(code: str, *args: str) -> list[str]:
    """The command line running *code* (dedented) with *args* in ``sys.argv[1:]``."""
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def run_script(
    code: str, *args: str, env: dict[str, str], timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run *code* with *args* in a new interpreter: (the finished process, its `child_json`)."""
    proc = subprocess.run(
        python_code(code, *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, child_json(proc)


MAKE_SESSION = """
import json, logging, sys, structlog
import structlog_belog as belog
root, title = sys.argv[1], sys.argv[2]
belog.configure(log_dir=root + "/logs", package_dir=root + "/packages", console=False)
log = structlog.get_logger("app")
with belog.session(title, blueprint_id="bp_h", blueprint_version="v1") as run:
    with run.stage("prepare"):
        for i in range(20):
            log.info("step", i=i)
        with run.task("hostile task", expected_outcome="ok") as task:
            task.suggest("try again")
    run.set_metric("quality", 0.5)
print(json.dumps({"id": run.id, "package": str(run.package_path)}))
"""


def make_session(root: Path, env: dict[str, str], title: str = "hostile") -> dict[str, Any]:
    """Run one small real session (stage, task, metric) under *root*; its ID and package."""
    proc = subprocess.run(
        python_code(MAKE_SESSION, str(root), title),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def one_clear_line(stderr: str) -> bool:
    """An error report of one line, without a traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in stderr


def is_root() -> bool:
    """Whether the tests run as root (permission bits do not stop root)."""
    return os.geteuid() == 0

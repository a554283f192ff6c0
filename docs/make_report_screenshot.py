"""Make docs/report-screenshot.png: the run report of ``belog demo`` in headless Chromium.

Run from the repository root (after ``pip install -e '.[dev]'``; needs Debian's
``chromium`` or ``BELOG_CHROMIUM``)::

    python docs/make_report_screenshot.py

The demo runs offline (the packaged fake model); the page is shown with its
first LLM call opened (``#call=<id>``) beside the overview.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

OUT = Path(__file__).resolve().parent / "report-screenshot.png"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,800",
)  # fmt: skip


def main() -> int:
    """Run the demo, open its report on its first call, save the screenshot."""
    program = os.environ.get("BELOG_CHROMIUM") or shutil.which("chromium")
    if program is None:
        sys.stderr.write("chromium is not installed (Debian: apt-get install chromium)\n")
        return 1
    belog = Path(sys.executable).with_name("belog")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        package = orjson.loads(subprocess.run(
            [str(belog), "demo", "--out", str(tmp / "demo"), "--json"],
            capture_output=True, text=True, check=True, cwd=tmp,
        ).stdout)["package"]  # fmt: skip
        logs = Path(package) / "logs"
        first = orjson.loads(
            next(line for line in _lines(logs / "prompts_audit.jsonl.zst") if line)
        )["call_id"]
        url = (logs / "execution_report.html").as_uri() + "#call=" + first
        subprocess.run(
            [program, *FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--screenshot={OUT}", url],
            capture_output=True, check=True, cwd=tmp, timeout=120,
        )  # fmt: skip
    print(f"{OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


def _lines(path: Path) -> list[bytes]:
    from structlog_belog.package.reader import iter_lines

    return list(iter_lines(path))


if __name__ == "__main__":
    sys.exit(main())

"""Case 6: full disk, file size limit, read-only and forbidden folders.

Each fault is real: ``/dev/full`` behind the open descriptors and paths
(ENOSPC), ``RLIMIT_FSIZE`` in the child (EFBIG, including a write cut short
mid-line), a read-only bind mount in a private mount namespace (EROFS), and
permission bits enforced on an unprivileged user (EACCES). Each is injected
before `configure()` and mid-run, then cleared. Pass: 0 exceptions reach the
application, the dropped count equals the lines missing, at most one warning
on stderr (the runs last well under 10 s), logging resumes, no torn line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import child_command, child_json, read_lines

WARNING = "structlog-belog: could not write a log record"


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "mount", "--bind", "/", "/mnt"], capture_output=True, check=False
    )
    return 0 == probe.returncode


@pytest.fixture
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The folder the child logs under (owned by nobody for the EACCES case under root)."""
    if "eacces" in request.node.name and os.getuid() == 0:
        path = Path(tempfile.mkdtemp(prefix="belog-eacces-"))
        os.chown(path, 65534, 65534)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        path = tmp_path / "root"
        path.mkdir()
        yield path


def _present(log_dir: Path) -> tuple[int, set[int]]:
    lines = 0
    seqs: set[int] = set()
    for path in log_dir.rglob("*.jsonl"):
        if path.is_symlink() or not path.is_file():
            continue
        records, tail = read_lines(path)
        assert b"" == tail, f"torn line in {path}"
        lines += len(records)
        seqs.update(int(r["seq"]) for r in records if r["event"] == "rec")
    return lines, seqs


class TestDiskFaults:
    """Logging through disk faults never raises and counts exactly what it drops."""

    @pytest.mark.parametrize("phase", ["configure", "midrun"])
    @pytest.mark.parametrize("fault", ["devfull", "efbig", "erofs", "eacces"])
    def test_fault_counted_and_cleared(
        self,
        fault: str,
        phase: str,
        root: Path,
        subprocess_env: dict[str, str],
        figure: Any,
    ) -> None:
        """0 exceptions, drops counted exactly, one warning, logging resumes."""
        command = child_command("disk_fault", str(root), fault, phase)
        if fault == "erofs":
            if not _can_unshare_mounts():
                pytest.skip("unshare -m with mount (mount namespaces) not permitted here")
            command = ["unshare", "-m", *command]
        proc = subprocess.run(
            command, env=subprocess_env, capture_output=True, text=True, timeout=60, check=False
        )
        result = child_json(proc)
        phases = {k: set(v) for k, v in result["phases"].items()}
        log_dir = root / "logs"
        present_lines, present = _present(log_dir)
        attempted = sum(len(v) for v in phases.values()) + 4 * len(result["sessions"])
        missing = set().union(*phases.values()) - present
        warnings = proc.stderr.count(WARNING)
        figure("exceptions reaching the application", len(result["exceptions"]))
        figure(
            "dropped: counted / lines missing", f"{result['dropped']}/{attempted - present_lines}"
        )
        figure(
            "records logged during the fault / dropped", f"{len(phases['fault'])}/{len(missing)}"
        )
        figure("warnings on stderr", warnings)
        assert [] == result["exceptions"]
        assert attempted - present_lines == result["dropped"]
        assert missing <= phases["fault"]
        assert missing
        assert phases["cleared"] <= present
        assert phases.get("before", set()) <= present
        assert 1 == warnings

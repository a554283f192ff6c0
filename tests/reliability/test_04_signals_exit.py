"""Case 4: SIGTERM/SIGINT finalize open sessions; exits lose no record.

Children run with ``PYTHONUNBUFFERED`` removed from their environment (the
``subprocess_env`` fixture drops it), log continuously, and are signalled
from here; the time from the signal to the child's exit is measured.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import child_command, global_file, read_lines, run_child


def _signal_child(
    env: dict[str, str], log_dir: Path, where: str, handle: bool | str, signum: int
) -> tuple[str, int, float]:
    """Start a logging child, signal it once its session is open; (session ID, status, seconds)."""
    proc = subprocess.Popen(
        child_command(
            "signal_target",
            str(log_dir),
            where,
            str(int(handle)) if isinstance(handle, bool) else handle,
            "record",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    sid = json.loads(proc.stdout.readline())["session_id"]
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - t0
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    return sid, proc.returncode, elapsed


def _package_metadata(log_dir: Path) -> dict[str, Any]:
    """The metadata of the one package the child made; its summary must exist too."""
    (package,) = Path(f"{log_dir}-pkg").iterdir()
    assert (package / "logs" / "execution_summary.md").is_file()
    metadata: dict[str, Any] = json.loads((package / "logs" / "metadata.json").read_text())
    return metadata


def _session_end(log_dir: Path, sid: str) -> dict[str, Any] | None:
    records, tail = read_lines(log_dir / "sessions" / sid / "processing.jsonl")
    assert b"" == tail
    ends = [r for r in records if r.get("kind") == "session_end"]
    assert len(ends) <= 1
    return ends[0] if ends else None


class TestSignals:
    """belog's signal handling, where the application installed none."""

    @pytest.mark.parametrize("where", ["main", "thread", "daemon", "main-100k"])
    def test_sigterm_finalizes_then_dies_by_sigterm(
        self, where: str, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """SIGTERM: the session ends as failed, is packaged, and the process dies by SIGTERM."""
        log_dir = tmp_path / "logs"
        sid, status, seconds = _signal_child(subprocess_env, log_dir, where, True, signal.SIGTERM)
        end = _session_end(log_dir, sid)
        figure("seconds from SIGTERM to exit", round(seconds, 3))
        assert -signal.SIGTERM == status
        assert end is not None
        assert end["success"] is False
        assert "SIGTERM" in end["error"]["message"]
        assert seconds < 5
        metadata = _package_metadata(log_dir)
        assert sid == metadata["session_id"]
        assert metadata["execution"]["success"] is False
        globals_ = read_lines(global_file(log_dir))[0]
        assert ["session_start", "session_end"] == [r["kind"] for r in globals_]

    def test_sigterm_with_handling_off_takes_default_action(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """configure(handle_signals=False): SIGTERM kills at once, the session stays open."""
        log_dir = tmp_path / "logs"
        sid, status, _ = _signal_child(subprocess_env, log_dir, "main", False, signal.SIGTERM)
        assert -signal.SIGTERM == status
        assert _session_end(log_dir, sid) is None

    def test_application_handler_kept(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """An application that installed its own SIGTERM handler keeps it; belog stays out."""
        log_dir = tmp_path / "logs"
        sid, status, _ = _signal_child(subprocess_env, log_dir, "main", "app", signal.SIGTERM)
        assert 0 == status
        end = _session_end(log_dir, sid)
        assert end is not None
        assert "SessionInterrupted" != end["error"]["type"]

    @pytest.mark.parametrize("where", ["main", "daemon"])
    def test_sigint_finalizes_then_dies_by_sigint(
        self, where: str, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """SIGINT: KeyboardInterrupt unwinds the session, which ends as failed and is packaged."""
        log_dir = tmp_path / "logs"
        sid, status, seconds = _signal_child(subprocess_env, log_dir, where, True, signal.SIGINT)
        end = _session_end(log_dir, sid)
        figure("seconds from SIGINT to exit", round(seconds, 3))
        assert -signal.SIGINT == status
        assert end is not None
        assert end["success"] is False
        assert seconds < 5
        assert _package_metadata(log_dir)["execution"]["success"] is False


class TestExits:
    """Leaving the process the ordinary ways loses no record."""

    @pytest.mark.parametrize("durability", ["record", "buffered"])
    @pytest.mark.parametrize(("how", "status"), [("normal", 0), ("sys.exit", 3), ("exception", 1)])
    @pytest.mark.parametrize("in_session", ["1", "0"])
    def test_exit_loses_nothing(
        self,
        durability: str,
        how: str,
        status: int,
        in_session: str,
        tmp_path: Path,
        subprocess_env: dict[str, str],
        figure: Any,
    ) -> None:
        """2,000 records logged just before the exit are all on disk, no flush called."""
        log_dir = tmp_path / "logs"
        n = 2000
        proc = run_child(
            subprocess_env, "exit_mode", str(log_dir), how, durability, in_session, str(n)
        )
        assert status == proc.returncode, proc.stderr[-2000:]
        if in_session == "1":
            (session_dir,) = (log_dir / "sessions").iterdir()
            records, tail = read_lines(session_dir / "processing.jsonl")
            end = [r for r in records if r.get("kind") == "session_end"]
            assert [how == "normal"] == [r["success"] for r in end]
        else:
            records, tail = read_lines(global_file(log_dir))
        found = sorted(int(r["i"]) for r in records if r["event"] == "rec")
        figure("records on disk", f"{len(found)}/{n}")
        assert b"" == tail
        assert list(range(n)) == found

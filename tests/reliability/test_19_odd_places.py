"""Case 19: concurrent packaging, read-only folders, odd names, unreachable folders, stdin.

- Two processes package one session at the same moment (each imports, then
  spins until a shared deadline 4 s ahead, so both are ready; 10 rounds):
  one package per round.
- A read-only log folder (permission bits, enforced by running as ``nobody``
  when the tests run as root): ``last``, ``attempts`` and ``revise`` answer.
- A BELog file under a folder whose name is not UTF-8 (a lone surrogate once
  decoded): its records are indexed.
- ``configure()`` with a log folder whose parent cannot be searched: no
  exception; records dropped and counted.
- A script read from stdin (``python -``): the global log is not ``-.jsonl``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._hostile import belog_cli, is_root, make_session, python_code, run_script

NOBODY = 65534


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A folder any user can enter (outside a checkout that may be private)."""
    path = Path(tempfile.mkdtemp(prefix="belog-odd-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TestConcurrentPackaging:
    """Two processes packaging one session make one package."""

    def test_one_package_per_session(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """10 rounds of two simultaneous `belog.package` calls: 10 packages."""
        made = make_session(tmp_path, subprocess_env)
        code = """
import json, sys, time
import structlog_belog as belog
logs, dest, sid, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
belog.configure(log_dir=logs, console=False)
while time.time() < start:
    pass
try:
    print(json.dumps({"package": str(belog.package(sid, dest=dest))}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__ + ": " + str(exc)}))
"""
        rounds, made_per_round = 10, []
        for n in range(rounds):
            dest = tmp_path / f"dest{n}"
            start = f"{__import__('time').time() + 4:.3f}"
            procs = [
                subprocess.Popen(
                    python_code(code, str(tmp_path / "logs"), str(dest), made["id"], start),
                    env=subprocess_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                for _ in range(2)
            ]
            for p in procs:
                _, err = p.communicate(timeout=120)
                assert 0 == p.returncode, err
            made_per_round.append(len(list(dest.iterdir())))
        figure("packages per round", made_per_round)
        assert [1] * rounds == made_per_round


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "mount", "--bind", "/", "/mnt"], capture_output=True, check=False
    )
    return 0 == probe.returncode


class TestReadOnlyFolder:
    """Store commands work on a log folder they cannot write."""

    def test_last_attempts_revise(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Read-only folder (a read-only bind mount as root), no index yet: answers."""
        make_session(tmp_path, subprocess_env)
        logs = tmp_path / "logs"
        for db in logs.glob("*.sqlite3*"):
            db.unlink()
        if is_root() and not _can_unshare_mounts():
            pytest.skip("unshare -m with mount (mount namespaces) not permitted here")
        results = {}
        try:
            if not is_root():
                for path in [logs, *[p for p in logs.rglob("*") if p.is_dir()]]:
                    path.chmod(0o555)
            for command in (["last"], ["attempts", "hostile task"], ["revise", "bp_h"]):
                argv = belog_cli("--log-dir", str(logs), *command)
                if is_root():
                    script = (
                        'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" '
                        '&& shift && exec "$@"'
                    )
                    argv = ["unshare", "-m", "sh", "-c", script, "sh", str(logs), *argv]
                proc = subprocess.run(
                    argv,
                    env=subprocess_env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                results[command[0]] = (proc.returncode, proc.stdout[:300], proc.stderr[-500:])
        finally:
            for path in [logs, *[p for p in logs.rglob("*") if p.is_dir()]]:
                path.chmod(0o700)
        figure("exit status (last, attempts, revise)", [r[0] for r in results.values()])
        assert all(0 == r[0] for r in results.values()), results
        assert "hostile task" in results["last"][1]
        assert not list(logs.glob("*.sqlite3*"))


class TestUndecodableName:
    """A task name from an undecodable file name is indexed."""

    def test_lone_surrogate_task_indexed(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """A task named after a non-UTF-8 file name: in the store, found by `attempts`."""
        code = """
import json, os, sys
import structlog_belog as belog
root = sys.argv[1]
belog.configure(log_dir=root + "/logs", console=False)
name = os.fsdecode(b"task-\\xff-name")
with belog.session("s", blueprint_id="bp_u", package=False) as run:
    with run.task(name):
        pass
store = belog.open_store()
print(json.dumps({"found": len(store.get_past_attempts(name))}))
"""
        _proc, result = run_script(code, str(tmp_path), env=subprocess_env, timeout=60)
        figure("attempts found", result["found"])
        assert 1 == result["found"]


class TestUnreachableFolder:
    """configure() never raises for a log folder it cannot reach."""

    def test_parent_not_searchable(
        self, shared_root: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Parent mode 0 (as nobody when root): configure returns, drops are counted."""
        parent = shared_root / "locked"
        parent.mkdir()
        if is_root():
            os.chown(parent, NOBODY, NOBODY)
        parent.chmod(0)
        code = """
import json, os, sys, structlog
import structlog_belog as belog
if os.getuid() == 0:
    from tests.reliability._child import drop_privileges
    drop_privileges()
error = None
try:
    belog.configure(log_dir=sys.argv[1], console=False)
    with belog.session("s"):
        structlog.get_logger().info("x")
except Exception as exc:
    error = repr(exc)
from structlog_belog.core import state as _state
router = _state.STATE.pipeline.router if _state.STATE.pipeline else None
print(json.dumps({"error": error, "dropped": router.drops.total if router else None}))
"""
        try:
            proc = subprocess.run(
                python_code(code, str(parent / "logs")),
                env=subprocess_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=shared_root,
            )
        finally:
            parent.chmod(0o700)
        assert 0 == proc.returncode, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        figure("error / dropped", f"{result['error']} / {result['dropped']}")
        assert result["error"] is None
        assert result["dropped"] is not None
        assert result["dropped"] >= 1


class TestStdinScript:
    """A script read from stdin does not name the global log ``-.jsonl``."""

    def test_global_log_name(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """``python -`` logging outside a session: a proper global file name."""
        code = (
            "import structlog, structlog_belog as belog\n"
            f"belog.configure(log_dir={str(tmp_path / 'logs')!r}, console=False)\n"
            "structlog.get_logger().info('from stdin')\n"
        )
        proc = subprocess.run(
            [sys.executable, "-"],
            input=code,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == proc.returncode, proc.stderr
        names = sorted(p.name for p in (tmp_path / "logs").glob("*.jsonl"))
        assert 1 == len(names)
        assert not names[0].startswith("-")

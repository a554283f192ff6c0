"""Case 15: writers never follow a planted link nor write to a non-regular file.

Real symbolic links and FIFOs are planted where belog will write: the global
``<app>.jsonl``, a session folder, a session file (a child's shard), the
store's database (a dangling link: SQLite would create its target), a
revision file, and the ``packaged.json`` marker. Pass: the outside target is
untouched (or not created), nothing blocks, the application sees no exception,
and for the log files the refused records are counted with one warning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ._hostile import make_session, run_script

WARNING = "structlog-belog: could not write a log record"

LOG_SCRIPT = """
import json, os, sys, structlog
root, where, outside = sys.argv[1], sys.argv[2], sys.argv[3]
logs = root + "/logs"
os.makedirs(logs + "/sessions", exist_ok=True)
sid = "sess_2026-01-01_00-00-00_0badf00d"
if where == "global-link":
    os.symlink(outside, logs + "/app.jsonl")
elif where == "global-fifo":
    os.mkfifo(logs + "/app.jsonl")
elif where == "session-folder-link":
    os.symlink(os.path.dirname(outside), logs + "/sessions/" + sid)
elif where == "shard-link":
    os.makedirs(logs + "/sessions/" + sid)
    os.symlink(outside, logs + "/sessions/%s/processing.%d.jsonl" % (sid, os.getpid()))
elif where == "shard-fifo":
    os.makedirs(logs + "/sessions/" + sid)
    os.mkfifo(logs + "/sessions/%s/processing.%d.jsonl" % (sid, os.getpid()))
if where.startswith(("session", "shard")):
    os.environ.update(BELOG_SESSION_ID=sid, BELOG_SESSION_PID="1", BELOG_SESSION_TITLE="t")
import structlog_belog as belog
belog.configure(log_dir=logs, app_name="app", console=False)
log = structlog.get_logger("app")
exceptions = []
for i in range(10):
    try:
        log.info("planted", i=i)
    except Exception as exc:
        exceptions.append(repr(exc))
from structlog_belog.core import state as _state
router = _state.STATE.pipeline.router
print(json.dumps({"exceptions": exceptions, "dropped": router.drops.total}))
"""


class TestLogWriters:
    """The router refuses planted links and special files, counting what it drops."""

    @pytest.mark.parametrize(
        "where", ["global-link", "global-fifo", "session-folder-link", "shard-link", "shard-fifo"]
    )
    def test_refused_counted_one_warning(
        self, where: str, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Nothing written through the link; 10 records dropped and counted; one warning."""
        outside_dir = tmp_path / "outside"
        outside_dir.mkdir()
        outside = outside_dir / "victim.txt"
        outside.write_bytes(b"untouched\n")
        proc, result = run_script(
            LOG_SCRIPT, str(tmp_path), where, str(outside), env=subprocess_env, timeout=30
        )
        figure("records dropped (of 10)", result["dropped"])
        figure("warnings", proc.stderr.count(WARNING))
        assert [] == result["exceptions"]
        assert b"untouched\n" == outside.read_bytes()
        assert ["victim.txt"] == sorted(os.listdir(outside_dir))
        assert 10 == result["dropped"]
        assert 1 == proc.stderr.count(WARNING)


STORE_SCRIPT = """
import json, os, sys
root, outside = sys.argv[1], sys.argv[2]
logs = root + "/logs"
os.makedirs(logs)
os.symlink(outside, logs + "/belog_index.sqlite3")
import structlog_belog as belog
belog.configure(log_dir=logs, console=False)
error = None
try:
    store = belog.open_store()
    store.last_execution()
except Exception as exc:
    error = type(exc).__name__ + ": " + str(exc)
print(json.dumps({"error": error}))
"""


class TestStoreAndFiles:
    """The store, revision files and the packaged marker refuse planted links."""

    def test_dangling_store_link_creates_nothing(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """A dangling link at the store's name: its target is never created."""
        outside = tmp_path / "outside.sqlite3"
        _proc, result = run_script(
            STORE_SCRIPT, str(tmp_path), str(outside), env=subprocess_env, timeout=60
        )
        figure("error", result["error"])
        assert not outside.exists()
        assert result["error"] is not None
        assert "refused" in result["error"]

    def test_revision_link_not_overwritten(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Links at every name a revision could take: none is written through."""
        make_session(tmp_path, subprocess_env)
        outside = tmp_path / "victim.txt"
        outside.write_bytes(b"untouched\n")
        revisions = tmp_path / "logs" / "revisions"
        revisions.mkdir()
        code = """
import json, sys, time, datetime as dt
from pathlib import Path
root, outside = Path(sys.argv[1]), sys.argv[2]
now = dt.datetime.now(dt.UTC)
for s in range(0, 120):
    stamp = (now + dt.timedelta(seconds=s)).strftime("%Y%m%dT%H%M%S")
    for ext in (".json", ".md"):
        (root / "logs/revisions" / f"bp_h_{stamp}Z{ext}").symlink_to(outside)
import structlog_belog as belog
belog.configure(log_dir=str(root / "logs"), console=False)
error = None
try:
    belog.generate_blueprint_revision("bp_h", write=True)
except Exception as exc:
    error = type(exc).__name__ + ": " + str(exc)
print(json.dumps({"error": error}))
"""
        _proc, result = run_script(
            code, str(tmp_path), str(outside), env=subprocess_env, timeout=60
        )
        figure("error", result["error"])
        assert b"untouched\n" == outside.read_bytes()
        assert result["error"] is not None
        assert "refused" in result["error"]

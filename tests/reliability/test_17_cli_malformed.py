"""Case 17: malformed records and bad arguments get one clear line, never a traceback.

Session files are hand-edited the ways a damaged or forged log can be: an
integer timestamp, a 2**63-1 pid, a title that is a list, a host that is a
number, a ``session_end`` whose success and duration are strings, stages and
outputs of the wrong types, records whose event is an object. The store gets
hand-crafted rows of the wrong types. Every command runs against them, and
against session arguments outside the log folder (``../../etc``, ``/etc``,
``/``). Pass: exit 0 or a non-zero exit with one line on stderr, never a
traceback. ``belog show | head -1`` ends quietly.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from ._hostile import belog_cli, make_session, one_clear_line

BIG = 2**63 - 1
FORGED: list[dict[str, Any]] = [
    {
        "timestamp": 1700000000,
        "level": 5,
        "logger": ["x"],
        "event": {"nested": True},
        "session_id": 7,
        "kind": "session_start",
        "title": ["not", "a", "string"],
        "pid": BIG,
        "host": 12,
        "execution_context": {"a": 1},
        "blueprint_id": 3,
    },
    {"timestamp": None, "kind": "stage_start", "stage": {"x": 1}},
    {
        "timestamp": 12.5,
        "kind": "stage_end",
        "stage": ["y"],
        "duration_s": "long",
        "success": "yes",
    },
    {"timestamp": "2026-01-01T00:00:00.000000Z", "kind": "output", "path": 5, "call_ids": "c"},
    {"timestamp": "2026-01-01T00:00:00.000001Z", "kind": "input", "path": None, "size": "big"},
    {"timestamp": "2026-01-01T00:00:00.000002Z", "kind": "metric", "name": 1, "value": [1]},
    {"timestamp": "2026-01-01T00:00:00.000003Z", "kind": "content", "path": 1, "as_name": 2},
    {
        "timestamp": "2026-01-01T00:00:00.000004Z",
        "kind": "llm_call",
        "ref": "prompts",
        "usage": "many",
        "cost_usd": "1",
        "latency_ms": [1],
        "call_id": 9,
    },
    {
        "timestamp": BIG,
        "kind": "session_end",
        "success": "yes",
        "duration_s": "x",
        "records_dropped": "none",
        "pid": -BIG,
    },
]


def _forge(session: Path) -> None:
    own = session / "processing.jsonl"
    own.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in FORGED))
    (session / "prompts.jsonl").write_bytes(
        orjson.dumps(
            {
                "kind": "llm_call",
                "call_id": 9,
                "usage": [1],
                "attempts": "x",
                "request": "r",
                "response": 5,
                "timestamp": 3,
            }
        )
        + b"\n"
    )
    (session / "belog.jsonl").write_bytes(
        orjson.dumps(
            {
                "kind": "belog",
                "task_name": 5,
                "execution_trace_id": ["t"],
                "success": "no",
                "execution_time": "slow",
                "timestamp": 4,
            }
        )
        + b"\n"
    )
    (session / "packaged.json").unlink(missing_ok=True)


COMMANDS = [
    ["sessions"],
    ["sessions", "--json"],
    ["show", "@SID@"],
    ["show", "@SID@", "--json"],
    ["tail", "@SID@"],
    ["view", "@SID@"],
    ["view", "@SID@", "--call", "last"],
    ["summary", "@SID@"],
    ["summary", "@SID@", "--json"],
    ["package", "@SID@"],
    ["recover", "--idle", "0"],
    ["last"],
    ["attempts", "hostile task"],
    ["revise", "bp_h", "--no-write"],
    ["reindex"],
]
OUTSIDE = ["../../etc", "/etc", "/", "..", "../sessions/../../etc"]


class TestMalformed:
    """Forged records and store rows: exit 0 or one clear line, never a traceback."""

    def test_forged_session_every_command(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Every command against a forged session folder."""
        made = make_session(tmp_path, subprocess_env)
        _forge(tmp_path / "logs" / "sessions" / made["id"])
        d = ["--log-dir", str(tmp_path / "logs"), "--package-dir", str(tmp_path / "out")]
        bad = []
        for command in COMMANDS:
            args = [a.replace("@SID@", made["id"]) for a in command]
            proc = subprocess.run(
                belog_cli(*d, *args),
                env=subprocess_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if "Traceback" in proc.stderr or (proc.returncode and not one_clear_line(proc.stderr)):
                bad.append((args, proc.returncode, proc.stderr[-2000:]))
        figure("commands run / answered badly", f"{len(COMMANDS)} / {len(bad)}")
        assert [] == bad

    def test_forged_store_rows(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Rows of the wrong types in the index: last/attempts/revise answer cleanly."""
        make_session(tmp_path, subprocess_env)
        d = ["--log-dir", str(tmp_path / "logs")]
        subprocess.run(
            belog_cli(*d, "reindex"),
            env=subprocess_env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        (db,) = (tmp_path / "logs").glob("*.sqlite3")
        conn = sqlite3.connect(db)
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f"pragma table_info({table})")]
            for value in (None, 7, 1.5, b"\xff\xfe", "x", '{"a": ', "[1, 2]", BIG):
                try:
                    conn.execute(
                        f"insert into {table} ({', '.join(columns)}) values "  # noqa: S608 - names from the schema
                        f"({', '.join('?' * len(columns))})",
                        [value] * len(columns),
                    )
                except sqlite3.Error:
                    continue
        conn.commit()
        conn.close()
        bad = []
        for command in (
            ["last"],
            ["last", "--json"],
            ["attempts", "x"],
            ["attempts", "7"],
            ["revise", "x", "--no-write"],
            ["revise", "bp_h", "--no-write"],
        ):
            proc = subprocess.run(
                belog_cli(*d, *command),
                env=subprocess_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if "Traceback" in proc.stderr or (proc.returncode and not one_clear_line(proc.stderr)):
                bad.append((command, proc.returncode, proc.stderr[-2000:]))
        figure("tables forged", len(tables))
        figure("commands answered badly", len(bad))
        assert [] == bad


class TestArguments:
    """Session arguments outside the log folder are refused, in one line."""

    @pytest.mark.parametrize("ref", OUTSIDE)
    @pytest.mark.parametrize("command", ["show", "tail", "view", "summary", "package"])
    def test_outside_refused(
        self, ref: str, command: str, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A path outside the log folder is no session."""
        logs = tmp_path / "logs"
        (logs / "sessions").mkdir(parents=True)
        proc = subprocess.run(
            belog_cli("--log-dir", str(logs), "--package-dir", str(tmp_path / "p"), command, ref),
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=logs / "sessions",
        )
        assert 0 != proc.returncode
        assert one_clear_line(proc.stderr), proc.stderr
        assert not (tmp_path / "p").exists()

    @pytest.mark.parametrize(
        "args",
        [
            ["show", "--limit", "x"],
            ["tail", "-n", "0"],
            ["verify"],
            ["sessions", "--idle", "nan"],
            ["show", "last", "--stream", "nope"],
        ],
    )
    def test_bad_arguments_one_line(
        self, args: list[str], tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """argparse's own errors: non-zero, no traceback."""
        proc = subprocess.run(
            belog_cli("--log-dir", str(tmp_path), *args),
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 != proc.returncode
        assert "Traceback" not in proc.stderr


class TestClosedPipe:
    """``belog show | head -1`` ends quietly."""

    def test_show_into_head(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """No "Broken pipe" message; exit 0 or SIGPIPE-quiet."""
        made = make_session(tmp_path, subprocess_env)
        own = tmp_path / "logs" / "sessions" / made["id"] / "processing.jsonl"
        lines = own.read_bytes().splitlines(keepends=True)
        own.write_bytes(lines[0] + lines[1] * 100_000 + b"".join(lines[2:]))  # 100,000 more
        proc = subprocess.Popen(
            belog_cli("--log-dir", str(tmp_path / "logs"), "show", "last", "--json"),
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        with proc.stderr:
            err = proc.stderr.read().decode()
        rc = proc.wait(timeout=60)
        assert first.startswith(b"{")
        assert "" == err
        assert rc in (0, 141, -13)

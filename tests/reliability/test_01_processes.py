"""Case 1: 8 processes x 25,000 records into one session.

Eight interpreters join one session through `structlog_belog.session_env`
and log numbered records through structlog and stdlib loggers. Payloads are
mostly 0-400 B, 9 % 0.5-8 KiB, 1 % 8-64 KiB, and every 5,000th record is a
1 MiB line (16 fields of 64 KiB). Pass: 200,000 lines, every one parses, 0
sequence numbers missing or duplicated.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

import structlog_belog as belog
from structlog_belog._config import Config

from .conftest import child_command, read_lines

PROCS = 8
RECORDS = 25_000


@pytest.mark.slow
class TestManyProcessesOneSession:
    """Concurrent writer processes sharing one session."""

    def test_every_line_parses_none_missing(
        self, belog_config: Config, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """200,000 records from 8 processes: all parse, 0 missing, 0 duplicated."""
        with belog.session("many-processes", package=False) as run:
            env = {**subprocess_env, **belog.session_env()}
            procs = [
                subprocess.Popen(child_command("writer", str(p), str(RECORDS)), env=env)
                for p in range(PROCS)
            ]
            codes = [p.wait(timeout=600) for p in procs]
        assert [0] * PROCS == codes
        assert run.directory is not None
        seen: dict[int, set[int]] = {p: set() for p in range(PROCS)}
        lines = duplicates = biggest = total_bytes = 0
        for path in sorted(run.directory.glob("processing.*.jsonl")):
            records, tail = read_lines(path)
            assert b"" == tail
            total_bytes += path.stat().st_size
            for rec in records:
                lines += 1
                if rec["event"] != "rec":
                    continue
                seqs = seen[int(rec["proc"])]
                duplicates += int(rec["seq"]) in seqs
                seqs.add(int(rec["seq"]))
                biggest = max(biggest, sum(len(str(v)) for v in rec.values()))
        missing = sum(RECORDS - len(s) for s in seen.values())
        figure("shard lines parsed", lines)
        figure("records found", sum(len(s) for s in seen.values()))
        figure("missing", missing)
        figure("duplicated", duplicates)
        figure("largest record (chars)", biggest)
        figure("bytes written (MB)", round(total_bytes / 1e6, 1))
        assert PROCS * RECORDS == lines
        assert 0 == missing
        assert 0 == duplicates
        assert biggest > 1 << 20

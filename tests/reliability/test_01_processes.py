"""Case 1: 8 processes x 25,000 records into one session.

Eight interpreters join one session through `structlog_belog.session_env`
and log numbered records through structlog and stdlib loggers. Payloads are
mostly 0-400 B, 9 % 0.5-8 KiB, 1 % 8-64 KiB, and every 5,000th record is a
1 MiB line (16 fields of 64 KiB). Pass: 200,000 lines, every one parses, 0
sequence numbers missing or duplicated; the package holds them in timestamp
order (checked with the reader, ``zstd -t`` and ``sha256sum -c``).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

import structlog_belog as belog
from structlog_belog.core.config import Config

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
        with belog.session("many-processes") as run:
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

        # The package: shards merged into one member, in timestamp order.
        assert run.package_path is not None
        logs = run.package_path / "logs"
        sums = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=logs, check=False)
        test = subprocess.run(["zstd", "-q", "-t", "processing.jsonl.zst"], cwd=logs, check=False)
        package = belog.read_package(run.package_path)
        in_package = out_of_order = 0
        previous = ""
        for rec in package.records():
            in_package += rec["event"] == "rec"
            out_of_order += rec["timestamp"] < previous
            previous = rec["timestamp"]
        figure("records in the package", in_package)
        figure("package records out of timestamp order", out_of_order)
        figure(
            "package size (MB, zstd)", round(sum(f.stat().st_size for f in logs.iterdir()) / 1e6, 1)
        )
        assert 0 == sums.returncode
        assert 0 == test.returncode
        assert PROCS * RECORDS == in_package
        assert 0 == out_of_order
        assert 0 == package.metadata["records"]["corrupt_lines"]

"""Case 3: SIGKILL at a random moment, 50 runs.

A forked child logs from four threads (structlog and stdlib, lines of 50 B to
60 KiB) and, after each log call returns, publishes the call's sequence number
in shared memory. After the kill, every record whose call had returned must be
in the session's file, and no line may be torn: at most one partial tail,
which the reader skips and counts when the crashed session is packaged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import structlog_belog as belog

from .conftest import child_json, run_child

RUNS = 50


def _check_run(run: dict[str, Any]) -> dict[str, int]:
    (session_dir,) = (Path(run["log_dir"]) / "sessions").iterdir()
    data = (session_dir / "processing.jsonl").read_bytes()
    body, _, tail = data.rpartition(b"\n")
    torn = 0
    seen: dict[int, set[int]] = {}
    duplicates = 0
    for line in body.split(b"\n") if body else []:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            torn += 1
            continue
        if rec["event"] == "rec":
            seqs = seen.setdefault(int(rec["t"]), set())
            duplicates += int(rec["seq"]) in seqs
            seqs.add(int(rec["seq"]))
    missing = 0
    returned = 0
    for t, last in enumerate(run["last_returned"]):
        want = set(range(last + 1))
        returned += len(want)
        missing += len(want - seen.get(t, set()))
    return {
        "lines": len(body.split(b"\n")) if body else 0,
        "returned": returned,
        "missing": missing,
        "torn": torn,
        "duplicates": duplicates,
        "partial_tail": int(bool(tail)),
    }


@pytest.mark.slow
class TestSigkill:
    """kill -9 in the middle of logging."""

    def test_no_returned_record_lost_no_torn_line(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """50 random kills lose 0 returned records and tear 0 lines."""
        runs = child_json(
            run_child(subprocess_env, "sigkill_runs", str(tmp_path), str(RUNS), "6", timeout=240)
        )
        totals = {"returned": 0, "missing": 0, "torn": 0, "duplicates": 0, "partial_tail": 0}
        packaged = skipped_counted = 0
        for i, run in enumerate(runs):
            assert 9 == run["signal"]
            checked = _check_run(run)
            for key in totals:
                totals[key] += checked[key]
            if checked["partial_tail"] or i % 10 == 0:
                # The crashed session packaged afterwards: the reader skips the
                # partial tail and counts it as an unreadable line.
                (session_dir,) = (Path(run["log_dir"]) / "sessions").iterdir()
                path = belog.package(session_dir, dest=tmp_path / "packages")
                package = belog.read_package(path)
                records = package.metadata["records"]
                packaged += 1
                skipped_counted += checked["partial_tail"] == records["corrupt_lines"]
                assert checked["lines"] == sum(1 for _ in package.records())
        figure("runs", len(runs))
        figure("records whose call returned (checked)", totals["returned"])
        figure("missing", totals["missing"])
        figure("torn lines", totals["torn"])
        figure("duplicated", totals["duplicates"])
        figure("runs ending in a partial tail", totals["partial_tail"])
        figure(
            "crashed sessions packaged / partial tail skipped and counted",
            f"{packaged}/{skipped_counted}",
        )
        assert RUNS == len(runs)
        assert 0 < totals["returned"]
        assert 0 == totals["missing"]
        assert 0 == totals["torn"]
        assert 0 == totals["duplicates"]
        assert packaged == skipped_counted

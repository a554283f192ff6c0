"""SessionReport: one streaming pass over a session folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structlog_belog.package.report import ReportBuilder
from structlog_belog.package.scan import scan_session
from structlog_belog.package.verify import validate_metadata
from tests.session_files import (
    SID,
    call,
    end,
    full_session,
    rec,
    session_dir,
    stage,
    start,
    write,
)


def _sink() -> tuple[dict[str, list[bytes]], object]:
    got: dict[str, list[bytes]] = {"processing": [], "prompts": [], "belog": []}

    def sink(stream: str, pieces: tuple[bytes | memoryview, ...], count: int) -> None:
        data = b"".join(pieces)
        lines = data.split(b"\n")
        assert b"" == lines.pop()  # newline-terminated
        assert count == len(lines)
        got[stream].extend(line + b"\n" for line in lines)

    return got, sink


class TestScanSession:
    def test_totals(self, tmp_path: Path) -> None:
        """Counts, stages, outputs, metrics and AI usage equal what was logged."""
        report = scan_session(full_session(tmp_path))
        meta = report.to_metadata()
        assert SID == meta["session_id"]
        assert "Naval supertask" == meta["title"]
        assert 15 == meta["records"]["total"]
        assert {"error": 2, "info": 12, "warning": 1} == meta["records"]["by_level"]
        assert ["preprocessing", "generation"] == meta["execution"]["stages_executed"]
        gen = meta["execution"]["stages"][1]
        assert (False, 8, 2, 1) == (gen["success"], gen["records"], gen["errors"], gen["warnings"])
        expected = [{"path": "out/beginner.json", "call_ids": ["c1", "c2"], "link": "inferred"}]
        assert expected == meta["outputs"]  # a record without "link" (older logs) was inferred
        assert ["raw/content.md"] == meta["content"]["input_files"]
        assert {"schema_compliance": 0.5} == meta["quality_metrics"]
        ai = meta["ai_usage"]
        assert (2, 60, 20, 40) == (
            ai["total_api_calls"], ai["total_tokens"], ai["input_tokens"], ai["output_tokens"]
        )  # fmt: skip
        assert 0.002 == ai["cost_usd"]
        assert {"gpt-4", "gpt-4o-mini"} == set(ai["by_model"])
        assert 1.0 == ai["success_rate"]
        assert {"total": 1, "succeeded": 1, "failed": 0} == meta["belog_tasks"]
        assert (True, True, 7.0) == (
            meta["execution"]["success"], meta["execution"]["ended"],
            meta["execution"]["duration_seconds"],
        )  # fmt: skip
        validate_metadata(meta)

    def test_errors_grouped(self, tmp_path: Path) -> None:
        """Errors with the same logger and event form one group with count and first time."""
        report = scan_session(full_session(tmp_path))
        assert 1 == len(report.errors)
        group = report.errors[0]
        assert (2, "gen", "parse failed") == (group["count"], group["logger"], group["event"])
        assert "2025-01-18T17:30:04.500000Z" == group["first_seen"]
        assert "ValueError: bad json" == group["exception"]

    def test_shards_merged_by_time(self, tmp_path: Path) -> None:
        """The sink gets every stream's lines, shards k-way merged by timestamp."""
        got, sink = _sink()
        scan_session(full_session(tmp_path), sink=sink)  # type: ignore[arg-type]
        stamps = [orjson.loads(line)["timestamp"] for line in got["processing"]]
        assert sorted(stamps) == stamps
        assert 15 == len(stamps)
        assert ["c1", "c2"] == [orjson.loads(x)["call_id"] for x in got["prompts"]]
        assert 1 == len(got["belog"])

    def test_calls_carry_their_outputs(self, tmp_path: Path) -> None:
        """Each llm_call line in the prompts stream lists the outputs it produced."""
        got, sink = _sink()
        scan_session(full_session(tmp_path), sink=sink)  # type: ignore[arg-type]
        calls = [orjson.loads(x) for x in got["prompts"]]
        assert [["out/beginner.json"]] * 2 == [c["outputs"] for c in calls]

    def test_crashed_session(self, tmp_path: Path) -> None:
        """No session_end: not ended, not successful, end = last record, issue not_ended."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), rec(3, "working"), rec(9, "last words")])
        report = scan_session(d)
        assert (False, False) == (report.ended, report.success)
        assert "2025-01-18T17:30:09.000000Z" == report.end_time
        assert 9.0 == report.duration_seconds
        assert "not_ended" == report.issues[0]["kind"]

    def test_corrupt_lines_counted(self, tmp_path: Path) -> None:
        """Unparseable and non-object lines are skipped and reported with file:line."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), b"{not json\n", b"[1, 2]\n", b"\n", end(2)])
        got, sink = _sink()
        report = scan_session(d, sink=sink)  # type: ignore[arg-type]
        assert 2 == report.records["corrupt_lines"]
        issue = next(i for i in report.issues if i["kind"] == "corrupt_lines")
        assert ["processing.jsonl:2", "processing.jsonl:3"] == issue["examples"]
        assert 2 == len(got["processing"])

    def test_last_line_without_newline(self, tmp_path: Path) -> None:
        """A final line cut before its newline is still read, and written with one."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), orjson.dumps(rec(1, "tail"))])
        got, sink = _sink()
        scan_session(d, sink=sink)  # type: ignore[arg-type]
        assert got["processing"][-1].endswith(b"\n")
        assert "tail" == orjson.loads(got["processing"][-1])["event"]

    def test_exception_and_dropped_issues(self, tmp_path: Path) -> None:
        """An exception at the end and dropped records are reported as issues."""
        d = session_dir(tmp_path)
        trace = "Traceback (most recent call last):\nRuntimeError: disk on fire"
        write(d / "processing.jsonl", [start(0), end(1, success=False, dropped=3, exception=trace)])
        report = scan_session(d)
        kinds = {i["kind"]: i for i in report.issues}
        assert "The run raised: RuntimeError: disk on fire" == kinds["exception"]["message"]
        assert 3 == kinds["dropped_records"]["count"]
        assert 3 == report.records["dropped"]

    def test_dropped_in_joined_processes_added(self, tmp_path: Path) -> None:
        """drops records of child shards add to session_end's count, per process in the issue."""
        d = session_dir(tmp_path)

        def drops(t: float, pid: Any, n: Any) -> dict[str, Any]:
            return rec(t, "records_dropped", level="warning", kind="drops", pid=pid,
                       records_dropped=n)  # fmt: skip

        write(d / "processing.jsonl", [start(0), end(9, dropped=3)])
        write(d / "processing.101.jsonl", [drops(2, 101, 5), drops(4, 101, 1)])
        write(d / "processing.202.jsonl", [drops(3, 202, 9), drops(5, 202, "x"), drops(6, 202, -2)])
        report = scan_session(d)
        (issue,) = [i for i in report.issues if i["kind"] == "dropped_records"]

        assert 18 == report.records["dropped"]
        assert (18, ["the session's process: 3", "process 202: 9", "process 101: 6"]) == (
            issue["count"],
            issue["examples"],
        )

    def test_llm_issues(self, tmp_path: Path) -> None:
        """Rate limits, retries, truncation, empty answers, failures and slow calls are found."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), end(9)])
        write(d / "prompts.jsonl", [
            call(1, "ok1"), call(1.1, "ok2"), call(1.2, "ok3"),
            call(2, "slow", latency_ms=1000.0),
            call(3, "limited", attempts=[{"status_code": 429}, {"status_code": 429},
                                         {"status_code": 200}]),
            call(4, "cut", response={"output_text": "half", "finish_reason": "length"}),
            call(5, "empty", response={"output_text": "", "finish_reason": "stop"}),
            call(6, "failed", status="error", usage=None, response=None,
                 error={"type": "APIConnectionError", "message": "down", "status_code": None}),
        ])  # fmt: skip
        report = scan_session(d)
        kinds = {i["kind"]: i for i in report.issues}
        assert ["limited"] == kinds["rate_limited"]["examples"]
        assert 2 == kinds["retries"]["count"]
        assert ["cut"] == kinds["truncated_generation"]["examples"]
        assert ["empty"] == kinds["empty_output"]["examples"]
        assert ["slow"] == kinds["slow_calls"]["examples"]
        assert 1 == kinds["llm_errors"]["count"]
        assert {"APIConnectionError": 1} == report.ai_usage["error_types"]
        assert 0.875 == report.ai_usage["success_rate"]

    def test_error_burst(self, tmp_path: Path) -> None:
        """Five or more errors within ten seconds are one burst; sparse errors are not."""
        d = session_dir(tmp_path)
        burst = [rec(10 + i * 0.5, f"e{i}", level="error") for i in range(7)]
        sparse = [rec(100 + i * 20, "late", level="error") for i in range(5)]
        write(d / "processing.jsonl", [start(0), *burst, *sparse, end(300)])
        bursts = [i for i in scan_session(d).issues if i["kind"] == "error_burst"]
        assert [7] == [b["count"] for b in bursts]
        assert "2025-01-18T17:30:10.000000Z and 2025-01-18T17:30:13.000000Z" in bursts[0]["message"]

    def test_empty_output_file(self, tmp_path: Path) -> None:
        """Output files that exist but are empty are reported."""
        d = full_session(tmp_path)
        report = scan_session(d, output_sizes=lambda outputs: dict.fromkeys(outputs, 0))
        kinds = {i["kind"]: i for i in report.issues}
        assert ["out/beginner.json"] == kinds["empty_output_file"]["examples"]

    def test_title_override(self, tmp_path: Path) -> None:
        """An explicit title wins over the one in session_start."""
        assert "Other" == scan_session(full_session(tmp_path), title="Other").title

    def test_empty_folder(self, tmp_path: Path) -> None:
        """A session folder with no files gives an empty, not-ended report."""
        report = scan_session(session_dir(tmp_path))
        assert (0, False, SID) == (report.records["total"], report.ended, report.title)
        validate_metadata(report.to_metadata())


class TestReportBuilder:
    def test_bounded_error_groups(self) -> None:
        """Past 200 distinct errors, the rest are counted under one '(other)' row."""
        builder = ReportBuilder(SID)
        for i in range(1000):
            builder.error(rec(i, f"distinct {i}", level="error"))
        report = builder.build()
        assert 201 == len(report.errors)
        assert 800 == report.errors[-1]["count"]

    def test_stage_end_without_start(self) -> None:
        """A stage_end whose start is missing still lists the stage."""
        builder = ReportBuilder(SID)
        builder.special("stage_end", stage(1, "orphan", "stage_end"))
        assert ["orphan"] == [s["name"] for s in builder.build().stages]

    @settings(max_examples=50, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["debug", "info", "warning", "error", "critical"]),
                st.sampled_from([None, "a", "b"]),
            ),
            max_size=60,
        )
    )
    def test_level_counts_add_up(self, rows: list[tuple[str, str | None]]) -> None:
        """Per-level and per-stage counts always add up to the total."""
        builder = ReportBuilder(SID)
        for level, stage_name in rows:
            builder.by_level[level] += 1
            builder.by_stage[stage_name] += 1
        records = builder.build().records
        assert len(rows) == records["total"] == sum(records["by_level"].values())


@pytest.mark.parametrize("n_shards", [1, 2, 5])
def test_merge_property(tmp_path: Path, n_shards: int) -> None:
    """Records spread over shards come out once each, in timestamp order."""
    d = session_dir(tmp_path)
    records = [rec(i * 0.01, f"r{i}") for i in range(300)]
    for i, r in enumerate(records):
        name = (
            "processing.jsonl" if i % n_shards == 0 else f"processing.{1000 + i % n_shards}.jsonl"
        )
        write(d / name, [r])
    got, sink = _sink()
    scan_session(d, sink=sink)  # type: ignore[arg-type]
    assert [r["event"] for r in records] == [orjson.loads(x)["event"] for x in got["processing"]]
